"""tradeflux against its peers on the positions job: one command, one table (not a test).

Builds every contender (Maven for Kafka Streams, pip into bench/peers/.venv-quix and
.venv-faust), starts a Kafka broker of its own, loads N seeded EnrichedTrade records
once into an input topic of P partitions, and then:

Throughput: R rounds; in each, every contender alone, in a rotated order, from offset 0
with a fresh group / application id and empty state, until its output holds the final
position of every key (each key's trade_count reached the key's number of trades: the
same rule for contenders that emit per trade and for tradeflux, which coalesces a key's
changes within a batch; the raw loop: until it copied N records). records/s = N / (time
the last needed output became visible to a read_committed reader - time the contender's
consumer group was first seen stable with all its members, every 100 ms): process start-up
and the group join are left out; warm-up, and the wait for the last commit, are in. Peak
RSS (summed over the process tree, JVM included) and CPU seconds (user + system, to the
last output) come from /proc. Medians over the rounds.

Honesty check: after every run the last position per key is compared with an independent
fold of the input (bench/peers/trades.py, Decimal). A contender with a mismatch is WRONG
and not ranked.

Latency: per offered load (default 5,000 and 20,000 trades/s), every contender alone on a
fresh input topic; an open-loop producer sends on a fixed schedule (a probe first, then
``--warmup`` seconds not measured, then ``--seconds`` measured); a record's latency is the
time its position (a Position of its key with trade_count >= its ordinal) became visible to
a read_committed reader minus its *scheduled* send time, so a stalled contender cannot hide
its backlog (no coordinated omission). Exact percentiles from the sorted latencies;
records not delivered within ``--drain`` seconds after the last send count as infinite.
A contender whose median throughput is below half the offered load is clearly saturated
there and skipped (its latency would only grow with the length of the run); --latency-all
runs it anyway.

Usage:
    .venv/bin/python bench/compare.py                       # 1M trades, 3 rounds, latency
    .venv/bin/python bench/compare.py --records 100000 --rounds 1 --skip-latency   # quick
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.peers import contenders as peers  # noqa: E402
from bench.peers import trades as input_trades  # noqa: E402
from bench.peers.watch import TreeSample, WatchResult, WatchSpec, watch  # noqa: E402
from confluent_kafka import Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tradeflux.broker import local  # noqa: E402
from tradeflux.config import load_settings  # noqa: E402

console = Console(highlight=False, width=None if sys.stdout.isatty() else 250)
SPAWN = mp.get_context("spawn")


@dataclass
class RunResult:
    """One throughput run of one contender."""

    contender: str
    round: int
    rate: float | None = None
    rss_mb: float | None = None
    cpu_s: float | None = None
    start_s: float | None = None
    outputs: int = 0
    problems: list[str] = field(default_factory=list)
    failure: str | None = None
    commits: int | None = None  # tradeflux: transactions (batches) in the run


@dataclass
class LatencyResult:
    """One latency run of one contender at one offered load."""

    p50: float = math.nan
    p99: float = math.nan
    p999: float = math.nan
    undelivered: int = 0
    problems: list[str] = field(default_factory=list)
    failure: str | None = None
    skipped: str | None = None


# -- broker and topics -------------------------------------------------------------------


def free_port(start: int) -> int:
    """Return the first even offset from ``start`` where port and port+1 are free."""
    for port in range(start, start + 200, 2):
        ok = True
        for p in (port, port + 1):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return port
    raise SystemExit(f"no free port pair from {start}")


def create_topics(admin: AdminClient, names: list[str], partitions: int) -> None:
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for f in futures.values():
        f.result()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until every broker knows them
        meta = admin.list_topics(timeout=5)
        if all(n in meta.topics and len(meta.topics[n].partitions) == partitions for n in names):
            return
        time.sleep(0.1)


def delete_topics_with(admin: AdminClient, token: str) -> None:
    names = [t for t in admin.list_topics(timeout=10).topics if token in t]
    if names:
        for f in admin.delete_topics(names, operation_timeout=30).values():
            try:
                f.result()
            except Exception as exc:  # noqa: BLE001 - cleanup only
                console.print(f"[dim]could not delete a topic: {exc}[/]")


def group_assigned(admin: AdminClient, group: str, members: int = 1) -> bool:
    """Tell whether ``group`` is stable with all ``members``: the contender may consume."""
    from confluent_kafka import ConsumerGroupState

    try:
        desc = admin.describe_consumer_groups([group], request_timeout=2)[group].result()
    except Exception:  # noqa: BLE001 - not there yet
        return False
    return desc.state == ConsumerGroupState.STABLE and len(desc.members) >= members


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> list[int]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]  # fmt: skip
    finally:
        c.close()


def producer(bootstrap: str, linger_ms: int) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": linger_ms,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",  # the Java client's, as tradeflux uses
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )


def produce(prod: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            prod.produce(topic, value, key)
            return
        except BufferError:
            prod.poll(0.05)


# -- one contender process ---------------------------------------------------------------


class Running:
    """A started contender: its process group, its log, its /proc samples."""

    def __init__(self, launch: peers.Launch, log: Path) -> None:
        self.log = log
        self.started = time.monotonic()
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                launch.argv, env=launch.env, cwd=launch.cwd, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.tree = TreeSample(self.proc.pid)

    def failed(self) -> str | None:
        code = self.proc.poll()
        if code is None:
            return None
        return f"exited with code {code}; log {self.log}: {self.tail()}"

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])[-400:]

    def stop(self) -> None:
        """SIGTERM the contender's process group, SIGKILL it after 30 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass


class Watcher:
    """The output watcher process (bench/peers/watch.py)."""

    def __init__(self, spec: WatchSpec) -> None:
        self.ready, self.first = SPAWN.Event(), SPAWN.Event()
        self.done, self.stop_event = SPAWN.Event(), SPAWN.Event()
        self.results: Any = SPAWN.Queue()
        self.proc = SPAWN.Process(
            target=watch,
            args=(spec, self.ready, self.first, self.done, self.stop_event, self.results),
            daemon=True,
        )  # fmt: skip
        self.proc.start()
        if not self.ready.wait(60):
            raise SystemExit("the output watcher did not start")

    def finish(self) -> WatchResult:
        self.stop_event.set()
        result: WatchResult = self.results.get(timeout=120)
        self.proc.join(30)
        return result


# -- throughput --------------------------------------------------------------------------


@dataclass
class Bench:
    """What every run shares."""

    args: argparse.Namespace
    bootstrap: str
    admin: AdminClient
    workdir: Path
    base: str  # prefix of the pre-loaded input: <base>trades.enriched
    reference: input_trades.Reference


def throughput_run(b: Bench, c: peers.Contender, rnd: int) -> RunResult:
    args = b.args
    run_id = f"{c.key}-r{rnd}-{uuid.uuid4().hex[:6]}"
    source = f"{b.base}trades.enriched"
    result = RunResult(c.key, rnd)
    if c.runtime == "tradeflux":
        target = f"{b.base}positions"  # shared by tradeflux's rounds: watch from its end
        offsets = high_watermarks(b.bootstrap, target, args.partitions)
    else:
        target = f"{b.base}out-{run_id}"
        create_topics(b.admin, [target], args.partitions)
        offsets = [0] * args.partitions
    spec = WatchSpec(b.bootstrap, target, offsets, c.kind, b.reference.expected_counts(),
                     args.records)  # fmt: skip
    watcher = Watcher(spec)
    launch = peers.launch(c, b.bootstrap, source, target, run_id, b.workdir, b.base)
    running = Running(launch, b.workdir / f"{run_id}.log")
    deadline = running.started + args.timeout
    assigned_t: float | None = None
    next_ask = 0.0
    try:
        while not watcher.done.is_set():
            running.tree.sample()
            if assigned_t is None and time.monotonic() >= next_ask:
                next_ask = time.monotonic() + 0.1
                if group_assigned(b.admin, launch.group, launch.members):
                    assigned_t = time.monotonic()
            if (why := running.failed()) is not None:
                result.failure = why
                break
            if time.monotonic() > deadline:
                result.failure = f"timed out after {args.timeout} s; log {running.log}"
                break
            watcher.done.wait(0.1)
        running.tree.sample()
        cpu_s, rss = running.tree.cpu_s, running.tree.peak_rss_bytes
    finally:
        running.stop()
        seen = watcher.finish()
    result.outputs = seen.outputs
    if result.failure is None and seen.done_t is not None:
        if assigned_t is None or assigned_t >= seen.done_t:
            assigned_t = seen.first_t  # never seen assigned (should not happen): be generous
        assert assigned_t is not None
        result.rate = args.records / (seen.done_t - assigned_t)
        result.rss_mb = rss / 2**20
        result.cpu_s = cpu_s
        result.start_s = assigned_t - running.started
        if c.kind == "positions":
            result.problems = input_trades.check(b.reference, seen.finals)
    if c.runtime == "tradeflux":
        found = re.findall(r"service stopped .*batches=(\d+)", running.log.read_text())
        result.commits = sum(int(n) for n in found) if found else None  # over its instances
    delete_topics_with(b.admin, run_id)
    return result


# -- latency -----------------------------------------------------------------------------


def latency_run(b: Bench, c: peers.Contender, rate: int) -> LatencyResult:
    args = b.args
    prefix = f"lat-{c.key}-{rate}-{uuid.uuid4().hex[:6]}-"
    source, target = f"{prefix}trades.enriched", f"{prefix}positions"
    create_topics(b.admin, [source, target, f"{prefix}trades.rejected"], args.partitions)
    total = 1 + rate * (args.warmup + args.seconds)
    reference = input_trades.Reference()
    sends: list[tuple[bytes, bytes, str, int]] = []
    for trade in input_trades.generate(total, args.seed + rate, args.accounts, args.instruments,
                                       tag=f"L{rate}-"):  # fmt: skip
        key, ordinal = reference.apply(trade)
        ident = key if c.kind == "positions" else trade.trade_id
        sends.append((trade.account.encode(), input_trades.encode(trade), ident, ordinal))
    spec = WatchSpec(b.bootstrap, target, [0] * args.partitions, c.kind,
                     reference.expected_counts(), total, latency=True)  # fmt: skip
    watcher = Watcher(spec)
    if c.runtime == "tradeflux":  # the shipped service itself, on this run's own prefix
        launch = peers.launch(c, b.bootstrap, source, target, prefix.strip("-"), b.workdir, prefix)
        launch.argv[launch.argv.index("bench.peers.tradeflux_service:SERVICE")] = (
            "tradeflux.services.positions:SERVICE"
        )
    else:
        launch = peers.launch(c, b.bootstrap, source, target, prefix.strip("-"), b.workdir)
    running = Running(launch, b.workdir / f"{prefix}log")
    out = LatencyResult()
    prod = producer(b.bootstrap, linger_ms=1)
    due: list[float] = [0.0] * total
    try:
        # A probe: wait until the contender answers, so start-up is not measured.
        produce(prod, source, sends[0][0], sends[0][1])
        prod.flush(30)
        deadline = time.monotonic() + 180
        while not watcher.first.wait(0.05):
            if (why := running.failed()) is not None:
                out.failure = why
                return out
            if time.monotonic() > deadline:
                out.failure = f"no output to the probe within 180 s; log {running.log}"
                return out
        start = time.monotonic() + 0.01
        i = 1
        while i < total:
            now = time.monotonic()
            while i < total and start + (i - 1) / rate <= now:  # everything due by now
                due[i] = start + (i - 1) / rate
                produce(prod, source, sends[i][0], sends[i][1])
                i += 1
            prod.poll(0)
            if i < total:
                time.sleep(max(0.0, start + (i - 1) / rate - time.monotonic()))
        prod.flush(30)
        end = time.monotonic() + args.drain
        while not watcher.done.is_set() and time.monotonic() < end:
            if (why := running.failed()) is not None:
                out.failure = why
                break
            watcher.done.wait(0.1)
    finally:
        running.stop()
        seen = watcher.finish()
        delete_topics_with(b.admin, prefix)
    measured_from = 1 + rate * args.warmup
    lat: list[float] = []
    if c.kind == "positions":
        index = {}
        for key, arrivals in seen.arrivals.items():
            counts, times, high = [], [], 0
            for count, t in arrivals:
                if count > high:
                    high = count
                    counts.append(count)
                    times.append(t)
            index[key] = (counts, times)
        for j in range(measured_from, total):
            key, ordinal = sends[j][2], sends[j][3]
            counts, times = index.get(key, ([], []))
            k = bisect_left(counts, ordinal)
            lat.append((times[k] - due[j]) * 1000 if k < len(counts) else math.inf)
        out.problems = input_trades.check(reference, seen.finals)
    else:
        for j in range(measured_from, total):
            t = seen.seen.get(sends[j][2])
            lat.append((t - due[j]) * 1000 if t is not None else math.inf)
    lat.sort()
    out.undelivered = sum(1 for x in lat if math.isinf(x))
    if lat:
        out.p50, out.p99, out.p999 = (_pct(lat, q) for q in (0.50, 0.99, 0.999))
    return out


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


# -- report ------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ms(value: float) -> str:
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


@dataclass
class Row:
    contender: peers.Contender
    status: str  # "OK", "WRONG", "FAILED"
    rate: float | None
    rss_mb: float | None
    cpu_s: float | None
    start_s: float | None
    note: str
    latency: dict[int, LatencyResult]


def summarize(
    cs: list[peers.Contender], runs: list[RunResult], lat: dict[tuple[str, int], LatencyResult]
) -> list[Row]:
    rows = []
    for c in cs:
        mine = [r for r in runs if r.contender == c.key]
        failures = [r.failure for r in mine if r.failure]
        wrong = [p for r in mine for p in r.problems]
        status = "FAILED" if failures else "WRONG" if wrong else "OK"
        note = (
            failures[0]
            if failures
            else f"{len(wrong)} mismatches, e.g. {wrong[0]}"
            if wrong
            else ""
        )
        for (key, _rate), result in lat.items():
            if key == c.key and result.problems and status == "OK":
                status, note = "WRONG", f"latency run: {result.problems[0]}"
        commits = [r.commits for r in mine if r.commits]
        if commits and not note:
            note = f"{int(statistics.median(commits))} transactions per run"
        rows.append(
            Row(c, status, _median([r.rate for r in mine]), _median([r.rss_mb for r in mine]),
                _median([r.cpu_s for r in mine]), _median([r.start_s for r in mine]), note,
                {rate: res for (key, rate), res in lat.items() if key == c.key})
        )  # fmt: skip
    ranked = sorted((r for r in rows if r.status == "OK"), key=lambda r: -(r.rate or 0))
    return ranked + [r for r in rows if r.status != "OK"]


def _latency_cell(res: LatencyResult | None) -> str:
    if res is None:
        return "-"
    if res.skipped:
        return res.skipped
    if res.failure:
        return "FAILED"
    cell = f"{_ms(res.p50)} / {_ms(res.p99)} / {_ms(res.p999)}"
    if res.undelivered:
        cell += f" ({res.undelivered:,} late)"
    if res.problems:
        cell = "WRONG"
    return cell


def report(rows: list[Row], rates: list[int], title: str) -> str:
    """Print the table; return it as Markdown as well (for docs/benchmarks.md)."""
    tf = next((r.rate for r in rows if r.contender.key == "tradeflux" and r.status == "OK"), None)
    head = ["#", "contender", "guarantee", "records/s", "x tradeflux", "peak RSS MB", "CPU s",
            "start s", "check"] + [f"p50/p99/p999 ms @ {r:,}/s" for r in rates]  # fmt: skip
    body = []
    rank = 0
    for row in rows:
        ok = row.status == "OK"
        rank += ok
        rate = f"{row.rate:,.0f}" if row.rate else "-"
        ratio = row.status if not ok else f"{row.rate / tf:.2f}x" if tf and row.rate else "-"
        body.append(
            [str(rank) if ok else "-", row.contender.label, row.contender.guarantee, rate, ratio,
             f"{row.rss_mb:,.0f}" if row.rss_mb else "-", f"{row.cpu_s:.1f}" if row.cpu_s else "-",
             f"{row.start_s:.1f}" if row.start_s else "-", row.status]
            + [_latency_cell(row.latency.get(r)) for r in rates]
        )  # fmt: skip
    table = Table(title=title)
    for col in head:
        table.add_column(col, justify="left" if col in ("contender", "guarantee") else "right")
    for line in body:
        table.add_row(*line)
    console.print(table)
    for row in rows:
        if row.note:
            console.print(f"  {row.contender.label}: {row.note}", markup=False)
    md = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    md += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(md)


# -- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=1_000_000, help="trades pre-loaded (N)")
    p.add_argument("--partitions", type=int, default=6, help="input partitions (P)")
    p.add_argument("--rounds", type=int, default=3, help="throughput rounds (medians)")
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--instruments", type=int, default=200)
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--rates", default="5000,20000", help="offered loads of the latency runs")
    p.add_argument("--seconds", type=int, default=10, help="measured seconds per latency run")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured seconds before that")
    p.add_argument("--drain", type=float, default=20.0, help="wait for the last outputs, s")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--latency-all", action="store_true", help="also run saturated contenders")
    p.add_argument("--only", default="", help="comma-separated contender keys to run")
    p.add_argument(
        "--tradeflux-commit-ms",
        type=int,
        default=100,
        help="tradeflux's commit interval: its batch_max_wait_ms (default 100)",
    )
    p.add_argument("--timeout", type=float, help="per throughput run, s [120 + records/1000]")
    p.add_argument("--port", type=int, default=39092, help="first port tried for the broker")
    p.add_argument("--rebuild", action="store_true", help="rebuild the Kafka Streams jar")
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    return p.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so every finally stops what we started


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if args.timeout is None:
        args.timeout = 120 + args.records / 1000  # fail a run slower than ~1,000 records/s
    workdir = Path(tempfile.mkdtemp(prefix="tradeflux-compare-"))
    cs = peers.contenders(args.tradeflux_commit_ms)
    if args.only:
        keys = args.only.split(",")
        cs = [c for c in cs if c.key in keys]
    rates = [] if args.skip_latency else [int(r) for r in args.rates.split(",") if r]
    console.print(f"work folder (logs): {workdir}")
    console.print("building the peers (Maven, pip) ...")
    started = time.monotonic()
    peers.build(workdir / "build.log", args.rebuild)
    console.print(f"built in {time.monotonic() - started:.0f} s")
    settings = load_settings(env={}, runtime_dir=workdir / "runtime")
    port = free_port(args.port)
    cluster = local.start_cluster(settings, port=port)
    console.print(f"broker: Kafka {cluster.kafka_version} at {cluster.bootstrap} (ours)")
    try:
        rows, versions = run_all(args, cs, rates, cluster.bootstrap, workdir)
    finally:
        local.stop_cluster(settings)
        console.print("broker stopped")
        for path in [workdir / "runtime", *workdir.glob("state-*")]:
            shutil.rmtree(path, ignore_errors=True)  # the broker's data and the peers' state
    mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    title = (f"positions job: {args.records:,} trades, {args.accounts} accounts x "
             f"{args.instruments} instruments, {args.partitions} partitions, "
             f"{args.rounds} round(s), medians")  # fmt: skip
    md = report(rows, rates, title)
    machine = (f"{os.cpu_count()} cores, {mem_gib:.0f} GiB; Kafka broker {cluster.kafka_version}; "
               + "; ".join(f"{k} {v}" for k, v in versions.items()))  # fmt: skip
    console.print(f"machine: {machine}", markup=False)
    console.print(f"command: .venv/bin/python bench/compare.py {' '.join(argv or sys.argv[1:])}",
                  markup=False)  # fmt: skip
    if args.markdown:
        args.markdown.write_text(f"{title}\n\n{md}\n\nmachine: {machine}\n")
    console.print(f"logs: {workdir}")


def run_all(
    args: argparse.Namespace, cs: list[peers.Contender], rates: list[int], bootstrap: str,
    workdir: Path,
) -> tuple[list[Row], dict[str, str]]:  # fmt: skip
    admin = AdminClient({"bootstrap.servers": bootstrap})
    base = f"bench-{uuid.uuid4().hex[:6]}-"
    source = f"{base}trades.enriched"
    create_topics(admin, [source, f"{base}positions", f"{base}trades.rejected"], args.partitions)
    console.print(f"loading {args.records:,} trades into {source} ...")
    started = time.monotonic()
    reference = input_trades.Reference()
    prod = producer(bootstrap, linger_ms=20)
    for trade in input_trades.generate(args.records, args.seed, args.accounts, args.instruments):
        reference.apply(trade)
        produce(prod, source, trade.account.encode(), input_trades.encode(trade))
        prod.poll(0)
    if prod.flush(120):
        raise SystemExit("could not load the input")
    console.print(f"loaded in {time.monotonic() - started:.1f} s; {len(reference.positions):,} "
                  "positions")  # fmt: skip
    b = Bench(args, bootstrap, admin, workdir, base, reference)
    runs: list[RunResult] = []
    for rnd in range(args.rounds):
        order = cs[rnd % len(cs) :] + cs[: rnd % len(cs)]  # rotate: drift hits all alike
        for c in order:
            result = throughput_run(b, c, rnd + 1)
            runs.append(result)
            what = (f"{result.rate:,.0f} records/s, {result.rss_mb:,.0f} MB, "
                    f"{result.cpu_s:.1f} CPU s, start {result.start_s:.1f} s"
                    if result.rate else result.failure)  # fmt: skip
            flag = f", [red]WRONG[/] ({len(result.problems)} keys)" if result.problems else ""
            console.print(f"round {rnd + 1} {c.label}: {what}{flag}")
    lat: dict[tuple[str, int], LatencyResult] = {}
    for rate in rates:
        for c in cs:
            best = _median([r.rate for r in runs if r.contender == c.key])
            if best is not None and best < rate / 2 and not args.latency_all:
                lat[(c.key, rate)] = LatencyResult(skipped=f"saturated (max {best:,.0f}/s)")
                console.print(f"latency {rate:,}/s {c.label}: skipped, saturated")
                continue
            res = latency_run(b, c, rate)
            lat[(c.key, rate)] = res
            console.print(f"latency {rate:,}/s {c.label}: {_latency_cell(res)}"
                          + (f" {res.failure}" if res.failure else ""))  # fmt: skip
    return summarize(cs, runs, lat), peers.versions()


if __name__ == "__main__":
    main()
