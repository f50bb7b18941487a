"""Settlement finality: FINAL obligations at the cut-off, explicit ADJUSTMENTs, retention.

docs/domain-rules.md, "Settlement cut-off". The netting (domain/netting.py) keeps each
obligation's running figures. This module adds time, in *stream time*: the largest
recorded time of the partition's records in offset order (a trade event's
``ingest_time``, a tick's time), never the wall clock, so a replay of the same input
decides the same.

- When stream time reaches the cut-off of a settlement date (domain/cutoffs.py), every
  obligation of that currency and date becomes FINAL: one ``FINAL`` statement each (its
  figures at that moment, sequence 0), and one sese.023 instruction per instrument with a
  net quantity (domain/sese023.py).
- After the cut-off, an event that changes an obligation of that date (a late NEW, AMEND
  or CANCEL) changes the running figures as before, and each obligation whose figures it
  changed gets an ``ADJUSTMENT`` statement: the figures before and after, the change of net
  cash, and the event; sequence 1, 2, ... per obligation. Nothing changes silently.
- When stream time reaches the end of ``settlement date + retention`` the date's legs,
  obligations and statement counters are dropped (the obligations get a tombstone on the
  compacted topic); a later event of that date is refused (``SETTLEMENT_DATE_EXPIRED``).

Per currency and settlement date a :class:`DateMark` records the two instants and whether
the cut-off has passed; marks are few (currencies x open dates), so the next due instant
is found by scanning them. A cut-off scans the partition's legs once, to sum each
instrument's cash for the instructions.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, Inexact
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from tradeflux.domain.cutoffs import CutoffCalendar
from tradeflux.domain.netting import ObligationState, SettlementLeg, leg_key, net_trade
from tradeflux.domain.schemas import EnrichedTrade, SettlementObligation
from tradeflux.domain.sese023 import render_instruction

_ZERO = Decimal(0)
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact])

V = TypeVar("V")

StatementKind = Literal["FINAL", "ADJUSTMENT"]


class Table(Protocol[V]):
    """Read and write access to one store partition (a StorePartition is one)."""

    def get(self, key: str, default: Any = None, /) -> V | None:  # noqa: D102
        ...

    def put(self, key: str, value: V, /) -> None:  # noqa: D102
        ...

    def delete(self, key: str, /) -> None:  # noqa: D102
        ...

    def items(self) -> Iterator[tuple[str, V]]:  # noqa: D102
        ...


class DateMark(msgspec.Struct, frozen=True, array_like=True):
    """One settlement date of one currency: its cut-off, its expiry, and whether it is FINAL."""

    currency: str
    settlement_date: dt.date
    cutoff_at: dt.datetime
    expires_at: dt.datetime
    final: bool

    @property
    def due_at(self) -> dt.datetime:
        """Return the next instant something happens to this date."""
        return self.expires_at if self.final else self.cutoff_at


class ObligationStatement(msgspec.Struct, frozen=True, kw_only=True):
    """A FINAL or ADJUSTMENT record of one obligation; keyed like the obligation.

    ``obligation`` holds the figures after the statement (None: no effective trade is
    left); an ADJUSTMENT also holds ``previous``, the figures before it, and the event
    that caused it. ``recorded_at`` is the stream time it was issued at. ``sequence`` is 0
    for FINAL and counts the adjustments of the obligation from 1.
    """

    kind: StatementKind
    sequence: int
    counterparty: str
    currency: str
    settlement_date: dt.date
    cutoff_at: dt.datetime
    recorded_at: dt.datetime
    obligation: SettlementObligation | None
    previous: SettlementObligation | None = None
    net_cash_change: Decimal = _ZERO
    trade_id: str = ""
    version: int = 0
    event_type: str = ""


class Outcome(enum.Enum):
    """What became of one trade event."""

    APPLIED = "applied"
    STALE = "stale"  # its version is not above the one held: ignored
    EXPIRED = "expired"  # its settlement date's state was dropped: refused


def obligation_parts(key: str) -> tuple[str, str, dt.date]:
    """Return (counterparty, currency, settlement date) of an obligation key."""
    counterparty, currency, day = key.rsplit("|", 2)
    return counterparty, currency, dt.date.fromisoformat(day)


def _mark_key(currency: str, day: dt.date) -> str:
    return f"{currency}|{day.isoformat()}"


Issued = tuple[Literal["statement", "instruction"], str, Any]
"""An output in issue order: ("statement", key, ObligationStatement) or ("instruction", ...)."""


@dataclass
class SettlementBook:
    """The settlement state of one input partition during one batch.

    Call :meth:`advance` with each record's recorded time, then :meth:`apply` for each
    trade event, in offset order. ``issued`` collects the statements and instructions in
    order; ``changed`` the obligations changed (None: gone), for the compacted topic.
    """

    calendar: CutoffCalendar
    legs: Table[SettlementLeg]
    obligations: Table[ObligationState]
    marks: Table[DateMark]
    counts: Table[int]
    stream_time: dt.datetime | None
    issued: list[Issued] = field(default_factory=list)
    changed: dict[str, ObligationState | None] = field(default_factory=dict)
    finalised: int = 0
    expired: int = 0
    _next_due: dt.datetime | None = field(default=None, init=False)
    _due_known: bool = field(default=False, init=False)

    # -- time ------------------------------------------------------------------------------

    def advance(self, recorded: dt.datetime) -> None:
        """Move stream time up to ``recorded`` and do what came due: cut-offs, then expiries."""
        if self.stream_time is not None and recorded <= self.stream_time:
            return
        self.stream_time = recorded
        while True:
            due = self._due()
            if due is None or due > recorded:
                return
            mark = min(
                (m for _, m in self.marks.items() if m.due_at <= recorded),
                key=lambda m: (m.due_at, m.final, m.currency, m.settlement_date),
            )
            if mark.final:
                self._expire(mark)
            else:
                self._finalise(mark)
            self._due_known = False

    def _due(self) -> dt.datetime | None:
        if not self._due_known:
            self._next_due = min((m.due_at for _, m in self.marks.items()), default=None)
            self._due_known = True
        return self._next_due

    def _ensure_mark(self, currency: str, day: dt.date) -> DateMark:
        key = _mark_key(currency, day)
        mark = self.marks.get(key)
        if mark is None:
            cutoff = self.calendar.cutoff_at(currency, day)
            now = self.stream_time
            mark = DateMark(
                currency,
                day,
                cutoff,
                self.calendar.expires_at(currency, day),
                now is not None and cutoff <= now,
            )
            self.marks.put(key, mark)
            if self._due_known and (self._next_due is None or mark.due_at < self._next_due):
                self._next_due = mark.due_at
        return mark

    def _finalise(self, mark: DateMark) -> None:
        """Issue the FINAL statement and instructions of every obligation of ``mark``'s date."""
        currency, day = mark.currency, mark.settlement_date
        cash: dict[tuple[str, str], Decimal] = {}
        for _, leg in self.legs.items():
            if leg.live and leg.currency == currency and leg.settlement_date == day:
                slot = (leg.obligation_key, leg.instrument)
                cash[slot] = _EXACT.add(cash.get(slot, _ZERO), leg.cash)
        states = sorted(
            (key, state)
            for key, state in self.obligations.items()
            if state.currency == currency and state.settlement_date == day
        )
        assert self.stream_time is not None  # noqa: S101 - a cut-off fires as time moves
        for key, state in states:
            obligation = state.obligation()
            self.issued.append(
                (
                    "statement",
                    key,
                    ObligationStatement(
                        kind="FINAL",
                        sequence=0,
                        counterparty=state.counterparty,
                        currency=currency,
                        settlement_date=day,
                        cutoff_at=mark.cutoff_at,
                        recorded_at=self.stream_time,
                        obligation=obligation,
                    ),
                )
            )
            self.counts.put(key, 0)
            for line in obligation.securities:
                if line.quantity == 0:
                    continue
                self.issued.append(
                    (
                        "instruction",
                        key,
                        render_instruction(
                            obligation_key=key,
                            counterparty=state.counterparty,
                            counterparty_lei=state.counterparty_lei,
                            currency=currency,
                            settlement_date=day,
                            instrument=line.instrument,
                            isin=line.isin,
                            quantity=line.quantity,
                            cash=cash.get((key, line.instrument), _ZERO),
                        ),
                    )
                )
            self.finalised += 1
        self.marks.put(_mark_key(currency, day), msgspec.structs.replace(mark, final=True))

    def _expire(self, mark: DateMark) -> None:
        """Drop the legs, obligations and statement counters of ``mark``'s date."""
        currency, day = mark.currency, mark.settlement_date
        legs = [
            key
            for key, leg in self.legs.items()
            if leg.currency == currency and leg.settlement_date == day
        ]
        for key in legs:
            self.legs.delete(key)
        for key in [k for k, s in self.obligations.items() if _of(s, currency, day)]:
            self.obligations.delete(key)
            self.changed[key] = None
        for key in [
            k for k, _ in self.counts.items() if obligation_parts(k)[1:] == (currency, day)
        ]:
            self.counts.delete(key)
        self.marks.delete(_mark_key(currency, day))
        self.expired += 1

    # -- trades ----------------------------------------------------------------------------

    def apply(self, event: EnrichedTrade) -> Outcome:
        """Net one trade event (after :meth:`advance` with its recorded time).

        An event of a settlement date whose state expired is refused. An event whose
        version is not above the held one changes nothing. Otherwise the obligations
        change as netting says, and each one of a FINAL date whose figures changed gets
        an ADJUSTMENT statement.
        """
        now = self.stream_time
        if (
            now is not None
            and self.calendar.expires_at(event.currency, event.settlement_date) <= now
        ):
            return Outcome.EXPIRED
        key = leg_key(event)
        step = net_trade(self.legs.get(key), event, self.obligations.get)
        if step.leg is None:
            return Outcome.STALE
        self._ensure_mark(step.leg.currency, step.leg.settlement_date)
        self.legs.put(key, step.leg)
        for ob_key, state in step.obligations.items():
            before = self.obligations.get(ob_key)
            if state is None:
                self.obligations.delete(ob_key)
            else:
                self.obligations.put(ob_key, state)
            self.changed[ob_key] = state
            _, currency, day = obligation_parts(ob_key)
            if self._ensure_mark(currency, day).final:
                self._adjust(ob_key, before, state, event)
        return Outcome.APPLIED

    def _adjust(
        self,
        key: str,
        before: ObligationState | None,
        after: ObligationState | None,
        event: EnrichedTrade,
    ) -> None:
        previous = None if before is None else before.obligation()
        current = None if after is None else after.obligation()
        if previous == current:
            return  # the figures did not change (e.g. an amend of the trade time only)
        counterparty, currency, day = obligation_parts(key)
        sequence = (self.counts.get(key) or 0) + 1
        self.counts.put(key, sequence)
        assert self.stream_time is not None  # noqa: S101 - a FINAL date has a stream time
        change = _EXACT.subtract(
            _ZERO if current is None else current.net_cash,
            _ZERO if previous is None else previous.net_cash,
        )
        self.issued.append(
            (
                "statement",
                key,
                ObligationStatement(
                    kind="ADJUSTMENT",
                    sequence=sequence,
                    counterparty=counterparty,
                    currency=currency,
                    settlement_date=day,
                    cutoff_at=self.calendar.cutoff_at(currency, day),
                    recorded_at=self.stream_time,
                    obligation=current,
                    previous=previous,
                    net_cash_change=change,
                    trade_id=event.trade_id,
                    version=event.version,
                    event_type=event.event_type,
                ),
            )
        )


def _of(state: ObligationState, currency: str, day: dt.date) -> bool:
    return state.currency == currency and state.settlement_date == day
