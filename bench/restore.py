"""Restore off the loop (issue 10): latency of held partitions while another one restores.

Two instances A and B of the keyed running sum (tests/support/jobs.py RUNNING_SUM, a
MessagePack store with a changelog) share a ``--partitions`` input. Once the assignment
settles, ``--keys`` records (the store's MessagePack values) are written into the
changelog partition of one partition p that B holds; p gets no input. An open-loop
producer then sends ``--rate`` records/s on schedule to A's partitions only (explicit
partitions; keys are named for them), whatever A does. After ``--warmup`` s unmeasured
and ``--seconds`` s "before", B gets SIGTERM and leaves the group at once; A takes B's
partitions and restores p's store while it goes on with its own; the load runs on for
``--seconds`` s after A logs ``store restored ... partition=p``.

Latency of a record = when its output (its (key, seq) in the sums topic) became visible
to a read_committed reader - its scheduled send time (no coordinated omission). Phases
by scheduled send: before (warm-up end to B's SIGTERM), rebalance (SIGTERM to A's
``restoring ... partition=p`` line), during (that line to ``store restored ...
partition=p``), after. Exact percentiles (nearest rank) of all records of a phase. The
restore's records and seconds are A's own log line; A's commits come from its
``--batch-trace`` (one line per committed batch, with the commit time).

Usage: .venv/bin/python bench/restore.py [--keys 1000000] [--rate 2000] [--partitions 6]
       [--seconds 10] [--markdown FILE] [--py-spy DIR]
Uses TRADEFLUX_BOOTSTRAP or starts a local broker of its own.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.compare import free_port  # noqa: E402
from bench.hops import percentile  # noqa: E402
from bench.report import console, ms  # noqa: E402
from bench.runtime import OutputWatcher  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.support.jobs import RUNNING_SUM, Number  # noqa: E402
from tests.support.kafka_tools import (  # noqa: E402
    ServiceProcess,
    assert_running,
    create_topics,
    end_offsets,
    producer,
    wait_for,
)

from tradeflux.broker import local  # noqa: E402
from tradeflux.config import Settings, load_settings  # noqa: E402
from tradeflux.stream.changelog import changelog_topic  # noqa: E402

TARGET = "tests.support.jobs:RUNNING_SUM"
KEYS_PER_PARTITION = 100  # of the steady load: each key's seq advances 1 per 100 records
_encode_number = msgspec.json.Encoder().encode

# The runtime's log lines this bench reads (src/tradeflux/stream/assignment.py, restore.py).
_TS = re.compile(r"^ts=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
_ASSIGNED = re.compile(r"partitions (assigned|revoked) service=\S+ partitions=(\S*)")
_RESTORING = re.compile(r"restoring service=\S+ partition=(\d+) changelog_records=(\d+)")
_RESTORED = re.compile(
    r"store restored service=\S+ store=\S+ partition=(\d+) records=(\d+) keys=(\d+) "
    r"seconds=([\d.]+)"
)


# -- what the instances logged ------------------------------------------------------------


@dataclass
class Restored:
    """One ``store restored`` line: when (monotonic) and what it says."""

    at: float
    partition: int
    records: int
    keys: int
    seconds: float


@dataclass
class InstanceLog:
    """The events of one instance's log, times on this process's monotonic clock."""

    held: set[int] = field(default_factory=set)  # the partitions it holds now
    assignments: dict[int, int] = field(default_factory=dict)  # times assigned, per partition
    restores: dict[int, int] = field(default_factory=dict)  # restores ended, per partition
    restoring: list[tuple[float, int, int]] = field(default_factory=list)  # (at, p, records)
    restored: list[Restored] = field(default_factory=list)

    def active(self) -> bool:
        """Tell whether it holds partitions and every one is restored.

        The restorer thread may log a quick restore's end before the rebalance callback
        logs the assignment, so a partition is restored when as many restores ended as it
        was assigned (a revocation cancels a restore, which then logs no end).
        """
        return bool(self.held) and all(
            self.restores.get(p, 0) >= self.assignments.get(p, 0) for p in self.held
        )


def _mono(wall_s: float) -> float:
    """Turn a wall-clock time of this machine into this process's monotonic clock."""
    return wall_s - (time.time() - time.monotonic())


def parse_log(text: str) -> InstanceLog:
    """Return the assignment and restore events of a ``tradeflux run`` log."""
    out = InstanceLog()
    for line in text.splitlines():
        ts = _TS.match(line)
        if ts is None:
            continue
        at = _mono(time.mktime(time.strptime(ts[1], "%Y-%m-%d %H:%M:%S")) + int(ts[2]) / 1000)
        if m := _ASSIGNED.search(line):
            parts = [int(n.rsplit("[", 1)[1].rstrip("]")) for n in m[2].split(",") if n]
            for p in parts:
                if m[1] == "assigned":
                    out.held.add(p)
                    out.assignments[p] = out.assignments.get(p, 0) + 1
                else:
                    out.held.discard(p)
                    out.restores[p] = out.assignments.get(p, 0)
        elif m := _RESTORING.search(line):
            out.restoring.append((at, int(m[1]), int(m[2])))
        elif m := _RESTORED.search(line):
            p = int(m[1])
            out.restored.append(Restored(at, p, int(m[2]), int(m[3]), float(m[4])))
            out.restores[p] = out.restores.get(p, 0) + 1
    return out


def read_commits(trace: Path) -> list[float]:
    """Return the commit times (monotonic) of an instance's ``--batch-trace`` file."""
    if not trace.exists():
        return []
    out = []
    for line in trace.read_text().splitlines():
        fields = line.split(";")
        if len(fields) == 6:
            out.append(_mono(int(fields[4]) / 1e6))
    return sorted(out)


# -- the load -----------------------------------------------------------------------------


class OpenLoopSender(threading.Thread):
    """Sends numbers to the given partitions on a fixed schedule until stopped.

    Record i is due at start + i / rate whatever the service does; its due time is kept
    under its (key, seq), the identity of its output.
    """

    def __init__(self, settings: Settings, topic: str, partitions: list[int], rate: int) -> None:
        super().__init__(daemon=True, name="sender")
        self.prod = producer(settings, **{"linger.ms": 1})
        self.topic = topic
        self.keys = [(p, f"p{p}-k{j:03d}") for j in range(KEYS_PER_PARTITION) for p in partitions]
        self.rate = rate
        self.due: dict[tuple[str, int], float] = {}
        self.start_at = 0.0
        self.max_lag_ms = 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        seqs = dict.fromkeys((k for _, k in self.keys), 0)
        self.start_at = start = time.monotonic() + 0.05
        i = 0
        while not self.stop_event.is_set():
            now = time.monotonic()
            while (due := start + i / self.rate) <= now:
                partition, key = self.keys[i % len(self.keys)]
                seqs[key] += 1
                value = _encode_number(Number(key, seqs[key], 1))
                while True:
                    try:
                        self.prod.produce(self.topic, value, key.encode(), partition=partition)
                        break
                    except BufferError:
                        self.prod.poll(0.01)
                self.due[(key, seqs[key])] = due
                self.max_lag_ms = max(self.max_lag_ms, (now - due) * 1000)
                i += 1
            self.prod.poll(0)
            time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
        self.prod.flush(30)


class CpuSampler(threading.Thread):
    """Samples the machine's busy CPU time and one process's CPU time, 4 times a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="cpu")
        self.pid = pid
        self.samples: list[tuple[float, float, float]] = []  # (monotonic, machine s, process s)
        self.stop_event = threading.Event()

    def run(self) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        while not self.stop_event.is_set():
            with open("/proc/stat") as f:
                cpu = [int(x) for x in f.readline().split()[1:]]
            busy = sum(cpu) - cpu[3] - cpu[4]  # less idle and iowait
            try:
                with open(f"/proc/{self.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                proc = int(fields[11]) + int(fields[12])  # utime + stime
            except (FileNotFoundError, ProcessLookupError, IndexError):
                proc = 0
            self.samples.append((time.monotonic(), busy / hz, proc / hz))
            self.stop_event.wait(0.25)

    def cores(self, start: float, end: float) -> tuple[float, float]:
        """Return the cores busy on the machine and in the process between two times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return math.nan, math.nan
        (t0, m0, p0), (t1, m1, p1) = inside[0], inside[-1]
        return (m1 - m0) / (t1 - t0), (p1 - p0) / (t1 - t0)


def write_changelog(settings: Settings, topic: str, partition: int, keys: int) -> float:
    """Write ``keys`` distinct keys with the store's MessagePack values; return the seconds.

    The keys need not hash to ``partition``: a restore reads what the partition holds.
    """
    encode = RUNNING_SUM.stores[0].codec.encode
    prod = producer(settings, **{"linger.ms": 50, "batch.size": 1_000_000,
                                 "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    started = time.monotonic()
    for i in range(keys):
        value = encode((i % 1000 + 1, i))
        while True:
            try:
                prod.produce(topic, value, f"restored-{i:07d}".encode(), partition=partition)
                break
            except BufferError:
                prod.poll(0.05)
        if i % 10_000 == 0:
            prod.poll(0)
    assert prod.flush(120) == 0, "the changelog records were not all written"
    return time.monotonic() - started


# -- one run ------------------------------------------------------------------------------


@dataclass
class Phase:
    """The records sent in one phase and their latencies, ms, sorted (inf: never visible)."""

    name: str
    start: float
    end: float
    latencies_ms: list[float] = field(default_factory=list)
    cores: tuple[float, float] = (math.nan, math.nan)  # busy: the machine, instance A

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


@dataclass
class Result:
    """What one run measured."""

    phases: list[Phase]
    restore: Restored
    window_s: float  # A's "restoring" line to its "store restored" line
    commits_during: int
    commits_per_s_before: float
    longest_gap_ms: float  # between A's commits (or the window's edges) during the restore
    a_partitions: list[int]
    b_partitions: list[int]
    restored_partition: int
    send_lag_ms: float
    changelog_write_s: float
    missing: int
    samples: list[tuple[float, float]]  # (scheduled send, latency ms) of every record
    commits: list[float]  # A's commit times
    sigterm_at: float


def settled(a: ServiceProcess, b: ServiceProcess, partitions: int) -> bool:
    """Tell whether A and B hold every partition between them, each active (restored)."""
    assert_running(a, b)
    la, lb = parse_log(a.log()), parse_log(b.log())
    held = [*la.held, *lb.held]
    return sorted(held) == list(range(partitions)) and la.active() and lb.active()


def run(args: argparse.Namespace, settings: Settings, workdir: Path) -> Result:
    prefix = f"rb-{uuid.uuid4().hex[:6]}-"
    topics = {f"{prefix}numbers": args.partitions, f"{prefix}sums": args.partitions,
              f"{prefix}numbers.dlq": args.partitions}  # fmt: skip
    create_topics(settings, topics)
    changelog = changelog_topic(prefix, RUNNING_SUM.name, RUNNING_SUM.stores[0].name)
    trace_a = workdir / f"{prefix}a.trace"
    extra = ("--batch-trace", str(trace_a))
    watcher = OutputWatcher(settings.bootstrap, f"{prefix}sums", args.partitions)
    watcher.start()
    a = ServiceProcess(settings, TARGET, prefix, "bench-a", workdir, *extra)
    cpu = CpuSampler(a.proc.pid)
    cpu.start()
    b: ServiceProcess | None = None
    sender: OpenLoopSender | None = None
    profilers: list[subprocess.Popen[bytes]] = []
    try:
        wait_for(lambda: _running(a) and parse_log(a.log()).held, 120, "A's partitions")
        b = ServiceProcess(settings, TARGET, prefix, "bench-b", workdir)
        wait_for(lambda: settled(a, b, args.partitions), 120, "A and B to settle", 0.5)
        a_parts = sorted(parse_log(a.log()).held)
        b_parts = sorted(parse_log(b.log()).held)
        p = b_parts[0]
        console.print(f"A holds {a_parts}, B holds {b_parts}; writing {args.keys:,} keys "
                      f"into {changelog}[{p}] ...")  # fmt: skip
        write_s = write_changelog(settings, changelog, p, args.keys)
        assert end_offsets(settings, changelog)[p] >= args.keys
        console.print(f"  written in {write_s:.1f} s; load at {args.rate:,}/s on {a_parts}")
        sender = OpenLoopSender(settings, f"{prefix}numbers", a_parts, args.rate)
        sender.start()
        wait_for(lambda: sender.start_at, 10, "the sender to start", 0.01)
        measured_from = sender.start_at + args.warmup
        _sleep_until(measured_from + args.seconds, a)
        sigterm_at = time.monotonic()
        b.proc.send_signal(signal.SIGTERM)
        console.print("  B stopped (SIGTERM); A restores ...")

        def restore_line() -> Restored | None:
            assert_running(a)
            done = [
                r for r in parse_log(a.log()).restored if r.partition == p and r.at > sigterm_at
            ]
            return done[-1] if done else None

        if args.py_spy is not None:
            profilers = _start_profiler(
                args.py_spy, a, lambda: _restoring_at(a, p, sigterm_at), args.py_spy_seconds
            )
        restored = wait_for(restore_line, args.restore_timeout, f"A to restore partition {p}")
        b.proc.wait(30)
        console.print(f"  restored: {restored.records:,} records in {restored.seconds:.2f} s")
        _sleep_until(restored.at + args.seconds, a)
        end_at = time.monotonic()
        sender.stop_event.set()
        sender.join(60)
        drain_until = time.monotonic() + args.drain  # missing after it: counted as never
        while time.monotonic() < drain_until and any(k not in watcher.seen for k in sender.due):
            time.sleep(0.2)
    finally:
        for profiler in profilers:
            profiler.wait(120)
        if sender is not None:
            sender.stop_event.set()
        for proc in (a, b):
            if proc is not None and proc.alive():
                proc.terminate()
        watcher.stop = True
        watcher.join(10)
        cpu.stop_event.set()
    log_a = parse_log(a.log())
    restoring_at = max(at for at, part, _ in log_a.restoring if part == p and at > sigterm_at)
    phases = [
        Phase("before (steady)", measured_from, sigterm_at),
        Phase("rebalance (B leaves → restore begins)", sigterm_at, restoring_at),
        Phase(f"during the restore of {args.keys:,} keys", restoring_at, restored.at),
        Phase("after", restored.at, end_at),
    ]
    samples = []
    for key, due in sender.due.items():
        seen = watcher.seen.get(key)
        samples.append((due, math.inf if seen is None else (seen - due) * 1000))
    samples.sort()
    for due, latency_ms in samples:
        for phase in phases:
            if phase.start <= due < phase.end:
                phase.latencies_ms.append(latency_ms)
    for phase in phases:
        phase.latencies_ms.sort()
        phase.cores = cpu.cores(phase.start, phase.end)
    commits = read_commits(trace_a)
    during = [c for c in commits if restoring_at <= c <= restored.at]
    edges = [restoring_at, *during, restored.at]
    before = [c for c in commits if measured_from <= c < sigterm_at]
    return Result(
        phases=phases,
        restore=restored,
        window_s=restored.at - restoring_at,
        commits_during=len(during),
        commits_per_s_before=len(before) / max(1e-9, sigterm_at - measured_from),
        longest_gap_ms=max(y - x for x, y in zip(edges, edges[1:], strict=False)) * 1000,
        a_partitions=a_parts,
        b_partitions=b_parts,
        restored_partition=p,
        send_lag_ms=sender.max_lag_ms,
        changelog_write_s=write_s,
        missing=sum(1 for _, v in samples if math.isinf(v)),
        samples=samples,
        commits=commits,
        sigterm_at=sigterm_at,
    )


def _running(proc: ServiceProcess) -> bool:
    assert_running(proc)
    return True


def _sleep_until(at: float, proc: ServiceProcess) -> None:
    while (left := at - time.monotonic()) > 0:
        assert_running(proc)
        time.sleep(min(0.2, left))


def _restoring_at(a: ServiceProcess, p: int, after: float) -> bool:
    return any(part == p and at > after for at, part, _ in parse_log(a.log()).restoring)


def _start_profiler(
    out_dir: Path, a: ServiceProcess, restoring: Callable[[], bool], seconds: int
) -> list[subprocess.Popen[bytes]]:
    """Once A begins the restore: a ``py-spy dump`` of its threads, then two ``py-spy record``s
    of ``seconds`` (raw collapsed stacks per thread, A not suspended): every thread with
    idle samples (where each one is), and the GIL holder only (who runs)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    wait_for(restoring, 60, "A's restore to begin", 0.02)
    pid = str(a.proc.pid)
    dump = subprocess.run([py_spy, "dump", "--pid", pid], capture_output=True, text=True,
                          check=False)  # fmt: skip
    (out_dir / "dump.txt").write_text(dump.stdout + dump.stderr)
    procs = []
    for name, flag in (("threads", "--idle"), ("gil", "--gil")):
        procs.append(subprocess.Popen(
            [py_spy, "record", "--pid", pid, "--duration", str(seconds), "--rate", "100",
             "--nonblocking",  # two recorders at once: neither may suspend the process
             "--threads", flag, "--format", "raw", "--output", str(out_dir / f"{name}.txt")],
            stdout=(out_dir / f"{name}.log").open("wb"), stderr=subprocess.STDOUT,
        ))  # fmt: skip
    return procs


def profile_summary(out_dir: Path, top: int = 6) -> list[str]:
    """Return, per thread, its share of the GIL samples and its busiest frames under the GIL."""
    threads: dict[str, int] = {}
    frames: dict[str, dict[str, int]] = {}
    path = out_dir / "gil.txt"
    if not path.exists():
        return [f"no GIL profile in {out_dir} (see gil.log there)"]
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *calls = stack.split(";")
        n = int(count)
        threads[thread] = threads.get(thread, 0) + n
        leaf = calls[-1] if calls else "?"
        frames.setdefault(thread, {})[leaf] = frames.get(thread, {}).get(leaf, 0) + n
    total = sum(threads.values()) or 1
    lines = [f"GIL holder over {total} samples (py-spy --gil, 100/s):"]
    for thread, n in sorted(threads.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {thread}: {n / total:.0%}")
        for leaf, k in sorted(frames[thread].items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"      {k / total:5.1%}  {leaf}")
    return lines


# -- the table ----------------------------------------------------------------------------


def rows(r: Result) -> list[tuple[str, str]]:
    """Return the table as (measure, value) rows."""
    out = []
    for ph in r.phases:
        lat = ph.latencies_ms
        never = sum(1 for v in lat if math.isinf(v))
        cell = " / ".join(ms(ph.p(q)) for q in (0.5, 0.9, 0.99, 1.0)) if lat else "-"
        cell += f"  ({len(lat):,} records, {ph.end - ph.start:.1f} s"
        cell += f", {never:,} never)" if never else ")"
        out.append((f"p50 / p90 / p99 / max ms, {ph.name}", cell))
    cores = ", ".join(f"{m:.1f} / {a:.1f}" for m, a in (ph.cores for ph in r.phases))
    out.append(("CPU cores busy, machine / A: before, rebalance, during, after", cores))
    before, during = r.phases[0], r.phases[2]
    out += [
        ("p99 during / p99 before (goal ≤ 2)", f"{during.p(0.99) / before.p(0.99):.2f}"),
        (f"restore of partition {r.restored_partition}: records, seconds (A's log)",
         f"{r.restore.records:,} records, {r.restore.seconds:.2f} s (goal < 10 s)"),
        ("restore records/s", f"{r.restore.records / max(1e-9, r.restore.seconds):,.0f}"),
        ("A's commits during the restore", f"{r.commits_during:,} in {r.window_s:.2f} s "
         f"(before: {r.commits_per_s_before:.1f}/s); longest gap {ms(r.longest_gap_ms)} ms"),
        ("partitions: A's (loaded), B's (moved to A)", f"{r.a_partitions}, {r.b_partitions}"),
        ("sender's worst lag behind its schedule, ms", ms(r.send_lag_ms)),
    ]  # fmt: skip
    return out


def timeline(r: Result) -> Table:
    """Return the latency of the records sent in each second, and A's commits in it."""
    table = Table(title="per second of scheduled send (0 = B's SIGTERM)")
    for col in ("s", "records", "p50 ms", "p99 ms", "max ms", "A's commits"):
        table.add_column(col, justify="right")
    first = math.floor(r.samples[0][0] - r.sigterm_at) if r.samples else 0
    last = math.ceil(r.samples[-1][0] - r.sigterm_at) if r.samples else 0
    for second in range(first, last):
        lo, hi = r.sigterm_at + second, r.sigterm_at + second + 1
        lat = sorted(v for due, v in r.samples if lo <= due < hi)
        commits = sum(1 for c in r.commits if lo <= c < hi)
        marks = [name for name, at in (("restore begins", r.restore.at - r.window_s),
                                       ("restored", r.restore.at)) if lo <= at < hi]  # fmt: skip
        label = f"{second}" + (f" ({', '.join(marks)})" if marks else "")
        cells = [ms(percentile(lat, q)) for q in (0.5, 0.99, 1.0)]
        table.add_row(label, f"{len(lat):,}", *cells, str(commits))
    return table


def markdown(r: Result, title: str) -> str:
    lines = [f"**{title}**", "", "| measure | value |", "|---|---|"]
    lines += [f"| {m} | {v} |" for m, v in rows(r)]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=1_000_000, help="keys in the restored store")
    p.add_argument("--rate", type=int, default=2000, help="offered load on A's partitions, /s")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--seconds", type=int, default=10, help="measured before and after, each")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured seconds of load first")
    p.add_argument("--drain", type=float, default=60.0, help="wait for the last outputs, s")
    p.add_argument("--restore-timeout", type=float, default=300.0)
    p.add_argument("--port", type=int, default=19292, help="first port tried for our broker")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    p.add_argument("--py-spy", type=Path, metavar="DIR",
                   help="profile A during the restore (py-spy dump + record) into DIR")  # fmt: skip
    p.add_argument("--py-spy-seconds", type=int, default=5, help="length of the recordings")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tradeflux-restore-"))
    console.print(f"work folder (logs): {workdir}; load average {_load()}")
    settings = load_settings()
    own = None
    if not os.environ.get("TRADEFLUX_BOOTSTRAP"):
        own = load_settings(env={}, runtime_dir=workdir / "runtime")
        cluster = local.start_cluster(own, port=free_port(args.port))
        settings = replace(settings, bootstrap=cluster.bootstrap)
        console.print(f"broker: Kafka {cluster.kafka_version} at {cluster.bootstrap} (ours)")
    try:
        result = run(args, settings, workdir)
    finally:
        if own is not None:
            local.stop_cluster(own)
            shutil.rmtree(workdir / "runtime", ignore_errors=True)
    title = (f"restore off the loop: {args.keys:,} keys restored while {args.rate:,}/s run on "
             f"A's partitions ({args.partitions} partitions)")  # fmt: skip
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for m, v in rows(result):
        table.add_row(m, v)
    console.print(table)
    console.print(timeline(result))
    if args.py_spy is not None:
        for line in profile_summary(args.py_spy):
            console.print(line, markup=False)
    if result.missing:
        console.print(f"[red]{result.missing:,} outputs never became visible[/]")
    machine = (f"{os.cpu_count()} cores, Python {platform.python_version()}, "
               f"{platform.platform()}; load average at the end {_load()}")  # fmt: skip
    console.print(f"machine: {machine}; changelog written in {result.changelog_write_s:.1f} s")
    if args.markdown:
        args.markdown.write_text(markdown(result, title) + f"\nmachine: {machine}\n")
    console.print(f"logs: {workdir}")


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
