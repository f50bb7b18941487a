"""Validation and enrichment of raw trade events (docs/domain-rules.md, Validation).

:func:`validate` decides one raw record against the state of its trade id and the
reference data: accepted (one or two enriched events and the trade's new state),
rejected (the first failing check's reason), or a duplicate to drop. It is pure:
"now" is passed in (the raw record's Kafka timestamp), so a replay decides the same.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

import msgspec

from tradeflux.domain.arithmetic import multiply, remainder
from tradeflux.domain.bounds import FUTURE_TOLERANCE as FUTURE_TOLERANCE  # re-exported
from tradeflux.domain.bounds import (
    BoundProblem,
    NotionalBounds,
    event_form_problems,
    is_future,
    notional_problem,
    time_problem,
)
from tradeflux.domain.calendars import CalendarError, settlement_date, trade_date
from tradeflux.domain.codes import RejectReason
from tradeflux.domain.refdata import RefData
from tradeflux.domain.schemas import EnrichedTrade, Instrument, TradeEvent

_DEFAULT_NOTIONAL_BOUNDS = NotionalBounds()
_decoder = msgspec.json.Decoder(TradeEvent)
_UTC = dt.UTC


class TradeState(msgspec.Struct, frozen=True, kw_only=True):
    """What the validator keeps per trade id: the last accepted version and its trade.

    ``effective`` is the last enriched event accepted (for a cancelled trade, the
    CANCEL). A value of the validator's store, MessagePack-encoded on its changelog.
    """

    version: int
    cancelled: bool
    effective: EnrichedTrade


class Accepted(msgspec.Struct, frozen=True):
    """The event is valid: emit ``events`` in order and store ``new_state``."""

    events: list[EnrichedTrade]
    new_state: TradeState


class Rejected(msgspec.Struct, frozen=True):
    """The event failed a check: dead-letter it with ``reason``; the state is unchanged."""

    reason: RejectReason
    detail: str
    trade_id: str | None = None  # None when the bytes did not say


class Duplicate(msgspec.Struct, frozen=True):
    """The event repeats the last accepted version: drop it and count it."""

    trade_id: str


Outcome: TypeAlias = Accepted | Rejected | Duplicate


def validate(
    raw: bytes,
    now: dt.datetime,
    state: TradeState | None,
    refdata: RefData,
    notional_bounds: NotionalBounds = _DEFAULT_NOTIONAL_BOUNDS,
) -> Outcome:
    """Decide a raw trade event: the checks of docs/domain-rules.md, first failing wins.

    ``now`` is the record's ingest time (aware); ``state`` the trade id's state, if any.
    Never raises on bad input: every problem is a :class:`Rejected` with its reason.
    """
    try:
        event = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        detail = f"not a TradeEvent: {exc}"
        return Rejected(RejectReason.SCHEMA_INVALID, detail, _trade_id_of(raw))
    except RecursionError:  # arrays or objects nested thousands deep, in an unknown field
        detail = "not a TradeEvent: JSON nested too deeply"
        return Rejected(RejectReason.SCHEMA_INVALID, detail, None)
    problem = _schema_problem(event)
    if problem:
        return Rejected(RejectReason.SCHEMA_INVALID, problem, event.trade_id)
    bounds = event_form_problems(event)
    if event.ingest_time is not None:
        bounds += filter(None, [time_problem("ingest_time", event.ingest_time, now)])
    if bounds:
        trade_id = event.trade_id if not any(b.field == "trade_id" for b in bounds) else None
        return Rejected(RejectReason.OUT_OF_BOUNDS, _bounds_detail(bounds), trade_id)

    tid = event.trade_id
    if state is not None:
        if event.version == state.version:
            return Duplicate(tid)
        if event.version < state.version:
            detail = f"version {event.version} is below the accepted version {state.version}"
            return Rejected(RejectReason.STALE_VERSION, detail, tid)
        if event.event_type == "NEW":
            detail = f"NEW of a trade already booked (version {state.version})"
            return Rejected(RejectReason.TRADE_EXISTS, detail, tid)
        if state.cancelled:
            detail = f"{event.event_type} of a trade cancelled at version {state.version}"
            return Rejected(RejectReason.TRADE_CANCELLED, detail, tid)
    elif event.event_type != "NEW":
        detail = f"{event.event_type} of a trade id never booked"
        return Rejected(RejectReason.UNKNOWN_TRADE, detail, tid)

    ingest_time = (event.ingest_time or now).astimezone(_UTC)
    if event.event_type == "CANCEL" and state is not None:  # no state: UNKNOWN_TRADE above
        cancel = _as_cancel(state.effective, event, ingest_time)
        return Accepted(
            [cancel], TradeState(version=event.version, cancelled=True, effective=cancel)
        )

    failure = _refdata_failure(event, refdata) or _value_failure(
        event, now, refdata, notional_bounds
    )
    if failure is not None:
        return Rejected(failure[0], failure[1], tid)
    try:
        enriched = _enrich(event, ingest_time, refdata)
    except CalendarError as exc:
        return Rejected(RejectReason.SCHEMA_INVALID, f"trade cannot be dated: {exc}", tid)

    new_state = TradeState(version=event.version, cancelled=False, effective=enriched)
    if state is not None:
        before = state.effective
        if before.account != enriched.account or before.instrument != enriched.instrument:
            cancel = _as_cancel(before, event, ingest_time)
            moved = msgspec.structs.replace(enriched, event_type="NEW")
            new_state = TradeState(version=event.version, cancelled=False, effective=moved)
            return Accepted([cancel, moved], new_state)
    return Accepted([enriched], new_state)


def _bounds_detail(problems: list[BoundProblem]) -> str:
    """Return the detail of an OUT_OF_BOUNDS reject: each field, what is wrong, its bound."""
    return "; ".join(f"{p.message} (bound: {p.bound})" for p in problems)


def _trade_id_of(raw: bytes) -> str | None:
    """Return the trade id of undecodable bytes when they are a JSON object with one."""
    try:
        value: Any = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    trade_id = value.get("trade_id") if isinstance(value, dict) else None
    return trade_id if isinstance(trade_id, str) else None


def _schema_problem(event: TradeEvent) -> str | None:
    """Return why a decoded event is still not a valid TradeEvent, or None."""
    if event.trade_time.tzinfo is None or event.trade_time.utcoffset() is None:
        return f"trade_time {event.trade_time.isoformat()} has no time zone"
    if event.ingest_time is not None and event.ingest_time.utcoffset() is None:
        return f"ingest_time {event.ingest_time.isoformat()} has no time zone"
    try:
        event.trade_time.astimezone(_UTC)
        if event.ingest_time is not None:
            event.ingest_time.astimezone(_UTC)
    except OverflowError:
        return "trade_time or ingest_time is out of the range of UTC datetimes"
    if event.version < 1:
        return f"version {event.version} is below 1"
    if not event.quantity.is_finite():
        return f"quantity {event.quantity} is not a finite number"
    if not event.price.is_finite():
        return f"price {event.price} is not a finite number"
    return None


def _refdata_failure(event: TradeEvent, refdata: RefData) -> tuple[RejectReason, str] | None:
    """Return the first failing reference data check (instrument, account, counterparty)."""
    instrument = refdata.instruments.get(event.instrument)
    if instrument is None:
        return RejectReason.UNKNOWN_INSTRUMENT, f"no instrument {event.instrument!r}"
    if not instrument.active:
        return RejectReason.INSTRUMENT_INACTIVE, f"instrument {event.instrument!r} is inactive"
    account = refdata.accounts.get(event.account)
    if account is None:
        return RejectReason.UNKNOWN_ACCOUNT, f"no account {event.account!r}"
    if account.status != "ACTIVE":
        detail = f"account {event.account!r} is {account.status}"
        return RejectReason.ACCOUNT_INACTIVE, detail
    counterparty = refdata.counterparties.get(event.counterparty)
    if counterparty is None:
        return RejectReason.UNKNOWN_COUNTERPARTY, f"no counterparty {event.counterparty!r}"
    if not counterparty.active:
        detail = f"counterparty {event.counterparty!r} is inactive"
        return RejectReason.COUNTERPARTY_INACTIVE, detail
    return None


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    """Tell whether ``value % step == 0``; a remainder that cannot be computed is not 0."""
    try:
        return remainder(value, step) == 0
    except InvalidOperation:
        return False


def _value_failure(
    event: TradeEvent, now: dt.datetime, refdata: RefData, notional_bounds: NotionalBounds
) -> tuple[RejectReason, str] | None:
    """Return the first failing value check: quantity, lot, price, tick, currency, time, size."""
    instrument: Instrument = refdata.instruments[event.instrument]
    if event.quantity <= 0:
        return RejectReason.NON_POSITIVE_QUANTITY, f"quantity {event.quantity} is not positive"
    if not _is_multiple(event.quantity, instrument.lot_size):
        detail = f"quantity {event.quantity} is not a multiple of the lot {instrument.lot_size}"
        return RejectReason.ODD_LOT, detail
    if event.price <= 0:
        return RejectReason.NON_POSITIVE_PRICE, f"price {event.price} is not positive"
    if event.allocation is None and not _is_multiple(event.price, instrument.tick_size):
        # An allocation's bookings are at the block's average price, off the tick grid.
        detail = f"price {event.price} is not a multiple of the tick {instrument.tick_size}"
        return RejectReason.OFF_TICK, detail
    if event.currency != instrument.currency:
        detail = f"currency {event.currency} is not the instrument's {instrument.currency}"
        return RejectReason.CURRENCY_MISMATCH, detail
    too_early = time_problem("trade_time", event.trade_time, now)
    if too_early is not None:
        if is_future(event.trade_time, now):
            return RejectReason.FUTURE_TRADE_TIME, too_early.message
        return RejectReason.OUT_OF_BOUNDS, _bounds_detail([too_early])
    too_large = notional_problem(
        event.currency, event.quantity, event.price, instrument.multiplier, notional_bounds
    )
    if too_large is not None:
        return RejectReason.OUT_OF_BOUNDS, _bounds_detail([too_large])
    return None


def _enrich(event: TradeEvent, ingest_time: dt.datetime, refdata: RefData) -> EnrichedTrade:
    """Return the enriched trade of a NEW/AMEND that passed every check."""
    instrument = refdata.instruments[event.instrument]
    account = refdata.accounts[event.account]
    counterparty = refdata.counterparties[event.counterparty]
    traded_on = trade_date(event.trade_time, instrument.mic)
    return EnrichedTrade(
        event_type=event.event_type,
        trade_id=event.trade_id,
        version=event.version,
        account=event.account,
        instrument=event.instrument,
        side=event.side,
        quantity=event.quantity,
        price=event.price,
        currency=event.currency,
        venue=event.venue,
        counterparty=event.counterparty,
        trade_time=event.trade_time.astimezone(_UTC),
        source=event.source,
        ingest_time=ingest_time,
        isin=instrument.isin,
        symbol=instrument.symbol,
        mic=instrument.mic,
        multiplier=instrument.multiplier,
        book=account.book,
        legal_entity=account.legal_entity,
        base_currency=account.base_currency,
        counterparty_lei=counterparty.lei,
        notional=multiply(multiply(event.quantity, event.price), instrument.multiplier),
        trade_date=traded_on,
        settlement_date=settlement_date(traded_on, instrument.mic, instrument.settlement_days),
        order_id=event.order_id,
        allocation=event.allocation,
    )


def _as_cancel(
    effective: EnrichedTrade, event: TradeEvent, ingest_time: dt.datetime
) -> EnrichedTrade:
    """Return the CANCEL of ``effective`` with the version, ingest time and source of ``event``."""
    return msgspec.structs.replace(
        effective,
        event_type="CANCEL",
        version=event.version,
        ingest_time=ingest_time,
        source=event.source,
    )
