"""Bars: event-time tumbling windows over an instrument's effective trades (docs/domain-rules.md).

A window of an instrument holds the effective trades (latest version per account and
trade id; a CANCEL removes the trade) whose ``trade_time`` falls in
``[start, start + size)``, windows aligned on the UTC epoch. Its bar is the OHLCV of
those trades (:func:`bar_of`).

Stream time is event time: the largest ``trade_time`` seen in the input partition. A
window is closed once stream time is past ``end + grace``; an event that would change a
closed window is late: counted, not applied. When a window closes its final bar goes out
and its state is dropped, so memory holds only the open windows.

Hopping windows (:class:`HoppingSpec`: ``size`` every ``advance``, so ``size / advance``
windows overlap at any instant) are that many tumbling series side by side, series ``j``
aligned on ``j * advance`` (:meth:`HoppingSpec.phases`): a trade is in exactly one window
of each series, so each series is a :class:`WindowBatch` of its own (its slots under a
prefix of its own), and lateness is decided per window.

:class:`WindowBatch` is the work of one input partition in one batch: it reads the
committed state through two lookups, applies events in order on private working copies
(store values are never mutated), and :meth:`WindowBatch.finish` returns the new state
and at most one bar (or tombstone) per changed or closed window. Results do not depend on
how the input is cut into batches: lateness is decided per event against the stream time
before it, and a closed window can no longer change.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, Inexact
from typing import Protocol, TypeVar

import msgspec

from tradeflux.domain.schemas import Bar, EnrichedTrade

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
VWAP_QUANTUM = Decimal("0.000001")
"""VWAP is quantized to 6 decimal places, half-even (finer than any tick we list)."""

_ONE_US = dt.timedelta(microseconds=1)
_ZERO = Decimal(0)
# Sums and products of a bar are exact: in this context they never round (and would raise
# if they had to), so no value a trade can carry makes a bar fail or depend on the order.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact])
_VWAP_DIGITS = 28  # the quotient's significant digits, as Python's default context has

V_co = TypeVar("V_co", covariant=True)


class Lookup(Protocol[V_co]):
    """Read access to committed state by key (a store partition is one)."""

    def get(self, key: str, /) -> V_co | None:  # noqa: D102
        ...


@dataclass(frozen=True)
class WindowSpec:
    """Tumbling windows of ``size``, closed ``grace`` after their end.

    Aligned on the UTC epoch plus ``offset`` (0 <= offset < size): windows start at
    ``EPOCH + offset + k * size``.
    """

    size: dt.timedelta
    grace: dt.timedelta
    offset: dt.timedelta = dt.timedelta(0)

    def __post_init__(self) -> None:
        if self.size <= dt.timedelta(0):
            raise ValueError(f"window size must be positive, got {self.size}")
        if self.grace < dt.timedelta(0):
            raise ValueError(f"grace must not be negative, got {self.grace}")
        if not dt.timedelta(0) <= self.offset < self.size:
            raise ValueError(f"offset must be in [0, size), got {self.offset}")

    def start_of(self, t: dt.datetime) -> dt.datetime:
        """Return the start of the window that holds instant ``t`` (aware)."""
        elapsed_us = (t - EPOCH - self.offset) // _ONE_US
        size_us = self.size // _ONE_US
        return EPOCH + self.offset + dt.timedelta(microseconds=elapsed_us - elapsed_us % size_us)

    def holds(self, start: dt.datetime) -> bool:
        """Tell whether ``start`` is the start of one of these windows."""
        return (start - EPOCH - self.offset) // _ONE_US % (self.size // _ONE_US) == 0

    def is_closed(self, start: dt.datetime, stream_time: dt.datetime | None) -> bool:
        """Tell whether the window starting at ``start`` is closed at ``stream_time``.

        Closed means ``stream_time > start + size + grace``; no stream time, nothing closed.
        """
        return stream_time is not None and stream_time > start + self.size + self.grace


@dataclass(frozen=True)
class HoppingSpec:
    """Hopping windows: ``size`` long, one starting every ``advance``, closed ``grace`` after.

    ``size`` is a whole multiple of ``advance``; windows start at ``EPOCH + k * advance``.
    """

    size: dt.timedelta
    advance: dt.timedelta
    grace: dt.timedelta

    def __post_init__(self) -> None:
        if self.advance <= dt.timedelta(0) or self.size < self.advance:
            raise ValueError(f"hopping windows need 0 < advance <= size, got {self}")
        if (self.size // _ONE_US) % (self.advance // _ONE_US):
            raise ValueError(f"hopping window size must be a multiple of the advance, got {self}")

    def phases(self) -> list[WindowSpec]:
        """Return the tumbling series that make up these windows, one per offset."""
        count = self.size // self.advance
        return [WindowSpec(self.size, self.grace, self.advance * j) for j in range(count)]


def window_key(instrument: str, start: dt.datetime) -> str:
    """Return the key of a window (and of its bars): ``instrument|2026-11-24T15:00:05Z``."""
    return f"{instrument}|{_iso(start)}"


def trade_key(account: str, trade_id: str) -> str:
    """Return the key of a trade in its window: ``account|trade_id``.

    A trade is known by account and trade id: the validator turns an AMEND that moves a
    trade to another account into a CANCEL of the old and a NEW of the new with the same
    version, which come from two partitions of ``trades.enriched`` and so may reach an
    instrument's partition in either order; per account, a trade's events are in order.
    """
    return f"{account}|{trade_id}"


def slot_key(instrument: str, key: str) -> str:
    """Return the key of a trade's slot: ``instrument|account|trade_id``."""
    return f"{instrument}|{key}"


def _iso(t: dt.datetime) -> str:
    text = t.astimezone(dt.UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


class BarTrade(msgspec.Struct, frozen=True, array_like=True):
    """What a bar needs of one effective trade."""

    trade_id: str
    account: str
    trade_time: dt.datetime
    quantity: Decimal
    price: Decimal
    notional: Decimal


class TradeSlot(msgspec.Struct, frozen=True, array_like=True):
    """Where a trade is: the start of its window, the version held, and the trade if live.

    A cancelled trade (``trade`` None) keeps the window it was cancelled from, so its slot
    goes when that window closes.
    """

    window_start: dt.datetime
    version: int
    trade: BarTrade | None = None


MEMBERS_PER_CHUNK = 256
"""Trade keys per record of a window's member list (each record stays a few KiB)."""


class WindowState(msgspec.Struct, frozen=True, kw_only=True):
    """An open window of an instrument: the running OHLCV of its live trades.

    Sums are exact, so removing a trade (an amend that moves it, a cancel) subtracts it;
    when the removed trade was the open or the close, or the last one at the high or the
    low, those are found again from the window's live trades. The trades themselves are in
    their slots, and ``members`` counts the trade keys ever placed here (the member list,
    in chunks of :data:`MEMBERS_PER_CHUNK`; a key may repeat, and a trade that moved on is
    skipped by its slot). No record of a window grows with its trades. ``currency`` is that
    of the last event applied.
    """

    instrument: str
    start: dt.datetime
    currency: str
    count: int = 0
    volume: Decimal = _ZERO
    value: Decimal = _ZERO  # sum of price * quantity
    notional: Decimal = _ZERO
    first: BarTrade | None = None
    last: BarTrade | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    at_high: int = 0  # live trades at the high price
    at_low: int = 0
    members: int = 0


def member_key(prefix: str, window: str, chunk: int) -> str:
    """Return the key of a window's member chunk: ``[prefix]window#chunk``."""
    return f"{prefix}{window}#{chunk}"


def bar_of(
    instrument: str,
    start: dt.datetime,
    size: dt.timedelta,
    currency: str,
    trades: Iterable[BarTrade],
    final: bool = False,
) -> Bar | None:
    """Return the bar of a window's effective trades, or None when it has none.

    Open and close are the prices of the first and last trade by ``(trade_time,
    trade_id, account)``; ``volume = Σ quantity``; ``vwap = Σ(price · quantity) / volume``
    quantized to :data:`VWAP_QUANTUM` half-even; ``notional = Σ notional``. Decimal in
    an explicit context: sums and products exact, the quotient to 28 significant digits
    (more when its integer part needs them), half-even, so no trade value makes it raise.
    """
    work = _Working(instrument, start, currency)
    for trade in sorted(trades, key=_order):  # ties at the high or low keep the first
        work.add(trade)
    return window_bar(work, size, final)


def vwap_of(value: Decimal, volume: Decimal) -> Decimal:
    """Return ``value / volume`` quantized to :data:`VWAP_QUANTUM` half-even (volume > 0).

    The quotient is rounded to 28 significant digits first (as Python's default context
    does), or to as many as its integer part and six decimals need, so quantizing never
    runs out of digits.
    """
    integer_digits = max(0, value.adjusted() - volume.adjusted() + 2)
    context = Context(
        prec=max(_VWAP_DIGITS, integer_digits + 8),
        rounding=ROUND_HALF_EVEN,
        Emax=MAX_EMAX,
        Emin=MIN_EMIN,
    )
    return context.divide(value, volume).quantize(VWAP_QUANTUM, context=context)


class Outcome(enum.Enum):
    """What became of one event."""

    APPLIED = "applied"
    LATE = "late"  # it would change a closed window: counted, not applied
    STALE = "stale"  # its version is not above the one held: ignored


def _order(trade: BarTrade) -> tuple[dt.datetime, str, str]:
    return (trade.trade_time, trade.trade_id, trade.account)


@dataclass
class _Working:
    """A private, mutable copy of one window's state during a batch.

    ``added`` are the member keys placed in this batch (after the ``members`` stored);
    ``rescan`` says that the trade of the open or the close, or the last one at the high
    or the low, went, so those are found again from the live trades in
    :meth:`WindowBatch.finish`.
    """

    instrument: str
    start: dt.datetime
    currency: str
    count: int = 0
    volume: Decimal = _ZERO
    value: Decimal = _ZERO
    notional: Decimal = _ZERO
    first: BarTrade | None = None
    last: BarTrade | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    at_high: int = 0
    at_low: int = 0
    members: int = 0
    added: list[str] = field(default_factory=list)
    rescan: bool = False

    @classmethod
    def of(cls, state: WindowState) -> _Working:
        return cls(
            state.instrument, state.start, state.currency, state.count, state.volume,
            state.value, state.notional, state.first, state.last, state.high, state.low,
            state.at_high, state.at_low, state.members,
        )  # fmt: skip

    def add(self, trade: BarTrade) -> None:
        self.count += 1
        self.volume = _EXACT.add(self.volume, trade.quantity)
        self.value = _EXACT.add(self.value, _EXACT.multiply(trade.price, trade.quantity))
        self.notional = _EXACT.add(self.notional, trade.notional)
        self._extend(trade)

    def _extend(self, trade: BarTrade) -> None:
        if self.first is None or _order(trade) < _order(self.first):
            self.first = trade
        if self.last is None or _order(trade) > _order(self.last):
            self.last = trade
        price = trade.price
        if self.high is None or price > self.high:
            self.high, self.at_high = price, 1
        elif price == self.high:
            self.at_high += 1
        if self.low is None or price < self.low:
            self.low, self.at_low = price, 1
        elif price == self.low:
            self.at_low += 1

    def remove(self, trade: BarTrade) -> None:
        self.count -= 1
        if self.count == 0:  # back to empty: nothing left to find again
            self.volume = self.value = self.notional = _ZERO
            self.first = self.last = self.high = self.low = None
            self.at_high = self.at_low = 0
            self.rescan = False
            return
        self.volume = _EXACT.subtract(self.volume, trade.quantity)
        self.value = _EXACT.subtract(self.value, _EXACT.multiply(trade.price, trade.quantity))
        self.notional = _EXACT.subtract(self.notional, trade.notional)
        if trade.price == self.high:
            self.at_high -= 1
        if trade.price == self.low:
            self.at_low -= 1
        if trade in (self.first, self.last) or not (self.at_high and self.at_low):
            self.rescan = True

    def refind(self, live: Iterable[BarTrade]) -> None:
        """Find the open, close, high and low again among ``live``, the window's trades."""
        self.first = self.last = self.high = self.low = None
        self.at_high = self.at_low = 0
        for trade in live:
            self._extend(trade)
        self.rescan = False

    def frozen(self) -> WindowState:
        return WindowState(
            instrument=self.instrument, start=self.start, currency=self.currency,
            count=self.count, volume=self.volume, value=self.value, notional=self.notional,
            first=self.first, last=self.last, high=self.high, low=self.low,
            at_high=self.at_high, at_low=self.at_low, members=self.members + len(self.added),
        )  # fmt: skip


def window_bar(
    state: WindowState | _Working, size: dt.timedelta, final: bool = False
) -> Bar | None:
    """Return the bar of a window from its running state, or None when it has no trades.

    The same bar as :func:`bar_of` over the window's live trades.
    """
    if state.count == 0:
        return None
    assert state.first is not None and state.last is not None  # noqa: S101 - count > 0
    assert state.high is not None and state.low is not None  # noqa: S101 - count > 0
    return Bar(
        instrument=state.instrument,
        window_start=state.start,
        window_end=state.start + size,
        currency=state.currency,
        open=state.first.price,
        high=state.high,
        low=state.low,
        close=state.last.price,
        volume=state.volume,
        vwap=vwap_of(state.value, state.volume),
        notional=state.notional,
        count=state.count,
        final=final,
    )


@dataclass(frozen=True)
class BatchResult:
    """What a batch changed: state to write (None deletes) and bars to emit (None: tombstone).

    ``members`` are the member chunks to write (None deletes). ``bars`` is in (window
    start, instrument) order, one entry per window at most.
    """

    stream_time: dt.datetime | None
    windows: dict[str, WindowState | None]
    slots: dict[str, TradeSlot | None]
    members: dict[str, tuple[str, ...] | None]
    bars: list[tuple[str, Bar | None]]
    closed: int


_T = TypeVar("_T")


@dataclass
class WindowBatch:
    """The windows of one input partition during one batch.

    Feed events in offset order with :meth:`apply`, then call :meth:`finish` once. The
    committed state is read through three lookups: windows, slots (by
    ``[prefix]instrument|account|trade_id``) and member chunks (:func:`member_key`).
    Work per event is constant; a window's trades are visited only when it closes, or
    when a trade that held its open, close, high or low goes.
    """

    spec: WindowSpec
    stream_time: dt.datetime | None
    windows: Lookup[WindowState]
    slots: Lookup[TradeSlot]
    members: Lookup[tuple[str, ...]]
    slot_prefix: str = ""  # keeps the slots of hopping series apart in one store
    _work: dict[str, _Working] = field(default_factory=dict, init=False)
    _slots: dict[str, TradeSlot | None] = field(default_factory=dict, init=False)
    _changed: set[str] = field(default_factory=set, init=False)

    def _slot(self, key: str) -> TradeSlot | None:
        if key in self._slots:
            return self._slots[key]
        return self.slots.get(key)

    def _window(self, instrument: str, start: dt.datetime, currency: str) -> _Working:
        key = window_key(instrument, start)
        work = self._work.get(key)
        if work is None:
            state = self.windows.get(key)
            work = (
                _Working.of(state) if state is not None else _Working(instrument, start, currency)
            )
            self._work[key] = work
        self._changed.add(key)
        return work

    def apply(self, event: EnrichedTrade) -> Outcome:
        """Apply one event of the partition, in offset order; return what became of it.

        Against the stream time before the event: a live event (NEW, AMEND) needs the
        window of its ``trade_time`` open; an AMEND or CANCEL needs the trade live in an
        open window (a trade whose window closed has no slot any more, so it is late too).
        Then stream time moves up to the event's ``trade_time``, whatever the outcome.
        """
        try:
            return self._apply(event)
        finally:
            if self.stream_time is None or event.trade_time > self.stream_time:
                self.stream_time = event.trade_time

    def _apply(self, event: EnrichedTrade) -> Outcome:
        instrument, tkey = event.instrument, trade_key(event.account, event.trade_id)
        key = self.slot_prefix + slot_key(instrument, tkey)
        held = self._slot(key)
        if held is not None and event.version <= held.version:
            return Outcome.STALE
        spec, now = self.spec, self.stream_time
        old = held.window_start if held is not None and held.trade is not None else None
        live = event.event_type != "CANCEL"
        if event.event_type != "NEW" and old is None:
            return Outcome.LATE  # not held live: its window closed, or it never got in
        new = spec.start_of(event.trade_time) if live else None
        if (old is not None and spec.is_closed(old, now)) or (
            new is not None and spec.is_closed(new, now)
        ):
            return Outcome.LATE
        if old is not None:
            assert held is not None and held.trade is not None  # noqa: S101 - old is set
            window = self._window(instrument, old, event.currency)
            window.remove(held.trade)
            window.currency = event.currency
        if new is None:
            assert old is not None  # noqa: S101 - a CANCEL got here only with the trade live
            self._slots[key] = TradeSlot(old, event.version)
            return Outcome.APPLIED
        trade = BarTrade(
            event.trade_id,
            event.account,
            event.trade_time,
            event.quantity,
            event.price,
            event.notional,
        )
        window = self._window(instrument, new, event.currency)
        window.add(trade)
        window.currency = event.currency
        if new != (held.window_start if held is not None else None):
            window.added.append(tkey)  # a member of this window from now on
        self._slots[key] = TradeSlot(new, event.version, trade)
        return Outcome.APPLIED

    def _stored_chunks(self, key: str, state: _Working | WindowState) -> list[str]:
        """Return the keys of window ``key``'s member chunks as stored (before this batch)."""
        chunks = -(-state.members // MEMBERS_PER_CHUNK)
        return [member_key(self.slot_prefix, key, chunk) for chunk in range(chunks)]

    def _member_keys(self, key: str, state: _Working | WindowState) -> list[str]:
        """Return the trade keys ever placed in window ``key``, each once, in placement order."""
        keys: list[str] = []
        for ckey in self._stored_chunks(key, state):
            keys += self.members.get(ckey) or ()
        if isinstance(state, _Working):
            keys += state.added
        return list(dict.fromkeys(keys))

    def _live_trades(self, key: str, state: _Working | WindowState) -> Iterable[BarTrade]:
        for tkey in self._member_keys(key, state):
            slot = self._slot(self.slot_prefix + slot_key(state.instrument, tkey))
            if slot is not None and slot.trade is not None and slot.window_start == state.start:
                yield slot.trade

    def _chunks(self, key: str, work: _Working) -> dict[str, tuple[str, ...]]:
        """Return the member chunks that the keys added in this batch change or make."""
        out: dict[str, tuple[str, ...]] = {}
        at = work.members
        pending = list(work.added)
        while pending:
            chunk, used = divmod(at, MEMBERS_PER_CHUNK)
            ckey = member_key(self.slot_prefix, key, chunk)
            held = (self.members.get(ckey) or ()) if used else ()
            take = pending[: MEMBERS_PER_CHUNK - used]
            out[ckey] = (*held, *take)
            pending = pending[len(take) :]
            at += len(take)
        return out

    def finish(self, committed: Iterable[tuple[str, WindowState]]) -> BatchResult:
        """Close the windows stream time has passed; return the state and bars to write.

        ``committed`` is every window of this spec in the partition as of the last commit
        (windows of other specs are skipped: see :meth:`WindowSpec.holds`). A changed
        window gets its bar revision (a tombstone when it has no trades left); a window
        that closes gets its final bar instead (nothing if it is empty and unchanged), and
        its state, its member chunks and its trades' slots are dropped.
        """
        spec, now = self.spec, self.stream_time
        windows: dict[str, WindowState | None] = {}
        members: dict[str, tuple[str, ...] | None] = {}
        bars: list[tuple[dt.datetime, str, Bar | None]] = []
        closed = 0
        states: dict[str, _Working | WindowState] = {
            key: state for key, state in committed if spec.holds(state.start)
        }
        stored = set(states)
        states.update(self._work)
        for key, work in self._work.items():
            if work.rescan:
                work.refind(self._live_trades(key, work))
        slots = dict(self._slots)
        for key, state in states.items():
            changed = key in self._changed
            is_closed = spec.is_closed(state.start, now)
            if not changed and not is_closed:
                continue
            bar = window_bar(state, spec.size, final=is_closed)
            if bar is not None or changed:
                bars.append((state.start, key, bar))
            if not is_closed:
                assert isinstance(state, _Working)  # noqa: S101 - changed means a working copy
                windows[key] = state.frozen()
                members.update(self._chunks(key, state))
                continue
            closed += 1
            if key in stored:
                windows[key] = None
            members.update(dict.fromkeys(self._stored_chunks(key, state)))
            for tkey in self._member_keys(key, state):
                skey = self.slot_prefix + slot_key(state.instrument, tkey)
                slot = _latest(slots, self.slots, skey)
                if slot is None or slot.window_start != state.start:
                    continue  # gone already, or the trade moved on to another window
                if self.slots.get(skey) is None:
                    del slots[skey]  # made in this batch: nothing to delete
                else:
                    slots[skey] = None
        bars.sort(key=lambda b: (b[0], b[1]))
        return BatchResult(now, windows, slots, members, [(k, b) for _, k, b in bars], closed)


def _latest(changed: Mapping[str, _T | None], committed: Lookup[_T], key: str) -> _T | None:
    if key in changed:
        return changed[key]
    return committed.get(key)
