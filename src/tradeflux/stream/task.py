"""One input partition's work in a batch: decode, process, isolate failures, fire timers.

Pure of I/O: the runtime feeds it messages and takes its emitted records and store
changes; the test harness does the same without a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tradeflux.stream.codecs import Codec
from tradeflux.stream.context import Context
from tradeflux.stream.deadletter import DECODE_ERROR, PROCESSOR_ERROR
from tradeflux.stream.records import Emitted, Headers, Record
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.topology import Service

log = logging.getLogger("tradeflux.stream.task")


class MessageLike(Protocol):
    """The part of a confluent-kafka Message a task reads."""

    def topic(self) -> str | None: ...  # noqa: D102
    def partition(self) -> int | None: ...  # noqa: D102
    def offset(self) -> int | None: ...  # noqa: D102
    def timestamp(self) -> tuple[int, int]: ...  # noqa: D102
    def key(self) -> bytes | None: ...  # noqa: D102
    def value(self) -> bytes | None: ...  # noqa: D102
    def headers(self) -> Any: ...  # noqa: D102


class Task:
    """The processing of one input partition (all stores of that partition live here)."""

    def __init__(
        self,
        service: Service,
        partition: int,
        tables: Mapping[str, Mapping[str, Any]],
        topic_prefix: str = "",
    ) -> None:
        self.service = service
        self.partition = partition
        self.prefix = topic_prefix
        self.stores = {s.name: StorePartition(s.name, partition) for s in service.stores}
        codecs = {t.name: t.codec for t in service.outputs}
        dlq = service.dead_letter_topic
        dlq_topic = None if dlq is None else topic_prefix + dlq
        self.ctx = Context(
            partition, self.stores, tables, codecs, topic_prefix, service.name, dlq_topic
        )
        self._input_codecs: dict[str, Codec[Any]] = {
            topic_prefix + t.name: t.codec for t in service.inputs
        }
        self._next_wall: list[int | None] = [None] * len(service.punctuators)
        self._last_stream: list[int] = [-1] * len(service.punctuators)
        self.dead_letters = 0

    def process(self, messages: Sequence[MessageLike]) -> None:
        """Decode and process ``messages`` (one partition, offset order) into the context."""
        records: list[Record] = []
        ctx = self.ctx
        stream_time = ctx.stream_time_ms
        for msg in messages:
            topic = msg.topic() or ""
            raw = msg.value()
            key_bytes = msg.key()
            ts = msg.timestamp()[1]
            if ts > stream_time:
                stream_time = ts
            try:
                value = None if raw is None else self._input_codecs[topic].decode(raw)
                key = None if key_bytes is None else key_bytes.decode()
            except Exception as exc:  # noqa: BLE001 - any decode failure is a dead letter
                self._dead_letter(msg, DECODE_ERROR, exc)
                continue
            records.append(
                Record(topic, self.partition, msg.offset() or 0, ts, key, value, raw, msg.headers())
            )
        ctx.stream_time_ms = stream_time
        if records:
            self._call(records)

    def _call(self, records: list[Record]) -> None:
        """Call the processor on the batch; on failure, retry record by record to isolate."""
        ctx = self.ctx
        process = self.service.process
        ctx.savepoint()
        try:
            process(ctx, records)
            ctx.release_savepoint()
            return
        except Exception:  # noqa: BLE001 - isolated below, record by record
            ctx.rollback_to_savepoint()
        for record in records:
            ctx.savepoint()
            try:
                process(ctx, [record])
                ctx.release_savepoint()
            except Exception as exc:  # noqa: BLE001 - the record goes to the dead letters
                ctx.rollback_to_savepoint()
                self._dead_letter_record(record, exc)

    def _dead_letter(self, msg: MessageLike, reason: str, exc: BaseException) -> None:
        self._send_dead_letter(
            reason, exc, msg.topic() or "", msg.offset() or 0, msg.key(), msg.value(), msg.headers()
        )

    def _dead_letter_record(self, record: Record, exc: BaseException) -> None:
        key = None if record.key is None else record.key.encode()
        self._send_dead_letter(
            PROCESSOR_ERROR, exc, record.topic, record.offset, key, record.raw, record.headers
        )

    def _send_dead_letter(
        self,
        reason: str,
        exc: BaseException,
        topic: str,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        self.dead_letters += 1
        log.warning(
            "dead letter service=%s topic=%s partition=%d offset=%d reason=%s error=%s",
            self.service.name,
            topic,
            self.partition,
            offset,
            reason,
            type(exc).__name__,
        )
        self.ctx.dead_letter(
            reason=reason,
            error=exc,
            detail="",
            source_topic=topic,
            source_offset=offset,
            key=key,
            value=value,
            headers=headers,
        )

    def fire_timers(self, now_ms: int) -> bool:
        """Fire due wall-clock and stream-time punctuators; return whether any fired."""
        fired = False
        ctx = self.ctx
        ctx.wall_time_ms = now_ms
        for i, punctuator in enumerate(self.service.punctuators):
            if punctuator.kind == "wall":
                due = self._next_wall[i]
                if due is None:
                    self._next_wall[i] = now_ms + punctuator.every_ms
                    continue
                if now_ms < due:
                    continue
                self._next_wall[i] = now_ms + punctuator.every_ms
                at = now_ms
            else:
                if ctx.stream_time_ms < 0:
                    continue
                boundary = ctx.stream_time_ms - ctx.stream_time_ms % punctuator.every_ms
                if boundary <= self._last_stream[i]:
                    continue
                first = self._last_stream[i] < 0
                self._last_stream[i] = boundary
                if first:
                    continue
                at = boundary
            ctx.savepoint()
            try:
                punctuator.fn(ctx, at)
                ctx.release_savepoint()
                fired = True
            except Exception:
                ctx.rollback_to_savepoint()
                log.exception(
                    "timer failed service=%s partition=%d", self.service.name, self.partition
                )
        return fired

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

    def commit(self) -> None:
        """Merge every store's batch changes (the transaction committed)."""
        for store in self.stores.values():
            store.commit()

    def rollback(self) -> None:
        """Drop every store's batch changes and the emit buffer (the transaction aborted)."""
        for store in self.stores.values():
            store.rollback()
        self.ctx.emitted = []
        self.ctx.counts = {}
        self.dead_letters = 0
