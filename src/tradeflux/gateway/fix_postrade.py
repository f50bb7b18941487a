"""QuickFIX adapter of the post-trade messages: 35=J and 35=AU in, 35=P and 35=AK out.

The mapping itself is pure (``fix_allocation``); here the fields of a validated QuickFIX
message are read into :class:`~tradeflux.gateway.fix_allocation.PostTradeFields`, the
record each message becomes is encoded for its topic, and an
:class:`~tradeflux.gateway.fix_allocation.OutboundMessage` is built as a QuickFIX message
(typed groups, so each entry's fields go out in the dictionary's order).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import quickfix as fix  # type: ignore[import-untyped]
import quickfix44 as fix44  # type: ignore[import-untyped]

from tradeflux import topics
from tradeflux.domain.allocation_events import AllocationInstruction
from tradeflux.domain.confirmation_events import parse_confirm_id
from tradeflux.gateway.fix_allocation import (
    AU_BODY_TAGS,
    J_BODY_TAGS,
    J_GROUPS,
    NO_ALLOCS,
    NO_CAPACITIES,
    NO_EXECS,
    NO_ORDERS,
    OutboundMessage,
    PostTradeFields,
    to_allocation_instruction,
    to_confirmation_ack,
)

POST_TRADE_TYPES = frozenset({"J", "AU"})
"""The message types this module maps in (AllocationInstruction, ConfirmationAck)."""

_J_GROUP_TYPES = {
    NO_ORDERS: fix44.AllocationInstruction.NoOrders,
    NO_EXECS: fix44.AllocationInstruction.NoExecs,
    NO_ALLOCS: fix44.AllocationInstruction.NoAllocs,
}
_OUT_TYPES = {"P": fix44.AllocationInstructionAck, "AK": fix44.Confirmation}
_OUT_GROUPS = {
    ("P", NO_ALLOCS): fix44.AllocationInstructionAck.NoAllocs,
    ("AK", NO_CAPACITIES): fix44.Confirmation.NoCapacities,
}
_ALLOCATIONS_IN = topics.ALLOCATIONS_IN.codec()
_CONFIRMATIONS_IN = topics.CONFIRMATIONS_IN.codec()


@dataclass(frozen=True)
class PostTradeRecord:
    """What a 35=J or 35=AU becomes: a record for its topic (unprefixed), and the instruction."""

    topic: str
    key: str
    value: bytes
    instruction: AllocationInstruction | None  # a J's, answered at once with "received"


def _get(fields: Any, tag: int) -> str | None:
    return str(fields.getField(tag)) if fields.isSetField(tag) else None


def post_trade_fields(message: Any, msg_type: str) -> PostTradeFields:
    """Read the body fields and groups the mapping needs of a validated 35=J or 35=AU."""
    tags = J_BODY_TAGS if msg_type == "J" else AU_BODY_TAGS
    body = {tag: value for tag in tags if (value := _get(message, tag)) is not None}
    groups: dict[int, list[dict[int, str]]] = {}
    if msg_type == "J":
        for group_tag, entry_tags in J_GROUPS.items():
            entries = []
            for i in range(1, int(message.groupCount(group_tag)) + 1):
                group = _J_GROUP_TYPES[group_tag]()
                message.getGroup(i, group)
                entries.append({t: v for t in entry_tags if (v := _get(group, t)) is not None})
            groups[group_tag] = entries
    return PostTradeFields(msg_type, body, groups)


def post_trade_record(
    message: Any, msg_type: str, received_at: dt.datetime, session: str
) -> PostTradeRecord:
    """Map a 35=J or 35=AU to its record; raise FixMappingError when it cannot be mapped."""
    fields = post_trade_fields(message, msg_type)
    if msg_type == "J":
        ins = to_allocation_instruction(fields, received_at, session)
        return PostTradeRecord(
            topics.ALLOCATIONS_IN.name, ins.order_id, _ALLOCATIONS_IN.encode(ins), ins
        )
    ack = to_confirmation_ack(fields, received_at, session)
    parsed = parse_confirm_id(ack.confirm_id)
    key = parsed[0] if parsed is not None else ack.confirm_id
    return PostTradeRecord(topics.CONFIRMATIONS_IN.name, key, _CONFIRMATIONS_IN.encode(ack), None)


def build_message(out: OutboundMessage) -> Any:
    """Return the QuickFIX message of ``out`` (header filled in by the session)."""
    message = _OUT_TYPES[out.msg_type]()
    for tag, value in out.fields:
        message.setField(fix.StringField(tag, value))
    for group_tag, entries in out.groups:
        for entry in entries:
            group = _OUT_GROUPS[(out.msg_type, group_tag)]()
            for tag, value in entry:
                group.setField(fix.StringField(tag, value))
            message.addGroup(group)
    return message
