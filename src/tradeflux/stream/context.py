"""What a processor is handed: records, and a per-partition context to read and write through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradeflux.stream.codecs import Codec
from tradeflux.stream.deadletter import dead_letter
from tradeflux.stream.records import Emitted, Headers, Record, propagated
from tradeflux.stream.stores import StorePartition


class UnknownNameError(KeyError):
    """A processor asked for a store, table or output topic its service does not declare."""


class OutputEncodeError(ValueError):
    """An output's key or value cannot be encoded (or names a partition the topic lacks)."""


class Context:
    """A processor's view of one input partition in the current batch.

    ``emit`` encodes at once (so an encoding error is the processor's error, isolated to
    its record) and buffers; the runtime produces the buffer in the batch's transaction.
    ``current`` is the record being processed when the runtime calls the processor one
    record at a time (to isolate a failure); an output without a named ``cause`` is
    pinned on it. ``wall_time_ms`` is the batch's (or the timer's) wall-clock time: a
    processor reads "now" there, so the test harness controls it.
    """

    __slots__ = (
        "_codecs",
        "_counts_mark",
        "_dead_letter_topic",
        "_mark",
        "_partitions",
        "_prefix",
        "_stores",
        "_tables",
        "counts",
        "current",
        "emitted",
        "partition",
        "stage",
        "stream_time_ms",
        "wall_time_ms",
    )

    def __init__(
        self,
        partition: int,
        stores: Mapping[str, StorePartition],
        tables: Mapping[str, Mapping[str, Any]],
        output_codecs: Mapping[str, Codec[Any]],
        topic_prefix: str = "",
        stage: str = "",
        dead_letter_topic: str | None = None,
        partitions: Mapping[str, int] | None = None,
    ) -> None:
        self.partition = partition
        self.stage = stage
        self._dead_letter_topic = dead_letter_topic
        self.counts: dict[str, int] = {}
        self._counts_mark: dict[str, int] = {}
        self._stores = stores
        self._tables = tables
        self._codecs = output_codecs
        self._prefix = topic_prefix
        self._partitions = partitions or {}
        self.emitted: list[Emitted] = []
        self.current: Record | None = None
        self.stream_time_ms = -1
        self.wall_time_ms = 0
        self._mark = 0

    def store(self, name: str) -> StorePartition:
        """Return this partition's store ``name``."""
        try:
            return self._stores[name]
        except KeyError:
            raise UnknownNameError(f"no store {name!r}; declare it in the Service") from None

    def table(self, name: str) -> Mapping[str, Any]:
        """Return the global table ``name`` (read-only, all partitions of its topic)."""
        try:
            return self._tables[name]
        except KeyError:
            raise UnknownNameError(f"no global table {name!r}; declare it in the Service") from None

    def emit(
        self,
        topic: str,
        key: str | None,
        value: Any,
        *,
        headers: Headers | None = None,
        partition: int | None = None,
        cause: Record | None = None,
    ) -> None:
        """Send ``value`` to output ``topic`` under ``key`` when the batch commits.

        ``value`` None is a tombstone. ``partition`` overrides the key's partition (for
        co-partitioning by a part of the key). ``cause`` is the input record this output
        comes from: the output carries on its trace context and hop headers, and if the
        producer refuses the output, ``cause`` is what gets dead-lettered. ``headers``,
        if given, are sent as they are instead. Raises OutputEncodeError if the key or
        value cannot be encoded or the partition does not exist.
        """
        try:
            codec = self._codecs[topic]
        except KeyError:
            raise UnknownNameError(
                f"no output topic {topic!r}; declare it in the Service"
            ) from None
        name = self._prefix + topic
        try:
            data = None if value is None else codec.encode(value)
            raw_key = None if key is None else key.encode()
        except Exception as exc:  # noqa: BLE001 - any encoding failure is the record's
            raise OutputEncodeError(f"cannot encode an output for {topic}: {exc}") from exc
        if partition is not None:
            count = self._partitions.get(name)
            if partition < 0 or (count is not None and partition >= count):
                raise OutputEncodeError(
                    f"partition {partition} of {topic} does not exist ({count} partitions)"
                )
        source = cause if cause is not None else self.current
        if headers is None and source is not None and source.headers:
            headers = propagated(source.headers)
        self.emitted.append(Emitted(name, raw_key, data, headers, partition, source))

    def reject(self, record: Record, reason: str, detail: str = "") -> None:
        """Send ``record``'s original key, bytes and headers to the dead letters.

        ``reason`` is a stable code (e.g. ``UNKNOWN_INSTRUMENT``); ``detail`` says more.
        Rejection is an outcome, not an error: the batch goes on.
        """
        self.dead_letter(
            reason=reason,
            error=None,
            detail=detail,
            source_topic=record.topic,
            source_offset=record.offset,
            key=None if record.key is None else record.key.encode(),
            value=record.raw,
            headers=record.headers,
        )
        self.count(f"rejected_{reason.lower()}")

    def dead_letter(
        self,
        *,
        reason: str,
        error: BaseException | None,
        detail: str,
        error_name: str | None = None,
        source_topic: str,
        source_offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        """Buffer the dead letter of one input record of this partition (see deadletter.py)."""
        if self._dead_letter_topic is None:
            raise UnknownNameError(
                f"stage {self.stage} has no dead_letter_topic for the record at "
                f"{source_topic}[{self.partition}]@{source_offset} ({reason}: {detail or error})"
            )
        self.emitted.append(
            dead_letter(
                self._dead_letter_topic,
                stage=self.stage,
                reason=reason,
                error=error,
                detail=detail,
                error_name=error_name,
                source_topic=source_topic,
                source_partition=self.partition,
                source_offset=source_offset,
                key=key,
                value=value,
                headers=headers,
            )
        )

    def count(self, event: str, n: int = 1) -> None:
        """Count a business event (e.g. a dropped duplicate); published once committed."""
        self.counts[event] = self.counts.get(event, 0) + n

    @property
    def mark(self) -> int:
        """Return how many outputs are buffered (outputs after it came from the last call)."""
        return self._mark

    def savepoint(self) -> None:
        """Mark the emit buffer and every store before a processor call."""
        self._mark = len(self.emitted)
        self._counts_mark = dict(self.counts)
        for store in self._stores.values():
            store.savepoint()

    def release_savepoint(self) -> None:
        """Keep what the processor call did."""
        for store in self._stores.values():
            store.release_savepoint()

    def rollback_to_savepoint(self) -> None:
        """Undo the failed processor call's emits and store writes."""
        del self.emitted[self._mark :]
        self.counts = self._counts_mark
        for store in self._stores.values():
            store.rollback_to_savepoint()

    def stores(self) -> Mapping[str, StorePartition]:
        """Return every store of this partition by name."""
        return self._stores
