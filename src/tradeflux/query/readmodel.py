"""The read model: what the output topics say now, in memory, filtered and paged.

Pure: it is fed record keys, values, headers and timestamps and knows nothing of Kafka
(``follower`` feeds it). Thread-safe: one feeder thread applies batches while HTTP
handlers read; every public method takes the model's lock for a short while.

What each topic becomes (ARCHITECTURE.md section 3):

- ``positions`` (key ``account|instrument``) and ``pnl`` (key account): the latest
  ``Position`` / ``AccountPnL`` per key; a tombstone removes the key.
- ``refdata.instruments`` / ``accounts`` / ``counterparties``: the latest struct per id.
- ``risk.alerts`` (key account), ``analytics.bars`` (key instrument + window) and
  ``settlement.obligations`` (key counterparty + currency + settlement date): any JSON
  object, kept as the exact bytes the producer wrote; the fields used for filtering
  (``account``, ``instrument``, ``counterparty``, ``currency``, ``settlement_date``,
  ``window_start``) are read from the object, else from the ``|``-separated key. Bars
  keep the latest revision per key; obligations are a compacted table; alerts a log.
- ``trades.rejected``: a ``RejectedTrade`` per dead letter, its ``tf.*`` headers decoded.
- ``settlement.statements``, ``settlement.instructions``, ``regulatory.reports``: the FINAL
  obligations, their adjustments, the sese.023 instructions and the transaction reports,
  decoded into their domain structs (query/posttrade.py).
- ``allocations.status``, ``allocations.acks``, ``confirmations`` and
  ``confirmations.exceptions``: their structs (``allocation_views``).

Logs (alerts, rejects) and bars are bounded: the oldest entries go first.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from tradeflux import topics
from tradeflux.domain.schemas import (
    Account,
    AccountPnL,
    Counterparty,
    Instrument,
    Position,
)
from tradeflux.query import allocation_views
from tradeflux.query.allocation_views import AllocationViews
from tradeflux.query.pages import Page, page
from tradeflux.query.posttrade import (
    INSTRUCTIONS,
    POSTTRADE_TOPICS,
    REPORTS,
    STATEMENTS,
    PostTradeTables,
)
from tradeflux.stream.deadletter import header_map
from tradeflux.stream.records import Headers
from tradeflux.tracing import TRACEPARENT

T = TypeVar("T")

POSITIONS = topics.POSITIONS.name
PNL = topics.PNL.name
ALERTS = topics.ALERTS.name
BARS = topics.BARS.name
OBLIGATIONS = topics.OBLIGATIONS.name
REJECTS = topics.REJECTED.name
INSTRUMENTS = topics.INSTRUMENTS.name
ACCOUNTS = topics.ACCOUNTS.name
COUNTERPARTIES = topics.COUNTERPARTIES.name

__all__ = ["TOPICS", "Change", "Page", "ReadModel", "RejectedTrade", "SourceRecord"]

#: The topics the read model materialises, unprefixed.
TOPICS: tuple[str, ...] = (
    INSTRUMENTS,
    ACCOUNTS,
    COUNTERPARTIES,
    POSITIONS,
    PNL,
    ALERTS,
    BARS,
    OBLIGATIONS,
    REJECTS,
    STATEMENTS,
    INSTRUCTIONS,
    REPORTS,
    *allocation_views.TOPICS,
)

_VALUE_TEXT_MAX = 4096


#: ``(topic, key, value, headers, timestamp_ms, partition, offset)``, the topic unprefixed.
SourceRecord = tuple[str, bytes | None, bytes | None, Headers | None, int | None, int, int]


class RejectedTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter of ``trades.rejected``: why and where a record was rejected, and the record.

    ``value`` is the original record as UTF-8 text (invalid bytes replaced), cut to 4 KiB
    (``value_truncated`` then says so).
    """

    trade_id: str | None  # the record key
    reason: str
    stage: str
    error: str
    detail: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    rejected_at: dt.datetime | None  # the dead letter's Kafka timestamp
    partition: int
    offset: int
    value: str
    value_truncated: bool = False


class Change(NamedTuple):
    """What a record changed, for the live stream: ``kind`` (``position``, ...), key, new value.

    ``value`` is None when a tombstone removed ``key``. ``traceparent``: the W3C trace
    context of the record that made the change, if it carried one (tradeflux.tracing).
    """

    kind: str
    key: str
    value: Any
    traceparent: bytes | None = None


class _Fields(msgspec.Struct):
    """The fields of a JSON object (alert, bar, obligation) that filters and ordering use."""

    account: Any = None
    instrument: Any = None
    counterparty: Any = None
    currency: Any = None
    settlement_date: Any = None
    window_start: Any = None


class JsonEntry:
    """A JSON object of a topic whose schema the read model does not own, with its filter fields."""

    __slots__ = ("fields", "key", "order", "seq", "value")

    def __init__(self, key: str, value: msgspec.Raw, fields: dict[str, str], order: str, seq: int):
        self.key = key
        self.value = value
        self.fields = fields
        self.order = order  # sorts entries in time: window start for bars
        self.seq = seq  # arrival order, breaks ties


_FIELDS_DECODER = msgspec.json.Decoder(_Fields)
_KIND_BY_TOPIC = {
    POSITIONS: "position",
    PNL: "pnl",
    ALERTS: "alert",
    BARS: "bar",
    OBLIGATIONS: "obligation",
    REJECTS: "reject",
    INSTRUMENTS: "instrument",
    ACCOUNTS: "account",
    COUNTERPARTIES: "counterparty",
    STATEMENTS: "final",  # or "adjustment": the tables say which
    INSTRUCTIONS: "instruction",
    REPORTS: "report",
    **allocation_views.KINDS,
}


_POST_TRADE_KINDS = frozenset(allocation_views.KINDS.values())


def _traced(change: Change, headers: Headers | None) -> Change:
    """Return ``change`` with the trace context of the record that made it, if any."""
    if not headers:
        return change
    for name, value in headers:
        if name == TRACEPARENT and value:
            raw = value if isinstance(value, bytes) else value.encode()
            return change._replace(traceparent=raw)
    return change


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _key_part(key: str, index: int) -> str | None:
    parts = key.split("|")
    return parts[index] if index < len(parts) and parts[index] else None


class _SortedTable(Generic[T]):
    """A key -> value map listed in key order; the order is rebuilt only when keys come or go."""

    def __init__(self) -> None:
        self.data: dict[str, T] = {}
        self._order: list[str] | None = []

    def put(self, key: str, value: T) -> None:
        if key not in self.data:
            self._order = None
        self.data[key] = value

    def remove(self, key: str) -> bool:
        if self.data.pop(key, None) is None:
            return False
        self._order = None
        return True

    def values(self) -> Iterator[T]:
        if self._order is None:
            self._order = sorted(self.data)
        data = self.data
        return (data[k] for k in self._order)

    def __len__(self) -> int:
        return len(self.data)


class ReadModel:
    """The in-memory tables of the query service; fed by ``apply``, read by the listing methods."""

    def __init__(self, max_log_entries: int = 50_000, max_bars: int = 200_000) -> None:
        self.lock = threading.Lock()
        self.positions: _SortedTable[Position] = _SortedTable()
        self.pnl: _SortedTable[AccountPnL] = _SortedTable()
        self.instruments: _SortedTable[Instrument] = _SortedTable()
        self.accounts: _SortedTable[Account] = _SortedTable()
        self.counterparties: _SortedTable[Counterparty] = _SortedTable()
        self.obligations: _SortedTable[JsonEntry] = _SortedTable()
        self.alerts: collections.deque[JsonEntry] = collections.deque(maxlen=max_log_entries)
        self.rejects: collections.deque[RejectedTrade] = collections.deque(maxlen=max_log_entries)
        self.bars: dict[str, JsonEntry] = {}
        self.max_bars = max_bars
        self.reject_reasons: collections.Counter[str] = collections.Counter()
        self.bad_records: collections.Counter[str] = collections.Counter()  # undecodable
        self.posttrade = PostTradeTables(self.lock, max_log_entries)
        self.allocations = AllocationViews(max_log_entries)
        self._seq = itertools.count()
        self._decoders: dict[str, Callable[[bytes], Any]] = {
            POSITIONS: msgspec.json.Decoder(Position).decode,
            PNL: msgspec.json.Decoder(AccountPnL).decode,
            INSTRUMENTS: msgspec.json.Decoder(Instrument).decode,
            ACCOUNTS: msgspec.json.Decoder(Account).decode,
            COUNTERPARTIES: msgspec.json.Decoder(Counterparty).decode,
        }
        self._tables: dict[str, _SortedTable[Any]] = {
            POSITIONS: self.positions,
            PNL: self.pnl,
            INSTRUMENTS: self.instruments,
            ACCOUNTS: self.accounts,
            COUNTERPARTIES: self.counterparties,
        }

    # -- feeding ---------------------------------------------------------------------------

    def apply(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        timestamp_ms: int | None = None,
        partition: int = 0,
        offset: int = 0,
    ) -> Change | None:
        """Apply one record of ``topic`` (unprefixed); return what changed, or None.

        A value that does not decode is counted in ``bad_records`` and changes nothing.
        """
        with self.lock:
            change = self._apply(topic, key, value, headers, timestamp_ms, partition, offset)
        return None if change is None else _traced(change, headers)

    def apply_many(self, records: Iterable[SourceRecord]) -> list[Change]:
        """Apply many ``SourceRecord``s under one lock; return what they changed, in order."""
        changes: list[Change] = []
        with self.lock:
            for record in records:
                change = self._apply(*record)
                if change is not None:
                    changes.append(_traced(change, record[3]))
        return changes

    def _apply(
        self,
        topic: str,
        key_bytes: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        timestamp_ms: int | None,
        partition: int,
        offset: int,
    ) -> Change | None:
        kind = _KIND_BY_TOPIC.get(topic)
        if kind is None:
            return None
        key = key_bytes.decode(errors="replace") if key_bytes is not None else ""
        if topic in POSTTRADE_TOPICS:
            try:
                changed = self.posttrade.apply(topic, key, value)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                self.bad_records[topic] += 1
                return None
            return None if changed is None else Change(*changed)
        if kind in _POST_TRADE_KINDS:
            try:
                applied, item = self.allocations.apply(topic, key, value)
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.bad_records[topic] += 1
                return None
            return Change(kind, key, item) if applied else None
        if topic == REJECTS:
            reject = self._apply_reject(
                key_bytes, key, value, headers, timestamp_ms, partition, offset
            )
            return Change(kind, key, reject)
        if value is None:  # a tombstone
            table = self._tables.get(topic)
            removed = False
            if table is not None:
                removed = table.remove(key)
            elif topic == OBLIGATIONS:
                removed = self.obligations.remove(key)
            elif topic == BARS:
                removed = self.bars.pop(key, None) is not None
            return Change(kind, key, None) if removed else None
        try:
            decode = self._decoders.get(topic)
            if decode is not None:
                struct = decode(value)
                self._tables[topic].put(key, struct)
                return Change(kind, key, struct)
            entry = self._json_entry(topic, key, value)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            self.bad_records[topic] += 1
            return None
        if topic == ALERTS:
            self.alerts.append(entry)
        elif topic == BARS:
            self.bars.pop(entry.key, None)  # a revision moves to the end: newest last
            self.bars[entry.key] = entry
            while len(self.bars) > self.max_bars:
                del self.bars[next(iter(self.bars))]
        else:
            self.obligations.put(entry.key, entry)
        return Change(kind, entry.key, entry.value)

    def _json_entry(self, topic: str, key: str, value: bytes) -> JsonEntry:
        f = _FIELDS_DECODER.decode(value)
        seq = next(self._seq)
        fields: dict[str, str] = {}
        order = ""
        if topic == ALERTS:
            account = _text(f.account) or key or None
            if account:
                fields["account"] = account
        elif topic == BARS:
            instrument = _text(f.instrument) or _key_part(key, 0)
            if instrument:
                fields["instrument"] = instrument
            order = _text(f.window_start) or _key_part(key, 1) or ""
            key = key or f"{instrument}|{order}|{seq}"
        else:
            for name, index in (("counterparty", 0), ("currency", 1), ("settlement_date", 2)):
                text = _text(getattr(f, name)) or _key_part(key, index)
                if text:
                    fields[name] = text
        return JsonEntry(key, msgspec.Raw(value), fields, order, seq)

    def _apply_reject(
        self,
        key_bytes: bytes | None,
        key: str,
        value: bytes | None,
        headers: Headers | None,
        timestamp_ms: int | None,
        partition: int,
        offset: int,
    ) -> RejectedTrade:
        meta = header_map(headers)
        raw = value or b""
        reject = RejectedTrade(
            trade_id=key if key_bytes is not None else None,
            reason=meta.get("tf.reason", "") or "UNKNOWN",
            stage=meta.get("tf.stage", ""),
            error=meta.get("tf.error", ""),
            detail=meta.get("tf.detail", ""),
            source_topic=meta.get("tf.source.topic", ""),
            source_partition=_int_or_none(meta.get("tf.source.partition")),
            source_offset=_int_or_none(meta.get("tf.source.offset")),
            rejected_at=(
                dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)
                if timestamp_ms is not None and timestamp_ms > 0
                else None
            ),
            partition=partition,
            offset=offset,
            value=raw[:_VALUE_TEXT_MAX].decode(errors="replace"),
            value_truncated=len(raw) > _VALUE_TEXT_MAX,
        )
        self.rejects.append(reject)
        self.reject_reasons[reject.reason] += 1
        return reject

    # -- reading ---------------------------------------------------------------------------

    def list_positions(
        self,
        account: str | None = None,
        instrument: str | None = None,
        open_only: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[Position]:
        """Positions in ``account|instrument`` order, filtered; ``open_only`` skips flat ones."""
        with self.lock:
            matches = (
                p
                for p in self.positions.values()
                if (account is None or p.account == account)
                and (instrument is None or p.instrument == instrument)
                and (not open_only or p.quantity != 0)
            )
            return page(matches, limit, offset)

    def list_pnl(
        self, account: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[AccountPnL]:
        """P&L per account, in account order."""
        with self.lock:
            matches = (p for p in self.pnl.values() if account is None or p.account == account)
            return page(matches, limit, offset)

    def list_alerts(
        self, account: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[msgspec.Raw]:
        """Risk alerts, newest first."""
        with self.lock:
            matches = (
                e.value
                for e in reversed(self.alerts)
                if account is None or e.fields.get("account") == account
            )
            return page(matches, limit, offset)

    def list_bars(
        self, instrument: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[msgspec.Raw]:
        """Bars (latest revision of each window), newest window first."""
        with self.lock:
            entries = [
                e
                for e in self.bars.values()
                if instrument is None or e.fields.get("instrument") == instrument
            ]
        entries.sort(key=lambda e: (e.order, e.seq), reverse=True)
        return page((e.value for e in entries), limit, offset)

    def list_obligations(
        self,
        counterparty: str | None = None,
        currency: str | None = None,
        settlement_date: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[msgspec.Raw]:
        """Settlement obligations in key (counterparty, currency, date) order, filtered."""
        wanted = {
            k: v
            for k, v in (
                ("counterparty", counterparty),
                ("currency", currency),
                ("settlement_date", settlement_date),
            )
            if v is not None
        }
        with self.lock:
            matches = (
                e.value
                for e in self.obligations.values()
                if all(e.fields.get(k) == v for k, v in wanted.items())
            )
            return page(matches, limit, offset)

    def list_rejects(
        self,
        reason: str | None = None,
        stage: str | None = None,
        trade_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[RejectedTrade]:
        """Dead letters, newest first, filtered by reason code, stage or trade id."""
        with self.lock:
            matches = (
                r
                for r in reversed(self.rejects)
                if (reason is None or r.reason == reason)
                and (stage is None or r.stage == stage)
                and (trade_id is None or r.trade_id == trade_id)
            )
            return page(matches, limit, offset)

    def reject_counts(self) -> dict[str, int]:
        """Dead letters seen since the start, per reason code, most frequent first."""
        with self.lock:
            return dict(self.reject_reasons.most_common())

    def bad_record_counts(self) -> dict[str, int]:
        """Return, per topic, how many values did not decode (and were left out)."""
        with self.lock:
            return dict(self.bad_records)

    def list_refdata(self, topic: str, limit: int = 100, offset: int = 0) -> Page[Any]:
        """Return the reference data of ``topic`` (``refdata.instruments``, ...) in id order."""
        with self.lock:
            return page(self._tables[topic].values(), limit, offset)

    def get(self, topic: str, key: str) -> Any:
        """Return the value of ``key`` in a keyed table (refdata, positions, pnl), or None."""
        with self.lock:
            return self._tables[topic].data.get(key)

    def counts(self) -> dict[str, int]:
        """How many entries each table holds now."""
        with self.lock:
            return {
                "positions": len(self.positions),
                "open_positions": sum(1 for p in self.positions.data.values() if p.quantity != 0),
                "accounts_with_pnl": len(self.pnl),
                "alerts": len(self.alerts),
                "bars": len(self.bars),
                "obligations": len(self.obligations),
                "rejects": len(self.rejects),
                "rejects_seen": sum(self.reject_reasons.values()),
                "instruments": len(self.instruments),
                "accounts": len(self.accounts),
                "counterparties": len(self.counterparties),
                **self.posttrade.counts(),
                **self.allocations.counts(),
            }


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
