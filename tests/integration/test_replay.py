"""``tradeflux replay`` on the real broker: the first half of a live run, replayed into a
fresh prefix, gives the records the live system had published when that half was done.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from tests.conftest import unique
from tests.support.kafka_tools import read_all, wait_for
from tests.support.live_run import (
    Pipeline,
    delete_prefix,
    latest_until,
    now_ms,
    prepare,
    produce_records,
    reference_of,
    session_after_now,
)
from tests.support.pipeline import produce_marks
from tradeflux.audit.run import AuditOptions, run_audit
from tradeflux.cli import main
from tradeflux.config import Settings
from tradeflux.domain.schemas import AccountPnL, EnrichedTrade, Position, SettlementObligation
from tradeflux.stream.deadletter import header_map

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ("validator", "positions", "pnl", "repartition", "settlement")


def _enriched(kafka: Settings, topic: str, until_ms: int | None = None) -> list[EnrichedTrade]:
    decoder = msgspec.json.Decoder(EnrichedTrade)
    events = [
        decoder.decode(m.value())
        for m in read_all(kafka, topic)
        if until_ms is None or m.timestamp()[1] <= until_ms
    ]
    return sorted(events, key=lambda e: (e.trade_id, e.version, e.event_type, e.account))


def _rejects(
    kafka: Settings, topic: str, until_ms: int | None = None
) -> Counter[tuple[bytes, str]]:
    return Counter(
        (m.key(), header_map(m.headers())["tf.reason"])
        for m in read_all(kafka, topic)
        if until_ms is None or m.timestamp()[1] <= until_ms
    )


def test_replay_of_the_first_half_gives_what_the_live_system_had_published_then(
    kafka: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    live, into = unique("live") + "-", unique("replay") + "-"
    for prefix in (live, into):
        request.addfinalizer(lambda p=prefix: delete_prefix(kafka, p))
    prepare(kafka, live)
    session = session_after_now(2_400, seed=1605)
    produce_marks(kafka, live, session)
    records = session.records
    half = next(i for i in range(len(records) // 2, len(records))
                if records[i].timestamp_ms > records[i - 1].timestamp_ms)  # fmt: skip
    first, second = records[:half], records[half:]
    with Pipeline(kafka, live, SERVICES, tmp_path) as pipe:
        produce_records(kafka, live, first)
        pipe.wait_done(reference_of(first, session).pnl)
        halfway_ms = now_ms()  # everything the first half made is stamped at or before this
        wait_for(lambda: now_ms() > halfway_ms, 5, "the clock to pass the halfway mark")
        produce_records(kafka, live, second)
        pipe.wait_done(reference_of(records, session).pnl)

    code = main([
        "--bootstrap", kafka.bootstrap, "replay", "--prefix", live, "--into", into,
        "--to", str(second[0].timestamp_ms), "--timeout-s", "300",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"replayed into {into}" in out

    expected = reference_of(first, session)
    positions = latest_until(kafka, f"{live}positions", Position, halfway_ms)
    assert positions == expected.positions  # what the live system had published then
    assert latest_until(kafka, f"{into}positions", Position) == positions
    pnl = latest_until(kafka, f"{live}pnl", AccountPnL, halfway_ms)
    assert pnl == expected.pnl
    assert latest_until(kafka, f"{into}pnl", AccountPnL) == pnl
    obligations = latest_until(
        kafka, f"{live}settlement.obligations", SettlementObligation, halfway_ms
    )
    assert obligations
    assert latest_until(kafka, f"{into}settlement.obligations", SettlementObligation) == obligations
    live_enriched = _enriched(kafka, f"{live}trades.enriched", halfway_ms)
    assert len(live_enriched) == len(expected.enriched)
    assert _enriched(kafka, f"{into}trades.enriched") == live_enriched
    rejects = _rejects(kafka, f"{live}trades.rejected", halfway_ms)
    assert sum(rejects.values()) == len(expected.rejected) > 0
    assert _rejects(kafka, f"{into}trades.rejected") == rejects
    assert len(read_all(kafka, f"{into}trades.raw")) == len(first)

    report = run_audit(kafka.client_config(), AuditOptions(prefix=into))
    assert [d for r in report.results for d in r.differences] == []
