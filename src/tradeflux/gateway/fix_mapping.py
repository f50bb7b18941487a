"""FIX 4.4 drop-copy messages to TradeEvents: ExecutionReport (35=8) and TradeCaptureReport (35=AE).

Pure code: the engine adapter (``gateway.fix``) hands over the fields of a message that
the engine has already validated against its FIX44 dictionary, as a :class:`FixFields`.

Which message is which event:

- ExecutionReport, ExecType(150) ``F`` trade → NEW of trade ExecID(17); ``G`` trade correct
  → AMEND of trade ExecRefID(19); ``H`` trade cancel → CANCEL of trade ExecRefID(19).
  ExecRefID names the ExecID of the *original fill* (the trade id), also for a second
  correction. Other ExecTypes (order acks, order cancels, restatements) are no trades
  and are acknowledged without an event.
- TradeCaptureReport, TradeReportTransType(487) ``0`` (or absent) new → NEW of trade
  TradeReportID(571); ``2`` replace → AMEND and ``1`` cancel / ``4`` reverse → CANCEL of
  trade TradeReportRefID(572), the TradeReportID of the original report. ``3`` release
  is no trade. The first NoSides(552) entry is the reporting (our) side: Side, Account,
  Currency and Parties come from it.

Fields: account Account(1); instrument SecurityID(48), else Symbol(55); order ClOrdID(11)
(empty when not sent; the key of the order's block for allocation); side Side(54)
(1, 3 buy; 2, 4, 5, 6 sell); quantity LastQty(32); price LastPx(31); currency
Currency(15); venue LastMkt(30) (empty when not sent); counterparty the PartyID(448)
whose PartyRole(452) is 17, contra firm; trade time TransactTime(60).

Versions (the validator applies versions in order and drops an equal one as a
duplicate): a NEW is version 1. An AMEND or CANCEL gets

    version = (milliseconds since 1970 of OrigSendingTime(122) if PossDupFlag(43)=Y,
               else of SendingTime(52)) << 20 | (MsgSeqNum(34) mod 2**20)

It depends on the message alone, so it is the same when the sender resends the message
after a gateway crash (PossDupFlag=Y keeps the original MsgSeqNum and carries the
original sending time as OrigSendingTime): the resent event is a duplicate the
validator drops. It grows with every later message of the session (the sending time
does; within one millisecond the sequence number does), and across restarts of the
gateway and daily sequence resets, where a counter in memory or the sequence number
alone would not. It assumes the sender's clock does not step back between two
corrections of one trade. It fits in 63 bits until the year 2248.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tradeflux.domain.bounds import (
    NotionalBounds,
    event_form_problems,
    notional_problem,
    time_problem,
)
from tradeflux.domain.schemas import EventType, Side, TradeEvent

SEQ_BITS = 20
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)
CONTRA_FIRM = 17  # PartyRole(452)

# Tags (FIX 4.4)
ACCOUNT = 1
CL_ORD_ID = 11
EXEC_ID = 17
EXEC_REF_ID = 19
CURRENCY = 15
LAST_MKT = 30
LAST_PX = 31
LAST_QTY = 32
SIDE = 54
SYMBOL = 55
SECURITY_ID = 48
TRANSACT_TIME = 60
EXEC_TYPE = 150
TRADE_REPORT_ID = 571
TRADE_REPORT_REF_ID = 572
TRADE_REPORT_TRANS_TYPE = 487
PARTY_ID = 448

# What the mapping reads of a message body; of a TradeCaptureReport, SIDE_TAGS (and the
# Parties) come from its first NoSides entry.
BODY_TAGS = (
    ACCOUNT, CURRENCY, EXEC_ID, EXEC_REF_ID, LAST_MKT, LAST_PX, LAST_QTY, SECURITY_ID, SIDE,
    SYMBOL, TRANSACT_TIME, EXEC_TYPE, TRADE_REPORT_TRANS_TYPE, TRADE_REPORT_ID,
    TRADE_REPORT_REF_ID, CL_ORD_ID,
)  # fmt: skip
SIDE_TAGS = (ACCOUNT, CURRENCY, SIDE, CL_ORD_ID)

_EXEC_TYPES: dict[str, EventType] = {"F": "NEW", "G": "AMEND", "H": "CANCEL"}
_TRADE_REPORT_TRANS_TYPES: dict[str, EventType] = {
    "0": "NEW",
    "1": "CANCEL",
    "2": "AMEND",
    "4": "CANCEL",
}
_SIDES: dict[str, Side] = {
    "1": "BUY",
    "3": "BUY",
    "2": "SELL",
    "4": "SELL",
    "5": "SELL",
    "6": "SELL",
}


class FixMappingError(ValueError):
    """A valid FIX message that is no valid trade: a field is ``missing`` or has a bad ``value``.

    The engine answers the sender with a (business message) reject naming ``tag``.
    """

    def __init__(self, tag: int, kind: str, reason: str) -> None:
        super().__init__(f"tag {tag}: {reason}")
        self.tag = tag
        self.kind = kind  # "missing" or "value"
        self.reason = reason


@dataclass(frozen=True)
class FixFields:
    """What the mapping needs of one FIX application message.

    ``fields`` holds the body fields (for a TradeCaptureReport, those of its first side
    too); ``parties`` the (PartyID, PartyRole) pairs of its Parties; ``sent_at`` the
    original sending time (OrigSendingTime of a resend, else SendingTime).
    """

    msg_type: str
    seq_num: int
    sent_at: dt.datetime
    fields: Mapping[int, str]
    parties: tuple[tuple[str, int], ...] = ()
    poss_dup: bool = False


def change_version(sent_at: dt.datetime, seq_num: int) -> int:
    """Return the version of an AMEND or CANCEL sent at ``sent_at`` as message ``seq_num``."""
    ms = (sent_at - _EPOCH) // _ONE_MS
    return (ms << SEQ_BITS) | (seq_num & ((1 << SEQ_BITS) - 1))


def parse_utc_timestamp(text: str) -> dt.datetime:
    """Parse a FIX UTCTimestamp ``YYYYMMDD-HH:MM:SS[.fff[fff[fff]]]`` into an aware datetime.

    Digits beyond microseconds are cut off (Python's datetime stops there).
    """
    try:
        date_part, time_part = text.split("-")
        whole, _, fraction = time_part.partition(".")
        hour, minute, second = (int(x) for x in whole.split(":"))
        micros = int((fraction + "000000")[:6]) if fraction else 0
        if fraction and not fraction.isdigit():
            raise ValueError(text)
        return dt.datetime(
            int(date_part[:4]),
            int(date_part[4:6]),
            int(date_part[6:8]),
            hour,
            minute,
            second,
            micros,
            tzinfo=dt.UTC,
        )
    except ValueError:
        raise ValueError(f"not a UTCTimestamp: {text!r}") from None


_TAG_OF_FIELD = {
    "account": ACCOUNT, "instrument": SECURITY_ID, "quantity": LAST_QTY, "price": LAST_PX,
    "currency": CURRENCY, "venue": LAST_MKT, "counterparty": PARTY_ID,
    "trade_time": TRANSACT_TIME, "notional": LAST_QTY, "version": 34,
}  # fmt: skip
_DEFAULT_NOTIONAL_BOUNDS = NotionalBounds()


def to_trade_event(
    msg: FixFields,
    received_at: dt.datetime,
    source: str = "fix",
    notional_bounds: NotionalBounds = _DEFAULT_NOTIONAL_BOUNDS,
) -> TradeEvent | None:
    """Map a drop-copy message to its TradeEvent, or None when it reports no trade.

    Raises FixMappingError when a NEW or AMEND lacks a field a trade needs, or a value
    cannot be a trade's, or breaks its bound (domain/bounds.py, as the validator checks
    it; for the notional, LastQty * LastPx). A CANCEL needs only the id of the trade it
    cancels.
    """
    event = _to_trade_event(msg, received_at, source)
    if event is None:
        return None
    problems = event_form_problems(event)
    if event.event_type != "CANCEL":
        problems += filter(None, [time_problem("trade_time", event.trade_time, received_at)])
    if not problems and event.event_type != "CANCEL":
        one = Decimal(1)
        size = notional_problem(event.currency, event.quantity, event.price, one, notional_bounds)
        problems += filter(None, [size])
    if problems:
        first = problems[0]
        id_tag = EXEC_ID if msg.msg_type == "8" else TRADE_REPORT_ID
        if event.event_type != "NEW":
            id_tag = EXEC_REF_ID if msg.msg_type == "8" else TRADE_REPORT_REF_ID
        tag = _TAG_OF_FIELD.get(first.field, id_tag)
        raise FixMappingError(tag, "value", f"{first.message} (bound: {first.bound})")
    return event


def _to_trade_event(msg: FixFields, received_at: dt.datetime, source: str) -> TradeEvent | None:
    """Map the message without the bounds (see :func:`to_trade_event`)."""
    if msg.msg_type == "8":
        exec_type = msg.fields.get(EXEC_TYPE, "")
        event_type = _EXEC_TYPES.get(exec_type)
        if event_type is None:
            return None
        id_tag = EXEC_ID if event_type == "NEW" else EXEC_REF_ID
    elif msg.msg_type == "AE":
        trans_type = msg.fields.get(TRADE_REPORT_TRANS_TYPE, "0")
        event_type = _TRADE_REPORT_TRANS_TYPES.get(trans_type)
        if event_type is None:
            return None
        id_tag = TRADE_REPORT_ID if event_type == "NEW" else TRADE_REPORT_REF_ID
    else:
        raise FixMappingError(35, "value", f"message type {msg.msg_type} carries no trade")
    trade_id = _required(msg, id_tag)
    version = 1 if event_type == "NEW" else change_version(msg.sent_at, msg.seq_num)
    if event_type == "CANCEL":
        return _cancel_event(msg, trade_id, version, received_at, source)
    return TradeEvent(
        event_type=event_type,
        trade_id=trade_id,
        version=version,
        account=_required(msg, ACCOUNT),
        instrument=_instrument(msg, required=True),
        side=_side(msg),
        quantity=_decimal(msg, LAST_QTY),
        price=_decimal(msg, LAST_PX),
        currency=_required(msg, CURRENCY),
        venue=msg.fields.get(LAST_MKT, ""),
        counterparty=_counterparty(msg, required=True),
        trade_time=_timestamp(msg, TRANSACT_TIME),
        source=source,
        ingest_time=received_at,
        order_id=msg.fields.get(CL_ORD_ID, ""),
    )


def _cancel_event(
    msg: FixFields, trade_id: str, version: int, received_at: dt.datetime, source: str
) -> TradeEvent:
    """Return a CANCEL with what the message says of the trade (the validator uses only the id)."""
    fields = msg.fields
    return TradeEvent(
        event_type="CANCEL",
        trade_id=trade_id,
        version=version,
        account=fields.get(ACCOUNT, ""),
        instrument=_instrument(msg, required=False),
        side=_SIDES.get(fields.get(SIDE, ""), "BUY"),
        quantity=_decimal(msg, LAST_QTY) if LAST_QTY in fields else Decimal(0),
        price=_decimal(msg, LAST_PX) if LAST_PX in fields else Decimal(0),
        currency=fields.get(CURRENCY, ""),
        venue=fields.get(LAST_MKT, ""),
        counterparty=_counterparty(msg, required=False),
        trade_time=_timestamp(msg, TRANSACT_TIME) if TRANSACT_TIME in fields else msg.sent_at,
        source=source,
        ingest_time=received_at,
        order_id=fields.get(CL_ORD_ID, ""),
    )


def _required(msg: FixFields, tag: int) -> str:
    value = msg.fields.get(tag, "")
    if not value:
        raise FixMappingError(tag, "missing", "required for a trade")
    return value


def _instrument(msg: FixFields, required: bool) -> str:
    value = msg.fields.get(SECURITY_ID) or msg.fields.get(SYMBOL, "")
    if required and not value:
        raise FixMappingError(SYMBOL, "missing", "a trade needs SecurityID(48) or Symbol(55)")
    return value


def _side(msg: FixFields) -> Side:
    raw = _required(msg, SIDE)
    side = _SIDES.get(raw)
    if side is None:
        raise FixMappingError(SIDE, "value", f"side {raw} is neither a buy nor a sell")
    return side


def _decimal(msg: FixFields, tag: int) -> Decimal:
    raw = _required(msg, tag)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise FixMappingError(tag, "value", f"{raw!r} is not a number") from None
    if not value.is_finite():
        raise FixMappingError(tag, "value", f"{raw!r} is not a finite number")
    return value


def _timestamp(msg: FixFields, tag: int) -> dt.datetime:
    raw = _required(msg, tag)
    try:
        return parse_utc_timestamp(raw)
    except ValueError as exc:
        raise FixMappingError(tag, "value", str(exc)) from None


def _counterparty(msg: FixFields, required: bool) -> str:
    for party_id, role in msg.parties:
        if role == CONTRA_FIRM and party_id:
            return party_id
    if required:
        raise FixMappingError(
            PARTY_ID, "missing", "a trade needs a party with PartyRole(452)=17 (contra firm)"
        )
    return ""
