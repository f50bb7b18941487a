"""An independent, deliberately plain implementation of docs/domain-rules.md.

End-to-end tests compare what the services produced with what this model expects,
exactly (Decimal equality). It shares nothing with ``tradeflux.domain``'s validation,
positions or P&L code, not even its decimal context (it makes its own of the rules' 64
digits): only the event structs, the reason codes, msgspec (to decode a ``TradeEvent``
exactly as the schema defines it) and exchange_calendars (for trading sessions). It is
written as a straightforward fold over all the records, recomputing everything from
scratch; no caches of results, no incremental updates, so that each
rule can be checked against the document by reading it (the only cache is of each
MIC's sessions, which exchange_calendars is slow to build).

Input: the raw records of ``trades.raw`` in the order the validator sees them
(``(key, value, timestamp_ms)``; only the order per trade id matters), the reference
data, and the final prices and FX rates. Output: :class:`ReferenceResult`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import string
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import exchange_calendars  # type: ignore[import-untyped]
import msgspec
import pycountry

from tradeflux.domain.codes import RejectReason
from tradeflux.domain.schemas import (
    Account,
    AccountPnL,
    Counterparty,
    EnrichedTrade,
    EventType,
    FxRate,
    Instrument,
    Position,
    Price,
    TradeEvent,
)

RawRecord = tuple[bytes | None, bytes | None, int]  # key, value, Kafka timestamp (ms)

# The rules' arithmetic (docs/domain-rules.md, "Arithmetic"): 64 significant digits,
# half-even, whatever the thread's context is. Every function below that computes runs in it.
RULES_CONTEXT = decimal.Context(prec=64, rounding=decimal.ROUND_HALF_EVEN)


def in_rules_context(fn: Any) -> Any:
    """Run ``fn`` with the rules' decimal context as the thread's context."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with decimal.localcontext(RULES_CONTEXT):
            return fn(*args, **kwargs)

    return wrapper


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FUTURE_TOLERANCE = dt.timedelta(seconds=5)
CENT = Decimal("0.01")
ZERO = Decimal(0)


@dataclass
class ReferenceResult:
    """What the pipeline must produce from the records, according to the rules."""

    enriched: list[EnrichedTrade]  # in the order the validator emits them
    rejected: list[tuple[bytes | None, RejectReason]]  # (record key, reason), in input order
    duplicates: int
    positions: dict[str, Position]  # by "account|instrument", every position ever touched
    pnl: dict[str, AccountPnL]  # by account, every account with a position


@dataclass
class TradeState:
    """What the validator keeps per trade id."""

    version: int  # the last accepted version
    trade: EnrichedTrade  # the last effective enriched trade
    cancelled: bool


# ---------------------------------------------------------------------------------------
# Calendars
# ---------------------------------------------------------------------------------------


DATABLE_FROM = dt.date(2000, 1, 1)
DATABLE_TO = dt.date(2099, 12, 31)


@dataclass(frozen=True)
class Sessions:
    """The trading days of one MIC from ``first`` to ``last`` (both within the datable range)."""

    tz: Any
    days: frozenset[dt.date]
    first: dt.date
    last: dt.date


@functools.cache
def sessions(mic: str) -> Sessions | None:
    """The sessions of ``mic`` over 2000..2099 (or its calendar's own bounds); None: no calendar."""
    with warnings.catch_warnings():  # pandas deprecations inside exchange_calendars
        warnings.simplefilter("ignore")
        try:
            default = exchange_calendars.get_calendar(mic)
        except exchange_calendars.errors.InvalidCalendarName:
            return None
        lowest, highest = type(default).bound_min(), type(default).bound_max()
        first = max(DATABLE_FROM, lowest.date()) if lowest is not None else DATABLE_FROM
        last = min(DATABLE_TO, highest.date()) if highest is not None else DATABLE_TO
        cal = exchange_calendars.get_calendar(mic, start=first.isoformat(), end=last.isoformat())
    return Sessions(cal.tz, frozenset(ts.date() for ts in cal.sessions), first, last)


def dates_of(
    trade_time: dt.datetime, mic: str, settlement_days: int
) -> tuple[dt.date, dt.date] | None:
    """The trade date (in the MIC's time zone) and settlement date; None if undatable.

    Settlement: the ``settlement_days``-th session strictly after the trade date, counted
    day by day; with 0, the first session on or after it.
    """
    cal = sessions(mic)
    if cal is None:
        return None
    try:
        trade_date = trade_time.astimezone(cal.tz).date()
    except OverflowError:
        return None
    if trade_date < cal.first or trade_date > cal.last:
        return None
    day = trade_date
    if settlement_days == 0:
        while day not in cal.days:
            day += dt.timedelta(days=1)
            if day > cal.last:
                return None
        return trade_date, day
    counted = 0
    while counted < settlement_days:
        day += dt.timedelta(days=1)
        if day > cal.last:
            return None
        if day in cal.days:
            counted += 1
    return trade_date, day


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------


def decode(value: bytes | None) -> TradeEvent | None:
    """The event in ``value``, or None if it is not a valid TradeEvent (rule 1)."""
    if value is None:
        return None
    try:
        event = msgspec.json.decode(value, type=TradeEvent)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    if event.trade_time.tzinfo is None or event.trade_time.utcoffset() is None:
        return None
    if event.ingest_time is not None and (
        event.ingest_time.tzinfo is None or event.ingest_time.utcoffset() is None
    ):
        return None
    try:  # a time that cannot be expressed in UTC (year 1 with a positive offset)
        event.trade_time.astimezone(dt.UTC)
        if event.ingest_time is not None:
            event.ingest_time.astimezone(dt.UTC)
    except OverflowError:
        return None
    if event.version < 1:
        return None
    if not event.quantity.is_finite() or not event.price.is_finite():
        return None
    return event


# Bounds (docs/domain-rules.md, "Bounds"), written out plainly.
MAX_TRADE_AGE = dt.timedelta(days=400)
ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._:/#@+=-")
LOW_UNIT_CURRENCIES = {  # notional bound 1E+15 (10 to 1000 per USD) and 1E+17 (beyond)
    **dict.fromkeys(
        [
            "AMD",
            "ARS",
            "DZD",
            "EGP",
            "ETB",
            "HUF",
            "INR",
            "ISK",
            "JMD",
            "JPY",
            "KES",
            "KZT",
            "LKR",
            "MKD",
            "NPR",
            "PHP",
            "PKR",
            "RSD",
            "RUB",
            "THB",
            "TRY",
            "TWD",
            "UAH",
            "XAF",
            "XOF",
            "XPF",
            "YER",
        ],
        Decimal("1E+15"),
    ),
    **dict.fromkeys(
        [
            "BIF",
            "CDF",
            "CLP",
            "COP",
            "GNF",
            "IDR",
            "IQD",
            "IRR",
            "KHR",
            "KMF",
            "KPW",
            "KRW",
            "LAK",
            "LBP",
            "MGA",
            "MMK",
            "MNT",
            "MWK",
            "NGN",
            "PYG",
            "RWF",
            "SLL",
            "SOS",
            "SYP",
            "TZS",
            "UGX",
            "UZS",
            "VND",
        ],
        Decimal("1E+17"),
    ),
}


@functools.cache
def iso_currencies() -> frozenset[str]:
    """ISO 4217 codes of real currencies (not XXX "no currency", not XTS "testing")."""
    return frozenset(c.alpha_3 for c in pycountry.currencies) - {"XXX", "XTS"}


def is_identifier(text: str, may_be_empty: bool = False) -> bool:
    """1 to 64 letters, digits or ._:/#@+=- (or empty where allowed)."""
    if text == "":
        return may_be_empty
    return len(text) <= 64 and all(ch in ID_CHARACTERS for ch in text)


def is_bounded_decimal(value: Decimal, below: Decimal) -> bool:
    """|value| < ``below``, at most 18 significant digits and 8 decimal places."""
    if not value.is_finite():
        return False
    if value == 0:
        return True
    if abs(value.adjusted()) > 100 or value.copy_abs() >= below:  # before writing it out
        return False
    digits = format(value.copy_abs(), "f").replace(".", "").strip("0")
    places = format(value.copy_abs(), "f").partition(".")[2].rstrip("0")
    return len(digits) <= 18 and len(places) <= 8


def in_bounds(event: TradeEvent, now: dt.datetime) -> bool:
    """The field bounds, checked before the versions (rule 1b)."""
    cancel = event.event_type == "CANCEL"
    currencies = iso_currencies()
    venue = event.venue
    return (
        is_identifier(event.trade_id)
        and 1 <= event.version <= 2**63 - 1
        and is_identifier(event.account, may_be_empty=cancel)
        and is_identifier(event.instrument, may_be_empty=cancel)
        and is_bounded_decimal(event.quantity, Decimal("1E+12"))
        and is_bounded_decimal(event.price, Decimal("1E+9"))
        and (event.currency in currencies or (cancel and event.currency == ""))
        and (venue == "" or is_mic_form(venue))
        and is_identifier(event.counterparty, may_be_empty=cancel)
        and is_identifier(event.source)
        and (
            event.ingest_time is None
            or now - MAX_TRADE_AGE <= event.ingest_time <= now + FUTURE_TOLERANCE
        )
    )


def is_mic_form(venue: str) -> bool:
    """4 upper-case letters or digits."""
    return len(venue) == 4 and all(ch in string.ascii_uppercase + string.digits for ch in venue)


def notional_bound(currency: str) -> Decimal:
    """The default bound of a trade's notional in ``currency``."""
    return LOW_UNIT_CURRENCIES.get(currency, Decimal("1E+13"))


@in_rules_context
def is_multiple(value: Decimal, step: Decimal) -> bool:
    """``value % step == 0``; a remainder Decimal cannot compute (step 0, huge quotient) is not."""
    try:
        return value % step == 0
    except decimal.InvalidOperation:
        return False


def check_refdata_and_values(
    event: TradeEvent,
    now: dt.datetime,
    instruments: dict[str, Instrument],
    accounts: dict[str, Account],
    counterparties: dict[str, Counterparty],
) -> RejectReason | None:
    """Rules 4 and 5, in order; the first failing check's reason, or None."""
    instrument = instruments.get(event.instrument)
    if instrument is None:
        return RejectReason.UNKNOWN_INSTRUMENT
    if not instrument.active:
        return RejectReason.INSTRUMENT_INACTIVE
    account = accounts.get(event.account)
    if account is None:
        return RejectReason.UNKNOWN_ACCOUNT
    if account.status != "ACTIVE":
        return RejectReason.ACCOUNT_INACTIVE
    counterparty = counterparties.get(event.counterparty)
    if counterparty is None:
        return RejectReason.UNKNOWN_COUNTERPARTY
    if not counterparty.active:
        return RejectReason.COUNTERPARTY_INACTIVE
    if event.quantity <= 0:
        return RejectReason.NON_POSITIVE_QUANTITY
    if not is_multiple(event.quantity, instrument.lot_size):
        return RejectReason.ODD_LOT
    if event.price <= 0:
        return RejectReason.NON_POSITIVE_PRICE
    if event.allocation is None and not is_multiple(event.price, instrument.tick_size):
        return RejectReason.OFF_TICK  # allocation bookings are at an average price: no tick
    if event.currency != instrument.currency:
        return RejectReason.CURRENCY_MISMATCH
    if event.trade_time > now + FUTURE_TOLERANCE:
        return RejectReason.FUTURE_TRADE_TIME
    if event.trade_time < now - MAX_TRADE_AGE:
        return RejectReason.OUT_OF_BOUNDS
    if abs(event.quantity * event.price * instrument.multiplier) > notional_bound(event.currency):
        return RejectReason.OUT_OF_BOUNDS
    return None


def enrich(
    event: TradeEvent,
    event_type: EventType,
    now: dt.datetime,
    instrument: Instrument,
    account: Account,
    counterparty: Counterparty,
    dates: tuple[dt.date, dt.date],
) -> EnrichedTrade:
    """The enriched trade of an accepted NEW or AMEND."""
    trade_date, settlement_date = dates
    return EnrichedTrade(
        event_type=event_type,
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
        trade_time=event.trade_time.astimezone(dt.UTC),
        source=event.source,
        ingest_time=ingest_time_of(event, now),
        isin=instrument.isin,
        symbol=instrument.symbol,
        mic=instrument.mic,
        multiplier=instrument.multiplier,
        book=account.book,
        legal_entity=account.legal_entity,
        base_currency=account.base_currency,
        counterparty_lei=counterparty.lei,
        notional=event.quantity * event.price * instrument.multiplier,
        trade_date=trade_date,
        settlement_date=settlement_date,
        order_id=event.order_id,
        allocation=event.allocation,
    )


def ingest_time_of(event: TradeEvent, now: dt.datetime) -> dt.datetime:
    """The event's own ingest time, else "now" (the record's Kafka timestamp), in UTC."""
    return (event.ingest_time if event.ingest_time is not None else now).astimezone(dt.UTC)


def as_cancel(trade: EnrichedTrade, event: TradeEvent, now: dt.datetime) -> EnrichedTrade:
    """``trade`` cancelled by ``event``: its fields, the new version, the cancel's origin."""
    return msgspec.structs.replace(
        trade,
        event_type="CANCEL",
        version=event.version,
        ingest_time=ingest_time_of(event, now),
        source=event.source,
    )


@in_rules_context
def validate(
    records: Iterable[RawRecord],
    instruments: Sequence[Instrument],
    accounts: Sequence[Account],
    counterparties: Sequence[Counterparty],
) -> tuple[list[EnrichedTrade], list[tuple[bytes | None, RejectReason]], int]:
    """Run the validator's rules over ``records``: (enriched, rejected, duplicate count)."""
    instrument_by_id = {i.instrument_id: i for i in instruments}
    account_by_id = {a.account_id: a for a in accounts}
    counterparty_by_id = {c.counterparty_id: c for c in counterparties}
    states: dict[str, TradeState] = {}
    enriched: list[EnrichedTrade] = []
    rejected: list[tuple[bytes | None, RejectReason]] = []
    duplicates = 0

    for key, value, timestamp_ms in records:
        now = EPOCH + dt.timedelta(milliseconds=timestamp_ms)

        # 1. schema
        event = decode(value)
        if event is None:
            rejected.append((key, RejectReason.SCHEMA_INVALID))
            continue

        # 1b. bounds of the fields
        if not in_bounds(event, now):
            rejected.append((key, RejectReason.OUT_OF_BOUNDS))
            continue

        # 2. versions
        state = states.get(event.trade_id)
        if state is not None and event.version == state.version:
            duplicates += 1
            continue
        if state is not None and event.version < state.version:
            rejected.append((key, RejectReason.STALE_VERSION))
            continue
        if event.event_type == "NEW" and state is not None:
            rejected.append((key, RejectReason.TRADE_EXISTS))
            continue
        if event.event_type in ("AMEND", "CANCEL") and state is None:
            rejected.append((key, RejectReason.UNKNOWN_TRADE))
            continue
        if event.event_type in ("AMEND", "CANCEL") and state is not None and state.cancelled:
            rejected.append((key, RejectReason.TRADE_CANCELLED))
            continue

        # 3. an accepted cancel
        if event.event_type == "CANCEL":
            assert state is not None
            cancel = as_cancel(state.trade, event, now)
            enriched.append(cancel)
            states[event.trade_id] = TradeState(event.version, cancel, cancelled=True)
            continue

        # 4. and 5. reference data and values
        reason = check_refdata_and_values(
            event, now, instrument_by_id, account_by_id, counterparty_by_id
        )
        if reason is not None:
            rejected.append((key, reason))
            continue

        # 6. dating
        instrument = instrument_by_id[event.instrument]
        dates = dates_of(event.trade_time, instrument.mic, instrument.settlement_days)
        if dates is None:
            rejected.append((key, RejectReason.SCHEMA_INVALID))
            continue

        account = account_by_id[event.account]
        counterparty = counterparty_by_id[event.counterparty]
        refdata = (instrument, account, counterparty, dates)
        if event.event_type == "NEW":
            trade = enrich(event, "NEW", now, *refdata)
            enriched.append(trade)
        else:
            assert state is not None
            previous = state.trade
            moved = previous.account != event.account or previous.instrument != event.instrument
            if moved:
                enriched.append(as_cancel(previous, event, now))
                trade = enrich(event, "NEW", now, *refdata)
            else:
                trade = enrich(event, "AMEND", now, *refdata)
            enriched.append(trade)
        states[event.trade_id] = TradeState(event.version, trade, cancelled=False)

    return enriched, rejected, duplicates


# ---------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------


def sign(x: Decimal) -> int:
    """-1, 0 or 1."""
    return (x > 0) - (x < 0)


@in_rules_context
def fold_position(
    account: str,
    instrument: str,
    currency: str,
    multiplier: Decimal,
    trades: list[EnrichedTrade],
) -> Position:
    """The position of the effective ``trades`` of one account and instrument."""
    trades = sorted(trades, key=lambda t: (t.trade_time, t.trade_id))
    # the names of the rules: position quantity, average cost, realized
    Q = ZERO
    A = ZERO
    R = ZERO
    for t in trades:
        q = t.quantity if t.side == "BUY" else -t.quantity
        p = t.price
        m = t.multiplier
        if Q == 0 or sign(q) == sign(Q):
            A = (abs(Q) * A + abs(q) * p) / (abs(Q) + abs(q))
            Q = Q + q
        else:
            c = min(abs(q), abs(Q))
            if Q > 0:
                R += (p - A) * c * m
            else:
                R += (A - p) * c * m
            old_sign = sign(Q)
            Q = Q + q
            if Q == 0:
                A = ZERO
            elif sign(Q) != old_sign:
                A = p
    return Position(
        account=account,
        instrument=instrument,
        currency=currency,
        quantity=Q,
        avg_cost=A,
        realized_pnl=R,
        multiplier=multiplier,
        trade_count=len(trades),
        last_trade_id=trades[-1].trade_id if trades else "",
        as_of=trades[-1].trade_time if trades else None,
    )


@in_rules_context
def positions_from(enriched: Iterable[EnrichedTrade]) -> dict[str, Position]:
    """The final position of every account|instrument that any enriched event touched.

    Effective trades per position: the latest version per trade id, removed by a CANCEL;
    an event whose version is not above the one held for its trade id changes nothing.
    The position's currency and multiplier are those of the last event applied to it.
    """
    held: dict[str, dict[str, tuple[int, EnrichedTrade | None]]] = {}  # None: cancelled
    last_applied: dict[str, EnrichedTrade] = {}
    for e in enriched:
        key = f"{e.account}|{e.instrument}"
        versions = held.setdefault(key, {})
        if e.trade_id in versions and e.version <= versions[e.trade_id][0]:
            continue
        versions[e.trade_id] = (e.version, None if e.event_type == "CANCEL" else e)
        last_applied[key] = e
    positions = {}
    for key, versions in held.items():
        last = last_applied[key]
        effective = [trade for _, trade in versions.values() if trade is not None]
        positions[key] = fold_position(
            last.account, last.instrument, last.currency, last.multiplier, effective
        )
    return positions


# ---------------------------------------------------------------------------------------
# P&L
# ---------------------------------------------------------------------------------------


@in_rules_context
def direct_or_inverse(from_ccy: str, to_ccy: str, rates: dict[str, Decimal]) -> Decimal | None:
    """1, the rate of ``from+to``, or 1 / the rate of ``to+from``; None if neither exists."""
    if from_ccy == to_ccy:
        return Decimal(1)
    if from_ccy + to_ccy in rates:
        return rates[from_ccy + to_ccy]
    if to_ccy + from_ccy in rates:
        return Decimal(1) / rates[to_ccy + from_ccy]
    return None


@in_rules_context
def conversion(from_ccy: str, to_ccy: str, rates: dict[str, Decimal]) -> Decimal | None:
    """The factor converting amounts in ``from_ccy`` to ``to_ccy`` (via USD if need be)."""
    direct = direct_or_inverse(from_ccy, to_ccy, rates)
    if direct is not None:
        return direct
    to_usd = direct_or_inverse(from_ccy, "USD", rates)
    from_usd = direct_or_inverse("USD", to_ccy, rates)
    if to_usd is None or from_usd is None:
        return None
    return to_usd * from_usd


@in_rules_context
def pnl_from(
    positions: dict[str, Position],
    accounts: Sequence[Account],
    prices: Iterable[Price],
    fx_rates: Iterable[FxRate],
) -> dict[str, AccountPnL]:
    """The P&L of every account that has a position, from the final prices and rates."""
    base_currency = {a.account_id: a.base_currency for a in accounts}
    last_price = {p.instrument_id: p.last for p in prices}
    rates = {r.pair: r.rate for r in fx_rates}
    by_account: dict[str, list[Position]] = {}
    for position in positions.values():
        by_account.setdefault(position.account, []).append(position)
    result = {}
    for account, held in sorted(by_account.items()):
        base = base_currency[account]
        realized = ZERO
        unrealized = ZERO
        missing = []
        for position in sorted(held, key=lambda p: p.instrument):
            last = last_price.get(position.instrument)
            factor = conversion(position.currency, base, rates)
            if last is None or factor is None:
                missing.append(position.instrument)
                continue
            realized += position.realized_pnl * factor
            unrealized += (
                (last - position.avg_cost) * position.quantity * position.multiplier * factor
            )
        realized = realized.quantize(CENT)
        unrealized = unrealized.quantize(CENT)
        result[account] = AccountPnL(
            account=account,
            base_currency=base,
            realized=realized,
            unrealized=unrealized,
            total=realized + unrealized,
            positions=len(held),
            missing_marks=tuple(missing),
        )
    return result


# ---------------------------------------------------------------------------------------
# All of it
# ---------------------------------------------------------------------------------------


@in_rules_context
def run_reference(
    records: Iterable[RawRecord],
    instruments: Sequence[Instrument],
    accounts: Sequence[Account],
    counterparties: Sequence[Counterparty],
    prices: Iterable[Price] = (),
    fx_rates: Iterable[FxRate] = (),
) -> ReferenceResult:
    """What the validator, positions and P&L services must produce from ``records``."""
    enriched, rejected, duplicates = validate(records, instruments, accounts, counterparties)
    positions = positions_from(enriched)
    pnl = pnl_from(positions, accounts, prices, fx_rates)
    return ReferenceResult(enriched, rejected, duplicates, positions, pnl)
