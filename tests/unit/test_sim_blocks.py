"""Simulated blocks: the services book them and accept every affirmation the simulator sends."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import msgspec

from tests.support import allocation_e2e as e2e
from tradeflux import topics
from tradeflux.domain.allocation_clock import to_ms
from tradeflux.domain.refdata import refdata_key
from tradeflux.services import allocation_feed, allocations, confirmations, validator
from tradeflux.sim.blocks import BlockFlow, Scheduled
from tradeflux.sim.market import MarketModel
from tradeflux.sim.producer import SimulationPlan, run_simulation
from tradeflux.sim.refdata import SimRefData
from tradeflux.stream.harness import TestDriver

START = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def _flow(seed: int = 3) -> BlockFlow:
    instruments, accounts, counterparties = e2e.refdata()
    market = MarketModel(instruments, {a.base_currency for a in accounts}, (), start=START, seed=1)
    active = [c.counterparty_id for c in counterparties if c.active]
    return BlockFlow(instruments, accounts, active, market, seed=seed, id_prefix="S")


def _blocks(flow: BlockFlow, n: int) -> list[Scheduled]:
    records = []
    for k in range(n):
        records += flow.block(START + dt.timedelta(seconds=3 * k))
    return sorted(records)


def test_the_same_seed_gives_the_same_blocks() -> None:
    assert _blocks(_flow(), 20) == _blocks(_flow(), 20)
    assert _blocks(_flow(), 20) != _blocks(_flow(seed=4), 20)


def test_simulated_blocks_are_booked_and_their_affirmations_all_answer_a_confirmation() -> None:
    instruments, accounts, counterparties = e2e.refdata()
    tables: dict[str, Any] = {
        "instruments": {refdata_key(i): i for i in instruments},
        "accounts": {refdata_key(a): a for a in accounts},
        "counterparties": {refdata_key(c): c for c in counterparties},
    }
    records = _blocks(_flow(), 80)
    kinds = Counter(r.kind for r in records)
    assert kinds["allocation"] > 60 and kinds["affirmation"] > 100
    assert {"replace", "cancel", "rejected_allocation"} <= set(kinds)
    check = TestDriver(validator.SERVICE, tables)
    feed = TestDriver(allocation_feed.SERVICE)
    alloc = TestDriver(allocations.SERVICE, tables)
    confirm = TestDriver(confirmations.SERVICE)
    acks: Counter[str] = Counter()
    dead: list[str] = []
    statuses: dict[str, str] = {}

    def through(outputs: list[Any], at: int) -> None:
        """Run outputs of one stage through the next ones, as the topics would."""
        for o in outputs:
            if o.topic == topics.RAW.name:
                through(check.send([(o.key, msgspec.json.encode(o.value))], timestamp_ms=at), at)
            elif o.topic == topics.ENRICHED.name:
                through(feed.send([(o.key, o.value)], timestamp_ms=at), at)
            elif o.topic == topics.ALLOCATIONS_IN.name:
                through(alloc.send([(o.key, o.value)], timestamp_ms=at), at)
            elif o.topic == topics.CONFIRMATIONS_IN.name:
                through(confirm.send([(o.key, o.value)], timestamp_ms=at), at)
            elif o.topic == topics.ALLOCATION_ACKS.name:
                acks[o.value.status] += 1
            elif o.topic == topics.CONFIRMATIONS.name:
                statuses[o.key] = o.value.status
            elif o.topic == topics.REJECTED.name:
                dead.append(o.headers["tf.reason"])

    for r in records:
        at = to_ms(r.due)
        if r.topic == topics.RAW.name:
            through(check.send([(r.key.decode(), r.value)], timestamp_ms=at), at)
        elif r.topic == topics.ALLOCATIONS_IN.name:
            through(alloc.send([(r.key.decode(), r.value)], timestamp_ms=at), at)
        else:
            through(confirm.send([(r.key.decode(), r.value)], timestamp_ms=at), at)
    assert dead == []  # every affirmation answers an issued confirmation, at its version
    assert acks["REJECTED"] == kinds["rejected_allocation"]
    assert acks["ACCEPTED"] == kinds["allocation"] + kinds["replace"] + kinds["cancel"]
    answered = Counter(statuses.values())
    assert answered["AFFIRMED"] > 0.7 * len(statuses) and answered["REJECTED"] > 0


def test_run_simulation_sends_blocks_to_the_post_trade_topics() -> None:
    instruments, accounts, counterparties = e2e.refdata()
    refdata = SimRefData(tuple(instruments), tuple(accounts), tuple(counterparties))
    plan = SimulationPlan(rate_per_s=50, duration_s=3, seed=1, block_rate_per_s=20)

    class Sink:
        delivered = failed = 0
        last_error = None

        def __init__(self) -> None:
            self.topics: Counter[str] = Counter()

        def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
            self.topics[topic] += 1
            self.delivered += 1

        def poll(self) -> None:
            pass

        def flush(self, timeout_s: float) -> int:
            return 0

    sink = Sink()
    report = run_simulation(refdata, plan, sink)
    assert sink.topics["allocations.in"] > 0
    assert report.post_trade == sum(n for k, n in report.counts.items() if k.startswith("block:"))
    assert report.unacknowledged == 0
