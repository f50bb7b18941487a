"""SIGKILL of the settlement service mid-stream: obligations stay exact, read_committed."""

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
    caught_up,
    committed_progress,
    restarted,
    wait_assigned,
    wait_for,
)
from tests.support.pipeline import produce_enriched
from tests.support.settlement import (
    enriched_events,
    expected_obligations,
    prepare_topics,
    read_obligations,
)
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

_RESTORED = re.compile(r"store restored service=settlement store=(\w+) partition=\d+ records=(\d+)")


def _progress(kafka: Settings, prefix: str) -> int:
    return committed_progress(kafka, f"{prefix}settlement", f"{prefix}trades.by_counterparty")


def test_settlement_sigkilled_twice_mid_stream_nets_exactly(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("settle-crash") + "-"
    prepare_topics(kafka, prefix)
    events, emptied = enriched_events(count=16_000, seed=11)
    expected = expected_obligations(events)
    pacer = Pacer(1_500)
    pacer.hold()  # until the services have their partitions: start-up costs no input
    feeder = threading.Thread(
        target=produce_enriched, args=(kafka, prefix, events, pacer), daemon=True
    )
    repartition = ServiceProcess(kafka, "repartition", prefix, "r1", tmp_path)
    settlement = ServiceProcess(kafka, "settlement", prefix, "s1", tmp_path, "--static-membership")
    kills = 0
    try:
        feeder.start()
        wait_assigned(repartition, settlement)
        pacer.release()
        for pause_s in (0.3, 1.1):
            before = _progress(kafka, prefix)
            wait_for(
                lambda b=before, s=settlement: (
                    assert_running(repartition, s) or _progress(kafka, prefix) > b
                ),
                60, "settlement progress",
            )  # fmt: skip
            time.sleep(pause_s)
            assert feeder.is_alive(), "the input ended before the kill: feed slower"
            settlement.kill()
            kills += 1
            settlement = restarted(
                lambda: ServiceProcess(
                    kafka, "settlement", prefix, "s1", tmp_path, "--static-membership"
                ),
                pacer,
            )
        feeder.join(120)
        for service, topic in (("repartition", "trades.enriched"),
                               ("settlement", "trades.by_counterparty")):  # fmt: skip
            wait_for(
                lambda s=service, t=topic: (
                    assert_running(repartition, settlement)
                    or caught_up(kafka, f"{prefix}{s}", f"{prefix}{t}")
                ),
                90, f"{service} to catch up",
            )  # fmt: skip
        for proc in (repartition, settlement):
            assert proc.terminate() == 0
    finally:
        for proc in (repartition, settlement):
            if proc.alive():
                proc.kill()
    assert kills == 2
    view, tombstoned = read_obligations(kafka, prefix)
    assert view == expected
    assert emptied <= tombstoned and not emptied & set(view)
    # Each restart rebuilt both stores from their changelogs, not from nothing.
    logs = [p.read_text() for p in sorted(tmp_path.glob("s1-*.log"))]
    assert len(logs) == 3
    for log in logs[1:]:
        restored = {store for store, n in _RESTORED.findall(log) if int(n) > 0}
        assert {"legs", "obligations", "dates", "clock"} <= restored
