"""Store changelogs: compacted topics, one partition per input partition.

Written in the batch's transaction (last value per changed key, tombstone on delete)
and read back to restore a store partition when it is assigned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from tradeflux.stream.records import Emitted
from tradeflux.stream.stores import StorePartition

log = logging.getLogger("tradeflux.stream.changelog")


def changelog_topic(topic_prefix: str, service: str, store: str) -> str:
    """Return the changelog topic of ``store`` of ``service``."""
    return f"{topic_prefix}{service}-{store}-changelog"


def changelog_records(
    topic: str, store: StorePartition, encode: Callable[[Any], bytes]
) -> Iterator[Emitted]:
    """Yield the changelog record of every key ``store`` changed in this batch."""
    partition = store.partition
    for key, value in store.changes():
        yield Emitted(
            topic, key.encode(), None if value is None else encode(value), None, partition
        )


class StoreRestoreError(RuntimeError):
    """A changelog could not be read back."""


_RETRIABLE = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
    }
)


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout_s: float = 30.0) -> tuple[int, int]:
    """Return a partition's (low, high) offsets, retrying while a just-created topic settles.

    A changelog created a moment ago may not have a leader yet in every broker's metadata.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10.0, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in _RETRIABLE or time.monotonic() > deadline:
                raise StoreRestoreError(f"offsets of {tp.topic}[{tp.partition}]: {exc}") from exc
            log.info("waiting for changelog %s[%d]: %s", tp.topic, tp.partition, exc)
            time.sleep(0.2)


class Restore:
    """One store partition to rebuild from one changelog partition."""

    __slots__ = ("applied", "decode", "high", "store", "topic")

    def __init__(self, topic: str, store: StorePartition, decode: Callable[[bytes], Any]) -> None:
        self.topic = topic
        self.store = store
        self.decode = decode
        self.applied = 0
        self.high = 0


def restore_partitions(
    consumer: Consumer,
    restores: list[Restore],
    timeout_s: float = 300.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Rebuild every store of ``restores`` from its changelog partition, all in one pass.

    ``consumer`` is a group-less read_committed consumer with partition EOF events on.
    A partition is done at its end (the EOF event, or the last offset before the high
    watermark seen when the restore began). ``on_progress(applied, expected)`` is called
    about once a second.
    """
    todo: dict[tuple[str, int], Restore] = {}
    for r in restores:
        low, r.high = _watermarks(consumer, TopicPartition(r.topic, r.store.partition))
        if r.high > low:
            todo[(r.topic, r.store.partition)] = r
    if not todo:
        return
    expected = sum(r.high for r in todo.values())
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in todo])
    deadline = time.monotonic() + timeout_s
    last_progress = time.monotonic()
    try:
        while todo:
            for msg in consumer.consume(10000, 0.05):
                key = (msg.topic() or "", msg.partition() or 0)
                current = todo.get(key)
                if current is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        del todo[key]
                        continue
                    raise StoreRestoreError(f"reading {key[0]}[{key[1]}]: {err.str()}")
                raw_key = msg.key()
                if raw_key is not None:
                    raw = msg.value()
                    value = None if raw is None else current.decode(raw)
                    current.store.restore(raw_key.decode(), value)
                    current.applied += 1
                if (msg.offset() or 0) + 1 >= current.high:
                    del todo[key]
            now = time.monotonic()
            if on_progress is not None and now - last_progress > 1.0:
                last_progress = now
                on_progress(sum(r.applied for r in restores), expected)
            if now > deadline:
                raise StoreRestoreError(
                    f"restoring {len(todo)} changelog partition(s) took over {timeout_s:g}s"
                )
    except KafkaException as exc:
        raise StoreRestoreError(f"reading changelogs: {exc}") from exc
    finally:
        consumer.unassign()
