"""One input partition's work in a batch: decode, process, isolate failures, fire timers.

Pure of I/O: the runtime feeds it messages and takes its emitted records and store
changes; the test harness does the same without a broker.

Isolation: the processor is called once with the partition's records (the fast path);
if that call raises, or an output or a changed store value cannot be encoded or is too
large for its topic, the call is undone and the records are processed again one at a
time, so that only the record at fault is dead-lettered (with its stage and a reason:
``decode_error``, ``processor_error``, ``encode_error``, ``store_encode_error``,
``record_too_large``, ``produce_refused``) and the rest of the batch commits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tradeflux.stream.changelog import changelog_topic
from tradeflux.stream.codecs import Codec
from tradeflux.stream.context import Context, OutputEncodeError
from tradeflux.stream.deadletter import (
    DECODE_ERROR,
    ENCODE_ERROR,
    PROCESSOR_ERROR,
    RECORD_TOO_LARGE,
    STORE_ENCODE_ERROR,
)
from tradeflux.stream.records import Emitted, Headers, KafkaMessage, Record
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.timers import Timers
from tradeflux.stream.topology import Service

log = logging.getLogger("tradeflux.stream.task")

DEFAULT_MAX_RECORD_BYTES = 1_000_000
"""A record's limit when its topic's ``max.message.bytes`` is not known (Kafka's default is
1,048,588 bytes for the whole batch of one record, overhead included)."""
_RECORD_OVERHEAD_BYTES = 512  # batch and record headers the broker also counts


class StoreEncodeError(ValueError):
    """A store value cannot be encoded for its changelog."""


class RecordTooLargeError(ValueError):
    """An output or changelog record is larger than its topic accepts."""


def reason_of(exc: BaseException) -> str:
    """Return the dead-letter reason code of a failure of one record's processing."""
    if isinstance(exc, OutputEncodeError):
        return ENCODE_ERROR
    if isinstance(exc, StoreEncodeError):
        return STORE_ENCODE_ERROR
    if isinstance(exc, RecordTooLargeError):
        return RECORD_TOO_LARGE
    return PROCESSOR_ERROR


class Task:
    """The processing of one input partition (all stores of that partition live here).

    ``poisoned`` maps input offsets to the reason they must be dead-lettered without
    processing (the producer refused what they made); ``suspect`` makes the next batch
    process one record at a time, so a refused output can be pinned on its record.
    """

    def __init__(
        self,
        service: Service,
        partition: int,
        tables: Mapping[str, Mapping[str, Any]],
        topic_prefix: str = "",
        partitions: Mapping[str, int] | None = None,
        limits: Mapping[str, int] | None = None,
    ) -> None:
        self.service = service
        self.partition = partition
        self.prefix = topic_prefix
        self.stores = {s.name: StorePartition(s.name, partition) for s in service.stores}
        self.changelogs = {
            s.name: changelog_topic(topic_prefix, service.name, s.name)
            for s in service.stores
            if s.logged
        }
        self._store_codecs = {s.name: s.codec for s in service.stores}
        codecs = {t.name: t.codec for t in service.outputs}
        dlq = service.dead_letter_topic
        dlq_topic = None if dlq is None else topic_prefix + dlq
        self.ctx = Context(
            partition, self.stores, tables, codecs, topic_prefix, service.name, dlq_topic,
            partitions,
        )  # fmt: skip
        self._input_codecs: dict[str, Codec[Any]] = {
            topic_prefix + t.name: t.codec for t in service.inputs
        }
        self._limits = limits or {}
        self.timers = Timers(service, self.ctx, self._check)
        self.dead_letters: dict[str, int] = {}  # per reason, since the last take
        self.poisoned: dict[int, tuple[str, str, str]] = {}
        self.suspect = False

    def process(
        self, messages: Sequence[KafkaMessage], fetched_us: int = 0, now_ms: int | None = None
    ) -> None:
        """Decode and process ``messages`` (one partition, offset order) into the context.

        ``now_ms`` is the batch's wall-clock time, ``ctx.wall_time_ms`` for the processor.
        """
        records: list[Record] = []
        ctx = self.ctx
        if now_ms is not None:
            ctx.wall_time_ms = now_ms
        stream_time = ctx.stream_time_ms
        poisoned = self.poisoned
        for msg in messages:
            topic = msg.topic() or ""
            raw = msg.value()
            key_bytes = msg.key()
            ts = msg.timestamp()[1]
            if ts > stream_time:
                stream_time = ts
            offset = msg.offset() or 0
            if poisoned and offset in poisoned:
                reason, error, detail = poisoned[offset]
                self._send_dead_letter(
                    reason, None, topic, offset, key_bytes, raw, msg.headers(), error, detail
                )
                continue
            try:
                value = None if raw is None else self._input_codecs[topic].decode(raw)
                key = None if key_bytes is None else key_bytes.decode()
            except Exception as exc:  # noqa: BLE001 - any decode failure is a dead letter
                self._send_dead_letter(
                    DECODE_ERROR, exc, topic, offset, key_bytes, raw, msg.headers()
                )
                continue
            records.append(
                Record(topic, self.partition, offset, ts, key, value, raw, msg.headers(),
                       fetched_us)
            )  # fmt: skip
        ctx.stream_time_ms = stream_time
        if records:
            self._call(records)

    def _call(self, records: list[Record]) -> None:
        """Call the processor on the batch; on failure, retry record by record to isolate."""
        ctx = self.ctx
        process = self.service.process
        if not self.suspect:
            ctx.savepoint()
            try:
                process(ctx, records)
                self._check()
                ctx.release_savepoint()
                return
            except Exception:  # noqa: BLE001 - isolated below, record by record
                ctx.rollback_to_savepoint()
        for record in records:
            ctx.current = record
            ctx.savepoint()
            try:
                process(ctx, [record])
                self._check()
                ctx.release_savepoint()
            except Exception as exc:  # noqa: BLE001 - the record goes to the dead letters
                ctx.rollback_to_savepoint()
                self._dead_letter_record(record, exc)
            finally:
                ctx.current = None

    def _check(self) -> None:
        """Encode the store values the last call changed, and check every size it made.

        Raises StoreEncodeError or RecordTooLargeError, which fail that call.
        """
        limits = self._limits
        for name, store in self.stores.items():
            if not store.dirty or name not in self.changelogs:
                continue
            encode = self._store_codecs[name].encode
            topic = self.changelogs[name]
            limit = limits.get(topic, DEFAULT_MAX_RECORD_BYTES) - _RECORD_OVERHEAD_BYTES
            encoded = store.encoded
            for key, value in store.changed_since_savepoint():
                if value is None:
                    encoded.pop(key, None)
                    continue
                try:
                    data = encode(value)
                except Exception as exc:  # noqa: BLE001 - the value is the call's fault
                    raise StoreEncodeError(
                        f"store {name}: the value of {key!r} cannot be encoded: {exc}"
                    ) from exc
                if len(data) + len(key) > limit:
                    raise RecordTooLargeError(
                        f"store {name}: the value of {key!r} is {len(data)} bytes, over the "
                        f"{limit} bytes its changelog {topic} accepts"
                    )
                encoded[key] = data
        emitted = self.ctx.emitted
        for rec in emitted[self.ctx.mark :]:
            limit = limits.get(rec.topic, DEFAULT_MAX_RECORD_BYTES) - _RECORD_OVERHEAD_BYTES
            if rec.size > limit:
                raise RecordTooLargeError(
                    f"an output to {rec.topic} is {rec.size} bytes, over the {limit} bytes it "
                    "accepts"
                )

    def _dead_letter_record(self, record: Record, exc: BaseException) -> None:
        key = None if record.key is None else record.key.encode()
        self._send_dead_letter(
            reason_of(exc), exc, record.topic, record.offset, key, record.raw, record.headers
        )

    def _send_dead_letter(
        self,
        reason: str,
        exc: BaseException | None,
        topic: str,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        error_name: str | None = None,
        detail: str = "",
    ) -> None:
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1
        log.warning(
            "dead letter service=%s topic=%s partition=%d offset=%d reason=%s error=%s",
            self.service.name,
            topic,
            self.partition,
            offset,
            reason,
            error_name or type(exc).__name__,
        )
        self.ctx.dead_letter(
            reason=reason,
            error=exc,
            detail=detail,
            error_name=error_name,
            source_topic=topic,
            source_offset=offset,
            key=key,
            value=value,
            headers=headers,
        )

    def fire_timers(self, now_ms: int) -> bool:
        """Fire due wall-clock and stream-time punctuators; return whether any fired."""
        self.ctx.wall_time_ms = now_ms
        return self.timers.fire(now_ms)

    def fire_on_stop(self, now_ms: int) -> bool:
        """Call the service's ``on_stop`` for this partition; return whether it succeeded."""
        self.ctx.wall_time_ms = now_ms
        return self.timers.fire_on_stop(now_ms)

    def next_timer_ms(self) -> int | None:
        """Return when the next wall-clock timer of this partition is due, if any."""
        return self.timers.next_wall_ms()

    def take_emitted(self) -> list[Emitted]:
        """Return and clear the records to produce in this batch's transaction."""
        out = self.ctx.emitted
        self.ctx.emitted = []
        return out

    def has_output(self) -> bool:
        """Tell whether this batch has anything to commit: records or store changes."""
        return bool(self.ctx.emitted) or any(s.dirty for s in self.stores.values())

    def take_counts(self) -> dict[str, int]:
        """Return and clear the business-event counts of this batch."""
        counts = self.ctx.counts
        self.ctx.counts = {}
        return counts

    def take_dead_letters(self) -> dict[str, int]:
        """Return and clear the runtime's dead letters of this batch, per reason."""
        dead, self.dead_letters = self.dead_letters, {}
        return dead

    def commit(self) -> None:
        """Merge every store's batch changes (the transaction committed)."""
        for store in self.stores.values():
            store.commit()
        self.timers.commit()
        self.poisoned.clear()
        self.suspect = False

    def rollback(self) -> None:
        """Drop every store's batch changes and the emit buffer (the transaction aborted)."""
        for store in self.stores.values():
            store.rollback()
        self.ctx.emitted = []
        self.ctx.counts = {}
        self.dead_letters = {}
        self.timers.rollback()

    def reset(self) -> None:
        """Drop all state (committed too), before the stores are rebuilt from their changelogs."""
        self.rollback()
        for store in self.stores.values():
            store.clear()
        self.ctx.stream_time_ms = -1
