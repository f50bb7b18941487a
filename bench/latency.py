"""Latency of the core pipeline, hop by hop, against Kafka Streams' same chain (not a test).

The chain: trades.raw → validator → trades.enriched → positions → positions → pnl → pnl
(and, for tradeflux, the query service's server-sent events), 6 partitions. Contenders:
tradeflux's three shipped services as separate `tradeflux run` processes; the same three
hops as one Kafka Streams 4.4 application (bench/peers/kafka-streams ChainApp,
exactly_once_v2) at its default commit interval and at one set for latency.

Per offered load (trades/s) and contender, on fresh topics: a probe trade until the chain
answers (start-up is not measured); then an open-loop producer sends simulated NEW trades
on a fixed schedule, each record stamped with its scheduled send time (its ingest time),
whatever the chain does (no coordinated omission): ``--warmup`` seconds unmeasured, then
``--seconds`` measured. A read_committed reader of trades.enriched, positions and pnl
(and an SSE client of /v1/stream?events=pnl) notes when each output became visible;
bench/inclusion.py works out which output first includes each trade. A trade's latency
at a hop = that time - its scheduled send; never visible within ``--drain`` s = inf.
Exact percentiles of the sorted values. After each run the final positions and P&L are
checked against an independent fold (bench/trade_load.py); a wrong contender is marked
WRONG and its ratio not printed.

Per-hop breakdown: when outputs carry the runtime's ``tf.hop`` headers (format in
bench/hops.py), per hop: fetch, queue wait, processing, produce, commit (with the
services' commit log lines) and the reader's fetch. Skipped when absent.

Capacity: validator → positions → P&L over N pre-loaded simulated trades (amends,
cancels, duplicates, malformed included), bench/pipeline.py's run: trades/s and CPU ms
per trade of each service process (from /proc, from the first output to caught up).

Usage:
    .venv/bin/python bench/latency.py                         # 2,000 and 5,000/s, 30 s each
    .venv/bin/python bench/latency.py --seconds 5 --capacity 0 --only tradeflux   # quick
Uses TRADEFLUX_BOOTSTRAP or starts a local broker of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import hops  # noqa: E402
from bench import report as out  # noqa: E402
from bench.compare import create_topics as create_plain_topics  # noqa: E402
from bench.compare import delete_topics_with, free_port  # noqa: E402
from bench.inclusion import AggregateCounts, PnlModel, TradefluxPnl, visibility  # noqa: E402
from bench.peers import contenders as peers  # noqa: E402
from bench.peers.chain import (  # noqa: E402
    ChainContender,
    Running,
    chain_contenders,
    start_kafka_streams,
    start_tradeflux,
    topic_names,
)
from bench.pipeline import Capacity, cpu_seconds, throughput  # noqa: E402
from bench.trade_load import (  # noqa: E402
    SentTrade,
    TradeLoad,
    check_kafka_streams,
    check_tradeflux,
    schedule,
)
from bench.visibility import Expectation, Observed, OutputReader, ReaderSpec, SseClient  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from tests.support import pipeline as support  # noqa: E402

from tradeflux.broker import local  # noqa: E402
from tradeflux.broker.topics import TopicSet, create_topics  # noqa: E402
from tradeflux.config import Settings, load_settings  # noqa: E402
from tradeflux.gateway.refdata import load_files  # noqa: E402


@dataclass
class LatencyRun:
    """One contender at one offered load."""

    contender: ChainContender
    rate: int
    latencies: dict[str, list[float]] = field(default_factory=dict)  # stage -> sorted ms
    achieved: float | None = None  # measured trades / (last position seen - first send due)
    send_lag_ms: float = 0.0  # how far the producer fell behind its schedule, at most
    cpu_ms_per_trade: dict[str, float] = field(default_factory=dict)  # probe answered to done
    problems: list[str] = field(default_factory=list)
    failure: str | None = None
    complete: bool = False  # every output arrived within the drain (else not checked)
    breakdowns: dict[str, hops.Breakdown] = field(default_factory=dict)  # by output topic
    unmatched: tuple[int, int] = (0, 0)  # P&L records, SSE events no trade explains
    pnl_no_change: int = 0  # trades that left their account's P&L as it was


@dataclass
class Bench:
    """What every run shares."""

    args: argparse.Namespace
    settings: Settings
    admin: AdminClient
    workdir: Path


def _producer(bootstrap: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 1, "enable.idempotence": True,
        "acks": "all", "partitioner": "murmur2_random",  # as tradeflux and the Java client
        "queue.buffering.max.messages": 1_000_000,
    })  # fmt: skip


def _send(prod: Producer, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
    while True:
        try:
            prod.produce(topic, value, key, timestamp=timestamp_ms)
            return
        except BufferError:
            prod.poll(0.05)


def _wait(condition: Any, timeout_s: float, running: Running, what: str) -> str | None:
    """Wait for ``condition()``; return why not (a process ended, or the timeout)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if (why := running.failed()) is not None:
            return why
        if time.monotonic() > deadline:
            return f"no {what} within {timeout_s:.0f} s"
        time.sleep(0.05)
    return None


def _query_up(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def latency_run(b: Bench, c: ChainContender, rate: int) -> LatencyRun:
    """Run one contender at one offered load on fresh topics; measure and check it."""
    args = b.args
    result = LatencyRun(c, rate)
    prefix = f"lat-{c.key}-{rate}-{uuid.uuid4().hex[:6]}-"
    names = topic_names(prefix)
    bootstrap = b.settings.bootstrap
    # Same seed for every contender at this load: the same trades, at other times.
    load = TradeLoad(args.seed + rate, dt.datetime.now(dt.UTC), id_prefix=f"L{rate}-")
    model: PnlModel
    if c.runtime == "tradeflux":
        create_topics(replace(b.settings, topic_prefix=prefix, partitions=args.partitions),
                      TopicSet.CORE)  # fmt: skip
        load_files(support.REFDATA_FILES, b.settings.client_config(), prefix)
        support.produce_marks(b.settings, prefix, load.session())
        accounts = {a.account_id: a.base_currency for a in load.refdata.accounts}
        model = TradefluxPnl(accounts, {p.instrument_id: p for p in load.prices}, load.fx_table())
    else:
        create_plain_topics(b.admin, list(names.values()), args.partitions)
        model = AggregateCounts()
    outputs = {role: names[role] for role in ("enriched", "positions", "pnl")}
    reader = OutputReader(ReaderSpec(bootstrap, outputs, args.partitions))
    running = Running()
    sse: SseClient | None = None
    query_port = free_port(28000) if c.sse else None
    prod = _producer(bootstrap)
    total = rate * (args.warmup + args.seconds)
    measured_from = 1 + rate * args.warmup  # the probe, then the warm-up
    cpu_from: dict[str, float] = {}
    try:
        if c.runtime == "tradeflux":
            start_tradeflux(running, bootstrap, prefix, b.workdir, args.tradeflux_arg, query_port)
        else:
            start_kafka_streams(running, bootstrap, prefix, b.workdir, c)
        if query_port is not None:
            why = _wait(lambda: _query_up(query_port), 120, running, "query service")
            if why is None:
                sse = SseClient(f"http://127.0.0.1:{query_port}/v1/stream?events=pnl")
                why = _wait(sse.ready.is_set, 60, running, "SSE hello")
            if why is not None:
                result.failure = why
                return result
        probe = load.trade(time.time())
        _send(prod, names["raw"], probe.record.key, probe.record.value, probe.record.timestamp_ms)
        prod.flush(30)
        if (why := _wait(reader.answered.is_set, 180, running, "P&L for the probe")) is not None:
            result.failure = why
            return result
        cpu_from = _cpu(running)
        # Every trade is generated before the run (~30 µs each), then moved to start now.
        virtual = time.time()
        for due in schedule(rate, total, virtual, args.arrivals, args.seed):
            load.trade(due)
        trades = load.shift(1, time.time() + 0.5 - virtual)
        i = 0
        while i < total:
            now = time.time()
            while i < total and trades[i].due <= now:
                rec = trades[i].record
                _send(prod, names["raw"], rec.key, rec.value, rec.timestamp_ms)
                result.send_lag_ms = max(result.send_lag_ms, (now - trades[i].due) * 1000)
                i += 1
            prod.poll(0)
            if i < total:
                time.sleep(max(0.0, trades[i].due - time.time()))
        prod.flush(30)
        drain_end = time.monotonic() + args.drain
        reader.control.put(Expectation(len(load.sent), load.position_counts(), model))
        why = _wait(reader.done.is_set, args.drain, running, "complete output")
        result.complete = why is None
        if why is None and sse is not None:
            sse.control.put((model, reader.finals.get(timeout=60)))
            why = _wait(sse.done.is_set, max(0.0, drain_end - time.monotonic()), running,
                        "complete SSE stream")  # fmt: skip
        if why is not None and running.failed() is not None:
            result.failure = why
        cpu_to = _cpu(running)  # every trade sent since cpu_from is processed (or late)
        result.cpu_ms_per_trade = {
            n: (cpu_to[n] - cpu_from.get(n, 0.0)) * 1000 / total for n in cpu_to
        }
    finally:
        try:
            sse_events, sse_failure = sse.finish() if sse is not None else ([], None)
        finally:
            try:
                running.stop()
            finally:
                observed = reader.finish()
                delete_topics_with(b.admin, prefix)
    if sse_failure:
        result.problems.append(f"SSE client: {sse_failure}")
    if result.failure is None:
        _analyse(result, load, observed, model, sse_events, measured_from, running)
    return result


def _cpu(running: Running) -> dict[str, float]:
    out_cpu = {}
    for name, pid in running.pids().items():
        try:
            out_cpu[name] = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out_cpu


def _analyse(
    result: LatencyRun, load: TradeLoad, observed: Observed, model: PnlModel,
    sse_events: list[tuple[float, str, bytes]], measured_from: int, running: Running,
) -> None:  # fmt: skip
    vis = visibility(observed.records, model, sse_events)
    result.unmatched = (vis.unmatched_pnl, vis.unmatched_sse)
    result.pnl_no_change = vis.no_change
    measured = load.sent[measured_from:]
    stages = {"enriched": vis.enriched, "position": vis.position, "pnl": vis.pnl}
    if result.contender.sse:
        stages["sse"] = vis.sse
    for stage, seen in stages.items():
        result.latencies[stage] = sorted(
            (seen[t.trade_id] - t.due) * 1000 if t.trade_id in seen else math.inf for t in measured
        )
    visible = [vis.position[t.trade_id] for t in measured if t.trade_id in vis.position]
    if measured and len(visible) == len(measured):
        result.achieved = len(measured) / (max(visible) - measured[0].due)
    last: dict[str, dict[str, bytes]] = {"positions": {}, "pnl": {}}
    for role in last:
        for _, _, key, value, _, _ in observed.records[role]:
            last[role][key.decode()] = value
    # Checked only when complete: with outputs missing, the last ones seen are not final.
    if result.complete and result.contender.runtime == "tradeflux":
        result.problems += check_tradeflux(load, last["positions"], last["pnl"])
    elif result.complete:
        result.problems += check_kafka_streams(load, vis.enriched_order, last["positions"],
                                               last["pnl"])  # fmt: skip
    if vis.unmatched_pnl:
        result.problems.append(f"{vis.unmatched_pnl} P&L records match no prefix of positions")
    result.breakdowns = _breakdowns(observed, measured, hops.read_commits(running.logs()))


class _TradeId(msgspec.Struct):
    trade_id: str


class _LastTrade(msgspec.Struct):
    last_trade_id: str


_trade_id = msgspec.json.Decoder(_TradeId).decode
_last_trade = msgspec.json.Decoder(_LastTrade).decode


def _breakdowns(
    observed: Observed, measured: list[SentTrade], commits: dict[Any, hops.BatchCommit]
) -> dict[str, hops.Breakdown]:
    """Return the per-hop breakdown of each output topic whose records carry tf.hop headers.

    A record's origin is the scheduled send of the trade it names (enriched: its trade,
    positions: its last trade); P&L names none. A Position that carries only its own hop's
    stamp gets the validator's from its trade's enriched record: hops are joined by the
    trade, so the runtime need not copy the input's headers. Measured window only.
    """
    if not measured:
        return {}
    due = {t.trade_id: t.due for t in measured}
    enriched_stamps: dict[str, list[hops.HopStamp]] = {}
    out_: dict[str, hops.Breakdown] = {}
    for role in ("enriched", "positions", "pnl"):
        rows = []
        for _, _, _, value, headers, t in observed.records[role]:
            stamps = hops.hop_stamps(headers) if headers else []
            if not stamps:
                continue
            origin: float | None = None
            if role == "pnl":
                if t < measured[0].due:
                    continue
            else:
                named = _trade_id(value).trade_id if role == "enriched" else (
                    _last_trade(value).last_trade_id)  # fmt: skip
                if named not in due:
                    continue
                origin = due[named]
                if role == "enriched":
                    enriched_stamps[named] = stamps
                elif len(stamps) == 1 and named in enriched_stamps:
                    stamps = enriched_stamps[named] + stamps
            rows.append((stamps, origin, t))
        if rows:
            out_[role] = hops.breakdown(rows, commits)
    return out_


def capacity(b: Bench) -> Capacity:
    """bench/pipeline.py's throughput run over ``--capacity`` pre-loaded trades."""
    return throughput(b.settings, b.args.capacity, b.workdir, b.args.tradeflux_arg)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="2000,5000", help="offered loads, trades/s")
    p.add_argument("--seconds", type=int, default=30, help="measured seconds per run")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured seconds before that")
    p.add_argument("--drain", type=float, default=30.0, help="wait for the last outputs, s")
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--arrivals", choices=("uniform", "poisson"), default="uniform",
                   help="gaps of the schedule: fixed (1/rate) or exponential")  # fmt: skip
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--only", default="", help="contender keys: tradeflux,tradeflux-sse,ks,ks-tuned")
    p.add_argument("--sse", choices=("separate", "same", "off"), default="separate",
                   help="the query service and SSE client: in a run of their own, in "
                        "tradeflux's run, or not at all")  # fmt: skip
    p.add_argument("--ks-commit-ms", type=int, default=10,
                   help="Kafka Streams' commit.interval.ms of its latency-tuned row")  # fmt: skip
    p.add_argument("--ks-setting", action="append", default=[],
                   help="one more Kafka Streams setting KEY=VALUE for both its rows (repeat), "
                        "e.g. num.stream.threads=3")  # fmt: skip
    p.add_argument("--tradeflux-arg", action="append", default=[],
                   help="one more flag for every `tradeflux run` (repeat), e.g. "
                        "--tradeflux-arg=--batch-max-wait-ms=20")  # fmt: skip
    p.add_argument("--capacity", type=int, default=200_000,
                   help="pre-loaded trades of the capacity run (0: skip it)")  # fmt: skip
    p.add_argument("--port", type=int, default=19192, help="first port tried for our broker")
    p.add_argument("--rebuild", action="store_true", help="rebuild the Kafka Streams jar")
    p.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    return p.parse_args(argv)


def _machine(own_broker: bool) -> str:
    """Return the machine and the versions in play, in one line."""
    import subprocess

    import confluent_kafka

    mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    probe = subprocess.run([peers.java(), "-version"], capture_output=True, text=True, check=False)
    java = (probe.stderr or probe.stdout).splitlines()[0] if probe.returncode == 0 else "?"
    pom = (peers.KS_DIR / "pom.xml").read_text()
    broker = "its own 1-node KRaft broker" if own_broker else "the broker of TRADEFLUX_BOOTSTRAP"
    return (f"{os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.platform()}; Python "
            f"{platform.python_version()}, confluent-kafka {confluent_kafka.version()} "
            f"(librdkafka {confluent_kafka.libversion()[0]}); {java}; Kafka Streams "
            f"{pom.split('<kafka.version>')[1].split('<')[0]} (-Xmx{peers.KS_HEAP}); {broker}; "
            "broker, services, load generator and readers on the same cores")  # fmt: skip


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so every finally stops what we started


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    workdir = Path(tempfile.mkdtemp(prefix="tradeflux-latency-"))
    cs = chain_contenders(args.ks_commit_ms, args.sse, tuple(args.ks_setting))
    if args.only:
        cs = [c for c in cs if c.key in args.only.split(",")]
    rates = [int(r) for r in args.rates.split(",") if r]
    out.console.print(f"work folder (logs): {workdir}")
    if any(c.runtime == "kstreams" for c in cs):
        peers.build_kafka_streams(workdir / "build.log", args.rebuild)
    settings = load_settings()
    own = None
    if not os.environ.get("TRADEFLUX_BOOTSTRAP"):
        own = load_settings(env={}, runtime_dir=workdir / "runtime")
        cluster = local.start_cluster(own, port=free_port(args.port))
        settings = replace(settings, bootstrap=cluster.bootstrap)
        out.console.print(f"broker: Kafka {cluster.kafka_version} at {cluster.bootstrap} (ours)")
    b = Bench(args, settings, AdminClient(settings.client_config()), workdir)
    runs: list[LatencyRun] = []
    cap: Capacity | None = None
    try:
        for rate in rates:  # latency first, on a broker not yet busy with the bulk run's data
            for c in cs:
                out.console.print(f"{c.label} at {rate:,}/s ...")
                run = latency_run(b, c, rate)
                runs.append(run)
                out.console.print(out.run_line(run), markup=False)
        if args.capacity:
            out.console.print(f"capacity over {args.capacity:,} pre-loaded trades ...")
            cap = capacity(b)
    finally:
        del b  # its admin client, before the broker goes: no reconnect noise
        if own is not None:
            local.stop_cluster(own)
            shutil.rmtree(workdir / "runtime", ignore_errors=True)
        for state in workdir.glob("state-*"):
            shutil.rmtree(state, ignore_errors=True)
    machine = _machine(own is not None)
    command = "python bench/latency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = out.report(runs, cap, args, machine, command)
    if args.markdown:
        args.markdown.write_text(md)
    out.console.print(f"logs: {workdir}")


if __name__ == "__main__":
    main()
