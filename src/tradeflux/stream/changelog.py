"""Store changelogs: compacted topics, one partition per input partition.

Written in the batch's transaction (last value per changed key, tombstone on delete)
and read back to restore a store partition when it is assigned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from tradeflux.stream.context import Emitted
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


def restore_partition(
    consumer: Consumer,
    topic: str,
    store: StorePartition,
    decode: Callable[[bytes], Any],
    timeout_s: float = 120.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Rebuild ``store`` from its changelog partition, from the beginning to the end.

    ``consumer`` is a group-less read_committed consumer with partition EOF events on.
    Returns the number of changelog records applied. ``on_progress(done, total)``
    is called now and then with offsets read and the high watermark.
    """
    partition = store.partition
    tp = TopicPartition(topic, partition)
    low, high = consumer.get_watermark_offsets(tp, timeout=10.0, cached=False)
    if high <= low:
        return 0
    consumer.assign([TopicPartition(topic, partition, low)])
    applied = 0
    deadline = time.monotonic() + timeout_s
    last_progress = 0.0
    try:
        while True:
            msgs = consumer.consume(10000, 0.5)
            done = False
            for msg in msgs:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done = True
                        continue
                    raise StoreRestoreError(f"reading {topic}[{partition}]: {err.str()}")
                key = msg.key()
                if key is None:
                    continue
                raw = msg.value()
                store.restore(key.decode(), None if raw is None else decode(raw))
                applied += 1
                offset = msg.offset() or 0
                if offset + 1 >= high:
                    done = True
            now = time.monotonic()
            if on_progress is not None and now - last_progress > 1.0:
                last_progress = now
                on_progress(applied, high - low)
            if done:
                return applied
            if now > deadline:
                raise StoreRestoreError(
                    f"restoring {topic}[{partition}] took over {timeout_s:g}s "
                    f"({applied} records applied, end offset {high})"
                )
    except KafkaException as exc:
        raise StoreRestoreError(f"reading {topic}[{partition}]: {exc}") from exc
    finally:
        consumer.unassign()
