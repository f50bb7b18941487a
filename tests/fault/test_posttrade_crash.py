"""Settlement and reporting, each SIGKILLed twice mid-stream: the FINAL obligations, their
adjustments, the sese.023 instructions and the reports still equal the reference exactly.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.integration.test_posttrade import SERVICES, check_against_reference
from tests.support.kafka_tools import (
    Pacer,
    ServiceProcess,
    assert_running,
    caught_up,
    committed_progress,
    restarted,
    wait_assigned,
    wait_for,
)
from tests.support.posttrade import STORES, prepare, produce_steps, scenario
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]


@pytest.mark.parametrize("victim", ["settlement", "reporting"])
def test_a_service_sigkilled_twice_mid_stream_writes_exactly_what_the_reference_expects(
    kafka: Settings, tmp_path: Path, victim: str
) -> None:
    prefix = unique(f"ptcrash-{victim}") + "-"
    prepare(kafka, prefix)
    steps = scenario(count=2500, seed=13)
    inputs = dict(SERVICES)

    def start(name: str) -> ServiceProcess:
        return ServiceProcess(kafka, name, prefix, f"{name}-1", tmp_path, "--static-membership")

    procs = {name: start(name) for name, _ in SERVICES}
    pacer = Pacer(150)
    pacer.hold()  # until the services have their partitions: start-up costs no input
    feeder = threading.Thread(target=produce_steps, args=(kafka, prefix, steps, pacer), daemon=True)
    feeder.start()
    rng = random.Random(len(victim))

    def progress() -> int:
        return committed_progress(kafka, f"{prefix}{victim}", f"{prefix}{inputs[victim]}")

    kills = 0
    try:
        wait_assigned(*procs.values())
        pacer.release()
        for _ in range(2):
            before = progress()
            wait_for(
                lambda b=before: assert_running(*procs.values()) or progress() > b,
                60, f"{victim} progress",
            )  # fmt: skip
            time.sleep(rng.uniform(0.2, 1.5))
            assert feeder.is_alive(), "the input ended before the kill: feed slower"
            procs[victim].kill()
            kills += 1
            procs[victim] = restarted(lambda: start(victim), pacer)
        feeder.join(120)
        for name, topic in SERVICES:
            wait_for(
                lambda n=name, t=topic: (
                    assert_running(*procs.values())
                    or caught_up(kafka, f"{prefix}{n}", f"{prefix}{t}")
                ),
                180, f"{name} to catch up",
            )  # fmt: skip
        for proc in procs.values():
            assert proc.terminate() == 0, proc.log()[-3000:]
    finally:
        for proc in procs.values():
            if proc.alive():
                proc.kill()
    assert kills == 2
    counts = check_against_reference(kafka, prefix)
    assert counts["final"] > 50 and counts["adjustment"] > 30
    # The restarted incarnations rebuilt their stores from the changelogs.
    logs = [p.read_text() for p in sorted(tmp_path.glob(f"{victim}-1-*.log"))]
    assert len(logs) == 3
    for log in logs[1:]:
        for store in STORES[victim]:
            assert f"store restored service={victim} store={store}" in log, store
