"""Topics read whole for the audit and the replay: every record, read_committed, kept.

A :class:`TopicLog` reads one topic from the beginning of every partition and keeps what
it read; later calls read on from where it stopped (the tail), so an audit can re-read a
topic's end cheaply while it looks for a stable cut (:mod:`tradeflux.audit.cuts`).
"The end" of a partition is its last stable offset (read_committed): records of open
transactions are not read until those end.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, Protocol

from tradeflux.errors import TradefluxError
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import BEGINNING, PartitionReader
from tradeflux.stream.records import Headers
from tradeflux.stream.retry import Patience

READ_BATCH = 10_000
"""Records taken from the client per call."""
LATEST = -1
"""The time ListOffsets answers with a partition's latest offset."""
READ_WAIT_S = 0.02
"""How long one call waits: the client's batch call waits all of it unless the batch fills,
so a long wait would make every short tail read (the cuts read many) cost that long."""


class AuditError(TradefluxError):
    """The audit or replay cannot be done as asked (a topic missing, the cluster silent)."""

    exit_code = 2


class Progress(Protocol):
    """Told how far the reading of each topic has got (for a progress bar)."""

    def update(self, what: str, done: int, total: int, records: int) -> None:
        """Note that ``what`` (``reading trades.raw``) is ``done`` of ``total`` offsets in."""


class Rec(NamedTuple):
    """One record as read: where it is, when, its key, value and (if kept) headers."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None = None


def _offset(rec: Rec) -> int:
    return rec.offset


class RecordLog:
    """Records of one topic, per partition in offset order, and where reading stopped.

    ``next_offsets`` holds, per partition, the offset reading goes on from: one past the
    last record read, or the end offset reported when the end was reached (past any
    transaction markers). The checks read only this; :class:`TopicLog` fills it from Kafka.
    """

    def __init__(self, label: str, partitions: int) -> None:
        self.label = label
        self.partitions = partitions
        self.records: dict[int, list[Rec]] = {p: [] for p in range(partitions)}
        self.next_offsets: dict[int, int] = dict.fromkeys(range(partitions), 0)

    def add(self, rec: Rec) -> None:
        """Keep ``rec``, the next record of its partition."""
        self.records[rec.partition].append(rec)
        self.next_offsets[rec.partition] = rec.offset + 1

    def upto(self, cut: Mapping[int, int] | None = None) -> Iterator[Rec]:
        """Yield the records before ``cut`` (next offset per partition; None: all read)."""
        for p in range(self.partitions):
            records = self.records[p]
            stop = (
                len(records)
                if cut is None
                else bisect.bisect_left(records, cut.get(p, 0), key=_offset)
            )
            yield from records[:stop]

    def count(self, cut: Mapping[int, int] | None = None) -> int:
        """Return how many records lie before ``cut`` (None: all read)."""
        if cut is None:
            return sum(len(r) for r in self.records.values())
        return sum(
            bisect.bisect_left(self.records[p], cut.get(p, 0), key=_offset)
            for p in range(self.partitions)
        )

    def find(self, partition: int, offset: int) -> Rec | None:
        """Return the record at ``offset`` of ``partition``, if it was read."""
        records = self.records.get(partition)
        if not records:
            return None
        i = bisect.bisect_left(records, offset, key=_offset)
        return records[i] if i < len(records) and records[i].offset == offset else None


class TopicLog(RecordLog):
    """Every record of one topic read so far, read_committed, from Kafka.

    ``name`` is the topic's full (prefixed) name, ``label`` the name shown to the user.
    ``start`` gives the first offset to read per partition (default:
    the beginning); ``sink``, if given, is handed each record instead of the log keeping
    it. ``stall_s``: how long a read may go without any progress before it gives up.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        name: str,
        label: str | None = None,
        keep_headers: bool = False,
        progress: Progress | None = None,
        stall_s: float = 60.0,
        start: Mapping[int, int] | None = None,
        sink: Callable[[Rec], None] | None = None,
    ) -> None:
        self.name = name
        self._keep_headers = keep_headers
        self._progress = progress
        self._stall_s = stall_s
        self._sink = sink
        self._patience = Patience(f"reading {name}", stall_s, f"audit topic={name}")
        self._reader = PartitionReader(config)
        count = self._patience.run(lambda: self._reader.partitions_of(name))
        if count is None:
            raise AuditError(
                f"topic {name} does not exist; check --prefix (or create the topics with "
                "`tradeflux topics create`)"
            )
        super().__init__(label or name, count)
        self.next_offsets = {p: self._watermarks(p)[0] for p in range(count)}
        first: dict[tuple[str, int], int] = {(name, p): BEGINNING for p in range(count)}
        for p, offset in (start or {}).items():
            if offset > self.next_offsets[p]:
                self.next_offsets[p] = offset
                first[(name, p)] = offset
        self._reader.assign(first)

    def _watermarks(self, partition: int) -> tuple[int, int]:
        return self._patience.run(lambda: self._reader.watermarks((self.name, partition)))

    def end_offsets(self) -> dict[int, int]:
        """Return each partition's end now (its last stable offset), from the cluster.

        One request for every partition: a ListOffsets for the time -1, which Kafka answers
        with the latest offset (read_committed: the last stable one). The cuts ask this
        between two fetches of committed offsets, so it must be quick.
        """
        tps = {(self.name, p): LATEST for p in range(self.partitions)}
        got = self._patience.run(lambda: self._reader.offsets_for_times(tps))
        return {
            p: end if (end := got.get((self.name, p))) is not None else self._watermarks(p)[1]
            for p in range(self.partitions)
        }

    def read_to_end(self) -> int:
        """Read on to the end each partition has now; return how many records were new."""
        return self.read_to(self.end_offsets())

    def read_to(self, targets: Mapping[int, int]) -> int:
        """Read on until every partition's next offset is at least its target; count the new.

        Raises AuditError when nothing arrives for ``stall_s`` while a partition is short.
        """
        start = dict(self.next_offsets)
        pending = {p for p, t in targets.items() if self.next_offsets[p] < t}
        total = sum(max(0, t - start[p]) for p, t in targets.items())
        records = 0
        last_progress = time.monotonic()
        while pending:
            try:
                msgs, at_end = self._reader.read(READ_BATCH, READ_WAIT_S)
            except KafkaClientError as exc:
                if not exc.retriable:
                    raise
                msgs, at_end = [], {}
            for m in msgs:
                partition = m.partition() or 0
                offset = m.offset() or 0
                headers: Headers | None = None
                if self._keep_headers:
                    got = m.headers()  # a list of (name, value) pairs as consumed
                    headers = list(got.items()) if isinstance(got, dict) else got
                rec = Rec(partition, offset, m.timestamp()[1], m.key(), m.value(), headers)
                if self._sink is None:
                    self.records[partition].append(rec)
                else:
                    self._sink(rec)
                self.next_offsets[partition] = offset + 1
                records += 1
            for (_topic, partition), end in at_end.items():
                if end > self.next_offsets[partition]:
                    self.next_offsets[partition] = end
            now = time.monotonic()
            if msgs or at_end:
                last_progress = now
            elif now - last_progress > self._stall_s:
                short = ", ".join(
                    f"[{p}] at {self.next_offsets[p]} of {targets[p]}" for p in sorted(pending)
                )
                raise AuditError(
                    f"reading {self.name}: nothing arrived for {self._stall_s:g} s with "
                    f"partitions short of their end ({short}); check the cluster "
                    "(`tradeflux broker status`) and run again"
                )
            pending = {p for p in pending if self.next_offsets[p] < targets[p]}
            if self._progress is not None:
                done = sum(
                    max(0, min(self.next_offsets[p], t) - start[p]) for p, t in targets.items()
                )
                self._progress.update(f"reading {self.label}", done, total, records)
        return records

    def close(self) -> None:
        """Close the reader (the records stay)."""
        self._reader.close()
