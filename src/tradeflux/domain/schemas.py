"""The events and values that cross topics and HTTP edges (ARCHITECTURE.md section 3).

Every price, quantity and amount is a Decimal (JSON carries it as a string, so no
float ever touches money). Times are timezone-aware UTC. Structs are frozen.
Schema evolution: a new field is always optional (has a default), so old records
still decode; unknown fields in newer records are ignored by older readers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import msgspec

EventType = Literal["NEW", "AMEND", "CANCEL"]
Side = Literal["BUY", "SELL"]
AccountStatus = Literal["ACTIVE", "SUSPENDED", "CLOSED"]
BookingRole = Literal["CHILD", "OFFSET"]


class AllocationRef(msgspec.Struct, frozen=True, kw_only=True):
    """The allocation that booked a trade: a child on a client account, or the offset.

    Set by the allocations service on the trades it books (docs/domain-rules.md, Block
    allocation): ``CHILD`` is an allocated child trade at the block's average price,
    ``OFFSET`` the booking that closes the block out of its house account. ``alloc_id`` is
    the AllocID that opened the allocation (its replaces keep it).
    """

    block_id: str
    alloc_id: str
    role: BookingRole


class TradeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A trade as captured (FIX, HTTP, Kafka): NEW, or an AMEND/CANCEL of one, versioned.

    ``version`` starts at 1 for NEW and grows with each AMEND/CANCEL of the same
    ``trade_id``. ``quantity`` is positive; ``side`` gives the sign.
    """

    event_type: EventType
    trade_id: str
    version: int
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    currency: str
    venue: str  # MIC of the execution venue
    counterparty: str
    trade_time: dt.datetime
    source: str = "kafka"
    ingest_time: dt.datetime | None = None  # when tradeflux first received it
    order_id: str = ""  # the client's order (ClOrdID) an execution fills; a block's key
    allocation: AllocationRef | None = None  # set on the bookings of a block allocation


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """A tradable instrument; key of ``refdata.instruments``."""

    instrument_id: str
    isin: str
    symbol: str
    name: str = ""
    currency: str
    mic: str  # primary market; its calendar and time zone apply
    lot_size: Decimal = Decimal(1)
    tick_size: Decimal = Decimal("0.01")
    multiplier: Decimal = Decimal(1)
    settlement_days: int = 2
    asset_class: str = "EQUITY"
    active: bool = True


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A trading account; key of ``refdata.accounts``."""

    account_id: str
    book: str
    legal_entity: str
    base_currency: str
    status: AccountStatus = "ACTIVE"


class Counterparty(msgspec.Struct, frozen=True, kw_only=True):
    """A counterparty; key of ``refdata.counterparties``."""

    counterparty_id: str
    lei: str
    name: str
    settlement_instructions: str = ""
    active: bool = True


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Risk limits of an account, in its base currency; key of ``refdata.limits``.

    ``hysteresis`` is a fraction of each threshold (``0.05``: 5 %): a breached limit
    clears only once its figure is at or below ``threshold * (1 - hysteresis)``.
    """

    account_id: str
    gross_notional: Decimal
    net_notional: Decimal
    position_qty: Decimal  # per instrument, absolute
    single_trade_notional: Decimal
    hysteresis: Decimal = Decimal(0)


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """A market price of an instrument; key of ``marketdata.prices``."""

    instrument_id: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    time: dt.datetime


class FxRate(msgspec.Struct, frozen=True, kw_only=True):
    """How many ``quote`` units one ``base`` unit buys; key ``BASEQUOTE`` of ``marketdata.fx``."""

    pair: str  # e.g. "EURUSD"
    base: str
    quote: str
    rate: Decimal
    time: dt.datetime


class EnrichedTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A validated trade event with its reference data, dates and notional.

    Keyed by account on ``trades.enriched``. An AMEND carries the full new state of the
    trade; a CANCEL carries the state it cancels. When an AMEND moves a trade to another
    account or instrument, the validator emits a CANCEL of the old and a NEW of the new.
    """

    event_type: EventType
    trade_id: str
    version: int
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    currency: str
    venue: str
    counterparty: str
    trade_time: dt.datetime
    source: str
    ingest_time: dt.datetime | None
    # enrichment
    isin: str
    symbol: str
    mic: str
    multiplier: Decimal
    book: str
    legal_entity: str
    base_currency: str
    counterparty_lei: str
    notional: Decimal  # quantity * price * multiplier, in ``currency``
    trade_date: dt.date  # in the venue's time zone
    settlement_date: dt.date
    order_id: str = ""
    allocation: AllocationRef | None = None


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """A position of an account in an instrument; keyed ``account|instrument``.

    Average-cost method: ``avg_cost`` is the average price of the open quantity;
    ``realized_pnl`` is in the instrument's ``currency``.
    """

    account: str
    instrument: str
    currency: str
    quantity: Decimal
    avg_cost: Decimal
    realized_pnl: Decimal
    multiplier: Decimal = Decimal(1)
    trade_count: int = 0
    last_trade_id: str = ""
    as_of: dt.datetime | None = None  # the latest trade time among its trades


class AccountPnL(msgspec.Struct, frozen=True, kw_only=True):
    """The P&L of an account in its base currency; keyed by account."""

    account: str
    base_currency: str
    realized: Decimal
    unrealized: Decimal
    total: Decimal
    positions: int
    missing_marks: tuple[str, ...] = ()  # instruments without a price or FX rate


def position_key(account: str, instrument: str) -> str:
    """Return the key of a position on ``positions``."""
    return f"{account}|{instrument}"


AlertStatus = Literal["BREACHED", "CLEARED"]
LimitKind = Literal["gross_notional", "net_notional", "position_qty", "single_trade_notional"]


class RiskAlert(msgspec.Struct, frozen=True, kw_only=True):
    """A limit of an account breached or cleared; keyed by account on ``risk.alerts``.

    ``value`` is the figure checked, ``threshold`` the limit (both in ``base_currency``
    for notionals; quantities for ``position_qty``). ``instrument`` is set for
    ``position_qty`` only. ``trade_id`` and ``time`` (its trade time) are those of the
    event that caused the alert. ``missing_fx`` lists the instruments a notional left
    out for want of an FX rate.
    """

    account: str
    status: AlertStatus
    limit: LimitKind
    value: Decimal
    threshold: Decimal
    instrument: str = ""
    trade_id: str
    time: dt.datetime
    message: str
    base_currency: str
    missing_fx: tuple[str, ...] = ()


class SecuritiesObligation(msgspec.Struct, frozen=True, kw_only=True):
    """The net securities of one instrument in a settlement obligation.

    ``quantity`` is signed from our side: positive we receive (net bought), negative we
    deliver (net sold); ``trade_count`` effective trades are netted in it.
    """

    instrument: str
    isin: str
    quantity: Decimal
    trade_count: int


class SettlementObligation(msgspec.Struct, frozen=True, kw_only=True):
    """Netted cash and securities with a counterparty in a currency on a settlement date.

    Keyed ``counterparty|currency|settlement_date`` on ``settlement.obligations``
    (compacted; a tombstone when no effective trade is left). Cash is in ``currency``,
    signed from our side: ``net_cash = cash_received - cash_paid``, positive we receive;
    ``cash_paid`` (the BUYs' notionals) and ``cash_received`` (the SELLs') are gross and
    positive. Exact sums of the trades' notionals, not rounded to minor units.
    ``securities`` is per instrument, in instrument order.
    """

    counterparty: str
    counterparty_lei: str
    currency: str
    settlement_date: dt.date
    net_cash: Decimal
    cash_paid: Decimal
    cash_received: Decimal
    trade_count: int
    securities: tuple[SecuritiesObligation, ...] = ()


class Bar(msgspec.Struct, frozen=True, kw_only=True):
    """The OHLCV bar of an instrument's effective trades in one event-time window.

    Keyed ``instrument|window_start`` (ISO UTC) on ``analytics.bars``; a tombstone says the
    window has no effective trades left. Revisions come as the window changes; the one
    with ``final`` true is the last, sent when the window closes. ``volume`` is the sum of
    quantities, ``vwap`` the volume-weighted price (6 decimals, half-even), ``notional``
    the sum of the trades' notionals in ``currency``, ``count`` the number of trades.
    """

    instrument: str
    window_start: dt.datetime
    window_end: dt.datetime
    currency: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal
    notional: Decimal
    count: int
    final: bool = False
