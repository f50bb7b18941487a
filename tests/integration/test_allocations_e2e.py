"""Block allocation, confirmation and affirmation end to end: QuickFIX/J in, services as processes.

QuickFIX/J (tests/support/fix_initiator) sends the fills of 16 blocks and their
allocation instructions to ``tradeflux gateway``; the validator, positions, allocation
feed, allocations and confirmations services run as processes. The initiator reads back
the AllocationInstructionAcks and Confirmations, answers some confirmations on time
(by FIX and by HTTP), then the test moves the confirmations' clock past every deadline
(a clock tick stamped after the last one, as the ticker would write it at that time),
and affirms some late. Everything read back read_committed must equal the independent
reference (tests/support/allocation_reference.py, tests/support/reference.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port_block, unique
from tests.integration.test_gateway_fix import GatewayProcess, InitiatorProcess, initiator_jar
from tests.support import allocation_e2e as e2e
from tests.support import allocation_reference as ref
from tests.support.kafka_tools import ServiceProcess, assert_running, wait_assigned, wait_for
from tradeflux.config import Settings
from tradeflux.domain.allocation_clock import to_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]
__all__ = ["initiator_jar"]  # the fixture, shared with the gateway's FIX tests

SERVICES = ("validator", "positions", "allocation-feed", "allocations", "confirmations")
COLUMNS = [
    "msg_type",
    "exec_type",
    "exec_id",
    "exec_ref_id",
    "order_id",
    "cl_ord_id",
    "account",
    "security_id",
    "symbol",
    "side",
    "qty",
    "px",
    "currency",
    "last_mkt",
    "contra",
    "transact_time",
    "alloc_trans_type",
    "ref_alloc_id",
    "allocs",
    "exec_ids",
    "trade_date",
    "text",
]
CURRENCY = {"XTKS": "JPY", "XNYS": "USD", "XETR": "EUR"}


def fix_time(t: dt.datetime) -> str:
    return t.strftime("%Y%m%d-%H:%M:%S.%f")[:-3]


def plan_rows(plan: e2e.Plan, now: dt.datetime) -> list[dict[str, str]]:
    """The initiator's CSV rows: every fill (35=8), then every instruction (35=J)."""
    rows = []
    for f in plan.fills:
        rows.append(
            {
                "msg_type": "8",
                "exec_type": "F",
                "exec_id": f.exec_id,
                "exec_ref_id": "",
                "order_id": "V-" + f.order_id,
                "cl_ord_id": f.order_id,
                "account": f.account,
                "security_id": f.instrument,
                "symbol": f.instrument.split(".")[0],
                "side": "1" if f.side == "BUY" else "2",
                "qty": format(f.quantity, "f"),
                "px": format(f.price, "f"),
                "currency": CURRENCY[f.venue],
                "last_mkt": f.venue,
                "contra": f.counterparty,
                "transact_time": fix_time(f.trade_time),
            }
        )
    for i in plan.instructions:
        rows.append(
            {
                "msg_type": "J",
                "exec_id": i.alloc_id,
                "alloc_trans_type": {"NEW": "0", "REPLACE": "1", "CANCEL": "2"}[i.trans_type],
                "ref_alloc_id": i.ref_alloc_id,
                "cl_ord_id": i.order_id,
                "exec_ids": ";".join(i.exec_ids),
                "side": "1" if i.side == "BUY" else "2",
                "symbol": i.instrument.split(".")[0],
                "security_id": i.instrument,
                "qty": format(i.quantity, "f"),
                "px": format(i.avg_px, "f"),
                "trade_date": i.trade_date.strftime("%Y%m%d"),
                "transact_time": fix_time(now),
                "allocs": ";".join(f"{a}:{format(q, 'f')}" for a, q in i.allocations),
            }
        )
    return [{c: row.get(c, "") for c in COLUMNS} for row in rows]


def write_rows(rows: list[dict[str, str]], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_blocks_are_allocated_confirmed_and_affirmed_from_a_fix_session(
    kafka: Settings, initiator_jar: Path, tmp_path: Path
) -> None:
    prefix = unique("alloc-e2e") + "-"
    e2e.prepare(kafka, prefix)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    plan = e2e.build_plan(16, now, "FX")
    logs = e2e.log_dir(tmp_path)
    services = [
        ServiceProcess(kafka, name, prefix, f"{name}-1", logs, env=e2e.SERVICE_ENV)
        for name in SERVICES
    ]
    base = free_port_block(3)
    gateway = initiator = None

    def alive() -> None:
        assert_running(*services)
        assert gateway is not None and gateway.proc.poll() is None, gateway and gateway.log()

    try:
        wait_assigned(*services)  # before any input: no instruction waits on a slow start
        gateway = GatewayProcess(kafka, prefix, base, base + 2, tmp_path)
        rows = write_rows(plan_rows(plan, now), tmp_path / "plan.csv")
        initiator = InitiatorProcess(initiator_jar, base, rows, 200, tmp_path)
        e2e.wait_all_decided(kafka, prefix, plan, 300, alive)
        # The order without executions waits; a tick after its wait times it out.
        e2e.inject_tick(kafka, prefix, "allocations.in", int(time.time() * 1000) + 61_000)
        wait_for(
            lambda: plan.unknown_block in e2e.decided_acks(kafka, prefix), 120, "the ghost's reject"
        )
        model = e2e.check_outcome(kafka, prefix, plan)
        confirmations = e2e.wait_confirmed(kafka, prefix, model, 300, alive)

        on_time, late, never = e2e.affirmation_plan(model)
        by_http = sorted(on_time)[::2]
        for n, trade_id in enumerate(sorted(on_time)):
            confirm = e2e.confirm_id(model, trade_id)
            status = on_time[trade_id]
            if trade_id in by_http:
                response = httpx.post(
                    f"{gateway.url}/v1/confirmation-acks",
                    json={"confirm_id": confirm, "affirm_status": status},
                    timeout=30,
                )
                assert response.status_code == 202, response.text
            else:
                code = "3" if status == "AFFIRMED" else "2"
                day = confirmations[trade_id].trade_date.strftime("%Y%m%d")
                assert initiator.proc.stdin is not None
                initiator.proc.stdin.write(f"AU {confirm} {code} {day}\n".encode())
                initiator.proc.stdin.flush()
            del n
        e2e.wait_statuses(kafka, prefix, on_time, 180, alive)

        last_deadline = max(c.deadline for c in confirmations.values())
        e2e.inject_tick(kafka, prefix, "confirmations.in", to_ms(last_deadline) + 1000)
        still_open = [t for t in [*late, *never] if t in confirmations]
        still_open += [t for t, s in on_time.items() if s == "REJECTED"]
        e2e.wait_exceptions(kafka, prefix, dict.fromkeys(still_open, 1), 180, alive)
        for trade_id in sorted(late):
            day = confirmations[trade_id].trade_date.strftime("%Y%m%d")
            assert initiator.proc.stdin is not None
            initiator.proc.stdin.write(f"AU {e2e.confirm_id(model, trade_id)} 3 {day}\n".encode())
            initiator.proc.stdin.flush()
        e2e.wait_exceptions(kafka, prefix, dict.fromkeys(late, 2), 180, alive)
        e2e.check_confirmations(kafka, prefix, model, on_time, late)

        want = e2e.expected_positions(plan, model)
        wait_for(
            lambda: not e2e.same_positions(e2e.position_view(kafka, prefix), want),
            180,
            "positions equal to the reference",
        )
        _check_fix_side(initiator.lines(), plan, model)
        assert initiator.stop() == 0
        assert gateway.terminate() == 0
        for proc in services:
            assert proc.terminate() == 0
    finally:
        if initiator is not None:
            initiator.kill()
        if gateway is not None and gateway.proc.poll() is None:
            gateway.kill()
        for proc in services:
            if proc.alive():
                proc.kill()
    print(
        f"\nallocation e2e: {len(plan.fills)} fills, {len(plan.instructions)} instructions, "
        f"{sum(1 for t in model.trades.values() if t.role == 'CHILD')} children, "
        f"{len(on_time)} answered on time, {len(late)} late, {len(never)} never"
    )


def _check_fix_side(lines: list[str], plan: e2e.Plan, model: ref.AllocationModel) -> None:
    """Every J got a "received" 35=P and a decided one; every child's last confirmation came."""
    acks: dict[str, list[str]] = {}
    confirmations: dict[str, list[str]] = {}
    for line in lines:
        words = line.split(" ")
        if words[0] == "ALLOC_ACK":
            acks.setdefault(words[1], []).append(words[2])
        elif words[0] == "CONFIRMATION":
            confirmations.setdefault(words[1], []).append(words[2])
    for alloc_id, n in e2e.expected_ack_count(plan).items():
        statuses = acks.get(alloc_id, [])
        assert statuses.count("3") == n, (alloc_id, statuses)
        decided = [s for s in statuses if s != "3"]
        status, reason = model.acks[alloc_id]
        want = "0" if status == "ACCEPTED" else ("2" if "ACCOUNT" in reason else "1")
        assert decided[-1] == want and len(decided) == n, (alloc_id, statuses)
    for t in model.trades.values():
        if t.role != "CHILD":
            continue
        # A version replaced before its booking was seen is never sent: the next one goes
        # out as NEW (0) if none went before it, else as REPLACE (1); a cancel (2) goes out
        # only for a child that had a confirmation out.
        final = f"{t.trade_id}#{t.version}"
        before = [i for i in confirmations if i.rpartition("#")[0] == t.trade_id and i != final]
        sent = confirmations.get(final, [])
        if t.cancelled:
            assert sent == (["2"] if before else []), (t.trade_id, before, sent)
        else:
            assert sent == (["1"] if before else ["0"]), (t.trade_id, before, sent)
