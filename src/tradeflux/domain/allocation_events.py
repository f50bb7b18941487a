"""What crosses the allocation topics: instructions and executions in, allocations and acks out.

``allocations.in`` is keyed by the block's order id (ClOrdID) and carries a union of
three kinds, told apart by the ``kind`` field: an :class:`AllocationInstruction` (FIX
35=J or ``POST /v1/allocations``, written by the gateway), a :class:`BlockExecution`
(an enriched execution of the order, written by the allocation feed) and a
:class:`~tradeflux.domain.allocation_clock.ClockTick` (written by the ticker, so that a
quiet partition's time moves on). Out: :class:`Allocation` (the allocation of record,
compacted, one per block and allocation), :class:`AllocationAck` (one or two per
instruction: the answer FIX 35=P carries) and the child trades on ``trades.raw``.
Rules: docs/domain-rules.md, "Block allocation".
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal, TypeAlias

import msgspec

from tradeflux.domain.allocation_clock import ClockTick
from tradeflux.domain.schemas import EnrichedTrade, Side

AllocTransType = Literal["NEW", "REPLACE", "CANCEL"]
AllocationStatus = Literal["ACCEPTED", "CANCELLED"]
AckStatus = Literal["PENDING", "ACCEPTED", "REJECTED"]

DEFAULT_AVG_PX_PRECISION = 6
"""Decimal places of a block's average price when the instruction gives no AvgPxPrecision(74)."""
SUPPORTED_ALLOC_TYPES = frozenset({1, 2, 5})
"""AllocType(626) values we book: 1 calculated, 2 preliminary, 5 ready-to-book single order."""


class AllocationEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One account of an instruction's NoAllocs(78): AllocAccount(79) and AllocQty(80)."""

    account: str
    quantity: Decimal


class AllocationInstruction(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                            tag="instruction"):  # fmt: skip
    """An AllocationInstruction (FIX 4.4 35=J): split a block among accounts, or replace/cancel.

    ``order_id`` is the block's order (NoOrders/ClOrdID); ``exec_ids`` (NoExecs/ExecID)
    narrow the block to those executions of it, else the block is every live execution of
    the order on ``trade_date``. ``quantity`` (53) and ``avg_px`` (6) are the sender's
    figures of the block; ``allocations`` its accounts and quantities. A REPLACE or CANCEL
    names the AllocID it replaces in ``ref_alloc_id`` (72). ``session`` is the FIX session
    to answer on ("" over HTTP); ``received_at`` when the gateway took it (not compared
    when a resend is told from a new instruction).
    """

    alloc_id: str
    trans_type: AllocTransType = "NEW"
    ref_alloc_id: str = ""
    alloc_type: int = 1
    order_id: str
    trade_date: dt.date
    exec_ids: tuple[str, ...] = ()
    side: Side | None = None
    instrument: str = ""  # instrument id, ISIN or symbol
    quantity: Decimal | None = None
    avg_px: Decimal | None = None
    avg_px_precision: int | None = None
    allocations: tuple[AllocationEntry, ...] = ()
    text: str = ""
    source: str = "http"
    session: str = ""
    received_at: dt.datetime | None = None


class BlockExecution(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                     tag="execution"):  # fmt: skip
    """An enriched execution of an order, re-keyed by its order id (services/allocation_feed)."""

    trade: EnrichedTrade


AllocationInput: TypeAlias = AllocationInstruction | BlockExecution | ClockTick
"""A value of ``allocations.in``."""


class AllocatedChild(msgspec.Struct, frozen=True, kw_only=True):
    """One account of an allocation: what was asked, what was booked, and the child trade.

    ``quantity`` is the requested quantity rounded to whole lots plus any residual lot
    (the residual rule); 0 books no child (``trade_id`` "" if it never had one).
    """

    account: str
    requested: Decimal
    quantity: Decimal
    trade_id: str
    version: int
    cancelled: bool = False


class Allocation(msgspec.Struct, frozen=True, kw_only=True):
    """The allocation of record of a block; keyed ``block_id|alloc_id`` on ``allocations.status``.

    ``alloc_id`` is the AllocID that opened it, ``last_alloc_id`` the latest accepted
    instruction (a replace). Children are at ``avg_px``; ``offset_trade_id`` is the booking
    that closes the block out of its house ``account``. ``block_changed``: an execution of
    the block was amended or cancelled after it was allocated (replace the allocation to
    re-book). ``updated_at`` is the stream time of the change.
    """

    block_id: str
    order_id: str
    alloc_id: str
    last_alloc_id: str
    status: AllocationStatus
    trade_date: dt.date
    account: str
    instrument: str
    side: Side
    currency: str
    quantity: Decimal
    avg_px: Decimal
    executions: tuple[str, ...]
    children: tuple[AllocatedChild, ...]
    offset_trade_id: str
    block_changed: bool = False
    replaces: int = 0
    source: str = ""
    session: str = ""
    text: str = ""
    updated_at: dt.datetime


class AllocationAck(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to one instruction; keyed by its AllocID on ``allocations.acks``.

    ``PENDING``: it waits for its block's executions (docs/domain-rules.md); then one
    ``ACCEPTED`` or ``REJECTED`` (with ``reason``, a stable code, and ``detail``) follows.
    ``allocation_id`` names the allocation an accepted instruction opened or changed.
    """

    alloc_id: str
    trans_type: AllocTransType
    ref_alloc_id: str = ""
    order_id: str
    trade_date: dt.date
    block_id: str
    status: AckStatus
    reason: str = ""
    detail: str = ""
    allocation_id: str = ""
    children: tuple[AllocatedChild, ...] = ()
    source: str = ""
    session: str = ""
    at: dt.datetime


def block_id_of(order_id: str, trade_date: dt.date) -> str:
    """Return the id of the block of ``order_id`` on ``trade_date`` (``ORDER:YYYYMMDD``)."""
    return f"{order_id}:{trade_date:%Y%m%d}"


def allocation_key(block_id: str, alloc_id: str) -> str:
    """Return the key of an allocation on ``allocations.status``."""
    return f"{block_id}|{alloc_id}"
