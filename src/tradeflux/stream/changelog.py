"""Store changelogs: compacted topics, one partition per input partition.

Written in the batch's transaction (last value per changed key, tombstone on delete)
and read back to restore a store partition when it is assigned (restore.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tradeflux.stream.records import Emitted
from tradeflux.stream.stores import StorePartition


def changelog_topic(topic_prefix: str, service: str, store: str) -> str:
    """Return the changelog topic of ``store`` of ``service``."""
    return f"{topic_prefix}{service}-{store}-changelog"


def changelog_records(
    topic: str, store: StorePartition, encode: Callable[[Any], bytes]
) -> Iterator[Emitted]:
    """Yield the changelog record of every key ``store`` changed in this batch.

    Values were encoded when the call that changed them returned (``store.encoded``);
    a key without cached bytes (its call was rolled back after an earlier one changed
    it) is encoded here.
    """
    partition = store.partition
    encoded = store.encoded
    for key, value in store.changes():
        if value is None:
            data = None
        else:
            data = encoded.get(key)
            if data is None:
                data = encode(value)
        yield Emitted(topic, key.encode(), data, None, partition)
