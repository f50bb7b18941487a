"""The analytics service on a hot instrument: cost per trade as its windows fill up.

Drives the shipped analytics service's processor (``stream.harness.TestDriver``: the
task's real decode, processing, size checks and store commits, no broker) with NEW trades
of one instrument, and some amends and cancels, in batches, and prints per step of
``--step`` trades: trades/s of that step, the largest store record (what a changelog must
accept) and dead letters so far. The trade time runs ``--per-second`` trades per second,
so a 60 s hopping window holds ``60 * per_second`` trades.

Run it from two trees to compare commits (it uses only the service, the harness and the
trade helper of tests/unit/test_windows.py)::

    PYTHONPATH=src .venv/bin/python bench/analytics_windows.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.test_windows import trade  # noqa: E402

from tradeflux.domain.schemas import EnrichedTrade  # noqa: E402
from tradeflux.services import analytics  # noqa: E402
from tradeflux.stream.harness import TestDriver  # noqa: E402


def event(i: int, version: int, kind: str, per_second: int) -> EnrichedTrade:
    """Trade ``i`` of the hot instrument, at ``i / per_second`` s of trade time."""
    return trade(
        f"T{i:07d}", version, kind, i / per_second, str(10 + i % 90),
        f"{100 + i % 97}.{version:02d}", instrument="HOT.XNAS", account=f"ACC-{i % 50:04d}",
    )  # fmt: skip


def largest_record(driver: TestDriver) -> int:
    """Return the bytes of the largest value in any store of partition 0."""
    largest = 0
    for spec in analytics.SERVICE.stores:
        for value in driver.store(spec.name).values():
            largest = max(largest, len(spec.codec.encode(value)))
    return largest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trades", type=int, default=40_000, help="NEW trades in all")
    p.add_argument("--per-second", type=int, default=500, help="trades per second of trade time")
    p.add_argument("--batch", type=int, default=500, help="records per batch")
    p.add_argument("--step", type=int, default=10_000, help="trades per printed row")
    args = p.parse_args()
    driver = TestDriver(analytics.SERVICE)
    dead = 0
    print("| trades | trades/s in this step | largest store record, bytes | dead letters |")
    print("|---:|---:|---:|---:|")
    started = time.perf_counter()
    step_started, step_records = started, 0
    for first in range(0, args.trades, args.batch):
        records = []
        for i in range(first, min(first + args.batch, args.trades)):
            records.append(("HOT.XNAS", event(i, 1, "NEW", args.per_second)))
            if i % 20 == 19:  # amend a recent trade, cancel an older one
                records.append(("HOT.XNAS", event(i - 5, 2, "AMEND", args.per_second)))
                records.append(("HOT.XNAS", event(i - 12, 3, "CANCEL", args.per_second)))
        out = driver.send(records)
        dead += sum(1 for o in out if o.topic == analytics.SERVICE.dead_letter_topic)
        step_records += len(records)
        done = first + args.batch
        if done % args.step == 0 or done >= args.trades:
            now = time.perf_counter()
            rate = step_records / (now - step_started)
            print(f"| {min(done, args.trades):,} | {rate:,.0f} | {largest_record(driver):,} | "
                  f"{dead:,} |", flush=True)  # fmt: skip
            step_started, step_records = time.perf_counter(), 0
    print(f"\nall: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
