"""FIX 4.4 allocation messages: 35=J and 35=AU mapped in, 35=P and 35=AK built valid."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest
import quickfix as fix  # type: ignore[import-untyped]
import quickfix44 as fix44  # type: ignore[import-untyped]

from tradeflux.domain.allocation_events import (
    AllocatedChild,
    AllocationAck,
    AllocationEntry,
    AllocationInstruction,
)
from tradeflux.domain.confirmation_events import Confirmation, ConfirmationAck
from tradeflux.gateway.fix import dictionary_path
from tradeflux.gateway.fix_allocation import (
    allocation_ack_message,
    confirmation_message,
    received_ack,
)
from tradeflux.gateway.fix_mapping import FixMappingError
from tradeflux.gateway.fix_postrade import build_message, post_trade_record

D = Decimal
NOW = dt.datetime(2026, 11, 24, 1, 0, 0, 250_000, tzinfo=dt.UTC)
SESSION = "FIX.4.4:TRADEFLUX->DROPCOPY"
DICTIONARY = fix.DataDictionary(str(dictionary_path()))


def j_message(*, orders: list[str], trans_type: str = "0", execs: list[str] = ()) -> object:  # type: ignore[assignment]
    msg = fix44.AllocationInstruction()
    for tag, value in [(70, "AL-1"), (71, trans_type), (626, "1"), (857, "1"), (54, "1"),
                       (55, "7203"), (48, "7203.XTKS"), (22, "8"), (53, "900"),
                       (6, "2502.333333"), (75, "20261124"), (58, "pro rata")]:  # fmt: skip
        msg.setField(fix.StringField(tag, value))
    if trans_type != "0":
        msg.setField(fix.StringField(72, "AL-0"))
    for order in orders:
        group = fix44.AllocationInstruction.NoOrders()
        group.setField(fix.StringField(11, order))
        msg.addGroup(group)
    for exec_id in execs:
        group = fix44.AllocationInstruction.NoExecs()
        group.setField(fix.StringField(17, exec_id))
        msg.addGroup(group)
    for account, qty in [("CL-A", "600.5"), ("CL-B", "299.5")]:
        group = fix44.AllocationInstruction.NoAllocs()
        group.setField(fix.StringField(79, account))
        group.setField(fix.StringField(80, qty))
        msg.addGroup(group)
    return msg


def test_an_allocation_instruction_maps_to_its_struct_keyed_by_the_order() -> None:
    record = post_trade_record(j_message(orders=["ORD-1"], execs=["E1", "E2"]), "J", NOW, SESSION)
    assert (record.topic, record.key) == ("allocations.in", "ORD-1")
    assert record.instruction == AllocationInstruction(
        alloc_id="AL-1",
        trans_type="NEW",
        alloc_type=1,
        order_id="ORD-1",
        trade_date=dt.date(2026, 11, 24),
        exec_ids=("E1", "E2"),
        side="BUY",
        instrument="7203.XTKS",
        quantity=D(900),
        avg_px=D("2502.333333"),
        allocations=(
            AllocationEntry(account="CL-A", quantity=D("600.5")),
            AllocationEntry(account="CL-B", quantity=D("299.5")),
        ),
        text="pro rata",
        source="fix",
        session=SESSION,
        received_at=NOW,
    )
    decoded = msgspec.json.decode(record.value)
    assert decoded["kind"] == "instruction" and decoded["quantity"] == "900"


@pytest.mark.parametrize(("orders", "tag"), [([], 73), (["ORD-1", "ORD-2"], 73)])
def test_an_instruction_must_name_exactly_one_order(orders: list[str], tag: int) -> None:
    with pytest.raises(FixMappingError) as info:
        post_trade_record(j_message(orders=orders), "J", NOW, SESSION)
    assert (info.value.tag, info.value.kind) == (tag, "missing")


def test_a_replace_maps_with_the_alloc_id_it_replaces() -> None:
    record = post_trade_record(j_message(orders=["ORD-1"], trans_type="1"), "J", NOW, SESSION)
    assert record.instruction is not None
    assert (record.instruction.trans_type, record.instruction.ref_alloc_id) == ("REPLACE", "AL-0")


def test_a_confirmation_ack_is_keyed_by_the_child_trade_id() -> None:
    msg = fix44.ConfirmationAck()
    fields = [(664, "ORD-1:20261124/AL-1/CL-A#2"), (75, "20261124"),
              (60, "20261124-10:00:00.000"), (940, "2"), (774, "1"), (58, "wrong qty")]  # fmt: skip
    for tag, value in fields:
        msg.setField(fix.StringField(tag, value))
    record = post_trade_record(msg, "AU", NOW, SESSION)
    assert (record.topic, record.key, record.instruction) == (
        "confirmations.in",
        "ORD-1:20261124/AL-1/CL-A",
        None,
    )
    assert msgspec.json.decode(record.value, type=ConfirmationAck) == ConfirmationAck(
        confirm_id="ORD-1:20261124/AL-1/CL-A#2",
        affirm_status="REJECTED",
        reason="1",
        text="wrong qty",
        source="fix",
        session=SESSION,
        received_at=NOW,
    )


def _valid(message: object) -> str:
    """Fill in the header a session would and validate against the FIX 4.4 dictionary."""
    header = message.getHeader()  # type: ignore[attr-defined]
    for f in (fix.BeginString("FIX.4.4"), fix.SenderCompID("TRADEFLUX"),
              fix.TargetCompID("DROPCOPY"), fix.MsgSeqNum(7), fix.SendingTime()):  # fmt: skip
        header.setField(f)
    text = str(message.toString())  # type: ignore[attr-defined] # computes BodyLength(9)
    DICTIONARY.validate(message)
    return text.replace("\x01", "|")


def ack(status: str, reason: str = "", detail: str = "") -> AllocationAck:
    children = (
        AllocatedChild(account="CL-A", requested=D(600), quantity=D(600), trade_id="B/AL-1/CL-A",
                       version=1),
        AllocatedChild(account="CL-B", requested=D(300), quantity=D(300), trade_id="B/AL-1/CL-B",
                       version=1),
    )  # fmt: skip
    return AllocationAck(
        alloc_id="AL-1", trans_type="NEW", order_id="ORD-1", trade_date=dt.date(2026, 11, 24),
        block_id="ORD-1:20261124", status=status, reason=reason, detail=detail,  # type: ignore[arg-type]
        children=children if status == "ACCEPTED" else (), session=SESSION, at=NOW,
    )  # fmt: skip


def test_acks_become_valid_allocation_instruction_acks() -> None:
    ins = AllocationInstruction(alloc_id="AL-1", order_id="ORD-1", trade_date=dt.date(2026, 11, 24))
    assert "|87=3|" in _valid(build_message(received_ack(ins, NOW)))
    accepted = _valid(build_message(allocation_ack_message(ack("ACCEPTED"))))
    assert "|87=0|" in accepted and "|78=2|79=CL-A|467=B/AL-1/CL-A|79=CL-B|" in accepted
    rejected = _valid(
        build_message(allocation_ack_message(ack("REJECTED", "UNKNOWN_ACCOUNT", "x")))
    )
    assert "|87=2|88=0|" in rejected and "|58=UNKNOWN_ACCOUNT: x|" in rejected
    blocked = _valid(build_message(allocation_ack_message(ack("REJECTED", "AVG_PX_MISMATCH", "y"))))
    assert "|87=1|88=2|" in blocked
    assert allocation_ack_message(ack("PENDING")) is None


def confirmation(issue: str, version: int = 1, ref: str = "") -> Confirmation:
    return Confirmation(
        confirm_id=f"B/AL-1/CL-A#{version}", trade_id="B/AL-1/CL-A", version=version,
        status="CONFIRMED" if issue != "CANCEL" else "CANCELLED", issue=issue,  # type: ignore[arg-type]
        ref_confirm_id=ref, block_id="B", alloc_id="AL-1", account="CL-A",
        instrument="7203.XTKS", side="SELL", quantity=D(600), avg_px=D("2502.333333"),
        currency="JPY", counterparty="BRK-1", mic="XTKS", trade_date=dt.date(2026, 11, 24),
        trade_time=NOW, deadline=NOW, isin="JP3633400001", symbol="7203",
        gross_amount=D("1501399.9998"), net_money=D("1501399.9998"),
        settlement_date=dt.date(2026, 11, 26), session=SESSION, updated_at=NOW,
    )  # fmt: skip


def test_confirmations_become_valid_fix_confirmations() -> None:
    new = _valid(build_message(confirmation_message(confirmation("NEW"))))
    parts = ["|664=B/AL-1/CL-A#1|", "|665=4|", "|666=0|", "|773=2|", "|79=CL-A|", "|80=600|",
             "|54=2|", "|6=2502.333333|", "|381=1501399.9998|", "|64=20261126|",
             "|862=1|528=A|863=600|", "|60=20261124-01:00:00.250|", "|555=0|",
             "|711=0|"]  # fmt: skip
    for part in parts:
        assert part in new
    assert "|772=" not in new
    replace = _valid(
        build_message(confirmation_message(confirmation("REPLACE", 2, "B/AL-1/CL-A#1")))
    )
    assert "|666=1|" in replace and "|772=B/AL-1/CL-A#1|" in replace
    cancel = _valid(build_message(confirmation_message(confirmation("CANCEL", 3, "B/AL-1/CL-A#2"))))
    assert "|666=2|" in cancel and "|772=B/AL-1/CL-A#2|" in cancel
    assert confirmation_message(confirmation("")) is None
