"""What the allocations service keeps per order (the value of its ``orders`` store).

MessagePack on the changelog; a new field is always optional, so older values decode.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from tradeflux.domain.allocation_events import AllocationInstruction, AllocationStatus
from tradeflux.domain.schemas import EnrichedTrade


class Booking(msgspec.Struct, frozen=True, kw_only=True):
    """A child or offset booking of an allocation, as last sent to ``trades.raw``."""

    account: str
    requested: Decimal  # AllocQty asked (the block quantity for the offset)
    trade_id: str  # "" while never booked
    quantity: Decimal
    version: int  # 0 while never booked
    cancelled: bool = False

    @property
    def live(self) -> bool:
        """Tell whether the booking is on the books (booked and not cancelled)."""
        return self.version > 0 and not self.cancelled


class Chain(msgspec.Struct, frozen=True, kw_only=True):
    """An allocation: the instruction that opened it and its replaces, and what it booked."""

    alloc_id: str  # the AllocID that opened it
    last: AllocationInstruction  # the latest accepted instruction of the chain
    status: AllocationStatus
    exec_keys: tuple[str, ...]  # account|trade_id of the block's executions, in order
    quantity: Decimal
    avg_px: Decimal
    trade_time: dt.datetime
    children: tuple[Booking, ...]
    offset: Booking
    replaces: int = 0
    block_changed: bool = False
    updated_at: dt.datetime


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """An instruction waiting to be decided; ``since_ms`` its record timestamp."""

    instruction: AllocationInstruction
    since_ms: int
    announced: bool = False  # its PENDING ack went out


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything of one order: its executions, its allocations, the instructions waiting.

    ``executions``: the latest event per ``account|trade_id`` (a CANCEL kept, holding its
    version). ``accepted``: every AllocID accepted, with its instruction (resends and
    reused AllocIDs are told apart by it).
    """

    order_id: str
    executions: dict[str, EnrichedTrade] = {}
    chains: tuple[Chain, ...] = ()
    accepted: dict[str, AllocationInstruction] = {}
    pending: tuple[Pending, ...] = ()
