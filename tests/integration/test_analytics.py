"""Analytics end to end on the real broker: repartition and analytics as processes, the
bars read read_committed and equal to an independent fold of the instrument stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port_block, unique
from tests.support.bars_reference import (
    bars_written,
    expected_from,
    expected_hopping_from,
    simulated_enriched,
)
from tests.support.kafka_tools import ServiceProcess, caught_up, create_topics, read_all, wait_for
from tests.support.pipeline import produce_enriched, scrape_events
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = {
    "trades.enriched": 3,
    "trades.by_instrument": 3,
    "trades.by_counterparty": 3,
    "analytics.bars": 3,
    "analytics.hopping_bars": 3,
    "trades.rejected": 1,
}


def test_final_bars_equal_an_independent_fold_of_the_instrument_stream(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("bars") + "-"
    create_topics(kafka, {prefix + name: parts for name, parts in TOPICS.items()})
    events = simulated_enriched(count=2500, seconds=25, seed=11)
    port = free_port_block(1)
    procs = [
        ServiceProcess(kafka, "repartition", prefix, "r1", tmp_path),
        ServiceProcess(
            kafka,
            "analytics",
            prefix,
            "a1",
            tmp_path,
            "--metrics-port",
            str(port),
            env={"TRADEFLUX_AUTH": "none"},
        ),  # /metrics read without a token
    ]
    try:
        # In real time, as trades come: a burst would reach an instrument's partition
        # through repartition account partition by account partition, mostly late.
        produce_enriched(kafka, prefix, events, rate_per_s=100)
        wait_for(lambda: caught_up(kafka, f"{prefix}repartition", f"{prefix}trades.enriched"),
                 60, "repartition to catch up")  # fmt: skip
        wait_for(lambda: caught_up(kafka, f"{prefix}analytics", f"{prefix}trades.by_instrument"),
                 60, "analytics to catch up")  # fmt: skip
        counted = scrape_events(port)
        for proc in procs:
            assert proc.terminate() == 0, proc.log()
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill()
    expected = expected_from(read_all(kafka, f"{prefix}trades.by_instrument"))
    latest, finals = bars_written(read_all(kafka, f"{prefix}analytics.bars"))
    assert latest == expected.bars
    assert finals == {k: 1 for k, bar in expected.bars.items() if bar.final}
    assert counted.get("late", 0) == expected.late
    hopping = expected_hopping_from(read_all(kafka, f"{prefix}trades.by_instrument"))
    latest, finals = bars_written(read_all(kafka, f"{prefix}analytics.hopping_bars"))
    assert latest == hopping.bars
    assert finals == {k: 1 for k, bar in hopping.bars.items() if bar.final}
    assert counted.get("hopping_late", 0) == hopping.late
    # Windows overlap (a trade is in four); some of them closed, some are still open.
    assert sum(b.count for b in hopping.bars.values()) > sum(
        b.count for b in expected.bars.values()
    )
    assert any(bar.final for bar in hopping.bars.values())
    assert any(not bar.final for bar in hopping.bars.values())
    # The data exercise what they should: closed and open windows, late events.
    assert sum(bar.final for bar in expected.bars.values()) > 25
    assert any(not bar.final for bar in expected.bars.values())
    assert expected.late > 0
