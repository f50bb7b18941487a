"""The end-to-end plan through the processors in memory agrees with the independent reference.

The same plan the broker tests send (tests/support/allocation_e2e.py), fed through the
validator, the allocation feed and the allocations service with TestDriver, instructions
before and after their fills: the allocations of record and the acks must equal what
tests/support/allocation_reference.py computes. A fast check of the two models before the
slow runs compare them on the real broker.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from tests.support import allocation_e2e as e2e
from tradeflux import topics
from tradeflux.domain.allocation_clock import ClockTick, to_ms
from tradeflux.domain.allocation_events import Allocation, AllocationAck
from tradeflux.domain.refdata import refdata_key
from tradeflux.services import allocation_feed, allocations, validator
from tradeflux.stream.harness import TestDriver

NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def _tables() -> dict[str, dict[str, Any]]:
    instruments, accounts, counterparties = e2e.refdata()
    return {
        "instruments": {refdata_key(i): i for i in instruments},
        "accounts": {refdata_key(a): a for a in accounts},
        "counterparties": {refdata_key(c): c for c in counterparties},
    }


@pytest.mark.parametrize("instructions_first", [False, True])
def test_the_plan_through_the_processors_equals_the_reference(instructions_first: bool) -> None:
    plan = e2e.build_plan(16, NOW, "UT")
    tables = _tables()
    now_ms = to_ms(NOW)
    enriched = TestDriver(validator.SERVICE, tables).send(
        [(f.exec_id, msgspec.json.encode(e2e.fill_event(f))) for f in plan.fills],
        timestamp_ms=now_ms,
    )
    assert {o.topic for o in enriched} == {topics.ENRICHED.name}
    executions = TestDriver(allocation_feed.SERVICE).send(
        [(o.key, o.value) for o in enriched], timestamp_ms=now_ms
    )
    instructions = [(i.order_id, e2e.instruction_struct(i)) for i in plan.instructions]
    fills = [(o.key, o.value) for o in executions]
    driver = TestDriver(allocations.SERVICE, tables)
    batches = [instructions, fills] if instructions_first else [fills, instructions]
    out = [o for batch in batches for o in driver.send(batch, timestamp_ms=now_ms)]
    out += driver.send([(None, ClockTick())], timestamp_ms=now_ms + allocations.WAIT_MS)

    model = e2e.reference_model(plan)
    acks: dict[str, AllocationAck] = {}
    status: dict[str, Allocation] = {}
    for o in out:
        if o.topic == topics.ALLOCATION_ACKS.name and o.value.status != "PENDING":
            acks[o.key] = o.value
        elif o.topic == topics.ALLOCATIONS.name:
            status[o.key] = o.value
    assert {a: (x.status, x.reason) for a, x in acks.items()} == model.acks
    assert set(status) == set(model.chains)
    for key, chain in model.chains.items():
        got = status[key]
        assert (got.status, got.quantity, got.avg_px, got.executions) == (
            chain.status,
            chain.quantity,
            chain.avg_px,
            chain.exec_ids,
        ), key
        assert [(c.account, c.quantity, c.version, c.cancelled) for c in got.children] == [
            (c.account, c.quantity, c.version, c.cancelled) for c in chain.children.values()
        ], key
    raw = [o.value for o in out if o.topic == topics.RAW.name]
    last = {e.trade_id: e for e in raw}
    assert {t: (e.version, e.event_type == "CANCEL") for t, e in last.items()} == {
        t: (x.version, x.cancelled) for t, x in model.trades.items()
    }
