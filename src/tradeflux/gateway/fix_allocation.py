"""FIX 4.4 allocation and confirmation messages to and from our structs (pure code).

In: AllocationInstruction (35=J) → :class:`AllocationInstruction`, ConfirmationAck
(35=AU) → :class:`ConfirmationAck`. Out: :class:`AllocationAck` → AllocationInstructionAck
(35=P), :class:`Confirmation` → Confirmation (35=AK). The engine adapter
(``gateway.fix``) hands over the fields of a validated message as :class:`PostTradeFields`
and turns an :class:`OutboundMessage` into a QuickFIX message.

35=J fields: AllocID(70); AllocTransType(71) 0 new, 1 replace, 2 cancel; RefAllocID(72);
AllocType(626); the block's order from NoOrders(73): ClOrdID(11), else OrderID(37), one
order only; NoExecs(124)/ExecID(17) narrows the block to those executions; Side(54);
SecurityID(48), else Symbol(55); Quantity(53); AvgPx(6); AvgPxPrecision(74);
TradeDate(75); NoAllocs(78): AllocAccount(79), AllocQty(80); Text(58). A J that names no
order is refused (a block is found by its order).

35=AU: ConfirmID(664) (the ``trade_id#version`` of the confirmation answered),
AffirmStatus(940) 1 received, 2 rejected, 3 affirmed, ConfirmRejReason(774), Text(58).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from tradeflux.domain.allocation_codes import ACCOUNT_LEVEL, FIX_REJ_CODES
from tradeflux.domain.allocation_events import (
    AllocationAck,
    AllocationEntry,
    AllocationInstruction,
    AllocTransType,
)
from tradeflux.domain.confirmation_events import AffirmStatus, Confirmation, ConfirmationAck
from tradeflux.domain.schemas import Side
from tradeflux.gateway.fix_mapping import FixMappingError

# Tags (FIX 4.4)
AVG_PX = 6
CL_ORD_ID = 11
CURRENCY = 15
EXEC_ID = 17
SECURITY_ID_SOURCE = 22
LAST_MKT = 30
ORDER_ID = 37
SIDE = 54
SYMBOL = 55
TEXT = 58
TRANSACT_TIME = 60
SETTL_DATE = 64
ALLOC_ID = 70
ALLOC_TRANS_TYPE = 71
REF_ALLOC_ID = 72
NO_ORDERS = 73
AVG_PX_PRECISION = 74
TRADE_DATE = 75
NO_ALLOCS = 78
ALLOC_ACCOUNT = 79
ALLOC_QTY = 80
ALLOC_STATUS = 87
ALLOC_REJ_CODE = 88
SECURITY_ID = 48
QUANTITY = 53
NET_MONEY = 118
NO_EXECS = 124
GROSS_TRADE_AMT = 381
INDIVIDUAL_ALLOC_ID = 467
ORDER_CAPACITY = 528
ALLOC_TYPE = 626
CONFIRM_ID = 664
CONFIRM_STATUS = 665
CONFIRM_TRANS_TYPE = 666
CONFIRM_REF_ID = 772
CONFIRM_TYPE = 773
CONFIRM_REJ_REASON = 774
NO_LEGS = 555
NO_UNDERLYINGS = 711
NO_CAPACITIES = 862
ORDER_CAPACITY_QTY = 863
AFFIRM_STATUS = 940

J_BODY_TAGS = (
    ALLOC_ID, ALLOC_TRANS_TYPE, REF_ALLOC_ID, ALLOC_TYPE, SIDE, SYMBOL, SECURITY_ID, QUANTITY,
    AVG_PX, AVG_PX_PRECISION, TRADE_DATE, TEXT,
)  # fmt: skip
J_GROUPS = {
    NO_ORDERS: (CL_ORD_ID, ORDER_ID),
    NO_EXECS: (EXEC_ID,),
    NO_ALLOCS: (ALLOC_ACCOUNT, ALLOC_QTY),
}
AU_BODY_TAGS = (CONFIRM_ID, AFFIRM_STATUS, CONFIRM_REJ_REASON, TEXT, TRADE_DATE)

_TRANS_TYPES: dict[str, AllocTransType] = {"0": "NEW", "1": "REPLACE", "2": "CANCEL"}
_AFFIRM: dict[str, AffirmStatus] = {"1": "RECEIVED", "2": "REJECTED", "3": "AFFIRMED"}
_SIDES: dict[str, Side] = {
    "1": "BUY",
    "3": "BUY",
    "2": "SELL",
    "4": "SELL",
    "5": "SELL",
    "6": "SELL",
}
_CONFIRM_TRANS = {"NEW": "0", "REPLACE": "1", "CANCEL": "2"}


@dataclass(frozen=True)
class PostTradeFields:
    """What the mapping needs of a 35=J or 35=AU: body fields and repeating groups.

    ``groups`` maps a NoXxx tag to its entries, each a mapping of the entry's fields.
    """

    msg_type: str
    fields: Mapping[int, str]
    groups: Mapping[int, Sequence[Mapping[int, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundMessage:
    """A message to send: its type, body fields in order and repeating groups."""

    msg_type: str
    fields: list[tuple[int, str]]
    groups: list[tuple[int, list[list[tuple[int, str]]]]] = field(default_factory=list)


def to_allocation_instruction(
    msg: PostTradeFields, received_at: dt.datetime, session: str, source: str = "fix"
) -> AllocationInstruction:
    """Map a 35=J to an instruction; raise FixMappingError when it cannot be one."""
    f = msg.fields
    alloc_id = _required(f, ALLOC_ID)
    trans_type = _TRANS_TYPES.get(f.get(ALLOC_TRANS_TYPE, "0"))
    if trans_type is None:
        raise FixMappingError(ALLOC_TRANS_TYPE, "value", "AllocTransType must be 0, 1 or 2")
    orders = [o.get(CL_ORD_ID) or o.get(ORDER_ID, "") for o in msg.groups.get(NO_ORDERS, ())]
    orders = list(dict.fromkeys(o for o in orders if o))
    if len(orders) != 1:
        raise FixMappingError(
            NO_ORDERS, "missing", "name the block's one order in NoOrders(73)/ClOrdID(11)"
        )
    if trans_type != "NEW" and not f.get(REF_ALLOC_ID):
        raise FixMappingError(REF_ALLOC_ID, "missing", "a replace or cancel needs RefAllocID(72)")
    side_code = f.get(SIDE, "")
    side = _SIDES.get(side_code)
    if side_code and side is None:
        raise FixMappingError(SIDE, "value", f"side {side_code} is neither a buy nor a sell")
    allocations = tuple(
        AllocationEntry(account=_required(a, ALLOC_ACCOUNT), quantity=_decimal(a, ALLOC_QTY))
        for a in msg.groups.get(NO_ALLOCS, ())
    )
    return AllocationInstruction(
        alloc_id=alloc_id,
        trans_type=trans_type,
        ref_alloc_id=f.get(REF_ALLOC_ID, ""),
        alloc_type=_int(f, ALLOC_TYPE) or 1,
        order_id=orders[0],
        trade_date=_local_date(f, TRADE_DATE),
        exec_ids=tuple(e[EXEC_ID] for e in msg.groups.get(NO_EXECS, ()) if e.get(EXEC_ID)),
        side=side,
        instrument=f.get(SECURITY_ID) or f.get(SYMBOL, ""),
        quantity=_decimal(f, QUANTITY) if QUANTITY in f else None,
        avg_px=_decimal(f, AVG_PX) if AVG_PX in f else None,
        avg_px_precision=_int(f, AVG_PX_PRECISION),
        allocations=allocations,
        text=f.get(TEXT, ""),
        source=source,
        session=session,
        received_at=received_at,
    )


def to_confirmation_ack(
    msg: PostTradeFields, received_at: dt.datetime, session: str, source: str = "fix"
) -> ConfirmationAck:
    """Map a 35=AU to a ConfirmationAck; raise FixMappingError when it cannot be one."""
    f = msg.fields
    status = _AFFIRM.get(f.get(AFFIRM_STATUS, ""))
    if status is None:
        raise FixMappingError(AFFIRM_STATUS, "value", "AffirmStatus must be 1, 2 or 3")
    return ConfirmationAck(
        confirm_id=_required(f, CONFIRM_ID),
        affirm_status=status,
        reason=f.get(CONFIRM_REJ_REASON, ""),
        text=f.get(TEXT, ""),
        source=source,
        session=session,
        received_at=received_at,
    )


def received_ack(ins: AllocationInstruction, now: dt.datetime) -> OutboundMessage:
    """Return the 35=P that says an instruction is in Kafka (AllocStatus 3, received)."""
    return OutboundMessage(
        "P",
        [
            (ALLOC_ID, ins.alloc_id),
            (TRADE_DATE, f"{ins.trade_date:%Y%m%d}"),
            (TRANSACT_TIME, utc_timestamp(now)),
            (ALLOC_STATUS, "3"),
        ],
    )


def allocation_ack_message(ack: AllocationAck) -> OutboundMessage | None:
    """Return the 35=P of a decided instruction (None for a PENDING one: nothing to say)."""
    if ack.status == "PENDING":
        return None
    fields = [
        (ALLOC_ID, ack.alloc_id),
        (TRADE_DATE, f"{ack.trade_date:%Y%m%d}"),
        (TRANSACT_TIME, utc_timestamp(ack.at)),
    ]
    if ack.status == "ACCEPTED":
        fields.append((ALLOC_STATUS, "0"))
    else:
        fields.append((ALLOC_STATUS, "2" if ack.reason in ACCOUNT_LEVEL else "1"))
        fields.append((ALLOC_REJ_CODE, str(FIX_REJ_CODES.get(ack.reason, 7))))
        fields.append((TEXT, f"{ack.reason}: {ack.detail}"[:200]))
    groups = []
    if ack.children:
        entries = [
            [(ALLOC_ACCOUNT, c.account), (INDIVIDUAL_ALLOC_ID, c.trade_id)]
            for c in ack.children
            if c.trade_id
        ]
        if entries:
            groups.append((NO_ALLOCS, entries))
    return OutboundMessage("P", fields, groups)


def confirmation_message(c: Confirmation) -> OutboundMessage | None:
    """Return the 35=AK a confirmation revision issues, or None if it issues none."""
    if not c.issue:
        return None
    fields = [(CONFIRM_ID, c.confirm_id)]
    if c.ref_confirm_id and c.issue != "NEW":
        fields.append((CONFIRM_REF_ID, c.ref_confirm_id))
    fields += [
        (CONFIRM_TRANS_TYPE, _CONFIRM_TRANS[c.issue]),
        (CONFIRM_TYPE, "2"),  # confirmation
        (CONFIRM_STATUS, "4"),  # confirmed
        (ALLOC_ID, c.alloc_id),
        (INDIVIDUAL_ALLOC_ID, c.trade_id),
        (TRANSACT_TIME, utc_timestamp(c.updated_at)),
        (TRADE_DATE, f"{c.trade_date:%Y%m%d}"),
        (SYMBOL, c.symbol or c.instrument),
    ]
    if c.isin:
        fields += [(SECURITY_ID, c.isin), (SECURITY_ID_SOURCE, "4")]  # ISIN
    # UndInstrmtGrp and InstrmtLegGrp are required components of a 35=AK: QuickFIX/J
    # insists on their counts, so they go out as empty groups.
    fields += [(NO_UNDERLYINGS, "0"), (NO_LEGS, "0")]
    fields += [
        (ALLOC_QTY, _text(c.quantity)),
        (SIDE, "1" if c.side == "BUY" else "2"),
        (CURRENCY, c.currency),
        (LAST_MKT, c.mic),
        (ALLOC_ACCOUNT, c.account),
        (AVG_PX, _text(c.avg_px)),
        (GROSS_TRADE_AMT, _text(c.gross_amount if c.gross_amount is not None else Decimal(0))),
        (NET_MONEY, _text(c.net_money if c.net_money is not None else Decimal(0))),
    ]
    if c.settlement_date is not None:
        fields.append((SETTL_DATE, f"{c.settlement_date:%Y%m%d}"))
    capacity = [[(ORDER_CAPACITY, "A"), (ORDER_CAPACITY_QTY, _text(c.quantity))]]  # agency
    return OutboundMessage("AK", fields, [(NO_CAPACITIES, capacity)])


def utc_timestamp(t: dt.datetime) -> str:
    """Return a FIX UTCTimestamp with milliseconds (``YYYYMMDD-HH:MM:SS.sss``)."""
    u = t.astimezone(dt.UTC)
    return f"{u:%Y%m%d-%H:%M:%S}.{u.microsecond // 1000:03d}"


def _text(value: Decimal) -> str:
    return format(value, "f")


def _required(fields: Mapping[int, str], tag: int) -> str:
    value = fields.get(tag, "")
    if not value:
        raise FixMappingError(tag, "missing", "required")
    return value


def _decimal(fields: Mapping[int, str], tag: int) -> Decimal:
    raw = _required(fields, tag)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise FixMappingError(tag, "value", f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise FixMappingError(tag, "value", f"{raw!r} is not a finite number")
    return value


def _int(fields: Mapping[int, str], tag: int) -> int | None:
    raw = fields.get(tag)
    if raw is None:
        return None
    if not raw.isdigit():
        raise FixMappingError(tag, "value", f"{raw!r} is not a whole number")
    return int(raw)


def _local_date(fields: Mapping[int, str], tag: int) -> dt.date:
    raw = _required(fields, tag)
    try:
        return dt.datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        raise FixMappingError(tag, "value", f"{raw!r} is not a LocalMktDate YYYYMMDD") from None
