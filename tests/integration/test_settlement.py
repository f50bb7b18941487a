"""Settlement end to end on the real broker: repartition and settlement as processes,
obligations read read_committed and equal to an independent netting (exact Decimal).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.kafka_tools import ServiceProcess, assert_running, caught_up, wait_for
from tests.support.pipeline import produce_enriched
from tests.support.settlement import (
    enriched_events,
    expected_obligations,
    prepare_topics,
    read_obligations,
)
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration]


def test_obligations_equal_the_netted_effective_trades(kafka: Settings, tmp_path: Path) -> None:
    prefix = unique("settle") + "-"
    prepare_topics(kafka, prefix)
    events, emptied = enriched_events(count=12_000, seed=7)
    expected = expected_obligations(events)
    procs = [
        ServiceProcess(kafka, "repartition", prefix, "r1", tmp_path),
        ServiceProcess(kafka, "settlement", prefix, "s1", tmp_path),
    ]
    try:
        produce_enriched(kafka, prefix, events)
        for service, topic in (("repartition", "trades.enriched"),
                               ("settlement", "trades.by_counterparty")):  # fmt: skip
            wait_for(
                lambda s=service, t=topic: (
                    assert_running(*procs) or caught_up(kafka, f"{prefix}{s}", f"{prefix}{t}")
                ),
                90, f"{service} to catch up",
            )  # fmt: skip
        for proc in procs:
            assert proc.terminate() == 0
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill()
    view, tombstoned = read_obligations(kafka, prefix)
    assert view == expected
    # The hand-made trades' first dates were emptied by their date move, and the cancelled
    # ones' second dates by the cancel: each such obligation ends in a tombstone.
    assert emptied <= tombstoned and not emptied & set(view)
    assert len(expected) > 50 and sum(o.trade_count for o in expected.values()) > 5_000
