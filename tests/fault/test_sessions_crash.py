"""The sessions service SIGKILLed twice mid-stream: restored from its changelogs, exact."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.integration.test_sessions import GAP, GRACE, TOPICS, session_env
from tests.support.bars_reference import simulated_enriched
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
from tests.support.pipeline import produce_enriched
from tests.support.sessions_reference import expected_from, sessions_written
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]


def test_sigkilled_sessions_restart_to_the_same_sessions_and_no_duplicate_final(
    kafka: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_env(monkeypatch)
    prefix = unique("sesscrash") + "-"
    create_topics(kafka, {prefix + name: parts for name, parts in TOPICS.items()})
    events = simulated_enriched(count=2000, seconds=25, seed=31)
    args = (kafka, "sessions", prefix, "s1", tmp_path, "--static-membership")
    proc = ServiceProcess(*args)
    pacer = Pacer(100)
    pacer.hold()  # until the service has its partitions: start-up costs no input
    feeder = threading.Thread(
        target=produce_enriched, args=(kafka, prefix, events, pacer), daemon=True
    )
    feeder.start()
    rng = random.Random(5)

    def progress() -> int:
        return committed_progress(kafka, f"{prefix}sessions", f"{prefix}trades.enriched")

    try:
        wait_assigned(proc)
        pacer.release()
        for _ in range(2):
            before = progress()
            wait_for(lambda b=before: progress() > b, 60, "sessions progress")
            time.sleep(rng.uniform(0.2, 1.5))
            assert feeder.is_alive(), "the input ended before the kill: feed slower"
            proc.kill()
            proc = restarted(lambda: ServiceProcess(*args), pacer)
        feeder.join(60)
        wait_for(lambda: caught_up(kafka, f"{prefix}sessions", f"{prefix}trades.enriched"),
                 90, "sessions to catch up")  # fmt: skip
        assert proc.terminate() == 0, proc.log()
    finally:
        if proc.alive():
            proc.kill()
    expected = expected_from(read_all(kafka, f"{prefix}trades.enriched"), GAP, GRACE)
    latest, finals = sessions_written(read_all(kafka, f"{prefix}analytics.sessions"))
    assert latest == expected.sessions
    assert finals == {k: 1 for k, s in expected.sessions.items() if s.final}
    assert "store restored service=sessions store=sessions" in proc.log()
