"""Benchmark of the stream runtime (not a test). Prints one table.

Contenders, each a separate process reading the same pre-loaded input:
  (a) raw   : plain confluent-kafka consume-then-produce loop, no transactions (the limit)
  (b) pass  : stateless passthrough on the tradeflux runtime, exactly-once
  (c) sum   : the keyed running-sum job (a store with a changelog), exactly-once

Throughput: N records pre-loaded on P partitions, each contender from offset 0; rate =
N / (time of its last output - time of its first output), read by a read_committed
consumer. Latency: an open-loop producer at a fixed rate; per record, the time from
its send to its output being readable by a read_committed consumer.

Usage: .venv/bin/python bench/runtime.py [--records 300000] [--rate 2000] [--seconds 10]
Uses TRADEFLUX_BOOTSTRAP or starts a local broker of its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.jobs import Number  # noqa: E402

from tradeflux.broker import local  # noqa: E402
from tradeflux.config import load_settings  # noqa: E402

console = Console()
_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder()


def _topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        f.result()


def _start(kind: str, bootstrap: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}",
        "TRADEFLUX_BOOTSTRAP": bootstrap,
    }
    if kind == "raw":
        cmd = [sys.executable, str(REPO / "bench" / "raw_loop.py"), bootstrap,
               f"{prefix}numbers", f"{prefix}copies", f"{prefix}raw"]  # fmt: skip
    else:
        target = "PASSTHROUGH" if kind == "pass" else "RUNNING_SUM"
        cmd = [sys.executable, "-m", "tradeflux.cli", "run", f"tests.support.jobs:{target}",
               "--prefix", prefix, "--instance-id", "bench"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _output_topic(kind: str, prefix: str) -> str:
    return f"{prefix}sums" if kind == "sum" else f"{prefix}copies"


class OutputWatcher(threading.Thread):
    """Reads the output read_committed; records when each (key, seq) became visible."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"watch-{uuid.uuid4().hex}",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        })  # fmt: skip
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.seen: dict[tuple[str, int], float] = {}
        self.first = self.last = 0.0
        self.count = 0
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            msgs = self.consumer.consume(10000, 0) or self.consumer.consume(1, 0.05)
            now = time.monotonic()
            for msg in msgs:
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        console.print(f"watch error: {msg.error()}")
                    continue
                value = _decode_any.decode(msg.value())
                self.seen[(value["key"], value["seq"])] = now
                if not self.count:
                    self.first = now
                self.count += 1
                self.last = now
        self.consumer.close()


def throughput(kind: str, bootstrap: str, records: int, partitions: int, tmp: Path) -> float:
    prefix = f"bt-{kind}-{uuid.uuid4().hex[:6]}-"
    _topics(bootstrap, [f"{prefix}numbers", f"{prefix}copies", f"{prefix}sums",
                        f"{prefix}numbers.dlq"], partitions)  # fmt: skip
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                     "partitioner": "murmur2_random"})  # fmt: skip
    for i in range(records):
        key = f"k{i % 1000:04d}"
        while True:
            try:
                prod.produce(f"{prefix}numbers", _encode(Number(key, i // 1000 + 1, i % 97)),
                             key.encode())  # fmt: skip
                break
            except BufferError:
                prod.poll(0.05)
    prod.flush(60)
    watcher = OutputWatcher(bootstrap, _output_topic(kind, prefix), partitions)
    watcher.start()
    proc = _start(kind, bootstrap, prefix, tmp / f"{prefix}log")
    try:
        deadline = time.monotonic() + 600
        while watcher.count < records and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
        watcher.stop = True
        watcher.join(10)
    if watcher.count < records:
        raise SystemExit(f"{kind}: only {watcher.count} of {records} outputs")
    return records / max(1e-9, watcher.last - watcher.first)


def latency(kind: str, bootstrap: str, rate: int, seconds: int, partitions: int,
            tmp: Path) -> tuple[float, float]:  # fmt: skip
    prefix = f"bl-{kind}-{uuid.uuid4().hex[:6]}-"
    _topics(bootstrap, [f"{prefix}numbers", f"{prefix}copies", f"{prefix}sums",
                        f"{prefix}numbers.dlq"], partitions)  # fmt: skip
    watcher = OutputWatcher(bootstrap, _output_topic(kind, prefix), partitions)
    watcher.start()
    proc = _start(kind, bootstrap, prefix, tmp / f"{prefix}log")
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0,
                     "partitioner": "murmur2_random"})  # fmt: skip
    try:
        # Warm up until the contender answers, so start-up is not measured.
        warm = Number("warm", 1, 0)
        prod.produce(f"{prefix}numbers", _encode(warm), b"warm")
        prod.flush(10)
        deadline = time.monotonic() + 120
        while ("warm", 1) not in watcher.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        sent: dict[tuple[str, int], float] = {}
        total = rate * seconds
        start = time.monotonic()
        for i in range(total):
            due = start + i / rate  # open loop: send on schedule, whatever the contender does
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            key = f"k{i % 1000:04d}"
            seq = i // 1000 + 1
            prod.produce(f"{prefix}numbers", _encode(Number(key, seq, 1)), key.encode())
            sent[(key, seq)] = due
            prod.poll(0)
        prod.flush(10)
        deadline = time.monotonic() + 60
        while watcher.count < total + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
        watcher.stop = True
        watcher.join(10)
    lat = sorted((watcher.seen[k] - t) * 1000 for k, t in sent.items() if k in watcher.seen)
    if len(lat) < len(sent):
        raise SystemExit(f"{kind}: {len(sent) - len(lat)} outputs missing in the latency run")
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=int, default=2000, help="offered load of the latency run")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tradeflux-bench-"))
    bootstrap = os.environ.get("TRADEFLUX_BOOTSTRAP")
    settings = None
    if not bootstrap:
        settings = load_settings(env={}, runtime_dir=tmp / "runtime")
        bootstrap = local.start_cluster(settings, port=19092).bootstrap
    try:
        # Latency runs first, on a broker not yet busy with the bulk runs' data.
        lat = {}
        for kind in ("raw", "pass", "sum"):
            console.print(f"[bold]{kind}[/]: latency at {args.rate:,}/s for {args.seconds}s ...")
            lat[kind] = latency(kind, bootstrap, args.rate, args.seconds, args.partitions, tmp)
        rows = []
        for kind in ("raw", "pass", "sum"):
            console.print(f"[bold]{kind}[/]: throughput over {args.records:,} records ...")
            rps = throughput(kind, bootstrap, args.records, args.partitions, tmp)
            rows.append((kind, rps, *lat[kind]))
    finally:
        if settings is not None:
            local.stop_cluster(settings)
    names = {"raw": "(a) raw loop, no EOS (limit)", "pass": "(b) passthrough, EOS",
             "sum": "(c) running sum + store, EOS"}  # fmt: skip
    table = Table(title=f"tradeflux runtime, {args.records:,} records on {args.partitions} "
                        f"partitions; latency at {args.rate:,}/s offered")  # fmt: skip
    for col in ("contender", "records/s", "x (a)", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right" if col != "contender" else "left")
    base = rows[0][1]
    for kind, rps, p50, p99 in rows:
        table.add_row(names[kind], f"{rps:,.0f}", f"{rps / base:.2f}", f"{p50:.1f}", f"{p99:.1f}")
    console.print(table)
    console.print(f"machine: {os.cpu_count()} cores, {platform.python_version()}, "
                  f"{platform.platform()}")  # fmt: skip


if __name__ == "__main__":
    main()
