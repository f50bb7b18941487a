"""Test tools around the real broker: topics, producing, reading back, service processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tradeflux.config import Settings

REPO = Path(__file__).resolve().parents[2]


def wait_for(
    condition: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.1
) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def admin_client(settings: Settings) -> AdminClient:
    """Return a raw confluent-kafka admin client (tests may use the client directly)."""
    return AdminClient(settings.client_config())


def create_topics(settings: Settings, names: dict[str, int], compacted: Iterable[str] = ()) -> None:
    """Create topics {name: partitions} (replication 1 unless the cluster is bigger)."""
    admin = AdminClient(settings.client_config())
    brokers = len(admin.list_topics(timeout=10).brokers)
    compact = set(compacted)
    new = [
        NewTopic(
            name,
            num_partitions=parts,
            replication_factor=min(3, brokers),
            config={"cleanup.policy": "compact" if name in compact else "delete"},
        )
        for name, parts in names.items()
    ]
    for future in admin.create_topics(new).values():
        future.result()


# What the query service reads (small partition counts: the read-model tests need few).
QUERY_TOPICS = {
    "positions": 3,
    "pnl": 3,
    "risk.alerts": 3,
    "analytics.bars": 3,
    "settlement.obligations": 3,
    "settlement.statements": 3,
    "settlement.instructions": 3,
    "regulatory.reports": 3,
    "trades.rejected": 3,
    "refdata.instruments": 1,
    "refdata.accounts": 1,
    "refdata.counterparties": 1,
    "allocations.status": 3,
    "allocations.acks": 3,
    "confirmations": 3,
    "confirmations.exceptions": 3,
}
QUERY_COMPACTED = (
    "positions", "pnl", "settlement.obligations", "refdata.instruments", "allocations.status",
    "confirmations",
)  # fmt: skip


def create_query_topics(settings: Settings, prefix: str) -> None:
    """Create the query service's input topics under ``prefix``."""
    create_topics(
        settings,
        {prefix + t: n for t, n in QUERY_TOPICS.items()},
        [prefix + t for t in QUERY_COMPACTED],
    )


def producer(settings: Settings, **extra: Any) -> Producer:
    """Return a plain idempotent producer that partitions like the Java client."""
    return Producer(
        settings.client_config(
            **{"partitioner": "murmur2_random", "linger.ms": 5, "enable.idempotence": True, **extra}
        )
    )


def read_all(
    settings: Settings, topic: str, timeout_s: float = 60.0, committed: bool = True
) -> list[Any]:
    """Read every record of ``topic`` from the beginning to its current end, in partition order.

    ``committed``: read_committed (what a downstream consumer sees) or read_uncommitted.
    Returns confluent-kafka messages.
    """
    consumer = Consumer(
        settings.client_config(
            **{
                "group.id": f"reader-{os.getpid()}-{time.monotonic_ns()}",
                "isolation.level": "read_committed" if committed else "read_uncommitted",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
    )
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        eof: set[int] = set()
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(eof) < len(parts):
            for msg in consumer.consume(10000, 0.5):
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                else:
                    raise AssertionError(f"reading {topic}: {err.str()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic} did not reach its end in {timeout_s}s")
        return out
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Return the high watermark of every partition of ``topic``."""
    consumer = Consumer(settings.client_config(**{"group.id": "end-offsets"}))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
    finally:
        consumer.close()


def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """Return the offsets ``group`` committed on ``topic`` (-1001 where none)."""
    consumer = Consumer(
        settings.client_config(**{"group.id": group, "isolation.level": "read_committed"})
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        deadline = time.monotonic() + 30
        while True:
            try:
                tps = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=30)
                return {tp.partition: tp.offset for tp in tps}
            except KafkaException as exc:  # the coordinator is loading or moving: ask again
                if time.monotonic() > deadline:
                    raise
                if not exc.args[0].retriable() and exc.args[0].code() not in (
                    KafkaError.NOT_COORDINATOR,
                    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                ):
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def committed_progress(settings: Settings, group: str, topic: str) -> int:
    """Return how many records of ``topic`` the group has committed, over its partitions."""
    return sum(o for o in committed_offsets(settings, group, topic).values() if o > 0)


def caught_up(settings: Settings, group: str, topic: str) -> bool:
    """Tell whether ``group`` has committed every partition of ``topic`` up to its end.

    A topic written in transactions ends with control markers that no consumer ever
    receives, so a partition whose committed offset is below the end still counts as
    caught up when nothing but markers (or aborted records) lies beyond it.
    """
    ends = end_offsets(settings, topic)
    done = committed_offsets(settings, group, topic)
    behind = {p: done.get(p, -1) for p, end in ends.items() if done.get(p, -1) < end}
    if not behind:
        return True
    if any(offset < 0 and ends[p] > 0 for p, offset in behind.items()):
        return False
    consumer = Consumer(
        settings.client_config(
            **{
                "group.id": f"caught-up-{time.monotonic_ns()}",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "enable.auto.commit": False,
            }
        )
    )
    try:
        consumer.assign([TopicPartition(topic, p, max(0, o)) for p, o in behind.items()])
        eof: set[int] = set()
        deadline = time.monotonic() + 10
        while len(eof) < len(behind):
            for msg in consumer.consume(1000, 0.2):
                err = msg.error()
                if err is None:
                    return False  # a real record the group has not committed yet
                if err.code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
            if time.monotonic() > deadline:
                return False
        return True
    finally:
        consumer.close()


class ServiceProcess:
    """A ``tradeflux run`` process with its log in a file.

    ``launcher`` prefixes the command (``ip netns exec NAME`` runs it on a host of its
    own; it execs, so the pid stays the service's); ``env`` adds environment variables.
    """

    def __init__(
        self,
        settings: Settings,
        target: str,
        prefix: str,
        instance_id: str,
        log_dir: Path,
        *extra: str,
        launcher: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env``: more environment (a SASL principal's TRADEFLUX_KAFKA_* settings, say)."""
        self.log_path = log_dir / f"{instance_id}-{time.monotonic_ns()}.log"
        environ = {
            **os.environ,
            "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}",
            "TRADEFLUX_BOOTSTRAP": settings.bootstrap,
            # /metrics on loopback answers anyone unless a test sets its own auth
            "TRADEFLUX_AUTH": "none",
            **(env or {}),
        }
        cmd = [
            *launcher, sys.executable, "-m", "tradeflux.cli", "run", target,
            "--prefix", prefix, "--instance-id", instance_id, "--session-timeout-ms", "6000",
            *extra,
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=environ)

    def log(self) -> str:
        """Return what the process has logged so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the process and return its exit code."""
        self.signal_stop()
        return self.wait(timeout_s)

    def signal_stop(self) -> None:
        """SIGTERM the process without waiting (to stop several together, then ``wait``)."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 30.0) -> int:
        """Wait for the process to exit and return its exit code; SIGKILL it (-9) if late."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9

    def returncode(self) -> int | None:
        """Return the exit code, or None while the process runs."""
        return self.proc.poll()

    def alive(self) -> bool:
        """Tell whether the process is still running."""
        return self.proc.poll() is None


def assert_running(*procs: ServiceProcess) -> None:
    """Fail at once, with the end of its log, if a service process has exited."""
    for proc in procs:
        assert proc.alive(), f"{proc.log_path.name} exited:\n{proc.log()[-3000:]}"


class Pacer:
    """Paces a feeder at ``rate_per_s`` (None: as fast as it goes); a test may hold it.

    A crash test holds the feed from a kill until the restarted service has its
    partitions back, and the time held does not count against the schedule: however
    slowly a loaded machine restarts a service, the restart uses up none of the input,
    so the next kill still lands mid-stream.
    """

    def __init__(self, rate_per_s: float | None = None) -> None:
        self.rate_per_s = rate_per_s
        self._open = threading.Event()
        self._open.set()
        self._held_s = 0.0
        self._started: float | None = None

    @classmethod
    def of(cls, pace: Pacer | float | None) -> Pacer:
        """Return ``pace`` if it is a Pacer, else a Pacer at that rate."""
        return pace if isinstance(pace, Pacer) else cls(pace)

    def hold(self) -> None:
        """Stop the feed at its next check, until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        """Let the feed go on where it stopped."""
        self._open.set()

    def wait(self, i: int) -> None:
        """Return when record ``i`` is due: after any hold, on the schedule."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if not self._open.is_set():
            self._open.wait()
            self._held_s += time.monotonic() - now
        if self.rate_per_s:
            ahead = i / self.rate_per_s - (time.monotonic() - self._started - self._held_s)
            if ahead > 0:
                time.sleep(ahead)


def wait_assigned(*procs: ServiceProcess, timeout_s: float = 90.0) -> None:
    """Wait until every process logged that it has partitions (or fail if one exited)."""
    for proc in procs:
        wait_for(
            lambda p=proc: assert_running(p) or "partitions assigned" in p.log(),
            timeout_s, f"{proc.log_path.name} to get partitions",
        )  # fmt: skip


def restarted(make: Callable[[], ServiceProcess], pacer: Pacer) -> ServiceProcess:
    """Start a killed service again, the feed held until the new process has partitions."""
    pacer.hold()
    try:
        proc = make()
        wait_assigned(proc)
        return proc
    finally:
        pacer.release()
