"""Settlement cut-offs, sese.023 instructions and regulatory reports end to end on the real broker.

Settlement and reporting run as processes; a settlement day (tests/support/posttrade.py) is
written to their inputs, clock ticks included; what they wrote, read read_committed, must
equal an independent fold of the same input (tests/support/posttrade_reference.py). Then
the same input, copied into a fresh prefix, must give byte-identical outputs.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique
from tests.support.kafka_tools import (
    ServiceProcess,
    assert_running,
    caught_up,
    read_all,
    wait_assigned,
    wait_for,
)
from tests.support.posttrade import (
    copy_inputs,
    inputs_of,
    outputs_of,
    prepare,
    produce_steps,
    raw_outputs_of,
    scenario,
)
from tests.support.posttrade_reference import expected_reports, expected_settlement
from tests.unit.test_sese023 import schema
from tradeflux.config import Settings
from tradeflux.domain.finality import ObligationStatement
from tradeflux.domain.reporting import TradeReport
from tradeflux.domain.sese023 import SettlementInstruction
from tradeflux.stream.deadletter import header_map

pytestmark = [pytest.mark.integration]

SERVICES = (("settlement", "trades.by_counterparty"), ("reporting", "trades.enriched"))


def run_services(kafka: Settings, prefix: str, tmp_path: Path, feed: Any) -> None:
    """Run settlement and reporting on ``prefix`` while ``feed()`` writes, until caught up."""
    procs = [ServiceProcess(kafka, name, prefix, f"{name}-1", tmp_path) for name, _ in SERVICES]
    try:
        wait_assigned(*procs)
        feed()
        for name, topic in SERVICES:
            wait_for(
                lambda n=name, t=topic: (
                    assert_running(*procs) or caught_up(kafka, f"{prefix}{n}", f"{prefix}{t}")
                ),
                180, f"{name} to catch up",
            )  # fmt: skip
        for proc in procs:
            assert proc.terminate() == 0, proc.log()[-3000:]
    finally:
        for proc in procs:
            if proc.alive():
                proc.kill()


def check_against_reference(kafka: Settings, prefix: str) -> dict[str, int]:
    """Assert every post-trade output equals the reference fold of the inputs; return counts."""
    expected = expected_settlement(inputs_of(kafka, prefix, "trades.by_counterparty"))
    statements = outputs_of(kafka, prefix, "settlement.statements", ObligationStatement)
    assert statements == expected.statements
    instructions = {
        i.instruction_id: i
        for items in outputs_of(
            kafka, prefix, "settlement.instructions", SettlementInstruction
        ).values()
        for i in items
    }
    assert set(instructions) == set(expected.instructions)
    for tx, want in expected.instructions.items():
        got = instructions[tx]
        assert {k: getattr(got, k) for k in want} == want, tx
        schema().validate(got.document)
        body = schema().to_dict(got.document)["SctiesSttlmTxInstr"]
        assert body["TxId"] == tx
        assert body["FinInstrmId"]["ISIN"] == want["isin"]
        assert body["QtyAndAcctDtls"]["SttlmQty"]["Qty"]["Unit"] == want["quantity"]
    dead = [
        header_map(m.headers())["tf.reason"] for m in read_all(kafka, f"{prefix}trades.rejected")
    ]
    assert Counter(dead) == Counter({"SETTLEMENT_DATE_EXPIRED": expected.expired})
    reports = outputs_of(kafka, prefix, "regulatory.reports", TradeReport)
    assert {k: sorted(v, key=lambda r: r.report_id) for k, v in reports.items()} == (
        expected_reports(inputs_of(kafka, prefix, "trades.enriched"))
    )
    kinds = Counter(s.kind for items in statements.values() for s in items)
    return {
        "final": kinds["FINAL"],
        "adjustment": kinds["ADJUSTMENT"],
        "instructions": len(instructions),
        "expired": expected.expired,
        "reports": sum(len(v) for v in reports.values()),
        "late": sum(r.late for v in reports.values() for r in v),
    }


def test_final_obligations_instructions_and_reports_equal_the_reference_and_replay_alike(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("posttrade") + "-"
    prepare(kafka, prefix)
    steps = scenario(count=2500, seed=5)
    run_services(kafka, prefix, tmp_path, lambda: produce_steps(kafka, prefix, steps))
    counts = check_against_reference(kafka, prefix)
    assert counts["final"] > 50 and counts["adjustment"] > 30 and counts["expired"] > 5
    assert counts["instructions"] > 500 and counts["late"] == 24
    assert counts["reports"] == len(steps) - 3  # one per trade event, none without an LEI

    replay = unique("posttrade-replay") + "-"
    prepare(kafka, replay)
    run_services(kafka, replay, tmp_path, lambda: copy_inputs(kafka, prefix, replay))
    for topic in ("settlement.statements", "settlement.instructions"):
        assert raw_outputs_of(kafka, replay, topic) == raw_outputs_of(kafka, prefix, topic), topic
    original = raw_outputs_of(kafka, prefix, "regulatory.reports")
    again = raw_outputs_of(kafka, replay, "regulatory.reports")
    # A trade moved to another account is reported from two partitions: per key, any order.
    assert {k: sorted(v) for k, v in again.items()} == {k: sorted(v) for k, v in original.items()}
