"""Per-account sessions end to end on the real broker: the sessions service as a process,
its sessions read read_committed and equal to an independent fold of ``trades.enriched``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import free_port_block, unique
from tests.support.bars_reference import simulated_enriched
from tests.support.kafka_tools import ServiceProcess, caught_up, create_topics, read_all, wait_for
from tests.support.pipeline import produce_enriched, scrape_events
from tests.support.sessions_reference import expected_from, sessions_written
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = {"trades.enriched": 3, "analytics.sessions": 3, "trades.rejected": 1}
GAP, GRACE = dt.timedelta(seconds=1), dt.timedelta(seconds=1)


def session_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 s gap and 1 s of grace: 25 s of trading on 48 accounts gives many sessions."""
    monkeypatch.setenv("TRADEFLUX_SESSION_GAP_SECONDS", "1")
    monkeypatch.setenv("TRADEFLUX_SESSION_GRACE_SECONDS", "1")


def test_sessions_equal_an_independent_fold_of_the_account_stream(
    kafka: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_env(monkeypatch)
    prefix = unique("sessions") + "-"
    create_topics(kafka, {prefix + name: parts for name, parts in TOPICS.items()})
    events = simulated_enriched(count=2000, seconds=25, seed=17)
    port = free_port_block(1)
    proc = ServiceProcess(kafka, "sessions", prefix, "s1", tmp_path, "--metrics-port", str(port))
    try:
        produce_enriched(kafka, prefix, events, rate_per_s=200)
        wait_for(lambda: caught_up(kafka, f"{prefix}sessions", f"{prefix}trades.enriched"),
                 90, "sessions to catch up")  # fmt: skip
        counted = scrape_events(port)
        assert proc.terminate() == 0, proc.log()
    finally:
        if proc.alive():
            proc.kill()
    expected = expected_from(read_all(kafka, f"{prefix}trades.enriched"), GAP, GRACE)
    latest, finals = sessions_written(read_all(kafka, f"{prefix}analytics.sessions"))
    assert latest == expected.sessions
    assert finals == {k: 1 for k, s in expected.sessions.items() if s.final}
    assert counted.get("late", 0) == expected.late
    assert sum(s.final for s in expected.sessions.values()) > 100
    assert any(not s.final for s in expected.sessions.values())
    assert expected.late > 0
    assert max(s.trade_count for s in expected.sessions.values()) > 3
