"""Restore off the loop: a thread that rebuilds newly assigned partitions' stores.

The loop pauses a newly assigned partition and hands its task to the :class:`Restorer`,
then goes on processing the partitions it already holds. The restorer, with a reader of
its own (no group membership), first fetches the group's committed offset of the input
partition (the fetch waits until any open transaction of the group on it has ended), then
reads each store's changelog partition from its beginning to its end, read_committed, into
the task's stores.

That end is the log's end (high watermark) when the job starts, not the last stable offset.
A committed transaction is readable on a partition only once its commit marker is written
there, and the marker on a changelog can come after the one on the group's offsets. The
cluster-fault soak had an instance restore its own partition (its group session had timed
out) when its last two commits were final on the offsets but not yet on the changelog: the
restore stopped before them, the input went on after them, and the stores lost them. Reading
on to the log's end waits until every transaction there has ended (committed or aborted), so
the stores hold every commit up to the committed offset. A finished job goes back to the
loop, which moves the partition to its committed offset and
resumes it. A partition revoked meanwhile is cancelled. Transient broker errors are waited
out up to the deadline; past it the job fails and the instance exits with one line.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tradeflux.stream.errors import KafkaClientError, StoreRestoreError
from tradeflux.stream.kafka import BEGINNING, TP, PartitionReader
from tradeflux.stream.metrics import StreamMetrics
from tradeflux.stream.retry import Patience, Stopping
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.task import Task

log = logging.getLogger("tradeflux.stream.restore")

_READ_RECORDS = 2000  # per read: small enough to hand the GIL back to the loop often
_SWITCH_INTERVAL_S = 0.0005  # while restoring: the loop waits at most this for the GIL
# librdkafka stops fetching a partition whose local queue holds queued.min.messages
# (100,000) and looks again after fetch.queue.backoff.ms, 1 s by default: a restore then
# reads about 100k records a second (1M keys: 11.4 s in bench/restore.py, the reader idle
# most of it). At 10 ms the reader alone takes 1M records in 1.7 s here.
_READER_SETTINGS = {"fetch.queue.backoff.ms": 10}
# A reader that has read nothing for this long while records remain is replaced by a fresh
# one at the same offsets. In the fault soak a restore reader sat 10 minutes at "applied=0
# of at most 4592" after a rolling restart of the brokers, logging no error, while another
# partition's restore on the same instance had finished: librdkafka's fetch state of that
# one partition never recovered. A fresh client asks the cluster anew.
_STALL_S = 20.0


@dataclass
class _Part:
    """One changelog partition of a job, and where it ends."""

    store: StorePartition
    decode: Callable[[bytes], Any]
    high: int
    applied: int = 0
    done: bool = False
    stable_end: int = -1  # the end a read_committed read last reported (below high: waiting)
    next: int = BEGINNING  # the offset to read from if the reader is replaced


@dataclass
class RestoreJob:
    """Rebuild the stores of one input partition's task; ``committed`` is its offset then."""

    tp: TP
    task: Task
    started: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    committed: int | None = None
    error: BaseException | None = None
    parts: dict[TP, _Part] = field(default_factory=dict)

    @property
    def applied(self) -> int:
        """Return the changelog records applied so far."""
        return sum(p.applied for p in self.parts.values())

    @property
    def expected(self) -> int:
        """Return the most changelog records the job can read (the high watermarks)."""
        return sum(p.high for p in self.parts.values())


class Restorer:
    """Restores tasks' stores in a background thread; :meth:`finished` hands them back."""

    def __init__(
        self,
        client: Mapping[str, Any],
        group_id: str,
        changelogs: Mapping[str, str],
        metrics: StreamMetrics,
        patience: Callable[[str], Patience],
        commit_timeout_s: float,
    ) -> None:
        self._client = dict(client)
        self._group_id = group_id
        self._changelogs = changelogs
        self._metrics = metrics
        self._patience = patience
        self._timeout_s = commit_timeout_s
        self._incoming: queue.SimpleQueue[RestoreJob] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[RestoreJob] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="restorer", daemon=True)
        self._jobs: list[RestoreJob] = []  # being read (the thread's own)
        self._deferred: list[RestoreJob] = []
        self._tainted: set[TP] = set()  # changelog partitions of cancelled jobs
        self._ends: PartitionReader | None = None  # asks for log ends only (_log_ends)
        self._default_switch = sys.getswitchinterval()
        self.pending = 0  # submitted, not yet handed back (read by the loop)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (jobs in progress are dropped)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def submit(self, job: RestoreJob) -> None:
        """Queue a job (the task's stores must be empty)."""
        self.pending += 1
        self._incoming.put(job)

    def finished(self) -> list[RestoreJob]:
        """Return the jobs that ended since the last call (done, failed or cancelled)."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                break
        self.pending -= len(out)
        return out

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        reader = self._new_reader()
        last_progress = moved = time.monotonic()
        seen = -1
        try:
            while not self._stop.is_set():
                self._take_new(reader, block=not self._jobs)
                if self._deferred and not self._jobs:
                    reader.close()
                    reader = self._new_reader()
                    self._tainted.clear()
                    for job in self._deferred:
                        self._prepare(reader, job)
                    self._deferred = []
                if not self._jobs:
                    sys.setswitchinterval(self._default_switch)
                    continue
                sys.setswitchinterval(_SWITCH_INTERVAL_S)
                self._read(reader)
                now = time.monotonic()
                position = self._position()
                if position != seen or not self._jobs:
                    seen, moved = position, now
                elif now - moved >= _STALL_S:
                    reader = self._replace_reader(reader, now - moved)
                    moved = now
                if now - last_progress >= 1.0:
                    last_progress = now
                    self._progress()
        except Stopping:
            pass
        finally:
            sys.setswitchinterval(self._default_switch)
            reader.close()
            if self._ends is not None:
                self._ends.close()
                self._ends = None

    def _position(self) -> int:
        """Return a number that grows whenever any job reads a record (or finishes)."""
        return sum(max(p.next, 0) + p.done for j in self._jobs for p in j.parts.values()) + len(
            self._jobs
        )

    def _replace_reader(self, reader: PartitionReader, idle_s: float) -> PartitionReader:
        """Close a reader that stopped delivering; assign a fresh one where it stood."""
        remaining = {
            ctp: part.next for job in self._jobs for ctp, part in job.parts.items() if not part.done
        }
        log.warning(
            "restore reader read nothing for %.0f s with %d changelog partition(s) unfinished; "
            "replacing it partitions=%s",
            idle_s,
            len(remaining),
            ",".join(f"{t}[{p}]" for t, p in sorted(remaining)),
        )
        reader.close()
        fresh = self._new_reader()
        self._tainted.clear()
        if remaining:
            fresh.assign(remaining)
        return fresh

    def _log_ends(self) -> PartitionReader:
        """Return the client that asks for changelogs' log ends (read_uncommitted: not the LSO)."""
        if self._ends is None:
            self._ends = PartitionReader(
                self._client, group_id=self._group_id, on_error=self._note,
                **{"isolation.level": "read_uncommitted"},
            )  # fmt: skip
        return self._ends

    def _new_reader(self) -> PartitionReader:
        return PartitionReader(
            self._client, group_id=self._group_id, on_error=self._note, **_READER_SETTINGS
        )

    def _note(self, err: KafkaClientError) -> None:
        log.debug("restore reader error=%s", err)

    def _take_new(self, reader: PartitionReader, block: bool) -> None:
        while True:
            try:
                job = self._incoming.get(timeout=0.1) if block else self._incoming.get_nowait()
            except queue.Empty:
                return
            block = False
            topics = {(t, job.tp[1]) for t in self._changelogs.values()}
            if topics & self._tainted:
                self._deferred.append(job)  # after a fresh reader: no stale fetched records
            else:
                self._prepare(reader, job)

    def _prepare(self, reader: PartitionReader, job: RestoreJob) -> None:
        """Fetch the committed offset, then assign the job's non-empty changelog partitions."""
        if job.cancelled:
            self._done.put(job)
            return
        try:
            committed = self._patience("committed offsets").run(
                lambda: reader.committed([job.tp], self._timeout_s)
            )
            job.committed = committed[job.tp]
            for spec in job.task.service.stores:
                if not spec.logged:
                    continue  # derived state: starts empty
                ctp = (self._changelogs[spec.name], job.tp[1])
                low, high = self._patience("changelog offsets").run(
                    lambda ctp=ctp: self._log_ends().watermarks(ctp)  # type: ignore[misc]
                )
                if high > low:
                    job.parts[ctp] = _Part(job.task.stores[spec.name], spec.codec.decode, high)
                store_labels = {
                    **self._metrics.labels(),
                    "store": spec.name,
                    "partition": str(job.tp[1]),
                }
                self._metrics.restore_total.labels(**store_labels).set(max(0, high))
        except Stopping:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which exits with it
            job.error = exc
            self._done.put(job)
            return
        log.info(
            "restoring service=%s partition=%d changelog_records=%d",
            job.task.service.name,
            job.tp[1],
            job.expected,
        )
        if not job.parts:
            self._finish(reader, job)
            return
        reader.assign(dict.fromkeys(job.parts, BEGINNING))
        self._jobs.append(job)

    def _read(self, reader: PartitionReader) -> None:
        parts: dict[TP, tuple[RestoreJob, _Part]] = {}
        for job in self._jobs:
            for ctp, part in job.parts.items():
                parts[ctp] = (job, part)
        try:
            msgs, at_end = reader.read(_READ_RECORDS, 0.05)
        except Exception as exc:  # noqa: BLE001 - a fatal read error fails every job
            for job in self._jobs:
                job.error = exc
                self._done.put(job)
            self._jobs = []
            return
        # The end a read_committed reader reports is the last stable offset: a partition is
        # done only once that has reached the log end the job started with.
        done: set[TP] = set()
        for ctp, end in at_end.items():
            found = parts.get(ctp)
            if found is None:
                continue
            part = found[1]
            if end >= part.high:
                done.add(ctp)
            elif part.stable_end != end:
                part.stable_end = end
                log.info(
                    "restore waits for a transaction open on %s[%d]: readable to %d, log end %d",
                    ctp[0], ctp[1], end, part.high,
                )  # fmt: skip
        for msg in msgs:
            ctp = (msg.topic() or "", msg.partition() or 0)
            found = parts.get(ctp)
            if found is None:
                continue
            job, part = found
            if job.cancelled or part.done or job.error is not None:
                continue
            raw_key = msg.key()
            if raw_key is not None:
                raw = msg.value()
                try:
                    value = None if raw is None else part.decode(raw)
                    part.store.restore(raw_key.decode(), value)
                except Exception as exc:  # noqa: BLE001 - a changelog we cannot read back
                    job.error = ValueError(
                        f"the record at {ctp[0]}[{ctp[1]}]@{msg.offset()} does not decode "
                        f"({type(exc).__name__}: {exc}); was it written by another version? "
                        "Rebuild the store: delete the changelog and reset the group's offsets"
                    )
                    continue
                part.applied += 1
            part.next = (msg.offset() or 0) + 1
            if part.next >= part.high:
                done.add(ctp)
        for job in list(self._jobs):
            if job.error is not None:
                self._jobs.remove(job)
                reader.unassign(job.parts)
                self._done.put(job)
                continue
            if job.cancelled:
                self._jobs.remove(job)
                reader.unassign(job.parts)
                self._tainted.update(job.parts)
                self._done.put(job)
                continue
            for ctp in done & job.parts.keys():
                job.parts[ctp].done = True
            if all(p.done for p in job.parts.values()):
                self._jobs.remove(job)
                self._finish(reader, job)

    def _finish(self, reader: PartitionReader, job: RestoreJob) -> None:
        reader.unassign(job.parts)
        labels = self._metrics.labels()
        seconds = time.monotonic() - job.started
        for spec in job.task.service.stores:
            if not spec.logged:
                continue
            store = job.task.stores[spec.name]
            ctp = (self._changelogs[spec.name], job.tp[1])
            part = job.parts.get(ctp)
            store_labels = {**labels, "store": spec.name, "partition": str(job.tp[1])}
            self._metrics.restore_done.labels(**store_labels).set(part.applied if part else 0)
            self._metrics.store_keys.labels(**store_labels).set(store.committed_size)
            log.info(
                "store restored service=%s store=%s partition=%d records=%d keys=%d seconds=%.3f",
                job.task.service.name,
                spec.name,
                job.tp[1],
                part.applied if part else 0,
                store.committed_size,
                seconds,
            )
        self._metrics.restore_seconds.labels(**labels).observe(seconds)
        self._done.put(job)

    def _progress(self) -> None:
        applied = sum(j.applied for j in self._jobs)
        expected = sum(j.expected for j in self._jobs)
        labels = self._metrics.labels()
        for job in self._jobs:
            for spec in job.task.service.stores:
                if not spec.logged:
                    continue
                part = job.parts.get((self._changelogs[spec.name], job.tp[1]))
                if part is not None:
                    store_labels = {**labels, "store": spec.name, "partition": str(job.tp[1])}
                    self._metrics.restore_done.labels(**store_labels).set(part.applied)
        log.info(
            "restoring service=%s partitions=%d applied=%d of at most %d",
            self._jobs[0].task.service.name if self._jobs else "",
            len(self._jobs),
            applied,
            expected,
        )


def restore_failed(job: RestoreJob) -> StoreRestoreError:
    """Return the one-line error of a failed restore job."""
    return StoreRestoreError(
        f"restoring the stores of {job.tp[0]}[{job.tp[1]}] failed: {job.error}; check the "
        "changelog topics and the cluster, then restart the instance"
    )
