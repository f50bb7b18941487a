"""A broker-free driver for a service's processor, for fast unit tests.

Like Kafka Streams' TopologyTestDriver: feed records, get back what the processor
emitted, stored and dead-lettered. It exercises the same Task code the runtime runs
(decoding, savepoints, dead letters, timers, commit of the store overlays); it does
not replace the real-broker integration and fault tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradeflux.stream.deadletter import header_map
from tradeflux.stream.records import Headers
from tradeflux.stream.task import Task
from tradeflux.stream.topology import Service


class _Message:
    """The few Message methods a Task reads."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_ts", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        ts: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        self._topic, self._partition, self._offset, self._ts = topic, partition, offset, ts
        self._key, self._value, self._headers = key, value, headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers | None:
        return self._headers


@dataclass(frozen=True)
class Output:
    """One record the processor emitted, decoded with its output topic's codec."""

    topic: str
    key: str | None
    value: Any
    partition: int | None
    headers: Mapping[str, str]


class TestDriver:
    """Drives one service's processor partition by partition, committing after each batch."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, service: Service, tables: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.service = service
        self.tables: dict[str, Mapping[str, Any]] = dict(tables or {})
        self._tasks: dict[int, Task] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        self._codecs = {t.name: t.codec for t in service.outputs}
        self._input_codecs = {t.name: t.codec for t in service.inputs}

    def task(self, partition: int = 0) -> Task:
        """Return (creating on first use) the task of ``partition``."""
        if partition not in self._tasks:
            self._tasks[partition] = Task(self.service, partition, self.tables)
        return self._tasks[partition]

    def send(
        self,
        records: list[tuple[str | None, Any]],
        topic: str | None = None,
        partition: int = 0,
        timestamp_ms: int = 0,
        now_ms: int | None = None,
    ) -> list[Output]:
        """Process ``[(key, value), ...]`` as one batch and commit it.

        Values are encoded unless bytes. ``now_ms`` is the batch's wall-clock time
        (default: ``timestamp_ms``).
        """
        self.process(records, topic, partition, timestamp_ms, now_ms)
        return self.commit(partition)

    def process(
        self,
        records: list[tuple[str | None, Any]],
        topic: str | None = None,
        partition: int = 0,
        timestamp_ms: int = 0,
        now_ms: int | None = None,
    ) -> Task:
        """Process ``records`` as one batch without committing it; return the task.

        Offsets follow on from the last records processed (or ``rewind``).
        """
        topic = topic or self.service.inputs[0].name
        codec = self._input_codecs[topic]
        messages = []
        for key, value in records:
            offset = self._offsets.get((topic, partition), 0)
            self._offsets[(topic, partition)] = offset + 1
            raw = value if isinstance(value, bytes | None) else codec.encode(value)
            messages.append(
                _Message(
                    topic, partition, offset, timestamp_ms,
                    None if key is None else key.encode(), raw, None,
                )
            )  # fmt: skip
        task = self.task(partition)
        task.process(messages, now_ms=timestamp_ms if now_ms is None else now_ms)
        return task

    def rewind(self, count: int, topic: str | None = None, partition: int = 0) -> None:
        """Move the next offset back by ``count`` (to process the same records again)."""
        key = (topic or self.service.inputs[0].name, partition)
        self._offsets[key] = self._offsets.get(key, 0) - count

    def commit(self, partition: int = 0) -> list[Output]:
        """Commit what ``partition``'s task has buffered; return its outputs, decoded."""
        return self._commit(self.task(partition))

    def advance(self, now_ms: int, partition: int = 0) -> list[Output]:
        """Fire the timers of ``partition`` due at wall-clock ``now_ms``, and commit."""
        task = self.task(partition)
        task.fire_timers(now_ms)
        return self._commit(task)

    def stop(self, now_ms: int, partition: int = 0) -> list[Output]:
        """Stop gracefully at wall-clock ``now_ms``: due timers, then ``on_stop``; commit."""
        task = self.task(partition)
        task.fire_timers(now_ms)
        task.fire_on_stop(now_ms)
        return self._commit(task)

    def store(self, name: str, partition: int = 0) -> dict[str, Any]:
        """Return the committed contents of a store partition."""
        return dict(self.task(partition).stores[name].items())

    def _commit(self, task: Task) -> list[Output]:
        out = []
        dlq = self.service.dead_letter_topic
        for rec in task.take_emitted():
            topic = rec.topic
            if topic == dlq:
                value: Any = rec.value
            else:
                value = None if rec.value is None else self._codecs[topic].decode(rec.value)
            key = None if rec.key is None else rec.key.decode()
            out.append(Output(topic, key, value, rec.partition, header_map(rec.headers)))
        task.take_counts()
        task.commit()
        return out
