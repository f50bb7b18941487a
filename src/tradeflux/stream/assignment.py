"""Which input partitions an instance holds, and whether each is restoring or active.

Called from the consumer's rebalance callbacks (cooperative: only the partitions that
move are named). A newly assigned partition of a service with stores is paused and its
stores restored off the loop (restore.py); it becomes active, at its committed offset,
when the restore is done. A revoked or lost partition is dropped at once, its restore
cancelled. ``moved`` tells the loop that records it fetched may belong to an assignment
that no longer holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from tradeflux.stream.kafka import BEGINNING, TP, GroupConsumer
from tradeflux.stream.metrics import StreamMetrics
from tradeflux.stream.provisioning import Layout
from tradeflux.stream.restore import RestoreJob, Restorer, restore_failed
from tradeflux.stream.task import Task
from tradeflux.stream.topology import Service

log = logging.getLogger("tradeflux.stream")


class Assignment:
    """The tasks of the partitions this instance holds."""

    def __init__(
        self,
        service: Service,
        prefix: str,
        tables: Mapping[str, Mapping[str, Any]],
        layout: Layout,
        consumer: Callable[[], GroupConsumer],
        restorer: Restorer | None,
        metrics: StreamMetrics,
    ) -> None:
        self._service = service
        self._prefix = prefix
        self._tables = tables
        self._layout = layout
        self._consumer = consumer
        self._restorer = restorer
        self._metrics = metrics
        self.tasks: dict[TP, Task] = {}  # every partition held
        self.active: dict[TP, Task] = {}  # restored, processing
        self._jobs: dict[TP, RestoreJob] = {}
        self.moved = False

    @property
    def restoring(self) -> int:
        """Return how many partitions are being restored."""
        return len(self._jobs)

    def _new_task(self, tp: TP) -> Task:
        return Task(
            self._service, tp[1], self._tables, self._prefix,
            self._layout.partitions, self._layout.limits,
        )  # fmt: skip

    def assigned(self, tps: list[TP]) -> None:
        """Take new partitions: restore their stores first if the service has any."""
        if not tps:
            return  # a cooperative round that gave this instance nothing new
        self.moved = True
        for tp in tps:
            task = self._new_task(tp)
            self.tasks[tp] = task
            if self._restorer is None:
                self.active[tp] = task
        if self._restorer is not None:  # a service with logged stores
            self._consumer().pause(tps)
            for tp in tps:
                self._restore(tp, self.tasks[tp])
        log.info("partitions assigned service=%s partitions=%s", self._service.name, _names(tps))
        self._gauges()

    def revoked(self, tps: list[TP]) -> None:
        """Drop partitions that moved away (or were lost)."""
        if not tps:
            return
        self.moved = True
        for tp in tps:
            self.tasks.pop(tp, None)
            self.active.pop(tp, None)
            job = self._jobs.pop(tp, None)
            if job is not None:
                job.cancelled = True
            self._metrics.forget_partition(tp[1], [s.name for s in self._service.stores])
        log.info("partitions revoked service=%s partitions=%s", self._service.name, _names(tps))
        self._gauges()

    def rebuild_all(self) -> None:
        """Restore every active partition's stores again (their in-memory state is in doubt)."""
        if self._restorer is None:
            return
        tps = list(self.active)
        self._consumer().pause(tps)
        for tp in tps:
            task = self.active.pop(tp)
            task.reset()
            self._restore(tp, task)
        log.info(
            "rebuilding stores from changelogs service=%s partitions=%s",
            self._service.name,
            _names(tps),
        )
        self._gauges()

    def _restore(self, tp: TP, task: Task) -> None:
        assert self._restorer is not None  # noqa: S101 - only services with stores restore
        job = RestoreJob(tp, task)
        self._jobs[tp] = job
        self._restorer.submit(job)

    def take_restored(self) -> list[TP]:
        """Activate the partitions whose restore ended; return them (raises if one failed)."""
        if self._restorer is None or not self._restorer.pending:
            return []
        ready: list[TP] = []
        for job in self._restorer.finished():
            if self._jobs.get(job.tp) is not job:
                continue  # revoked meanwhile, or superseded
            if job.error is not None:
                raise restore_failed(job)
            del self._jobs[job.tp]
            self.active[job.tp] = job.task
            consumer = self._consumer()
            consumer.seek(job.tp, BEGINNING if job.committed is None else job.committed)
            consumer.resume([job.tp])
            ready.append(job.tp)
        if ready:
            self._gauges()
        return ready

    def take_moved(self) -> bool:
        """Return whether partitions moved since the last call."""
        moved, self.moved = self.moved, False
        return moved

    def _gauges(self) -> None:
        labels = self._metrics.labels()
        self._metrics.assigned.labels(**labels).set(len(self.active))
        self._metrics.restoring.labels(**labels).set(len(self._jobs))


def _names(tps: list[TP]) -> str:
    return ",".join(f"{t}[{p}]" for t, p in sorted(tps))
