"""Allocation feed: ``trades.enriched`` re-keyed for the allocations and confirmations services.

Both post-trade services need the validated trades under another key than the
account: the allocations service an order's executions under the order id (its
blocks), the confirmations service an allocated child's bookings under the child's
trade id. This service reads every enriched event and sends:

- an execution of an order (``order_id`` set, not an allocation booking) to
  ``allocations.in`` as a ``BlockExecution``, keyed by its order id;
- a child an allocation booked (``allocation.role`` CHILD) to ``confirmations.in`` as a
  ``ChildBooked``, keyed by its trade id;
- nothing for the rest (counted ``passed``).

An execution's order id is its key downstream, so an AMEND that names another order
becomes, as the validator does for account moves, a CANCEL under the old order and a
NEW under the new one (the amend's version). State: the order id of every live
execution (``account|trade_id``, in the account's partition).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tradeflux import topics
from tradeflux.domain.allocation_events import BlockExecution
from tradeflux.domain.confirmation_events import ChildBooked
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

ALLOCATIONS_IN = topics.ALLOCATIONS_IN.name
CONFIRMATIONS_IN = topics.CONFIRMATIONS_IN.name


def feed(ctx: Context, records: Sequence[Record]) -> None:
    """Send each execution to its order and each booked child to its confirmation."""
    orders = ctx.store("orders")
    for record in records:
        event: EnrichedTrade = record.value
        if event.allocation is not None:
            if event.allocation.role == "CHILD":
                ctx.emit(CONFIRMATIONS_IN, event.trade_id, ChildBooked(trade=event), cause=record)
                ctx.count("children")
            else:
                ctx.count("passed")
            continue
        key = f"{event.account}|{event.trade_id}"
        before = orders.get(key)
        if not event.order_id and before is None:
            ctx.count("passed")
            continue
        if before is not None and before != event.order_id:
            moved = msgspec.structs.replace(event, event_type="CANCEL", order_id=before)
            ctx.emit(ALLOCATIONS_IN, before, BlockExecution(trade=moved), cause=record)
            ctx.count("order_moves")
            if event.event_type == "AMEND":
                event = msgspec.structs.replace(event, event_type="NEW")
        if event.order_id:
            ctx.emit(ALLOCATIONS_IN, event.order_id, BlockExecution(trade=event), cause=record)
            ctx.count("executions")
        if event.event_type == "CANCEL" or not event.order_id:
            orders.delete(key)
        else:
            orders.put(key, event.order_id)


SERVICE = Service(
    name="allocation-feed",
    inputs=[topics.ENRICHED.topic()],
    outputs=[topics.ALLOCATIONS_IN.topic(), topics.CONFIRMATIONS_IN.topic()],
    stores=[StoreSpec("orders", MsgpackCodec(str))],
    process=feed,
    dead_letter_topic=topics.REJECTED.name,
)
