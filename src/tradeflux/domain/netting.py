"""Settlement netting: obligations per counterparty, currency and settlement date.

docs/domain-rules.md, "Settlement (netting)". Every amount is seen from our side: a
positive figure is one we receive, a negative one we pay or deliver. A trade's
contribution (:class:`SettlementLeg`) is its cash ``+notional`` for a SELL (we receive
cash) and ``-notional`` for a BUY (we pay), and its securities ``+quantity`` of the
instrument for a BUY (we receive them) and ``-quantity`` for a SELL (we deliver). The
settlement date is the enriched trade's own ``settlement_date``: the validator computed
it from the trade date and the instrument's settlement cycle in sessions of its MIC's
exchange calendar, so netting never re-dates a trade.

An obligation (``counterparty|currency|settlement_date``) nets the effective trades of
that key: the latest version of each trade, a CANCEL removing it. State is immutable
values, one per trade (:class:`SettlementLeg`, its last contribution; a cancel is kept
as a tombstone holding its version) and one per obligation (:class:`ObligationState`,
the running sums). An AMEND takes out exactly what the previous version put in (from
its obligation, which may be another settlement date) and puts in the new contribution;
an event whose version is not above the held one changes nothing. Sums are exact: they
are computed in the one context of domain/arithmetic.py, whose 64 digits hold any sum
of notionals inside the bounds without rounding, so any order of the same effective
trades gives the same figures, equal to netting them afresh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import NamedTuple

import msgspec

from tradeflux.domain.arithmetic import add as _add
from tradeflux.domain.arithmetic import negate
from tradeflux.domain.arithmetic import subtract as _subtract
from tradeflux.domain.schemas import EnrichedTrade, SecuritiesObligation, SettlementObligation

_ZERO = Decimal(0)


def obligation_key(counterparty: str, currency: str, settlement_date: dt.date) -> str:
    """Return the key of an obligation on ``settlement.obligations``: ``cpty|CCY|YYYY-MM-DD``."""
    return f"{counterparty}|{currency}|{settlement_date.isoformat()}"


def leg_key(event: EnrichedTrade) -> str:
    """Return the key a trade's contribution is held under: ``cpty|account|instrument|trade_id``.

    Per counterparty, account and instrument, because the validator turns an AMEND that
    changes one of them into a CANCEL of the old trade and a NEW of the new one with the
    same version: the two must not meet under one key (the NEW would look like a
    replay), and as they may come from two partitions of ``trades.enriched`` (an account
    move) their relative order on ``trades.by_counterparty`` is not known.
    """
    return f"{event.counterparty}|{event.account}|{event.instrument}|{event.trade_id}"


class SettlementLeg(msgspec.Struct, frozen=True, array_like=True):
    """What one version of a trade contributes to its obligation; ``live`` False is a cancel.

    ``cash`` (in ``currency``) and ``quantity`` (of ``instrument``) are signed from our
    side: positive we receive, negative we pay or deliver.
    """

    version: int
    live: bool
    counterparty: str
    counterparty_lei: str
    currency: str
    settlement_date: dt.date
    instrument: str
    isin: str
    quantity: Decimal
    cash: Decimal

    @classmethod
    def of(cls, trade: EnrichedTrade) -> SettlementLeg:
        """Return the contribution of an enriched trade event; a CANCEL gives a tombstone."""
        buy = trade.side == "BUY"
        return cls(
            trade.version,
            trade.event_type != "CANCEL",
            trade.counterparty,
            trade.counterparty_lei,
            trade.currency,
            trade.settlement_date,
            trade.instrument,
            trade.isin,
            trade.quantity if buy else negate(trade.quantity),
            negate(trade.notional) if buy else trade.notional,
        )

    @property
    def obligation_key(self) -> str:
        """Return the key of the obligation this leg belongs to."""
        return obligation_key(self.counterparty, self.currency, self.settlement_date)


class InstrumentSums(msgspec.Struct, frozen=True, array_like=True):
    """The net signed quantity of one instrument in an obligation, and its trade count."""

    isin: str
    quantity: Decimal
    trades: int


class ObligationState(msgspec.Struct, frozen=True, kw_only=True):
    """The running sums of one obligation; a value of the settlement store.

    ``paid`` and ``received`` are the gross cash of the BUYs and of the SELLs (both
    positive), so the net cash is ``received - paid``. ``instruments`` holds the
    instruments with at least one effective trade. ``counterparty_lei`` is the LEI the
    latest NEW or AMEND applied to the obligation carried. Immutable: the functions
    below return new values.
    """

    counterparty: str
    counterparty_lei: str
    currency: str
    settlement_date: dt.date
    paid: Decimal = _ZERO
    received: Decimal = _ZERO
    trades: int = 0
    instruments: dict[str, InstrumentSums] = msgspec.field(default_factory=dict)

    def obligation(self) -> SettlementObligation:
        """Return the obligation as it goes on ``settlement.obligations``."""
        return SettlementObligation(
            counterparty=self.counterparty,
            counterparty_lei=self.counterparty_lei,
            currency=self.currency,
            settlement_date=self.settlement_date,
            net_cash=_subtract(self.received, self.paid),
            cash_paid=self.paid,
            cash_received=self.received,
            trade_count=self.trades,
            securities=tuple(
                SecuritiesObligation(
                    instrument=instrument, isin=s.isin, quantity=s.quantity, trade_count=s.trades
                )
                for instrument, s in sorted(self.instruments.items())
            ),
        )


def add_leg(state: ObligationState | None, leg: SettlementLeg, sign: int) -> ObligationState | None:
    """Return the obligation with ``leg`` put in (``sign`` 1) or taken out (-1).

    ``state`` None is an obligation without trades. Returns None when no trade is left
    (its sums are then exactly zero). An instrument without trades leaves the map.
    """
    if state is None:
        state = ObligationState(
            counterparty=leg.counterparty,
            counterparty_lei=leg.counterparty_lei,
            currency=leg.currency,
            settlement_date=leg.settlement_date,
        )
    trades = state.trades + sign
    if trades == 0:
        return None
    paid, received = state.paid, state.received
    if leg.cash < 0:
        paid = _subtract(paid, leg.cash) if sign > 0 else _add(paid, leg.cash)
    else:
        received = _add(received, leg.cash) if sign > 0 else _subtract(received, leg.cash)
    instruments = dict(state.instruments)
    held = instruments.get(leg.instrument)
    count = (0 if held is None else held.trades) + sign
    if count:
        before = _ZERO if held is None else held.quantity
        quantity = _add(before, leg.quantity) if sign > 0 else _subtract(before, leg.quantity)
        instruments[leg.instrument] = InstrumentSums(leg.isin, quantity, count)
    else:
        del instruments[leg.instrument]
    return ObligationState(
        counterparty=state.counterparty,
        counterparty_lei=leg.counterparty_lei if sign > 0 else state.counterparty_lei,
        currency=state.currency,
        settlement_date=state.settlement_date,
        paid=paid,
        received=received,
        trades=trades,
        instruments=instruments,
    )


class NettingStep(NamedTuple):
    """What one event did: the trade's new leg (None: ignored) and the obligations it changed.

    ``obligations`` maps each changed obligation key to its new state, None when it has
    no trades left (a tombstone on the compacted topic).
    """

    leg: SettlementLeg | None
    obligations: dict[str, ObligationState | None]


def net_trade(
    held: SettlementLeg | None,
    event: EnrichedTrade,
    obligation_of: Callable[[str], ObligationState | None],
) -> NettingStep:
    """Apply one enriched trade event to the obligations; return what changed.

    ``held`` is the leg held under the event's :func:`leg_key`; ``obligation_of`` returns
    the current state of an obligation key (None: no trades). An event whose version is
    not above the held one changes nothing. Otherwise the held leg (if live) is taken
    out of its obligation and the event's put into its own (a CANCEL puts nothing in);
    the two may be the same obligation, or two when an AMEND moved the settlement date.
    """
    if held is not None and event.version <= held.version:
        return NettingStep(None, {})
    leg = SettlementLeg.of(event)
    changed: dict[str, ObligationState | None] = {}
    if held is not None and held.live:
        key = held.obligation_key
        changed[key] = add_leg(obligation_of(key), held, -1)
    if leg.live:
        key = leg.obligation_key
        state = changed[key] if key in changed else obligation_of(key)
        changed[key] = add_leg(state, leg, 1)
    return NettingStep(leg, changed)


def fold_obligations(events: Iterable[EnrichedTrade]) -> dict[str, SettlementObligation]:
    """Apply ``events`` in order as the settlement service does; return the open obligations.

    The result holds every obligation with at least one effective trade, by key.
    """
    legs: dict[str, SettlementLeg] = {}
    states: dict[str, ObligationState] = {}
    for event in events:
        key = leg_key(event)
        step = net_trade(legs.get(key), event, states.get)
        if step.leg is None:
            continue
        legs[key] = step.leg
        for ob_key, state in step.obligations.items():
            if state is None:
                states.pop(ob_key, None)
            else:
                states[ob_key] = state
    return {key: state.obligation() for key, state in states.items()}


def net_obligations(trades: Iterable[EnrichedTrade]) -> dict[str, SettlementObligation]:
    """Net a set of effective trades (one NEW or AMEND per trade) afresh, by obligation key.

    The direct definition :func:`fold_obligations` must agree with: per key, the sums of
    the trades' signed cash and quantities. ``counterparty_lei`` is that of the last
    trade of the key in the order given.
    """
    states: dict[str, ObligationState] = {}
    for trade in trades:
        leg = SettlementLeg.of(trade)
        key = leg.obligation_key
        state = add_leg(states.get(key), leg, 1)
        assert state is not None  # noqa: S101 (putting a trade in never empties)
        states[key] = state
    return {key: state.obligation() for key, state in states.items()}
