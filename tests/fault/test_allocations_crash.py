"""SIGKILL of each post-trade service, twice, mid-stream: everything still equals the reference.

The plan of 240 blocks (tests/support/allocation_e2e.py) is fed at a steady rate into
the input topics while the allocation feed, the allocations service and the
confirmations service are each SIGKILLed twice and restarted (the feed held meanwhile,
so every kill lands mid-stream). Then the run ends as the FIX run does (timeouts,
affirmations, the deadline, late affirmations) and the allocations, acks, children,
confirmations, exceptions and positions read back read_committed must equal the
independent reference exactly: nothing lost, nothing booked twice.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support import allocation_e2e as e2e
from tests.support import allocation_run as runs
from tests.support.kafka_tools import Pacer, restarted, wait_for
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

KILLED = ("allocation-feed", "allocations", "confirmations")
_RESTORED = re.compile(r"store restored service=([\w-]+) store=(\w+) partition=\d+ records=(\d+)")


def _kill_and_restart(run: runs.Run, name: str, pacer: Pacer, pause_s: float) -> None:
    """SIGKILL ``name`` once it made progress and ``pause_s`` later; restart it, feed held."""
    before = run.progress(name)
    wait_for(lambda: run.alive() or run.progress(name) > before, 120, f"{name} progress")
    time.sleep(pause_s)
    run.procs[name].kill()
    restarted(lambda: run.start(name), pacer)


def test_post_trade_services_sigkilled_twice_each_mid_stream_end_as_the_reference(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("alloc-crash") + "-"
    e2e.prepare(kafka, prefix)
    plan = e2e.build_plan(240, dt.datetime.now(dt.UTC).replace(microsecond=0), "CR")
    run = runs.Run(kafka, prefix, e2e.log_dir(tmp_path), extra=("--static-membership",))
    kills: Counter[str] = Counter()
    try:
        for name in runs.SERVICES:
            run.start(name)
        thread, pacer = runs.run_and_hold(run, runs.plan_records(plan), 30)
        for round_, pause_s in enumerate((0.3, 1.1)):
            for name in KILLED:
                assert thread.is_alive(), (
                    f"the input ended before kill {round_} of {name}: feed slower"
                )
                _kill_and_restart(run, name, pacer, pause_s)
                kills[name] += 1
        thread.join(300)
        assert not thread.is_alive()

        def answer(records: list[tuple[str, bytes]]) -> None:
            e2e.produce(kafka, prefix, "confirmations.in", records)

        model = runs.finish(run, plan, answer)
        runs.caught_up_all(run, runs.SERVICES)
        run.stop()
    finally:
        run.kill_all()
    assert kills == dict.fromkeys(KILLED, 2)
    # Each restart rebuilt its stores from their changelogs, not from nothing.
    for name in KILLED:
        logs = [p.read_text() for p in sorted(e2e.log_dir(tmp_path).glob(f"{name}-1-*.log"))]
        assert len(logs) == 3, name
        for log in logs[1:]:
            restored = {s for svc, s, n in _RESTORED.findall(log) if svc == name and int(n) > 0}
            assert restored, f"{name} restored nothing after its restart"
    children = sum(1 for t in model.trades.values() if t.role == "CHILD")
    print(f"\nallocation crash: {len(plan.fills)} fills, {len(plan.instructions)} instructions, "
          f"{children} children, kills {dict(kills)}")  # fmt: skip
