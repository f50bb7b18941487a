"""Risk end to end on the real broker: `tradeflux run risk` as a process, its alerts read
read_committed and, per account, equal in order to an independent fold of the rules
(tests/support/risk_reference.py; exact Decimal, times as instants).

The input is the reference model's enriched events for a simulated session (what the
validator must emit, tests/support/reference.py), then a hand-made account that is on
``refdata.limits`` but not on ``refdata.accounts`` (so its base currency is the trades'),
trading in a currency without an FX rate (so alerts carry ``missing_fx``), with cancels,
an amend and redeliveries (which must alert nothing). The helpers are in
tests/support/risk.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.kafka_tools import ServiceProcess, read_all
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

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_risk_alerts_equal_the_rules_per_account_in_order(kafka: Settings, tmp_path: Path) -> None:
    prefix = unique("risk") + "-"
    data = risk_input(count=18_000, seed=7)
    expected = expected_for(data)
    total = assert_input_exercises_the_rules(expected)
    prepare_risk_topics(kafka, prefix, data)
    proc = ServiceProcess(kafka, "risk", prefix, "k1", tmp_path)
    try:
        produce_enriched(kafka, prefix, data.events)
        wait_caught_up(kafka, prefix, proc)
        assert proc.terminate() == 0
    finally:
        if proc.alive():
            proc.kill()
    seen = read_alerts(kafka, prefix)
    assert_alerts_equal(seen, expected)
    assert sum(map(len, seen.values())) == total
    assert read_all(kafka, f"{prefix}trades.rejected") == []  # nothing dead-lettered
