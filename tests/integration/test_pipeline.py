"""The core pipeline end to end on the real broker: simulator input, three service
processes, every output read read_committed and equal to the reference model.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import (
    Pacer,
    ServiceProcess,
    caught_up,
    committed_offsets,
    restarted,
    wait_assigned,
    wait_for,
)
from tests.support.pipeline import (
    check_outputs,
    pnl_matches,
    prepare,
    produce_trades,
    reference,
    scrape_events,
)
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _progress(kafka: Settings, group: str, topic: str) -> int:
    return sum(o for o in committed_offsets(kafka, group, topic).values() if o > 0)


def _run_pipeline(kafka: Settings, tmp_path: Path, kills: int) -> None:
    prefix = unique("pipe") + "-"
    session = prepare(kafka, prefix, count=50_000, seed=2026)
    expected = reference(session)
    port = free_port_block(1)
    procs = {
        "validator": ServiceProcess(kafka, "validator", prefix, "v1", tmp_path,
                                    "--metrics-port", str(port),
                                    env={"TRADEFLUX_AUTH": "none"}),  # /metrics read plainly
        "positions": ServiceProcess(kafka, "positions", prefix, "p1", tmp_path,
                                    "--static-membership"),
        "pnl": ServiceProcess(kafka, "pnl", prefix, "n1", tmp_path),
    }  # fmt: skip
    try:
        if kills:
            pacer = Pacer(3_000)
            pacer.hold()  # until the services have their partitions: start-up costs no input
            feeder = threading.Thread(
                target=produce_trades, args=(kafka, prefix, session, pacer), daemon=True
            )
            feeder.start()
            wait_assigned(*procs.values())
            pacer.release()
            for _ in range(kills):
                # Kill positions once this incarnation has committed progress, mid-stream.
                before = _progress(kafka, f"{prefix}positions", f"{prefix}trades.enriched")
                wait_for(
                    lambda b=before: _progress(kafka, f"{prefix}positions",
                                               f"{prefix}trades.enriched") > b,
                    60, "positions to make progress",
                )  # fmt: skip
                assert feeder.is_alive(), "the input ended before the kill: feed slower"
                procs["positions"].kill()
                procs["positions"] = restarted(
                    lambda: ServiceProcess(
                        kafka, "positions", prefix, "p1", tmp_path, "--static-membership"
                    ),
                    pacer,
                )
            feeder.join(180)
        else:
            produce_trades(kafka, prefix, session)
        for service, topic in (("validator", "trades.raw"), ("positions", "trades.enriched"),
                               ("pnl", "positions")):  # fmt: skip
            wait_for(lambda s=service, t=topic: caught_up(kafka, f"{prefix}{s}", f"{prefix}{t}"),
                     180, f"{service} to catch up")  # fmt: skip
        wait_for(lambda: pnl_matches(kafka, prefix, expected.pnl), 60, "final P&L")
        events = scrape_events(port)
        for proc in procs.values():
            assert proc.terminate() == 0
    finally:
        for proc in procs.values():
            if proc.alive():
                proc.kill()
    counts = check_outputs(kafka, prefix, session, expected)
    # Count in = count out + count rejected: every raw record is enriched (once, even when
    # an account move emits two events), rejected, or a dropped duplicate.
    assert events["duplicates"] == expected.duplicates
    assert events["enriched"] + counts["rejected"] + events["duplicates"] == len(session.records)
    assert counts["rejected"] > 0 and expected.duplicates > 0


def test_pipeline_outputs_equal_the_reference_model(kafka: Settings, tmp_path: Path) -> None:
    _run_pipeline(kafka, tmp_path, kills=0)


@pytest.mark.fault
def test_pipeline_stays_exact_when_positions_is_sigkilled_twice(
    kafka: Settings, tmp_path: Path
) -> None:
    _run_pipeline(kafka, tmp_path, kills=2)
