"""The allocations, allocation feed and confirmations processors, driven without a broker."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import Any

import msgspec

from tests.support.allocation_fixtures import (
    ACCOUNTS,
    FILLS,
    SPLIT,
    T0,
    T0_MS,
    TOYOTA,
    execution,
    instruction,
)
from tradeflux import topics
from tradeflux.domain.allocation_clock import ClockTick, to_ms
from tradeflux.domain.allocation_events import BlockExecution
from tradeflux.domain.confirmation_deadlines import AffirmationRule, AffirmationRules
from tradeflux.domain.confirmation_events import (
    ChildAllocated,
    ChildBooked,
    ConfirmationAck,
)
from tradeflux.domain.schemas import AllocationRef, EnrichedTrade, TradeEvent
from tradeflux.services import allocation_feed, allocations, confirmations
from tradeflux.stream.harness import Output, TestDriver
from tradeflux.stream.topology import Service

D = Decimal
TABLES = {"instruments": {TOYOTA.instrument_id: TOYOTA}, "accounts": ACCOUNTS}
S = 1000  # ms
CONFIRMATIONS = topics.CONFIRMATIONS.name


def by_topic(outputs: list[Output], topic: str) -> list[Any]:
    return [o.value for o in outputs if o.topic == topic]


def alloc_driver() -> TestDriver:
    return TestDriver(allocations.SERVICE, TABLES)


def allocation_records() -> list[tuple[str, Any]]:
    return [("ORD-1", BlockExecution(trade=f)) for f in FILLS] + [
        ("ORD-1", instruction("AL-1", SPLIT))
    ]


def test_the_allocations_service_books_children_acks_and_records_the_allocation() -> None:
    out = alloc_driver().send(allocation_records(), timestamp_ms=T0_MS + 10 * S)
    raw: list[TradeEvent] = by_topic(out, topics.RAW.name)
    assert [(t.account, t.quantity, t.allocation.role if t.allocation else None) for t in raw] == [
        ("CL-A", D(300), "CHILD"),
        ("CL-B", D(300), "CHILD"),
        ("CL-C", D(200), "CHILD"),
        ("CL-D", D(100), "CHILD"),
        ("HOUSE-1", D(900), "OFFSET"),
    ]
    assert [o.key for o in out if o.topic == topics.RAW.name] == [t.trade_id for t in raw]
    children: list[ChildAllocated] = by_topic(out, topics.CONFIRMATIONS_IN.name)
    assert [c.event for c in children] == raw[:4]
    assert {(c.mic, c.trade_date, c.alloc_id) for c in children} == {
        ("XTKS", dt.date(2026, 11, 24), "AL-1")
    }
    [ack] = by_topic(out, topics.ALLOCATION_ACKS.name)
    assert (ack.alloc_id, ack.status) == ("AL-1", "ACCEPTED")
    [status] = [o for o in out if o.topic == topics.ALLOCATIONS.name]
    assert status.key == "ORD-1:20261124|AL-1"


def test_allocations_decide_alike_record_by_record_and_in_one_batch() -> None:
    records = [
        ("ORD-1", instruction("AL-1", SPLIT)),  # waits for its fills
        *[("ORD-1", BlockExecution(trade=f)) for f in FILLS],
        ("ORD-1", instruction("AL-2", {"CL-A": "900"}, trans_type="REPLACE", ref_alloc_id="AL-1")),
    ]
    one_batch = alloc_driver().send(records, timestamp_ms=T0_MS + 10 * S)
    driver = alloc_driver()
    one_by_one = [o for r in records for o in driver.send([r], timestamp_ms=T0_MS + 10 * S)]
    assert one_batch == one_by_one
    assert [a.status for a in by_topic(one_batch, topics.ALLOCATION_ACKS.name)] == [
        "PENDING",
        "ACCEPTED",
        "ACCEPTED",
    ]


def test_a_clock_tick_times_out_an_instruction_whose_block_never_comes() -> None:
    driver = alloc_driver()
    driver.send([("ORD-9", instruction("AL-1", SPLIT, order_id="ORD-9"))], timestamp_ms=T0_MS)
    quiet = driver.send([(None, ClockTick())], timestamp_ms=T0_MS + allocations.WAIT_MS - 1)
    assert by_topic(quiet, topics.ALLOCATION_ACKS.name) == []
    out = driver.send([(None, ClockTick())], timestamp_ms=T0_MS + allocations.WAIT_MS)
    [ack] = by_topic(out, topics.ALLOCATION_ACKS.name)
    assert (ack.status, ack.reason) == ("REJECTED", "UNKNOWN_BLOCK")
    assert driver.store("clock")["clock"].due == ()


def test_the_allocation_feed_keys_executions_by_order_and_children_by_trade_id() -> None:
    driver = TestDriver(allocation_feed.SERVICE)
    child = msgspec.structs.replace(
        execution("ORD-1:20261124/AL-1/CL-A", "300", "2502.333333", account="CL-A"),
        allocation=AllocationRef(block_id="ORD-1:20261124", alloc_id="AL-1", role="CHILD"),
    )
    offset = msgspec.structs.replace(
        child,
        trade_id="X/OFFSET",
        allocation=msgspec.structs.replace(child.allocation, role="OFFSET"),
    )
    plain = msgspec.structs.replace(FILLS[1], trade_id="P1", order_id="")
    moved = msgspec.structs.replace(FILLS[0], event_type="AMEND", version=2, order_id="ORD-2")
    out = driver.send([(e.account, e) for e in (FILLS[0], child, offset, plain, moved)])
    assert [(o.topic, o.key, o.value.trade.event_type) for o in out] == [
        (topics.ALLOCATIONS_IN.name, "ORD-1", "NEW"),
        (topics.CONFIRMATIONS_IN.name, child.trade_id, "NEW"),
        (topics.ALLOCATIONS_IN.name, "ORD-1", "CANCEL"),  # the amend left ORD-1 ...
        (topics.ALLOCATIONS_IN.name, "ORD-2", "NEW"),  # ... for ORD-2
    ]
    assert [o.value.trade.version for o in out[2:]] == [2, 2]


# -- confirmations -------------------------------------------------------------------------

RULES = AffirmationRules(by_mic={}, default=AffirmationRule(delay=dt.timedelta(seconds=60)))
CONFIRM = Service(
    **{
        **confirmations.SERVICE.__dict__,
        "process": functools.partial(confirmations.confirm, rules=RULES),
    }
)


def allocated(
    account: str, version: int = 1, event_type: str = "NEW", qty: str = "300"
) -> ChildAllocated:
    trade_id = f"ORD-1:20261124/AL-1/{account}"
    event = TradeEvent(
        event_type=event_type,  # type: ignore[arg-type]
        trade_id=trade_id,
        version=version,
        account=account,
        instrument=TOYOTA.instrument_id,
        side="BUY",
        quantity=D(qty),
        price=D("2502.333333"),
        currency="JPY",
        venue="XTKS",
        counterparty="BRK-1",
        trade_time=T0,
        source="allocation",
        ingest_time=T0,
        order_id="ORD-1",
        allocation=AllocationRef(block_id="ORD-1:20261124", alloc_id="AL-1", role="CHILD"),
    )
    return ChildAllocated(
        event=event, block_id="ORD-1:20261124", alloc_id="AL-1", mic="XTKS",
        trade_date=dt.date(2026, 11, 24), session="FIX.4.4:TRADEFLUX->DROPCOPY",
    )  # fmt: skip


def booked(msg: ChildAllocated) -> ChildBooked:
    e = msg.event
    trade: EnrichedTrade = msgspec.structs.replace(
        execution(e.trade_id, str(e.quantity), str(e.price), account=e.account, version=e.version,
                  event_type=e.event_type),
        allocation=e.allocation, trade_time=T0,
    )  # fmt: skip
    return ChildBooked(trade=trade)


def ack(trade_id: str, status: str = "AFFIRMED", version: int = 1) -> ConfirmationAck:
    return ConfirmationAck(confirm_id=f"{trade_id}#{version}", affirm_status=status)  # type: ignore[arg-type]


def test_a_confirmation_goes_pending_confirmed_affirmed_and_late_ones_raise_once() -> None:
    driver = TestDriver(CONFIRM)
    a, b, c = allocated("CL-A"), allocated("CL-B"), allocated("CL-C")
    out = driver.send([(m.event.trade_id, m) for m in (a, b, c)], timestamp_ms=T0_MS)
    assert [(x.status, x.issue) for x in by_topic(out, topics.CONFIRMATIONS.name)] == [
        ("PENDING", ""),
    ] * 3
    out = driver.send([(m.event.trade_id, booked(m)) for m in (a, b, c)], timestamp_ms=T0_MS + S)
    issued = by_topic(out, topics.CONFIRMATIONS.name)
    assert [(x.status, x.issue, x.gross_amount) for x in issued] == [
        ("CONFIRMED", "NEW", D(300) * D("2502.333333"))
    ] * 3
    assert issued[0].deadline == T0 + dt.timedelta(seconds=60)
    out = driver.send([(a.event.trade_id, ack(a.event.trade_id))], timestamp_ms=T0_MS + 30 * S)
    assert [x.status for x in by_topic(out, topics.CONFIRMATIONS.name)] == ["AFFIRMED"]
    # The deadline passes on a tick: B and C are unaffirmed; one exception each.
    assert driver.send([(None, ClockTick())], timestamp_ms=T0_MS + 60 * S) == []
    out = driver.send([(None, ClockTick())], timestamp_ms=T0_MS + 60 * S + 1)
    raised = by_topic(out, topics.AFFIRMATION_EXCEPTIONS.name)
    assert [(x.trade_id[-4:], x.kind, x.status) for x in raised] == [
        ("CL-B", "UNAFFIRMED", "CONFIRMED"),
        ("CL-C", "UNAFFIRMED", "CONFIRMED"),
    ]
    assert driver.send([(None, ClockTick())], timestamp_ms=T0_MS + 90 * S) == []
    # B affirmed late: cleared once; C stays open.
    out = driver.send([(b.event.trade_id, ack(b.event.trade_id))], timestamp_ms=T0_MS + 95 * S)
    [cleared] = by_topic(out, topics.AFFIRMATION_EXCEPTIONS.name)
    assert (cleared.kind, cleared.resolution, cleared.late_ms) == ("CLEARED", "AFFIRMED", 35_000)


def test_acks_that_answer_no_open_confirmation_are_dead_lettered_with_a_reason() -> None:
    driver = TestDriver(CONFIRM)
    a = allocated("CL-A")
    driver.send([(a.event.trade_id, a)], timestamp_ms=T0_MS)
    out = driver.send(
        [
            (a.event.trade_id, ack(a.event.trade_id)),  # not issued: not on the books yet
            ("nobody", ack("nobody")),
            ("x", ConfirmationAck(confirm_id="no-version", affirm_status="AFFIRMED")),
        ],
        timestamp_ms=T0_MS + S,
    )
    assert [o.headers["tf.reason"] for o in out] == [
        "CONFIRMATION_NOT_ISSUED",
        "UNKNOWN_CONFIRMATION",
        "BAD_CONFIRM_ID",
    ]
    driver.send([(a.event.trade_id, booked(a))], timestamp_ms=T0_MS + 2 * S)
    amended = allocated("CL-A", version=2, event_type="AMEND", qty="400")
    driver.send([(a.event.trade_id, amended)], timestamp_ms=T0_MS + 3 * S)
    out = driver.send([(a.event.trade_id, ack(a.event.trade_id))], timestamp_ms=T0_MS + 4 * S)
    assert [o.headers["tf.reason"] for o in out] == ["STALE_CONFIRMATION"]


def test_a_replaced_child_needs_a_new_affirmation_and_a_cancel_clears_its_exception() -> None:
    driver = TestDriver(CONFIRM)
    a = allocated("CL-A")
    driver.send([(a.event.trade_id, a), (a.event.trade_id, booked(a))], timestamp_ms=T0_MS)
    driver.send([(a.event.trade_id, ack(a.event.trade_id))], timestamp_ms=T0_MS + S)
    amended = allocated("CL-A", version=2, event_type="AMEND", qty="400")
    out = driver.send([(a.event.trade_id, amended), (a.event.trade_id, booked(amended))],
                      timestamp_ms=T0_MS + 2 * S)  # fmt: skip
    assert [(x.confirm_id[-2:], x.status, x.issue) for x in by_topic(out, CONFIRMATIONS)] == [
        ("#2", "PENDING", ""),
        ("#2", "CONFIRMED", "REPLACE"),
    ]
    out = driver.send([(None, ClockTick())], timestamp_ms=T0_MS + 61 * S)
    assert [x.kind for x in by_topic(out, topics.AFFIRMATION_EXCEPTIONS.name)] == ["UNAFFIRMED"]
    cancel = allocated("CL-A", version=3, event_type="CANCEL", qty="400")
    out = driver.send([(a.event.trade_id, cancel)], timestamp_ms=T0_MS + 70 * S)
    assert [(x.status, x.issue) for x in by_topic(out, topics.CONFIRMATIONS.name)] == [
        ("CANCELLED", "CANCEL")
    ]
    [cleared] = by_topic(out, topics.AFFIRMATION_EXCEPTIONS.name)
    assert (cleared.kind, cleared.resolution) == ("CLEARED", "CANCELLED")


def test_a_child_allocated_after_its_deadline_raises_its_exception_at_once() -> None:
    driver = TestDriver(CONFIRM)
    driver.send([(None, ClockTick())], timestamp_ms=T0_MS + 120 * S)
    a = allocated("CL-A")
    out = driver.send([(a.event.trade_id, a)], timestamp_ms=T0_MS + 121 * S)
    assert [x.kind for x in by_topic(out, topics.AFFIRMATION_EXCEPTIONS.name)] == ["UNAFFIRMED"]
    assert to_ms(by_topic(out, topics.AFFIRMATION_EXCEPTIONS.name)[0].at) == T0_MS + 121 * S


def test_the_validator_books_a_child_at_its_off_tick_average_price_and_keeps_its_origin() -> None:
    from tradeflux.domain.schemas import Counterparty
    from tradeflux.services import validator

    cpty = Counterparty(counterparty_id="BRK-1", lei="5299007W3X0B5CI8IV57", name="Broker")
    driver = TestDriver(validator.SERVICE, {**TABLES, "counterparties": {"BRK-1": cpty}})
    child = allocated("CL-A").event
    plain = msgspec.structs.replace(child, trade_id="T-PLAIN", allocation=None, order_id="")
    out = driver.send(
        [(t.trade_id, msgspec.json.encode(t)) for t in (child, plain)], timestamp_ms=T0_MS + 10 * S
    )
    enriched, rejected = out
    assert enriched.value.price == D("2502.333333") and enriched.value.order_id == "ORD-1"
    assert enriched.value.allocation == child.allocation
    assert rejected.headers["tf.reason"] == "OFF_TICK"  # the same price on a plain trade
