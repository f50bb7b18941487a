"""``tradeflux audit`` on the real broker: a clean run of the whole pipeline audits clean,
and a seeded fault (one wrong position, one enriched record lost) is reported exactly.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.conftest import unique
from tests.support.kafka_tools import (
    committed_offsets,
    committed_progress,
    producer,
    read_all,
    wait_assigned,
    wait_for,
)
from tests.support.live_run import (
    Pipeline,
    delete_prefix,
    prepare,
    produce_records,
    reference_of,
    session_after_now,
)
from tests.support.pipeline import REFDATA_DIR, produce_marks
from tests.support.reference import ReferenceResult, pnl_from, positions_from
from tradeflux.audit.run import CHECKS, AuditOptions, AuditReport, run_audit
from tradeflux.broker.topics import TopicSet
from tradeflux.cli import main
from tradeflux.config import Settings
from tradeflux.domain.schemas import EnrichedTrade, FxRate, Position
from tradeflux.sim.refdata import load_refdata, read_structs
from tradeflux.sim.trades import SimSession
from tradeflux.stream.deadletter import header_map

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COUNT = 3_000
SERVICES = ("validator", "positions", "pnl", "risk", "repartition", "settlement")
_ENCODE = msgspec.json.Encoder(decimal_format="string").encode


@dataclass(frozen=True)
class Live:
    prefix: str
    session: SimSession
    expected: ReferenceResult


@pytest.fixture(scope="module")
def live(kafka: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The whole pipeline run once over a simulated session, then stopped (at rest)."""
    prefix = unique("audit") + "-"
    try:
        prepare(kafka, prefix)
        session = session_after_now(COUNT, seed=1604)
        produce_marks(kafka, prefix, session)
        expected = reference_of(session.records, session)
        with Pipeline(kafka, prefix, SERVICES, tmp_path_factory.mktemp("audit-logs")) as pipe:
            produce_records(kafka, prefix, session.records)
            pipe.wait_done(expected.pnl)
        yield Live(prefix, session, expected)
    finally:
        delete_prefix(kafka, prefix)


def _differences(report: AuditReport) -> list[tuple[str, str, str, str]]:
    return [(r.check, d.key, d.expected, d.found) for r in report.results for d in r.differences]


def test_audit_finds_no_difference_in_a_pipelines_outputs(
    kafka: Settings, live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_audit(kafka.client_config(), AuditOptions(prefix=live.prefix))

    assert _differences(report) == []
    assert [r.check for r in report.results if r.skipped is None] == list(CHECKS)
    assert sorted(report.cuts) == sorted(SERVICES)
    validator = report.counts["validator"]
    assert validator.inputs == COUNT
    assert validator.dead_letters == len(live.expected.rejected)
    assert validator.dropped == live.expected.duplicates
    assert validator.outputs == COUNT - len(live.expected.rejected) - live.expected.duplicates
    assert live.expected.duplicates > 0 and live.expected.rejected  # the mix exercises both
    enriched = len(live.expected.enriched)
    for service in ("positions", "risk", "repartition"):
        assert report.counts[service].inputs == enriched
        assert report.counts[service].dead_letters == 0
    positions = next(r for r in report.results if r.check == "positions")
    assert positions.rows == [[f"{len(live.expected.positions):,}"] * 3 + ["0"]]
    pnl = next(r for r in report.results if r.check == "pnl")
    assert pnl.rows == [[f"{len(live.expected.pnl):,}"] * 3 + ["0"]]

    code = main(["--bootstrap", kafka.bootstrap, "audit", "--prefix", live.prefix])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "audit: no difference (conservation, positions, pnl, obligations, alerts)" in out


def _partition_of(kafka: Settings, topic: str, key: str) -> int:
    partitions = {m.partition() for m in read_all(kafka, topic) if m.key() == key.encode()}
    assert len(partitions) == 1
    return partitions.pop()


def test_audit_reports_exactly_one_position_written_wrong(
    kafka: Settings, live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    key, right = next((k, p) for k, p in sorted(live.expected.positions.items()) if p.quantity)
    wrong = msgspec.structs.replace(right, quantity=right.quantity + 1)
    topic = f"{live.prefix}positions"
    prod = producer(kafka)
    prod.produce(topic, _ENCODE(wrong), key.encode(), partition=_partition_of(kafka, topic, key))
    assert prod.flush(30) == 0

    report = run_audit(kafka.client_config(), AuditOptions(prefix=live.prefix))

    assert _differences(report) == [
        ("positions", key, f"quantity={right.quantity}", f"quantity={wrong.quantity}")
    ]
    code = main(["--bootstrap", kafka.bootstrap, "audit", "--prefix", live.prefix])
    out = capsys.readouterr().out
    assert code == 1
    assert "audit: 1 difference(s) (positions 1)" in out
    assert key in out


def _copy(
    kafka: Settings, source: str, target: str, keep: object = None, rewrite: object = None
) -> list[object]:
    """Copy ``source`` to ``target`` partition for partition (timestamps and headers kept)."""
    prod = producer(kafka)
    copied = []
    for m in read_all(kafka, source):
        if callable(keep) and not keep(m):
            continue
        headers = rewrite(m.headers()) if callable(rewrite) else m.headers()
        prod.produce(target, m.value(), m.key(), partition=m.partition(),
                     timestamp=m.timestamp()[1], headers=headers)  # fmt: skip
        copied.append(m)
    assert prod.flush(60) == 0
    return copied


def test_audit_reports_exactly_one_enriched_record_dropped(
    kafka: Settings, live: Live, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A copy of the validator's work with one enriched NEW left out, as if lost: its raw
    # record, its dead letters, the group's committed offsets; positions and P&L run on it.
    source, copy = live.prefix, unique("audit-drop") + "-"
    request.addfinalizer(lambda: delete_prefix(kafka, copy))
    prepare(kafka, copy, TopicSet.CORE)
    produce_marks(kafka, copy, live.session)
    _copy(kafka, f"{source}trades.raw", f"{copy}trades.raw")
    events = [(m, msgspec.json.decode(m.value(), type=EnrichedTrade))
              for m in read_all(kafka, f"{source}trades.enriched")]  # fmt: skip
    per_trade = Counter(e.trade_id for _, e in events)
    lost = next(e for _, e in events if e.event_type == "NEW" and per_trade[e.trade_id] == 1)
    kept = _copy(
        kafka, f"{source}trades.enriched", f"{copy}trades.enriched",
        keep=lambda m: msgspec.json.decode(m.value(), type=EnrichedTrade) != lost,
    )  # fmt: skip
    assert len(kept) == len(events) - 1

    def to_copy(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        raw = f"{copy}trades.raw".encode()
        return [(k, raw if k == "tf.source.topic" else v) for k, v in headers]

    _copy(
        kafka, f"{source}trades.rejected", f"{copy}trades.rejected",
        keep=lambda m: header_map(m.headers()).get("tf.stage") == "validator", rewrite=to_copy,
    )  # fmt: skip
    done = committed_offsets(kafka, f"{source}validator", f"{source}trades.raw")
    group = Consumer(kafka.client_config(**{"group.id": f"{copy}validator"}))
    group.commit(
        offsets=[TopicPartition(f"{copy}trades.raw", p, o) for p, o in done.items()],
        asynchronous=False,
    )
    group.close()
    remaining = [e for _, e in events if e != lost]
    ref = load_refdata(REFDATA_DIR)
    fx = {r.pair: r for r in read_structs(REFDATA_DIR / "fx.csv", FxRate)}
    fx.update({r.pair: r for r in live.session.fx_rates})
    positions: dict[str, Position] = positions_from(remaining)
    pnl = pnl_from(positions, ref.accounts, live.session.prices, fx.values())
    with Pipeline(kafka, copy, ("positions", "pnl"), tmp_path) as pipe:
        pipe.wait_done(pnl)

    report = run_audit(kafka.client_config(), AuditOptions(prefix=copy))

    differences = _differences(report)
    assert len(differences) == 1, differences
    check, key, expected, found = differences[0]
    assert (check, expected, found) == ("conservation", "an enriched NEW or a dead letter", "none")
    assert key.startswith("trades.raw[") and key.endswith(f" {lost.trade_id} v1 NEW")
    partition, offset = key.removeprefix("trades.raw[").split(" ")[0].split("]@")
    raw = read_all(kafka, f"{copy}trades.raw")
    assert any(
        m.partition() == int(partition) and m.offset() == int(offset)
        and m.key() == lost.trade_id.encode() for m in raw
    )  # fmt: skip
    assert report.counts["validator"].unexplained_inputs == 1
    assert {r.check for r in report.results if r.skipped is None} == {
        "conservation", "positions", "pnl",
    }  # fmt: skip


def _feed(kafka: Settings, prefix: str, session: SimSession, stop: threading.Event) -> None:
    """Write the session's records at about 150/s until ``stop`` is set (or they run out)."""
    prod = producer(kafka)
    for i, rec in enumerate(session.records):
        if stop.wait(0.1 if i % 15 == 0 else 0):
            break
        prod.produce(f"{prefix}trades.raw", rec.value, rec.key, timestamp=rec.timestamp_ms)
        prod.poll(0)
    assert prod.flush(60) == 0


def test_audit_of_a_running_pipeline_finds_no_difference_at_each_services_cut(
    kafka: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    prefix = unique("audit-live") + "-"
    request.addfinalizer(lambda: delete_prefix(kafka, prefix))
    prepare(kafka, prefix, TopicSet.CORE)
    session = session_after_now(20_000, seed=1606)  # over 2 minutes' worth: never runs out
    produce_marks(kafka, prefix, session)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(kafka, prefix, session, stop), daemon=True)
    audited: list[AuditReport] = []
    with Pipeline(kafka, prefix, ("validator", "positions", "pnl"), tmp_path) as pipe:
        wait_assigned(*pipe.procs.values())
        feeder.start()
        try:
            for _ in range(2):
                done = sum(a.counts["positions"].inputs for a in audited[-1:])
                wait_for(
                    lambda d=done: committed_progress(
                        kafka, f"{prefix}positions", f"{prefix}trades.enriched"
                    ) > d,
                    60, "positions to make progress",
                )  # fmt: skip
                report = run_audit(kafka.client_config(), AuditOptions(prefix=prefix, live=True))
                assert feeder.is_alive(), "the input ran out during the audit"
                assert _differences(report) == []
                audited.append(report)
        finally:
            stop.set()
            feeder.join(60)
    first, second = (a.counts["validator"].inputs for a in audited)
    assert 0 < first < second < len(session.records)
