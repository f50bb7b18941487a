"""Records in and out of a processor, and the part of a Kafka message the runtime reads."""

from __future__ import annotations

from typing import Any, Protocol

Headers = list[tuple[str, str | bytes | None]]
"""Kafka record headers, as confluent-kafka reads and writes them."""

PROPAGATED_HEADERS = ("traceparent", "tracestate")
"""Headers an output record takes from the input record that caused it (W3C trace context)."""

HOP_HEADER = "tf.hop"
"""One per hop a record passed: ``service;instance;batch;fetched_us;started_us;processed_us;
produced_us`` (epoch microseconds: when the input was fetched, its batch began processing,
processing ended, the output was handed to the producer). See docs/runtime.md."""


class KafkaMessage(Protocol):
    """The part of a consumed Kafka message the runtime reads (confluent-kafka's Message)."""

    def topic(self) -> str | None: ...  # noqa: D102
    def partition(self) -> int | None: ...  # noqa: D102
    def offset(self) -> int | None: ...  # noqa: D102
    def timestamp(self) -> tuple[int, int]: ...  # noqa: D102
    def key(self) -> bytes | None: ...  # noqa: D102
    def value(self) -> bytes | None: ...  # noqa: D102
    def headers(self) -> Any: ...  # noqa: D102


class Record:
    """One decoded input record, with where it came from.

    ``fetched_us`` is when the runtime's consumer handed it over (epoch microseconds).
    """

    __slots__ = (
        "fetched_us",
        "headers",
        "key",
        "offset",
        "partition",
        "raw",
        "timestamp_ms",
        "topic",
        "value",
    )

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
        fetched_us: int = 0,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp_ms = timestamp_ms
        self.key = key
        self.value = value
        self.raw = raw
        self.headers = headers
        self.fetched_us = fetched_us

    def __repr__(self) -> str:
        return f"Record({self.topic}[{self.partition}]@{self.offset} key={self.key!r})"


class Emitted:
    """One output record waiting for the batch's transaction.

    ``source`` is the input record that caused it, when known (the processor named it,
    or it processed one record at a time): a record the producer refuses is then pinned
    on it. ``size`` is the bytes it will take on the wire, roughly (key, value, headers).
    """

    __slots__ = ("headers", "key", "partition", "source", "topic", "value")

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        partition: int | None,
        source: Record | None = None,
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
        self.source = source

    @property
    def size(self) -> int:
        """Return the record's key, value and header bytes (the broker's limit counts these)."""
        n = len(self.key or b"") + len(self.value or b"")
        for name, value in self.headers or ():
            n += len(name) + (len(value) if value is not None else 0)
        return n


def propagated(headers: Headers | None) -> Headers:
    """Return the headers of an input record that its outputs carry on (trace context, hops)."""
    if not headers:
        return []
    return [h for h in headers if h[0] in PROPAGATED_HEADERS or h[0] == HOP_HEADER]
