"""CPU and memory of the positions service's own work, without a broker (not a test).

Runs the shipped processor through the same Task code as the runtime (decode, the fold,
store overlays, savepoints, commit) on N seeded trades (bench/peers/trades.py, the
input of bench/compare.py), in batches of up to 5,000 records spread over the
partitions as the runtime takes them, and encodes every output and changelog record
the runtime would produce. What it leaves out is Kafka: consuming, producing,
transactions. So it tells what a change to the service or the runtime's Python side
costs in a few seconds, with less noise than a run against a broker; bench/compare.py
gives the figures that count.

Usage:
    .venv/bin/python bench/positions_cpu.py                    # 300,000 trades
    .venv/bin/python bench/positions_cpu.py --records 1000000 --profile 25
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import resource
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.peers import trades  # noqa: E402

from tradeflux.services.positions import SERVICE  # noqa: E402
from tradeflux.stream.changelog import changelog_records  # noqa: E402
from tradeflux.stream.harness import _Message  # noqa: E402
from tradeflux.stream.task import Task  # noqa: E402

BATCH = 5000  # the runtime's largest batch


def _rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(argv: list[str] | None = None) -> None:
    """Load the trades, run the processor over them, print one table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--records", type=int, default=300_000, help="trades (default 300,000)")
    p.add_argument("--partitions", type=int, default=6, help="input partitions (default 6)")
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--instruments", type=int, default=200)
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="print cProfile's top N functions by own time instead")  # fmt: skip
    args = p.parse_args(argv)
    parts = args.partitions
    messages: list[list[_Message]] = [[] for _ in range(parts)]
    for t in trades.generate(args.records, 42, args.accounts, args.instruments):
        key = t.account.encode()
        part = zlib.crc32(key) % parts
        queue = messages[part]
        queue.append(_Message("trades.enriched", part, len(queue), 0, key, trades.encode(t), None))
    input_mb = _rss_mb()
    tasks = [Task(SERVICE, part, {}) for part in range(parts)]
    codecs = {s.name: s.codec for s in SERVICE.stores}
    records = {"positions": 0, **{s.name: 0 for s in SERVICE.stores}}
    sizes = dict.fromkeys(records, 0)
    per_partition = BATCH // parts

    def run() -> None:
        done = [0] * parts
        while any(done[i] < len(messages[i]) for i in range(parts)):
            for part, task in enumerate(tasks):
                batch = messages[part][done[part] : done[part] + per_partition]
                done[part] += per_partition
                if not batch:
                    continue
                task.process(batch)
                for rec in task.take_emitted():
                    records["positions"] += 1
                    sizes["positions"] += len(rec.value or b"")
                for name, store in task.stores.items():
                    for rec in changelog_records(name, store, codecs[name].encode):
                        records[name] += 1
                        sizes[name] += len(rec.value or b"")
                task.commit()

    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run)
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
        return
    gc_before = gc.get_stats()[0]["collections"]
    started = time.process_time()
    run()
    cpu = time.process_time() - started
    n = args.records
    print(f"positions service, {n:,} trades, {parts} partitions, batches of {BATCH:,}, no broker")
    print(f"CPU {cpu:.2f} s = {cpu / n * 1e6:.1f} us/trade; peak RSS {_rss_mb()} MB "
          f"(input alone {input_mb} MB); gen-0 collections "
          f"{gc.get_stats()[0]['collections'] - gc_before:,}")  # fmt: skip
    print(f"{'record':<12}{'count':>12}{'per trade':>12}{'bytes/trade':>14}")
    for name, count in records.items():
        print(f"{name:<12}{count:>12,}{count / n:>12.2f}{sizes[name] / n:>14.0f}")


if __name__ == "__main__":
    main()
