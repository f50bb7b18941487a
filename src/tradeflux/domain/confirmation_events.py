"""What crosses the confirmation topics: children and affirmations in, confirmations out.

``confirmations.in`` is keyed by the child trade id and carries a union told apart by
``kind``: :class:`ChildAllocated` (the allocations service booked, amended or cancelled
a child), :class:`ChildBooked` (the validator accepted that booking: it is on the books,
from ``trades.enriched`` through the allocation feed), :class:`ConfirmationAck` (FIX
35=AU or ``POST /v1/confirmation-acks``: the client affirms or rejects) and
:class:`~tradeflux.domain.allocation_clock.ClockTick`. Out: :class:`Confirmation` per
child (compacted; the gateway sends those that ``issue`` something as FIX 35=AK) and
:class:`AffirmationException` records. Rules: docs/domain-rules.md, "Confirmation and
affirmation".
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Literal, TypeAlias

import msgspec

from tradeflux.domain.allocation_clock import ClockTick
from tradeflux.domain.schemas import EnrichedTrade, Side, TradeEvent

ConfirmationStatus = Literal["PENDING", "CONFIRMED", "AFFIRMED", "REJECTED", "CANCELLED"]
AffirmStatus = Literal["RECEIVED", "REJECTED", "AFFIRMED"]
Issue = Literal["", "NEW", "REPLACE", "CANCEL"]
ExceptionKind = Literal["UNAFFIRMED", "CLEARED"]
Resolution = Literal["", "AFFIRMED", "CANCELLED"]


class ChildAllocated(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                     tag="allocated"):  # fmt: skip
    """A child trade event the allocations service sent to ``trades.raw``.

    ``alloc_id`` is the instruction that booked this version, ``mic`` the instrument's
    market (its affirmation rule) and ``trade_date`` the block's; ``session`` the FIX
    session the allocation came on ("" for HTTP).
    """

    event: TradeEvent
    block_id: str
    alloc_id: str
    mic: str
    trade_date: dt.date
    session: str = ""


class ChildBooked(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="booked"):
    """A child's event as the validator accepted it (from ``trades.enriched``)."""

    trade: EnrichedTrade


class ConfirmationAck(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="ack"):
    """The client's answer to a confirmation (FIX 35=AU ConfirmationAck).

    ``confirm_id`` names the confirmation answered (``trade_id#version``);
    ``affirm_status`` is AffirmStatus(940): 1 received, 2 rejected, 3 affirmed.
    """

    confirm_id: str
    affirm_status: AffirmStatus
    reason: str = ""  # ConfirmRejReason(774) or a text, for a rejection
    text: str = ""
    source: str = "http"
    session: str = ""
    received_at: dt.datetime | None = None


ConfirmationInput: TypeAlias = ChildAllocated | ChildBooked | ConfirmationAck | ClockTick
"""A value of ``confirmations.in``."""


class Confirmation(msgspec.Struct, frozen=True, kw_only=True):
    """The confirmation of one allocated child; keyed by the child trade id on ``confirmations``.

    ``status``: PENDING (allocated, not on the books yet), CONFIRMED (booked; the
    confirmation went out), AFFIRMED / REJECTED (the client's answer), CANCELLED.
    ``issue`` says which confirmation message this revision sends (FIX 35=AK
    ConfirmTransType new/replace/cancel), "" when it sends none. Economics are the
    booked child's: ``gross_amount = quantity × avg_px × multiplier`` (no fees, so
    ``net_money`` equals it). ``deadline`` is when it must be affirmed (UTC).
    """

    confirm_id: str
    trade_id: str
    version: int
    status: ConfirmationStatus
    issue: Issue = ""
    ref_confirm_id: str = ""  # the confirmation a REPLACE or CANCEL replaces (last sent)
    block_id: str
    alloc_id: str
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    avg_px: Decimal
    currency: str
    counterparty: str
    mic: str
    trade_date: dt.date
    trade_time: dt.datetime
    deadline: dt.datetime
    isin: str = ""
    symbol: str = ""
    gross_amount: Decimal | None = None
    net_money: Decimal | None = None
    settlement_date: dt.date | None = None
    counterparty_lei: str = ""
    affirmed_at: dt.datetime | None = None
    reject_reason: str = ""
    session: str = ""
    updated_at: dt.datetime


class AffirmationException(msgspec.Struct, frozen=True, kw_only=True):
    """A child unaffirmed at its deadline, or the clearing of that; keyed by child trade id.

    ``UNAFFIRMED``: raised once, when stream time passed ``deadline`` and the child was
    not affirmed (``status`` then). ``CLEARED``: once, when it was affirmed late
    (``resolution`` AFFIRMED, ``late_ms`` after the deadline) or cancelled.
    """

    trade_id: str
    confirm_id: str
    kind: ExceptionKind
    status: ConfirmationStatus
    resolution: Resolution = ""
    deadline: dt.datetime
    at: dt.datetime
    late_ms: int = 0
    account: str
    block_id: str
    alloc_id: str
    instrument: str
    mic: str
    trade_date: dt.date


class ConfirmationRejectReason(enum.StrEnum):
    """Why the confirmations service dead-lettered a ConfirmationAck (``tf.reason``)."""

    UNKNOWN_CONFIRMATION = "UNKNOWN_CONFIRMATION"  # no child of that trade id
    STALE_CONFIRMATION = "STALE_CONFIRMATION"  # the child has a later version
    CONFIRMATION_NOT_ISSUED = "CONFIRMATION_NOT_ISSUED"  # still PENDING: nothing to answer
    CONFIRMATION_CANCELLED = "CONFIRMATION_CANCELLED"  # the child was cancelled
    BAD_CONFIRM_ID = "BAD_CONFIRM_ID"  # not trade_id#version


def confirm_id_of(trade_id: str, version: int) -> str:
    """Return the ConfirmID of a child version (``trade_id#version``)."""
    return f"{trade_id}#{version}"


def parse_confirm_id(confirm_id: str) -> tuple[str, int] | None:
    """Return ``(trade_id, version)`` of a ConfirmID, or None if it is not one."""
    trade_id, sep, version = confirm_id.rpartition("#")
    if not sep or not trade_id or not version.isdigit():
        return None
    return trade_id, int(version)
