"""Global tables: compacted topics every instance reads whole, then follows.

Each is read from the beginning of every partition before processing starts (transient
broker errors are waited out up to the deadline), and followed between batches. A
record that does not decode is counted and skipped; the key keeps its previous value.
``changed`` collects the keys that changed since the loop last took them, for services
that act on a table change (e.g. re-marking P&L when a price moves).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tradeflux.stream.errors import KafkaClientError, StreamError, TopicMissingError
from tradeflux.stream.kafka import BEGINNING, TP, PartitionReader
from tradeflux.stream.retry import Patience
from tradeflux.stream.topology import GlobalTableSpec

log = logging.getLogger("tradeflux.stream.tables")

# How long the broker may hold a table reader's fetch when nothing new is there. A record
# that arrives ends the wait at once (fetch.min.bytes is 1), so a long wait costs no
# freshness; a short one makes every idle reader ask each broker ~100 times a second.
TABLE_FETCH_WAIT_MS = 500


class GlobalTable(Mapping[str, Any]):
    """A read-only map of a compacted topic's latest value per key."""

    def __init__(
        self,
        spec: GlobalTableSpec,
        topic: str,
        client: Mapping[str, Any],
        group_id: str | None = None,
    ) -> None:
        self.spec = spec
        self.topic = topic
        self._data: dict[str, Any] = {}
        self.bad_records = 0
        self.changed: set[str] = set()
        # The group id is never joined or committed, but an authorizer checks it: keep it
        # under the service's own group prefix (``<service>-table``).
        self._reader = PartitionReader(
            client, group_id, on_error=self._note, **{"fetch.wait.max.ms": TABLE_FETCH_WAIT_MS}
        )
        self._partitions: list[int] = []
        self._loaded = False

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def _note(self, err: KafkaClientError) -> None:
        log.debug("global table %s: %s", self.spec.name, err)

    def load(self, patience: Patience, timeout_s: float = 120.0) -> None:
        """Read the topic from the beginning to its current end."""
        count = patience.run(lambda: self._reader.partitions_of(self.topic))
        if count is None:
            raise TopicMissingError(
                f"global table {self.spec.name}: topic {self.topic} does not exist; "
                "create it with `tradeflux topics create`"
            )
        self._partitions = list(range(count))
        ends: dict[TP, int] = {}
        for p in self._partitions:
            tp = (self.topic, p)
            low, high = patience.run(lambda tp=tp: self._reader.watermarks(tp))  # type: ignore[misc]
            if high > low:
                ends[tp] = high
        self._reader.assign(dict.fromkeys(((self.topic, p) for p in self._partitions), BEGINNING))
        deadline = time.monotonic() + max(timeout_s, patience.deadline_s)
        while ends:
            msgs, at_end = self._reader.read(10000, 0.2)
            self._apply(msgs)
            for msg in msgs:
                tp = (self.topic, msg.partition() or 0)
                if tp in ends and (msg.offset() or 0) + 1 >= ends[tp]:
                    del ends[tp]
            for tp in at_end:
                ends.pop(tp, None)
            if time.monotonic() > deadline:
                raise StreamError(
                    f"global table {self.spec.name}: {self.topic} not read to its end within "
                    f"{deadline:g}s; check the cluster and restart"
                )
        self.changed.clear()
        self._loaded = True
        log.info(
            "global table loaded name=%s topic=%s keys=%d bad_records=%d",
            self.spec.name,
            self.topic,
            len(self),
            self.bad_records,
        )

    def poll(self) -> int:
        """Apply whatever has arrived since the last call, without waiting."""
        msgs, _ = self._reader.read(10000, 0)
        self._apply(msgs)
        return len(msgs)

    def take_changed(self) -> set[str]:
        """Return and clear the keys changed since the last call."""
        changed, self.changed = self.changed, set()
        return changed

    def _apply(self, msgs: list[Any]) -> None:
        decode = self.spec.codec.decode
        data = self._data
        changed = self.changed
        for msg in msgs:
            key = msg.key()
            if key is None:
                continue
            name = key.decode(errors="replace")
            raw = msg.value()
            if raw is None:
                if data.pop(name, None) is not None:
                    changed.add(name)
                continue
            try:
                data[name] = decode(raw)
            except Exception:  # noqa: BLE001 - a bad reference record is counted, not fatal
                self.bad_records += 1
                log.warning(
                    "global table record skipped table=%s topic=%s partition=%d offset=%d",
                    self.spec.name,
                    self.topic,
                    msg.partition(),
                    msg.offset(),
                )
                continue
            changed.add(name)

    def close(self) -> None:
        """Close the table's reader."""
        self._reader.close()
