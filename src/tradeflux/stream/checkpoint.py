"""The checkpoint of one batch: the unit of commit.

What the batch consumed (the next offset of each input partition), what it emitted
(outputs and dead letters, each with a ``tf.hop`` header), what its stores changed (the
last value of each changed key, or a tombstone, on the store's changelog), and the one
transaction that makes all of it visible together::

    begin -> send outputs, dead letters, changelog records
          -> send_offsets_to_transaction(offsets, group metadata) -> commit

Only once the commit returned are the stores' batch overlays merged (:meth:`committed`);
if anything fails, the loop aborts the transaction and calls :meth:`aborted`. A record
the producer refuses (too large, invalid) is pinned on the input record that made it, so
that the next attempt dead-letters that record instead of failing again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from tradeflux.stream.changelog import changelog_records
from tradeflux.stream.deadletter import PRODUCE_REFUSED
from tradeflux.stream.errors import RecordRefusedError, TransactionAbortableError
from tradeflux.stream.kafka import TP, GroupConsumer, Refusal, TransactionalProducer
from tradeflux.stream.records import HOP_HEADER, Emitted
from tradeflux.stream.retry import Patience
from tradeflux.stream.task import Task
from tradeflux.tracing import OFF_BATCH, BatchTrace, with_trace


class InjectedAbort(Exception):  # noqa: N818 - named for what tests raise
    """Raised by a test's ``before_commit`` hook to force an abort."""


def now_us() -> int:
    """Return the wall clock in epoch microseconds (the unit of the hop headers)."""
    return time.time_ns() // 1000


class Checkpoint:
    """One batch's outputs, store changes and consumed offsets, committed as one transaction."""

    def __init__(
        self,
        seq: int,
        tasks: list[Task],
        offsets: Mapping[TP, int],
        hop: str,
        fetched_us: int,
        started_us: int,
        processed_us: int,
        trace: BatchTrace = OFF_BATCH,
    ) -> None:
        self.seq = seq
        self._trace = trace
        self.tasks = tasks
        self.offsets = offsets
        self._hop = hop  # "service;instance;batch"
        self._fetched_us = fetched_us
        self._started_us = started_us
        self._processed_us = processed_us
        # What the batch produces, taken from its tasks now: (task, record) in order.
        self.records: list[tuple[Task, Emitted]] = [
            (task, rec) for task in tasks for rec in task.take_emitted()
        ]
        self.out_counts: dict[str, int] = {}
        self.produced_us = 0
        self.commit_started_us = 0
        self.committed_us = 0

    def run(
        self,
        producer: TransactionalProducer,
        consumer: GroupConsumer,
        patience: Callable[[str], Patience],
        timeout_s: float,
        before_commit: Callable[[int], None] | None = None,
    ) -> None:
        """Run the batch's transaction; raises (classified) if it did not commit."""
        producer.begin()
        self.produced_us = produced = now_us()
        tail = f";{self._started_us};{self._processed_us};{produced}"
        prefix = self._hop + ";"
        counts = self.out_counts
        trace = self._trace if self._trace is not OFF_BATCH else None
        for task, rec in self.records:
            fetched = rec.source.fetched_us if rec.source is not None else self._fetched_us
            hop = (HOP_HEADER, f"{prefix}{fetched or self._fetched_us}{tail}".encode())
            headers = [*rec.headers, hop] if rec.headers else [hop]
            if trace is not None and rec.headers:  # the hop span of the input's trace
                headers = with_trace(headers, trace.child_headers(rec.headers))
            try:
                producer.send(rec.topic, rec.key, rec.value, headers, rec.partition)
            except RecordRefusedError as exc:
                self._pin(task, rec, exc)
                raise TransactionAbortableError(str(exc), exc.code) from None
            counts[rec.topic] = counts.get(rec.topic, 0) + 1
        for task in self.tasks:
            for spec in task.service.stores:
                store = task.stores[spec.name]
                if not store.dirty or not spec.logged:
                    continue
                for rec in changelog_records(task.changelogs[spec.name], store, spec.codec.encode):
                    try:
                        producer.send(rec.topic, rec.key, rec.value, None, rec.partition)
                    except RecordRefusedError as exc:
                        task.suspect = True
                        raise TransactionAbortableError(str(exc), exc.code) from None
        if self.offsets:
            patience("send offsets").run(
                lambda: producer.send_offsets(self.offsets, consumer, timeout_s)
            )
        if before_commit is not None:
            before_commit(self.seq)
        self.commit_started_us = now_us()
        patience("commit").run(lambda: producer.commit(timeout_s))
        self.committed_us = now_us()

    def pin_refusals(self, refusals: list[Refusal]) -> int:
        """Pin the records the producer refused on their input records; return how many."""
        record_level = [r for r in refusals if isinstance(r.error, RecordRefusedError)]
        if not record_level:
            return 0
        sent: dict[tuple[str, bytes | None, bytes | None], tuple[Task, Emitted]] = {
            (rec.topic, rec.key, rec.value): (task, rec) for task, rec in self.records
        }
        for refusal in record_level:
            found = sent.get((refusal.topic, refusal.key, refusal.value))
            if found is None:  # a changelog record: no input record to blame
                for task in self.tasks:
                    task.suspect = True
                continue
            self._pin(found[0], found[1], refusal.error)
        return len(record_level)

    @staticmethod
    def _pin(task: Task, rec: Emitted, error: Any) -> None:
        if rec.source is None:
            task.suspect = True  # re-run one record at a time to find it
            return
        code = getattr(error, "code", "") or type(error).__name__
        task.poisoned[rec.source.offset] = (PRODUCE_REFUSED, code, str(error))

    def committed(self) -> None:
        """Merge the tasks' batch changes (the transaction committed)."""
        for task in self.tasks:
            task.commit()
