"""What a processor is handed: records, and a per-partition context to read and write through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradeflux.stream.codecs import Codec
from tradeflux.stream.stores import StorePartition

Headers = list[tuple[str, str | bytes | None]]
"""Kafka record headers, as confluent-kafka reads and writes them."""


class Record:
    """One decoded input record, with where it came from."""

    __slots__ = ("headers", "key", "offset", "partition", "raw", "timestamp_ms", "topic", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: str | None,
        value: Any,
        raw: bytes | None = None,
        headers: Headers | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp_ms = timestamp_ms
        self.key = key
        self.value = value
        self.raw = raw
        self.headers = headers

    def __repr__(self) -> str:
        return f"Record({self.topic}[{self.partition}]@{self.offset} key={self.key!r})"


class Emitted:
    """One output record waiting for the batch's transaction."""

    __slots__ = ("headers", "key", "partition", "topic", "value")

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        partition: int | None,
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition


class UnknownNameError(KeyError):
    """A processor asked for a store, table or output topic its service does not declare."""


class Context:
    """A processor's view of one input partition in the current batch.

    ``emit`` encodes at once (so an encoding error is the processor's error, isolated to
    its record) and buffers; the runtime produces the buffer in the batch's transaction.
    """

    __slots__ = (
        "_codecs",
        "_mark",
        "_prefix",
        "_stores",
        "_tables",
        "emitted",
        "partition",
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
    ) -> None:
        self.partition = partition
        self._stores = stores
        self._tables = tables
        self._codecs = output_codecs
        self._prefix = topic_prefix
        self.emitted: list[Emitted] = []
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
    ) -> None:
        """Send ``value`` to output ``topic`` under ``key`` when the batch commits.

        ``value`` None is a tombstone. ``partition`` overrides the key's partition (for
        co-partitioning by a part of the key).
        """
        try:
            codec = self._codecs[topic]
        except KeyError:
            raise UnknownNameError(
                f"no output topic {topic!r}; declare it in the Service"
            ) from None
        self.emitted.append(
            Emitted(
                self._prefix + topic,
                None if key is None else key.encode(),
                None if value is None else codec.encode(value),
                headers,
                partition,
            )
        )

    def savepoint(self) -> None:
        """Mark the emit buffer and every store before a processor call."""
        self._mark = len(self.emitted)
        for store in self._stores.values():
            store.savepoint()

    def release_savepoint(self) -> None:
        """Keep what the processor call did."""
        for store in self._stores.values():
            store.release_savepoint()

    def rollback_to_savepoint(self) -> None:
        """Undo the failed processor call's emits and store writes."""
        del self.emitted[self._mark :]
        for store in self._stores.values():
            store.rollback_to_savepoint()

    def stores(self) -> Mapping[str, StorePartition]:
        """Return every store of this partition by name."""
        return self._stores
