"""Global tables: compacted topics every instance reads whole, then follows.

Each is read from the beginning of every partition before processing starts, and
followed between batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from tradeflux.stream.topology import GlobalTableSpec

log = logging.getLogger("tradeflux.stream.tables")


class GlobalTable(Mapping[str, Any]):
    """A read-only map of a compacted topic's latest value per key."""

    def __init__(self, spec: GlobalTableSpec, topic: str, consumer_config: dict[str, Any]) -> None:
        self.spec = spec
        self.topic = topic
        self._data: dict[str, Any] = {}
        self.bad_records = 0
        self._consumer = Consumer(
            {**consumer_config, "enable.partition.eof": True, "enable.auto.commit": False}
        )
        self._eof: set[int] = set()
        self._partitions: list[int] = []

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def load(self, timeout_s: float = 120.0) -> None:
        """Read the topic from the beginning to its current end."""
        meta = self._consumer.list_topics(self.topic, timeout=10.0)
        topic_meta = meta.topics.get(self.topic)
        if topic_meta is None or topic_meta.error is not None:
            raise RuntimeError(
                f"global table {self.spec.name}: topic {self.topic} does not exist; "
                "create it with `tradeflux topics create`"
            )
        self._partitions = sorted(topic_meta.partitions)
        self._consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self._partitions]
        )
        deadline = time.monotonic() + timeout_s
        while len(self._eof) < len(self._partitions):
            self._apply(self._consumer.consume(10000, 0.2))
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"global table {self.spec.name}: not loaded within {timeout_s:g}s"
                )
        log.info(
            "global table loaded name=%s topic=%s keys=%d", self.spec.name, self.topic, len(self)
        )

    def poll(self) -> int:
        """Apply whatever has arrived since the last call, without waiting."""
        msgs = self._consumer.consume(10000, 0)
        self._apply(msgs)
        return len(msgs)

    def _apply(self, msgs: list[Any]) -> None:
        decode = self.spec.codec.decode
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof.add(msg.partition())
                else:
                    log.warning("global table %s: %s", self.spec.name, err.str())
                continue
            key = msg.key()
            if key is None:
                continue
            raw = msg.value()
            if raw is None:
                self._data.pop(key.decode(), None)
                continue
            try:
                self._data[key.decode()] = decode(raw)
            except Exception:  # noqa: BLE001 - a bad reference record is counted, not fatal
                self.bad_records += 1
                log.warning(
                    "global table %s: undecodable record at %s[%d]@%d skipped",
                    self.spec.name,
                    self.topic,
                    msg.partition(),
                    msg.offset(),
                )

    def close(self) -> None:
        """Close the table's consumer."""
        self._consumer.close()
