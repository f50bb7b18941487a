"""The topic registry: every topic of the system, declared once (ARCHITECTURE.md section 3).

Each :class:`TopicDef` says a topic's name, what its key is, the domain struct of its
values and their wire format, its cleanup policy, the sets ``tradeflux topics create``
provisions it in, and the co-partitioning group it is joined in. Services take their
input and output :class:`~tradeflux.stream.topology.Topic` from here, the query read
model its topics and value types, topic creation its names and configs, the OpenAPI
document its schemas, and ``docs/topics.md`` its table (:func:`markdown_table`).

A store's changelog topic is not listed: it belongs to its service and store
(``<prefix><service>-<store>-changelog``) and the runtime creates it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

import msgspec

from tradeflux.domain.allocation_events import Allocation, AllocationAck, AllocationInput
from tradeflux.domain.clock import Tick
from tradeflux.domain.confirmation_events import (
    AffirmationException,
    Confirmation,
    ConfirmationInput,
)
from tradeflux.domain.finality import ObligationStatement
from tradeflux.domain.reporting import TradeReport
from tradeflux.domain.schemas import (
    Account,
    AccountPnL,
    Bar,
    Counterparty,
    EnrichedTrade,
    FxRate,
    Instrument,
    Limits,
    Position,
    Price,
    RiskAlert,
    SettlementObligation,
    TradeEvent,
)
from tradeflux.domain.sese023 import SettlementInstruction
from tradeflux.domain.sessions import AccountSession
from tradeflux.stream.codecs import Codec, JsonCodec, MsgpackCodec, RawCodec
from tradeflux.stream.topology import GlobalTableSpec, Topic

T = TypeVar("T")


class TopicSet(enum.StrEnum):
    """Which topics ``tradeflux topics create`` provisions."""

    ALL = "all"
    CORE = "core"
    REFDATA = "refdata"


class Cleanup(enum.StrEnum):
    """A topic's ``cleanup.policy``: a log of events, or the latest value per key."""

    DELETE = "delete"
    COMPACT = "compact"


Wire = Literal["json", "msgpack", "bytes"]


class TickOrCodec(Generic[T]):
    """The codec of a topic that may carry clock ticks: its own struct, or a Tick.

    A tick (tradeflux.domain.clock) is the JSON of :class:`Tick` with the header
    ``tf.tick: 1``; a value that is not the topic's struct is tried as a Tick, and when it
    is neither, the struct's decode error is raised (the record is a dead letter).
    """

    def __init__(self, inner: Codec[T]) -> None:
        self.inner = inner
        self._tick_encoder = msgspec.json.Encoder()
        self._tick_decoder = msgspec.json.Decoder(Tick)

    def encode(self, value: T | Tick) -> bytes:
        """Return the wire form of a value of the topic or of a Tick."""
        if isinstance(value, Tick):
            return self._tick_encoder.encode(value)
        return self.inner.encode(value)

    def decode(self, data: bytes) -> T | Tick:
        """Return the topic's struct, or a Tick; raise the struct's error if it is neither."""
        try:
            return self.inner.decode(data)
        except (msgspec.DecodeError, ValueError) as exc:
            try:
                return self._tick_decoder.decode(data)
            except (msgspec.DecodeError, ValueError):
                raise exc from None


@dataclass(frozen=True)
class TopicDef:
    """One topic of the contract.

    ``value`` is the struct every record's value decodes to (``bytes`` for a topic whose
    values are opaque, such as the dead letters' original bytes); ``wire`` its encoding.
    ``copartition`` names the group of topics joined by key: they must have the same
    partition count and be keyed alike. ``ticks``: the topic may also carry clock ticks
    (:class:`~tradeflux.domain.clock.Tick`, header ``tf.tick``) written by a ticker, so its
    readers' stream time moves on in a quiet partition; its codec decodes either.
    """

    name: str
    key: str
    value: Any
    cleanup: Cleanup
    sets: frozenset[TopicSet]
    doc: str
    copartition: str | None = None
    wire: Wire = "json"
    ticks: bool = False

    @property
    def compacted(self) -> bool:
        """Tell whether the topic keeps the latest value per key (``cleanup.policy=compact``)."""
        return self.cleanup is Cleanup.COMPACT

    @property
    def copartition_group(self) -> str | None:
        """Return the co-partitioning group (the name ``broker.topics`` has always used)."""
        return self.copartition

    def codec(self, value: Any = None) -> Codec[Any]:
        """Return the codec of this topic's values, decoding to ``value`` if given.

        ``value`` lets a reader decode a projection of the struct (fewer fields, the same
        names), as the positions service reads only the fields of an enriched trade it needs.
        """
        if self.wire == "bytes":
            return RawCodec()
        codec: Codec[Any] = (
            MsgpackCodec(value or self.value)
            if self.wire == "msgpack"
            else JsonCodec(value or self.value)
        )
        return TickOrCodec(codec) if self.ticks else codec

    def topic(self, value: Any = None) -> Topic:
        """Return the runtime's view of this topic (its name and codec) for a Service."""
        return Topic(self.name, self.codec(value))

    def raw(self) -> Topic:
        """Return this topic with its values handed over as bytes (the reader decodes them)."""
        return Topic(self.name, RawCodec())

    def table(self, name: str) -> GlobalTableSpec:
        """Return a global table ``name`` over this (compacted) topic."""
        if not self.compacted:
            raise ValueError(f"topic {self.name} is not compacted; it cannot be a global table")
        return GlobalTableSpec(name, self.name, self.codec())


_ALL, _CORE, _REF = TopicSet.ALL, TopicSet.CORE, TopicSet.REFDATA
_REFDATA_SETS = frozenset({_ALL, _CORE, _REF})
_CORE_SETS = frozenset({_ALL, _CORE})
_ALL_SETS = frozenset({_ALL})
_C, _D = Cleanup.COMPACT, Cleanup.DELETE

INSTRUMENTS = TopicDef(
    "refdata.instruments", "instrument id", Instrument, _C, _REFDATA_SETS,
    "Instruments: ISIN, symbol, currency, lot and tick size, settlement cycle, MIC.",
)  # fmt: skip
ACCOUNTS = TopicDef(
    "refdata.accounts", "account id", Account, _C, _REFDATA_SETS,
    "Accounts: book, legal entity, base currency, status.",
)  # fmt: skip
COUNTERPARTIES = TopicDef(
    "refdata.counterparties", "counterparty id", Counterparty, _C, _REFDATA_SETS,
    "Counterparties: LEI, name, settlement instructions.",
)  # fmt: skip
LIMITS = TopicDef(
    "refdata.limits", "account id", Limits, _C, _REFDATA_SETS,
    "Risk limits per account, in its base currency.",
)  # fmt: skip
PRICES = TopicDef(
    "marketdata.prices", "instrument id", Price, _C, _REFDATA_SETS,
    "The latest bid, ask and last price per instrument.",
)  # fmt: skip
FX = TopicDef(
    "marketdata.fx", "currency pair", FxRate, _C, _REFDATA_SETS,
    "The latest FX rate per currency pair (key BASEQUOTE).",
)  # fmt: skip
RAW = TopicDef(
    "trades.raw", "trade id", TradeEvent, _D, _CORE_SETS,
    "Trade events as captured (FIX, HTTP, Kafka): NEW, AMEND, CANCEL, versioned.",
)  # fmt: skip
REJECTED = TopicDef(
    "trades.rejected", "trade id", bytes, _D, _CORE_SETS,
    "Dead letters: the original key, bytes and headers, with tf.stage, tf.reason, "
    "tf.error, tf.detail and tf.source.topic/partition/offset headers.",
    wire="bytes",
)  # fmt: skip
ENRICHED = TopicDef(
    "trades.enriched", "account id", EnrichedTrade, _D, _CORE_SETS,
    "Validated trade events with reference data, trade and settlement dates, notional.",
    copartition="account",
)  # fmt: skip
POSITIONS = TopicDef(
    "positions", "account + instrument", Position, _C, _CORE_SETS,
    "Position per account and instrument: quantity, average cost, realized P&L.",
    copartition="account",
)  # fmt: skip
PNL = TopicDef(
    "pnl", "account", AccountPnL, _C, _CORE_SETS,
    "P&L per account in its base currency: realized, unrealized, total.",
    copartition="account",
)  # fmt: skip
ALERTS = TopicDef(
    "risk.alerts", "account", RiskAlert, _D, _ALL_SETS,
    "A limit of an account breached or cleared, with the figures.",
    copartition="account",
)  # fmt: skip
BY_INSTRUMENT = TopicDef(
    "trades.by_instrument", "instrument id", EnrichedTrade, _D, _ALL_SETS,
    "trades.enriched re-keyed by instrument (repartition), for analytics.",
)  # fmt: skip
BY_COUNTERPARTY = TopicDef(
    "trades.by_counterparty", "counterparty id", EnrichedTrade, _D, _ALL_SETS,
    "trades.enriched re-keyed by counterparty (repartition), for settlement; and clock "
    "ticks (ticker-settlement) that move settlement's stream time in a quiet partition.",
    ticks=True,
)  # fmt: skip
BARS = TopicDef(
    "analytics.bars", "instrument + window", Bar, _D, _ALL_SETS,
    "OHLC, volume, VWAP and count per instrument and event-time window.",
)  # fmt: skip
OBLIGATIONS = TopicDef(
    "settlement.obligations", "counterparty + currency + settlement date",
    SettlementObligation, _C, _ALL_SETS,
    "Netted cash and securities per counterparty, currency and settlement date.",
)  # fmt: skip
STATEMENTS = TopicDef(
    "settlement.statements", "counterparty + currency + settlement date",
    ObligationStatement, _D, _ALL_SETS,
    "FINAL obligations at their market's cut-off, and each later ADJUSTMENT of one.",
)  # fmt: skip
INSTRUCTIONS = TopicDef(
    "settlement.instructions", "counterparty + currency + settlement date",
    SettlementInstruction, _D, _ALL_SETS,
    "ISO 20022 sese.023.001.11 instructions of the FINAL obligations, one per instrument.",
)  # fmt: skip
REPORTS = TopicDef(
    "regulatory.reports", "trade id", TradeReport, _D, _ALL_SETS,
    "One transaction report per trade version (MiFIR RTS 22 subset), late ones flagged.",
)  # fmt: skip
HOPPING_BARS = TopicDef(
    "analytics.hopping_bars", "instrument + window", Bar, _D, _ALL_SETS,
    "OHLC, volume, VWAP and count per instrument in overlapping (hopping) windows.",
)  # fmt: skip
SESSIONS = TopicDef(
    "analytics.sessions", "account + session start", AccountSession, _D, _ALL_SETS,
    "Per-account activity sessions: bursts of trades separated by an inactivity gap.",
)  # fmt: skip

ALLOCATIONS_IN = TopicDef(
    "allocations.in", "order id (the block's ClOrdID)", AllocationInput, _D, _ALL_SETS,
    "The allocations service's input: instructions (FIX 35=J, HTTP), the orders' enriched "
    "executions (allocation feed) and clock ticks, a union told apart by its kind field.",
)  # fmt: skip
ALLOCATIONS = TopicDef(
    "allocations.status", "block id + alloc id", Allocation, _C, _ALL_SETS,
    "The allocation of record of each block: its children, quantities, average price, status.",
)  # fmt: skip
ALLOCATION_ACKS = TopicDef(
    "allocations.acks", "alloc id", AllocationAck, _D, _ALL_SETS,
    "The answer to each allocation instruction (FIX 35=P): pending, accepted or rejected.",
)  # fmt: skip
CONFIRMATIONS_IN = TopicDef(
    "confirmations.in", "child trade id", ConfirmationInput, _D, _ALL_SETS,
    "The confirmations service's input: allocated children, their bookings, the clients' "
    "affirmations (FIX 35=AU, HTTP) and clock ticks, a union told apart by its kind field.",
)  # fmt: skip
CONFIRMATIONS = TopicDef(
    "confirmations", "child trade id", Confirmation, _C, _ALL_SETS,
    "The confirmation of each allocated child: status, deadline, economics (FIX 35=AK).",
)  # fmt: skip
AFFIRMATION_EXCEPTIONS = TopicDef(
    "confirmations.exceptions", "child trade id", AffirmationException, _D, _ALL_SETS,
    "One record per child unaffirmed at its deadline, and one when it is cleared.",
)  # fmt: skip

TOPICS: tuple[TopicDef, ...] = (
    INSTRUMENTS,
    ACCOUNTS,
    COUNTERPARTIES,
    LIMITS,
    PRICES,
    FX,
    RAW,
    REJECTED,
    ENRICHED,
    POSITIONS,
    PNL,
    ALERTS,
    BY_INSTRUMENT,
    BY_COUNTERPARTY,
    BARS,
    OBLIGATIONS,
    STATEMENTS,
    INSTRUCTIONS,
    REPORTS,
    HOPPING_BARS,
    SESSIONS,
    ALLOCATIONS_IN,
    ALLOCATIONS,
    ALLOCATION_ACKS,
    CONFIRMATIONS_IN,
    CONFIRMATIONS,
    AFFIRMATION_EXCEPTIONS,
)
"""Every topic of the system, in the order of ARCHITECTURE.md section 3, then issue 14's."""

_BY_NAME = {t.name: t for t in TOPICS}


def topic_def(name: str) -> TopicDef:
    """Return the definition of topic ``name`` (unprefixed), or raise KeyError."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no topic {name!r} in the registry (tradeflux.topics)") from None


def topic_specs(topic_set: TopicSet) -> list[TopicDef]:
    """Return the topics of ``topic_set``, in registry order."""
    return [t for t in TOPICS if topic_set in t.sets]


def copartition_groups() -> dict[str, list[str]]:
    """Return every co-partitioning group and its topics, in registry order."""
    groups: dict[str, list[str]] = {}
    for t in TOPICS:
        if t.copartition is not None:
            groups.setdefault(t.copartition, []).append(t.name)
    return groups


def markdown_table() -> str:
    """Return the registry as the Markdown table of ``docs/topics.md``."""
    rows = [
        "| topic | key | value | kind | co-partitioned by | sets |",
        "|---|---|---|---|---|---|",
    ]
    for t in TOPICS:
        value = "bytes" if t.value is bytes else _type_name(t.value)
        kind = "compacted" if t.compacted else "log"
        sets = ", ".join(s.value for s in TopicSet if s in t.sets)
        rows.append(
            f"| `{t.name}` | {t.key} | {value} ({t.wire}) | {kind} | {t.copartition or ''} "
            f"| {sets} |"
        )
    return "\n".join(rows) + "\n"


def _type_name(value: Any) -> str:
    """Return a value type's name; a union's members joined by ``or``."""
    name = getattr(value, "__name__", None)
    return name if isinstance(name, str) else " or ".join(_type_name(a) for a in get_args(value))
