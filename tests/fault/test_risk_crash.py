"""SIGKILL of the risk service mid-stream, twice: per account the alerts read read_committed
are exactly the rules' sequence, with no alert duplicated and none missing."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.kafka_tools import (
    Pacer,
    ServiceProcess,
    assert_running,
    committed_progress,
    restarted,
    wait_assigned,
    wait_for,
)
from tests.support.pipeline import produce_enriched
from tests.support.risk import (
    assert_alerts_equal,
    assert_input_exercises_the_rules,
    expected_for,
    prepare_risk_topics,
    read_alerts,
    risk_input,
    wait_caught_up,
)
from tradeflux.config import Settings

pytestmark = [pytest.mark.fault, pytest.mark.slow]

_RESTORED = re.compile(r"store restored service=risk store=(\w+) partition=\d+ records=(\d+)")


def _progress(kafka: Settings, prefix: str) -> int:
    return committed_progress(kafka, f"{prefix}risk", f"{prefix}trades.enriched")


def test_risk_sigkilled_twice_mid_stream_alerts_exactly_once(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("risk-crash") + "-"
    data = risk_input(count=16_000, seed=11)
    expected = expected_for(data)
    total = assert_input_exercises_the_rules(expected)
    prepare_risk_topics(kafka, prefix, data)
    pacer = Pacer(1_500)
    pacer.hold()  # until risk has its partitions: start-up costs no input
    feeder = threading.Thread(
        target=produce_enriched, args=(kafka, prefix, data.events, pacer), daemon=True
    )
    risk = ServiceProcess(kafka, "risk", prefix, "k1", tmp_path, "--static-membership")
    kills = 0
    try:
        feeder.start()
        wait_assigned(risk)
        pacer.release()
        for pause_s in (0.3, 1.1):
            before = _progress(kafka, prefix)
            wait_for(
                lambda b=before, r=risk: assert_running(r) or _progress(kafka, prefix) > b,
                60, "risk progress",
            )  # fmt: skip
            time.sleep(pause_s)  # kill somewhere inside the next batches, not at a boundary
            assert feeder.is_alive(), "the input ended before the kill: feed slower"
            risk.kill()
            kills += 1
            risk = restarted(
                lambda: ServiceProcess(
                    kafka, "risk", prefix, "k1", tmp_path, "--static-membership"
                ),
                pacer,
            )
        feeder.join(120)
        assert not feeder.is_alive()
        wait_caught_up(kafka, prefix, risk)
        assert risk.terminate() == 0
    finally:
        if risk.alive():
            risk.kill()
    assert kills == 2
    seen = read_alerts(kafka, prefix)
    assert_alerts_equal(seen, expected)
    assert sum(map(len, seen.values())) == total
    # Each restart rebuilt both stores from their changelogs, not from nothing.
    logs = [p.read_text() for p in sorted(tmp_path.glob("k1-*.log"))]
    assert len(logs) == 3
    for log in logs[1:]:
        restored = {store for store, n in _RESTORED.findall(log) if int(n) > 0}
        assert restored == {"trades", "accounts"}
