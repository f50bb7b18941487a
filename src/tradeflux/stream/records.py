"""Records in and out of a processor."""

from __future__ import annotations

from typing import Any

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
