"""Allocations: ``allocations.in`` → child trades on ``trades.raw``, acks and allocations of record.

The input is keyed by the block's order id, so an order's instructions (gateway) and
executions (allocation feed, from ``trades.enriched``) meet in one partition, with the
ticker's clock ticks. State there: each order's executions, allocations and waiting
instructions (``orders``, domain/allocation_book.py), and the partition's stream time
with the deadlines of the instructions that wait (``clock``). Time is stream time,
moved record by record: every decision depends only on the partition's records in
offset order, so a replay into fresh groups books the same children, byte for byte.

An instruction that needs executions not seen yet waits up to
``TRADEFLUX_ALLOCATION_WAIT_SECONDS`` (default 60) of stream time, then is rejected.
Rules: docs/domain-rules.md, "Block allocation".
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec

from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.allocation_book import OrderBook
from tradeflux.domain.allocation_checks import RefView
from tradeflux.domain.allocation_clock import ClockTick
from tradeflux.domain.allocation_events import (
    AllocationInstruction,
    BlockExecution,
    allocation_key,
)
from tradeflux.domain.allocation_state import OrderState
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.topology import Service, StoreSpec

RAW = topics.RAW.name
CONFIRMATIONS_IN = topics.CONFIRMATIONS_IN.name
ACKS = topics.ALLOCATION_ACKS.name
STATUS = topics.ALLOCATIONS.name
CLOCK = "clock"  # the one key of the clock store

log = logging.getLogger("tradeflux.services.allocations")


def wait_ms(settings: Settings) -> int:
    """Return how long an instruction waits for its fills (``allocation_wait_seconds``), ms."""
    return settings.allocation_wait_seconds * 1000


class AllocationClock(msgspec.Struct, frozen=True, kw_only=True):
    """A partition's stream time, and when each order's first waiting instruction times out."""

    stream_time_ms: int = -1
    due: tuple[tuple[int, str], ...] = ()  # (timeout ms, order id), sorted


def allocate(ctx: Context, records: Sequence[Record], wait: int) -> None:
    """Apply each record to its order in offset order; time moves first, then the record."""
    orders = ctx.store("orders")
    clocks = ctx.store("clock")
    clock: AllocationClock = clocks.get(CLOCK) or AllocationClock()
    refdata = RefView(instruments=ctx.table("instruments"), accounts=ctx.table("accounts"))
    for record in records:
        now_ms = max(clock.stream_time_ms, record.timestamp_ms)
        clock = msgspec.structs.replace(clock, stream_time_ms=now_ms)
        while clock.due and clock.due[0][0] <= now_ms:
            order_id = clock.due[0][1]
            book = OrderBook(orders.get(order_id) or OrderState(order_id=order_id), refdata, wait)
            book.drain(now_ms)
            clock = _finish(ctx, orders, clock, book, wait)
        value = record.value
        if isinstance(value, ClockTick):
            ctx.count("ticks")
            continue
        if isinstance(value, BlockExecution):
            order_id = value.trade.order_id
            if not order_id or value.trade.allocation is not None:
                ctx.reject(record, "NOT_A_BLOCK_EXECUTION", "an execution needs an order id")
                continue
        else:
            assert isinstance(value, AllocationInstruction)  # noqa: S101 - the topic's union
            order_id = value.order_id
        book = OrderBook(orders.get(order_id) or OrderState(order_id=order_id), refdata, wait)
        if isinstance(value, BlockExecution):
            book.apply_execution(value.trade)
        else:
            book.receive(value, now_ms)
            ctx.count("instructions")
        book.drain(now_ms)
        clock = _finish(ctx, orders, clock, book, wait)
    clocks.put(CLOCK, clock)


def _finish(
    ctx: Context, orders: StorePartition, clock: AllocationClock, book: OrderBook, wait: int
) -> AllocationClock:
    """Send what the book decided, keep its state and the timeout of what still waits."""
    effects = book.effects
    for event in effects.trades:
        ctx.emit(RAW, event.trade_id, event)
    for child in effects.children:
        ctx.emit(CONFIRMATIONS_IN, child.event.trade_id, child)
    for allocation in effects.allocations:
        ctx.emit(STATUS, allocation_key(allocation.block_id, allocation.alloc_id), allocation)
    for ack in effects.acks:
        ctx.emit(ACKS, ack.alloc_id, ack)
    for name, n in effects.counts.items():
        ctx.count(name, n)
    state = book.state
    orders.put(state.order_id, state)
    due = tuple(d for d in clock.due if d[1] != state.order_id)
    since = book.waiting_since()
    if since is not None:
        due = tuple(sorted((*due, (since + wait, state.order_id))))
    return msgspec.structs.replace(clock, due=due)


def build(settings: Settings | None = None) -> Service:
    """Return the allocations service; instructions wait ``allocation_wait_seconds``."""
    wait = wait_ms(settings or Settings())

    def process(ctx: Context, records: Sequence[Record]) -> None:
        allocate(ctx, records, wait)

    return Service(
        name="allocations",
        inputs=[topics.ALLOCATIONS_IN.topic()],
        outputs=[
            topics.RAW.topic(),
            topics.CONFIRMATIONS_IN.topic(),
            topics.ALLOCATIONS.topic(),
            topics.ALLOCATION_ACKS.topic(),
        ],
        stores=[
            StoreSpec("orders", MsgpackCodec(OrderState)),
            StoreSpec("clock", MsgpackCodec(AllocationClock)),
        ],
        global_tables=[
            topics.INSTRUMENTS.table("instruments"),
            topics.ACCOUNTS.table("accounts"),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()  # the defaults; `tradeflux run allocations` builds from Settings
WAIT_MS = wait_ms(Settings())
