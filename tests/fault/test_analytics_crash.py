"""Analytics SIGKILLed mid-stream: restored from its changelogs, its bars stay exact."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.bars_reference import (
    bars_written,
    expected_from,
    expected_hopping_from,
    simulated_enriched,
)
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
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

TOPICS = {
    "trades.enriched": 3,
    "trades.by_instrument": 3,
    "trades.by_counterparty": 3,
    "analytics.bars": 3,
    "analytics.hopping_bars": 3,
    "trades.rejected": 1,
}


def _progress(kafka: Settings, prefix: str) -> int:
    return committed_progress(kafka, f"{prefix}analytics", f"{prefix}trades.by_instrument")


def test_sigkilled_analytics_restarts_to_the_same_bars_and_no_duplicate_final_bar(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("barcrash") + "-"
    create_topics(kafka, {prefix + name: parts for name, parts in TOPICS.items()})
    events = simulated_enriched(count=2500, seconds=25, seed=29)
    analytics_args = (kafka, "analytics", prefix, "a1", tmp_path, "--static-membership")
    repartition = ServiceProcess(kafka, "repartition", prefix, "r1", tmp_path)
    analytics = ServiceProcess(*analytics_args)
    pacer = Pacer(100)
    pacer.hold()  # until the services have their partitions: start-up costs no input
    feeder = threading.Thread(
        target=produce_enriched,
        args=(kafka, prefix, events, pacer),
        daemon=True,
    )
    feeder.start()
    rng = random.Random(3)
    try:
        wait_assigned(repartition, analytics)
        pacer.release()
        for _ in range(2):
            # Kill once this incarnation has committed progress, at a random moment.
            before = _progress(kafka, prefix)
            wait_for(lambda b=before: _progress(kafka, prefix) > b, 60, "analytics progress")
            time.sleep(rng.uniform(0.2, 1.5))
            assert feeder.is_alive(), "the input ended before the kill: feed slower"
            analytics.kill()
            analytics = restarted(lambda: ServiceProcess(*analytics_args), pacer)
        feeder.join(60)
        wait_for(lambda: caught_up(kafka, f"{prefix}repartition", f"{prefix}trades.enriched"),
                 60, "repartition to catch up")  # fmt: skip
        wait_for(lambda: caught_up(kafka, f"{prefix}analytics", f"{prefix}trades.by_instrument"),
                 60, "analytics to catch up")  # fmt: skip
        assert analytics.terminate() == 0, analytics.log()
        assert repartition.terminate() == 0, repartition.log()
    finally:
        for proc in (analytics, repartition):
            if proc.alive():
                proc.kill()
    expected = expected_from(read_all(kafka, f"{prefix}trades.by_instrument"))
    latest, finals = bars_written(read_all(kafka, f"{prefix}analytics.bars"))
    assert latest == expected.bars
    assert finals == {k: 1 for k, bar in expected.bars.items() if bar.final}
    hopping = expected_hopping_from(read_all(kafka, f"{prefix}trades.by_instrument"))
    latest, finals = bars_written(read_all(kafka, f"{prefix}analytics.hopping_bars"))
    assert latest == hopping.bars
    assert finals == {k: 1 for k, bar in hopping.bars.items() if bar.final}
    # The last incarnation restored its windows from the changelogs, not from nothing.
    assert "store restored service=analytics store=bar_windows" in analytics.log()
    assert "store restored service=analytics store=hop_bar_windows" in analytics.log()
