"""SIGKILL and rebalance tests of the runtime: outputs stay exact, read_committed."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.kafka_tools import (
    Pacer,
    ServiceProcess,
    caught_up,
    committed_progress,
    create_topics,
    read_all,
    restarted,
    wait_assigned,
    wait_for,
)
from tests.support.running_sum import check_sum_outputs, make_numbers, produce_in_background
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

JOB = "tests.support.jobs:RUNNING_SUM"
_RESTORED = re.compile(
    r"store restored service=running-sum store=sums partition=(\d+) records=(\d+)"
)
_MOVED = re.compile(r"partitions (assigned|revoked) service=running-sum partitions=(\S+)")


def _progress(settings: Settings, prefix: str) -> int:
    return committed_progress(settings, f"{prefix}running-sum", f"{prefix}numbers")


def _held(log: str) -> set[int]:
    """Return the partitions an instance holds after the assigned/revoked lines of its log.

    Not every partition ever assigned: the instance that joins first briefly gets all
    of them, and gives half back when the other joins.
    """
    held: set[int] = set()
    for what, names in _MOVED.findall(log):
        moved = {int(p.rsplit("[", 1)[1].rstrip("]")) for p in names.split(",") if p}
        held = held | moved if what == "assigned" else held - moved
    return held


def _setup(settings: Settings, prefix: str) -> None:
    create_topics(settings, {f"{prefix}numbers": 6, f"{prefix}sums": 6, f"{prefix}numbers.dlq": 1})


def test_sigkill_five_times_mid_stream_loses_and_duplicates_nothing(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("crash") + "-"
    _setup(kafka, prefix)
    numbers = make_numbers(200_000, keys=500, seed=42)
    pacer = Pacer(5_000)
    pacer.hold()  # until the service has its partitions: start-up costs no input
    feeder = produce_in_background(kafka, f"{prefix}numbers", numbers, rate_per_s=pacer)
    rng = random.Random(1)
    kills = 0
    proc = ServiceProcess(kafka, JOB, prefix, "crash-1", tmp_path, "--static-membership")
    try:
        wait_assigned(proc)
        pacer.release()
        while kills < 5:
            # This incarnation's own restore first: the killed one's last transaction may
            # still complete after the restart, so progress alone does not show that this
            # incarnation got as far as restoring (and a kill before it restores nothing).
            wait_for(lambda p=proc: _RESTORED.findall(p.log()), 60, "restore after restart")
            before = _progress(kafka, prefix)
            # Kill only once this incarnation has committed something, at a random moment.
            wait_for(lambda b=before: _progress(kafka, prefix) > b, 60, "progress after restart")
            time.sleep(rng.uniform(0.2, 1.5))
            at = _progress(kafka, prefix)
            assert at < len(numbers), "the stream ended before the kills: feed slower"
            proc.kill()
            kills += 1
            proc = restarted(
                lambda: ServiceProcess(
                    kafka, JOB, prefix, "crash-1", tmp_path, "--static-membership"
                ),
                pacer,
            )
        feeder.join(120)
        wait_for(lambda: caught_up(kafka, f"{prefix}running-sum", f"{prefix}numbers"), 120, "end")
        assert proc.terminate() == 0
    finally:
        if proc.alive():
            proc.kill()
    assert kills == 5
    check_sum_outputs(read_all(kafka, f"{prefix}sums", timeout_s=120), numbers)
    # Each restart restored the stores from the changelog, not from nothing.
    logs = [p.read_text() for p in sorted(tmp_path.glob("crash-1-*.log"))]
    assert len(logs) == 6
    for log in logs[1:]:
        assert sum(int(n) for _, n in _RESTORED.findall(log)) > 0


def test_second_instance_joins_then_dies_and_results_stay_exact(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("rebal") + "-"
    _setup(kafka, prefix)
    numbers = make_numbers(120_000, keys=300, seed=5)
    pacer = Pacer(4_000)
    feeder = produce_in_background(kafka, f"{prefix}numbers", numbers, rate_per_s=pacer)
    first = ServiceProcess(kafka, JOB, prefix, "a", tmp_path)
    second = None
    try:
        wait_for(lambda: _progress(kafka, prefix) > 10_000, 60, "first instance progress")
        pacer.hold()  # while the second starts: the feed must outlast the join
        second = ServiceProcess(kafka, JOB, prefix, "b", tmp_path)
        # The second instance takes some partitions and restores them from the changelog.
        try:
            moved = wait_for(
                lambda: [m for m in _RESTORED.findall(second.log()) if int(m[1]) > 0],
                60, "restore",
            )  # fmt: skip
        finally:
            pacer.release()
        wait_for(lambda: "partitions revoked" in first.log(), 30, "revocation on the first")
        taken = {int(p) for p, _ in moved}
        before = _progress(kafka, prefix)
        wait_for(lambda: _progress(kafka, prefix) > before + 2_000, 60, "progress with two")
        second.kill()

        # After the session times out, the first instance takes them back, restoring again.
        def restored_back() -> set[int]:
            log = first.log()
            tail = log[log.index("partitions revoked") :]
            return {int(p) for p, n in _RESTORED.findall(tail) if int(n) > 0} & taken

        wait_for(lambda: restored_back() == taken, 60, "partitions back on the first instance")
        feeder.join(120)
        wait_for(lambda: caught_up(kafka, f"{prefix}running-sum", f"{prefix}numbers"), 120, "end")
        assert first.terminate() == 0
    finally:
        for p in (first, second):
            if p is not None and p.alive():
                p.kill()
    assert taken and taken < set(range(6))
    check_sum_outputs(read_all(kafka, f"{prefix}sums", timeout_s=120), numbers)


def test_sigterm_commits_and_hands_partitions_over_at_once(kafka: Settings, tmp_path: Path) -> None:
    prefix = unique("leave") + "-"
    _setup(kafka, prefix)
    numbers = make_numbers(60_000, keys=100, seed=9)
    feeder = produce_in_background(kafka, f"{prefix}numbers", numbers, rate_per_s=4_000)
    # A session timeout far longer than the wait below: only a real LeaveGroup can
    # move the partitions in time.
    slow_session = ("--session-timeout-ms", "45000")
    first = ServiceProcess(kafka, JOB, prefix, "a", tmp_path, *slow_session)
    second = ServiceProcess(kafka, JOB, prefix, "b", tmp_path, *slow_session)
    try:
        wait_for(lambda: "partitions assigned" in second.log(), 60, "second instance assigned")
        wait_for(lambda: _progress(kafka, prefix) > 10_000, 60, "progress")
        second_had = _held(second.log())
        assert second_had
        assert second.terminate() == 0
        assert "service stopped" in second.log()

        def all_back_on_first() -> bool:
            return _held(first.log()) >= second_had

        wait_for(all_back_on_first, 20, "the partitions back on the first before the timeout")
        feeder.join(120)
        wait_for(lambda: caught_up(kafka, f"{prefix}running-sum", f"{prefix}numbers"), 120, "end")
        assert first.terminate() == 0
    finally:
        for p in (first, second):
            if p.alive():
                p.kill()
    check_sum_outputs(read_all(kafka, f"{prefix}sums", timeout_s=120), numbers)
