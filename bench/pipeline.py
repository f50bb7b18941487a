"""Benchmark of the core pipeline (not a test): validator → positions → P&L, exactly-once.

Throughput: N simulated trades (amends, cancels, duplicates and malformed included)
pre-loaded on trades.raw; the three services start as separate processes; rate =
N / (time from the first position output to the moment every service has committed
its whole input).

Latency: an open-loop producer sends trades at a fixed rate on schedule (each record
stamped with its scheduled send time, its ingest timestamp); latency = the time its
position becomes readable read_committed on ``positions`` minus that timestamp. A
position carries the last trade it includes (``last_trade_id``); trades folded into
the same position in the same batch share one output, so the latency is measured on
the trade that output names (the others are at most as late).

Tracing (``--tracing``): the throughput run twice over the same trades, tracing off and
then on (every trade carries a sampled W3C ``traceparent``, as the gateway writes it; the
services export their spans over OTLP/HTTP to a local sink that accepts and counts
them), side by side with the ratio: what a trade's trace costs.

Usage: .venv/bin/python bench/pipeline.py [--trades 200000] [--rate 2000] [--seconds 15]
       [--tracing] [--no-latency]
Uses TRADEFLUX_BOOTSTRAP or starts a local broker of its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, KafkaError, TopicPartition
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.kafka_tools import ServiceProcess, caught_up, producer  # noqa: E402
from tests.support.pipeline import (  # noqa: E402
    REFDATA_FILES,
    produce_marks,
    scrape_events,
    simulated_session,
)

from tradeflux.broker import local  # noqa: E402
from tradeflux.broker.topics import TopicSet, create_topics  # noqa: E402
from tradeflux.config import Settings, load_settings  # noqa: E402
from tradeflux.domain.schemas import Position  # noqa: E402
from tradeflux.gateway.refdata import load_files  # noqa: E402
from tradeflux.sim.trades import SimSession  # noqa: E402

console = Console()
SERVICES = (("validator", "trades.raw"), ("positions", "trades.enriched"), ("pnl", "positions"))
OUTPUTS = {"validator": "trades.enriched", "positions": "positions", "pnl": "pnl"}
METRICS_PORTS = {"validator": 19301, "positions": 19302, "pnl": 19303}


def _prepare(
    settings: Settings, prefix: str, count: int, rate: float, start: dt.datetime
) -> SimSession:
    create_topics(replace(settings, topic_prefix=prefix, partitions=6), TopicSet.CORE)
    load_files(REFDATA_FILES, settings.client_config(), prefix)
    session = simulated_session(count, seed=7, rate_per_s=rate, start=start)
    produce_marks(settings, prefix, session)
    return session


class PositionWatcher(threading.Thread):
    """Notes when each position output (by the trade it names) became readable."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(settings.client_config(**{
            "group.id": f"watch-{uuid.uuid4().hex}", "isolation.level": "read_committed",
            "enable.auto.commit": False, "fetch.wait.max.ms": 5}))  # fmt: skip
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
        self.seen: dict[str, float] = {}
        self.first = 0.0
        self.stop = False
        self._decode = msgspec.json.Decoder(Position).decode

    def run(self) -> None:
        while not self.stop:
            msgs = self.consumer.consume(10000, 0) or self.consumer.consume(1, 0.05)
            now = time.time()
            for m in msgs:
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        console.print(f"watch: {m.error()}")
                    continue
                if not self.first:
                    self.first = now
                self.seen.setdefault(self._decode(m.value()).last_trade_id, now)
        self.consumer.close()


class FirstOutput(threading.Thread):
    """Notes when the first record of a topic became readable (read_committed), then ends."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(settings.client_config(**{
            "group.id": f"first-{uuid.uuid4().hex}", "isolation.level": "read_committed",
            "enable.auto.commit": False, "fetch.wait.max.ms": 5}))  # fmt: skip
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
        self.first = 0.0
        self.stop = False

    def run(self) -> None:
        while not self.stop and not self.first:
            if any(m.error() is None for m in self.consumer.consume(100, 0.05)):
                self.first = time.time()
        self.consumer.close()


def _start(
    settings: Settings,
    prefix: str,
    tmp: Path,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> list[ServiceProcess]:
    return [
        ServiceProcess(settings, name, prefix, f"{name}-bench", tmp, "--metrics-port",
                       str(METRICS_PORTS[name]), *extra,
                       env={"TRADEFLUX_AUTH": "none", **(env or {})})
        for name, _ in SERVICES
    ]  # fmt: skip


class OtlpSink(threading.Thread):
    """A local OTLP/HTTP endpoint: answers 200 to every POST /v1/traces, counts them."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="otlp-sink")
        sink = self
        self.requests = 0
        self.bytes = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def run(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _traceparent(sampled: bool) -> list[tuple[str, bytes]]:
    """A W3C trace context of a trace started at the edge, as the gateway writes it."""
    flags = "01" if sampled else "00"
    return [("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-{flags}".encode())]


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Capacity:
    """One throughput run: its rate, and the CPU seconds of each service process."""

    trades: int
    rate: float  # trades / (last service caught up - first position output), per second
    cpu_s: dict[str, float]  # user + system, start-up included
    cpu_after_first_s: dict[str, float]  # from the service's own first output to caught up
    events: dict[str, float]  # the positions service's business-event counters


def throughput(
    settings: Settings,
    trades: int,
    tmp: Path,
    extra: Sequence[str] = (),
    otlp: OtlpSink | None = None,
    sampled: float = 1.0,
) -> Capacity:
    """Run the pipeline over ``trades`` pre-loaded trades; ``extra``: more `tradeflux run` flags.

    ``otlp``: tracing on, every trade with a trace context (the share ``sampled`` of them
    recorded, as the gateway's sample ratio decides), spans exported there.
    """
    rng = random.Random(11)
    prefix = f"bp-{uuid.uuid4().hex[:6]}-"
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
    session = _prepare(settings, prefix, trades, rate=trades / 50, start=start)
    prod = producer(settings)
    for rec in session.records:
        while True:
            try:
                prod.produce(
                    f"{prefix}trades.raw", rec.value, rec.key, timestamp=rec.timestamp_ms,
                    headers=_traceparent(rng.random() < sampled) if otlp is not None else None,
                )  # fmt: skip
                break
            except BufferError:
                prod.poll(0.05)
    prod.flush(60)
    watcher = PositionWatcher(settings, f"{prefix}positions")
    watcher.start()
    firsts = {name: FirstOutput(settings, f"{prefix}{OUTPUTS[name]}") for name, _ in SERVICES}
    for first in firsts.values():
        first.start()
    env = {"TRADEFLUX_OTLP_ENDPOINT": otlp.url} if otlp is not None else None
    procs = _start(settings, prefix, tmp, extra, env=env)

    def cpu() -> dict[str, float]:
        return {name: cpu_seconds(p.proc.pid) for (name, _), p in zip(SERVICES, procs, strict=True)}

    try:
        deadline = time.time() + 900
        at_first: dict[str, float] = {}  # each service's CPU at its own first output
        while len(at_first) < len(firsts) and time.time() < deadline:
            now_cpu = cpu()
            at_first.update(
                (n, now_cpu[n]) for n, f in firsts.items() if f.first and n not in at_first
            )
            time.sleep(0.01)
        while time.time() < deadline:
            if watcher.first and all(
                caught_up(settings, f"{prefix}{name}", f"{prefix}{topic}")
                for name, topic in SERVICES
            ):
                break
            time.sleep(0.2)
        done = time.time()
        at_done = cpu()
        events = scrape_events(METRICS_PORTS["positions"])
    finally:
        for p in procs:
            p.terminate()
        watcher.stop = True
        for first in firsts.values():
            first.stop = True
    after_first = {name: at_done[name] - at_first.get(name, 0.0) for name in at_done}
    return Capacity(trades, trades / (done - watcher.first), at_done, after_first, events)


def latency(settings: Settings, rate: int, seconds: int, tmp: Path) -> tuple[float, float, int]:
    prefix = f"bl-{uuid.uuid4().hex[:6]}-"
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)  # after the services are up
    session = _prepare(settings, prefix, rate * seconds, rate=rate, start=start)
    watcher = PositionWatcher(settings, f"{prefix}positions")
    watcher.start()
    procs = _start(settings, prefix, tmp)
    sent: dict[str, float] = {}
    try:
        prod = producer(settings, **{"linger.ms": 0})
        for rec in session.records:
            due = rec.timestamp_ms / 1000  # open loop: on schedule, whatever the pipeline does
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            prod.produce(f"{prefix}trades.raw", rec.value, rec.key, timestamp=rec.timestamp_ms)
            prod.poll(0)
            if rec.kind == "new":
                sent[rec.key.decode()] = due
        prod.flush(30)
        deadline = time.time() + 60
        while time.time() < deadline and not caught_up(
            settings, f"{prefix}positions", f"{prefix}trades.enriched"
        ):
            time.sleep(0.2)
        time.sleep(1)
    finally:
        for p in procs:
            p.terminate()
        watcher.stop = True
    lat = sorted((watcher.seen[t] - s) * 1000 for t, s in sent.items() if t in watcher.seen)
    return statistics.median(lat), lat[max(0, int(len(lat) * 0.99) - 1)], len(lat)


def _tracing_table(off: Capacity, on: Capacity, sink: OtlpSink) -> Table:
    table = Table(title="a trade's trace: the same throughput run, tracing off and on")
    for col in ("measure", "tracing off", "tracing on", "on / off"):
        table.add_column(col, justify="right")
    table.add_row("trades/s (pre-loaded input)", f"{off.rate:,.0f}", f"{on.rate:,.0f}",
                  f"{on.rate / off.rate:.2f}")  # fmt: skip
    for name in off.cpu_after_first_s:
        a = off.cpu_after_first_s[name] / off.trades * 1000
        b = on.cpu_after_first_s[name] / on.trades * 1000
        table.add_row(f"CPU ms/trade of {name}", f"{a:.3f}", f"{b:.3f}", f"{b / a:.2f}")
    table.add_row(
        "OTLP export requests / MB", "-", f"{sink.requests:,} / {sink.bytes / 1e6:.1f}", ""
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument(
        "--tracing", action="store_true", help="also the throughput run with tracing on"
    )
    parser.add_argument(
        "--trace-sampled",
        type=float,
        default=1.0,
        help="with --tracing: the share of trades whose trace is recorded (the gateway's "
        "TRADEFLUX_TRACE_SAMPLE_RATIO)",
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the latency run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tradeflux-bench-"))
    own = None
    settings = load_settings()
    if not os.environ.get("TRADEFLUX_BOOTSTRAP"):
        own = load_settings(env={}, runtime_dir=tmp / "runtime")
        settings = replace(settings, bootstrap=local.start_cluster(own, port=19192).bootstrap)
    traced: Capacity | None = None
    sink = OtlpSink()
    p50 = p99 = math.nan
    n = 0
    try:
        console.print(f"throughput over {args.trades:,} trades ...")
        cap = throughput(settings, args.trades, tmp)
        if args.tracing:
            sink.start()
            console.print(f"throughput over {args.trades:,} trades, tracing on ...")
            traced = throughput(settings, args.trades, tmp, otlp=sink, sampled=args.trace_sampled)
        if not args.no_latency:
            console.print(f"latency at {args.rate:,} trades/s for {args.seconds}s ...")
            p50, p99, n = latency(settings, args.rate, args.seconds, tmp)
    finally:
        if args.tracing:
            sink.close()
        if own is not None:
            local.stop_cluster(own)
    table = Table(title="tradeflux core pipeline: validator → positions → P&L, exactly-once")
    for col in ("measure", "value"):
        table.add_column(col)
    table.add_row("trades/s (pre-loaded input)", f"{cap.rate:,.0f}")
    table.add_row(f"p50 ingest → position, ms (at {args.rate:,}/s)", f"{p50:.1f}")
    table.add_row(f"p99 ingest → position, ms (at {args.rate:,}/s)", f"{p99:.1f}")
    table.add_row("latency samples", f"{n:,}")
    for name, seconds in cap.cpu_s.items():  # where the 2 cores went in the throughput run
        table.add_row(f"CPU s of {name} (throughput run, incl. start-up)", f"{seconds:.1f}")
    for name, seconds in cap.cpu_after_first_s.items():
        table.add_row(f"CPU ms/trade of {name} (after its first output)",
                      f"{seconds / cap.trades * 1000:.3f}")  # fmt: skip
    for path in ("append", "tail", "cached", "full", "unchanged"):  # how positions folded
        table.add_row(
            f"positions events folded by path {path}", f"{cap.events.get('fold_' + path, 0):,.0f}"
        )
    console.print(table)
    if traced is not None:
        console.print(_tracing_table(cap, traced, sink))
        console.print(f"tracing on: {args.trace_sampled:.0%} of the traces recorded")
    console.print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
                  f"{platform.platform()}")  # fmt: skip


if __name__ == "__main__":
    main()
