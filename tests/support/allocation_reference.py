"""An independent, deliberately plain model of docs/domain-rules.md, "Block allocation" and
"Confirmation and affirmation", for the end-to-end tests.

It shares nothing with ``tradeflux.domain``'s allocation or confirmation code: only the
event structs. It assumes what the end-to-end plans arrange: every execution of a block
is booked before its instruction is decided (the services may see them in either order;
the rules make the outcome the same), an instruction for an order without executions
times out, and affirmations are sent before or after the (injected) deadline, never
around it. It is written as a straightforward replay of the instructions of each order
in the order they were sent.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

D = Decimal
WIDE = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Fill:
    """An execution of an order on the house account, as booked."""

    exec_id: str
    order_id: str
    account: str
    instrument: str
    side: str  # BUY / SELL
    quantity: Decimal
    price: Decimal
    trade_time: dt.datetime
    trade_date: dt.date
    counterparty: str
    currency: str
    venue: str


@dataclass(frozen=True)
class Instruction:
    """An allocation instruction as the plan sends it."""

    alloc_id: str
    order_id: str
    trans_type: str  # NEW / REPLACE / CANCEL
    ref_alloc_id: str
    trade_date: dt.date
    side: str
    instrument: str
    quantity: Decimal
    avg_px: Decimal
    allocations: tuple[tuple[str, Decimal], ...]
    exec_ids: tuple[str, ...] = ()


@dataclass
class ChildTrade:
    """A booking as it must end on trades.raw: last version, quantity, cancelled or not."""

    trade_id: str
    account: str
    side: str
    quantity: Decimal
    price: Decimal
    version: int
    cancelled: bool
    role: str  # CHILD / OFFSET
    block_id: str
    alloc_id: str  # the allocation (first AllocID) that booked it
    order_id: str
    fill: Fill  # the block's last fill (time, instrument, counterparty)
    versions: list[tuple[str, Decimal]] = field(default_factory=list)  # (event type, qty)


@dataclass
class Chain:
    alloc_id: str
    last_alloc_id: str
    status: str
    exec_ids: tuple[str, ...]
    quantity: Decimal
    avg_px: Decimal
    children: dict[str, ChildTrade]  # by account, in booking order
    offset: ChildTrade


@dataclass
class AllocationModel:
    """What the services must have produced."""

    acks: dict[str, tuple[str, str]] = field(default_factory=dict)  # alloc id -> (status, reason)
    chains: dict[str, Chain] = field(default_factory=dict)  # "block|alloc" -> chain
    trades: dict[str, ChildTrade] = field(default_factory=dict)  # every booking by trade id


def block_id(order_id: str, trade_date: dt.date) -> str:
    return f"{order_id}:{trade_date.strftime('%Y%m%d')}"


def floor_to_lots(q: Decimal, lot: Decimal) -> Decimal:
    lots = WIDE.divide_int(q, lot)
    return WIDE.multiply(lots, lot)


def split(block_qty: Decimal, lot: Decimal, requested: list[Decimal]) -> list[Decimal]:
    """Whole lots; the lots left go to the largest remainders, earlier on ties."""
    base = [floor_to_lots(r, lot) for r in requested]
    left = int(WIDE.divide_int(block_qty - sum(base), lot))
    order = sorted(range(len(requested)), key=lambda i: (-(requested[i] - base[i]), i))
    for i in order[:left]:
        base[i] += lot
    return base


def average(fills: list[Fill], places: int = 6) -> Decimal:
    amount = sum((WIDE.multiply(f.quantity, f.price) for f in fills), D(0))
    qty = sum((f.quantity for f in fills), D(0))
    return WIDE.divide(amount, qty).quantize(D(1).scaleb(-places), context=WIDE)


def run_allocations(
    fills: list[Fill],
    instructions: list[Instruction],
    lot_sizes: dict[str, Decimal],
    active_accounts: set[str],
    known_accounts: set[str],
) -> AllocationModel:
    """Decide ``instructions`` (in the order sent, per order) against ``fills``."""
    model = AllocationModel()
    by_order: dict[str, list[Fill]] = defaultdict(list)
    for f in fills:
        by_order[f.order_id].append(f)
    accepted: dict[tuple[str, str], Instruction] = {}
    for ins in instructions:
        reason = _decide(
            ins, by_order[ins.order_id], model, accepted, lot_sizes, active_accounts, known_accounts
        )
        model.acks[ins.alloc_id] = ("REJECTED", reason) if reason else ("ACCEPTED", "")
        if not reason:
            accepted[(ins.order_id, ins.alloc_id)] = ins
    return model


def _decide(
    ins: Instruction,
    order_fills: list[Fill],
    model: AllocationModel,
    accepted: dict[tuple[str, str], Instruction],
    lot_sizes: dict[str, Decimal],
    active: set[str],
    known: set[str],
) -> str:
    """Return the reject reason, or "" after booking."""
    if (ins.order_id, ins.alloc_id) in accepted:
        return "ALLOC_ID_EXISTS"
    block = block_id(ins.order_id, ins.trade_date)
    chains = [c for c in model.chains.values() if c.offset.order_id == ins.order_id]
    chain = None
    if ins.trans_type != "NEW":
        for c in chains:
            if c.last_alloc_id == ins.ref_alloc_id:
                chain = c
        if chain is None:
            if (ins.order_id, ins.ref_alloc_id) in accepted:
                return "STALE_ALLOCATION"
            return "UNKNOWN_ALLOCATION"
        if chain.status == "CANCELLED":
            return "ALLOCATION_CANCELLED"
    if ins.trans_type == "CANCEL":
        assert chain is not None
        for booking in [*chain.children.values(), chain.offset]:
            if not booking.cancelled and booking.version > 0:
                booking.version += 1
                booking.cancelled = True
                booking.quantity = D(0)
                booking.versions.append(("CANCEL", D(0)))
        chain.status = "CANCELLED"
        chain.last_alloc_id = ins.alloc_id
        return ""
    if not ins.allocations:
        return "NO_ALLOCATIONS"
    accounts = [a for a, _ in ins.allocations]
    if len(set(accounts)) != len(accounts):
        return "DUPLICATE_ACCOUNT"
    if any(q <= 0 for _, q in ins.allocations):
        return "NON_POSITIVE_ALLOC_QTY"
    for a in accounts:
        if a not in known:
            return "UNKNOWN_ACCOUNT"
        if a not in active:
            return "ACCOUNT_INACTIVE"
    if sum(q for _, q in ins.allocations) != ins.quantity:
        return "ALLOC_QTY_MISMATCH"
    live = [f for f in order_fills if f.trade_date == ins.trade_date]
    if ins.exec_ids:
        by_id = {f.exec_id: f for f in live}
        if any(e not in by_id for e in ins.exec_ids):
            return "UNKNOWN_EXECUTION"
        selected = [by_id[e] for e in ins.exec_ids]
    else:
        selected = sorted(live, key=lambda f: (f.trade_time, f.exec_id))
    if not selected:
        return "UNKNOWN_BLOCK"
    for c in chains:
        if (
            c is not chain
            and c.status == "ACCEPTED"
            and set(c.exec_ids) & {f.exec_id for f in selected}
        ):
            return "BLOCK_ALREADY_ALLOCATED"
    first = selected[0]
    if ins.side != first.side or ins.instrument != first.instrument:
        return "MISMATCHED_BLOCK"
    if sum(f.quantity for f in selected) != ins.quantity:
        return "BLOCK_QTY_MISMATCH"
    exact = WIDE.divide(sum(f.quantity * f.price for f in selected), ins.quantity)
    exponent = ins.avg_px.as_tuple().exponent
    assert isinstance(exponent, int)
    if exact.quantize(D(1).scaleb(exponent), context=WIDE) != ins.avg_px:
        return "AVG_PX_MISMATCH"
    price = average(selected)
    last = max(selected, key=lambda f: f.trade_time)
    quantities = split(ins.quantity, lot_sizes[first.instrument], [q for _, q in ins.allocations])
    root = ins.alloc_id if chain is None else chain.alloc_id
    old = dict(chain.children) if chain is not None else {}
    same_shape = chain is not None and chain.avg_px == price
    children: dict[str, ChildTrade] = {}
    for (account, _requested), qty in zip(ins.allocations, quantities, strict=True):
        before = old.pop(account, None)
        if before is not None and not before.cancelled and before.version > 0:
            if qty == 0:
                before.version += 1
                before.cancelled, before.quantity = True, D(0)
                before.versions.append(("CANCEL", D(0)))
            elif not (same_shape and qty == before.quantity):
                before.version += 1
                before.quantity, before.price, before.fill = qty, price, last
                before.versions.append(("AMEND", qty))
            children[account] = before
        elif qty > 0:
            trade_id = f"{block}/{ins.alloc_id}/{account}"
            child = ChildTrade(
                trade_id,
                account,
                first.side,
                qty,
                price,
                1,
                False,
                "CHILD",
                block,
                root,
                ins.order_id,
                last,
                [("NEW", qty)],
            )
            children[account] = child
            model.trades[trade_id] = child
        elif before is not None:
            children[account] = before
        else:  # rounded to nothing: listed, never booked
            children[account] = ChildTrade(
                "",
                account,
                first.side,
                D(0),
                price,
                0,
                False,
                "CHILD",
                block,
                root,
                ins.order_id,
                last,
            )
    for account, before in old.items():
        if not before.cancelled and before.version > 0:
            before.version += 1
            before.cancelled, before.quantity = True, D(0)
            before.versions.append(("CANCEL", D(0)))
        children[account] = before
    other = "SELL" if first.side == "BUY" else "BUY"
    if chain is None:
        offset = ChildTrade(
            f"{block}/{root}/OFFSET",
            first.account,
            other,
            ins.quantity,
            price,
            1,
            False,
            "OFFSET",
            block,
            root,
            ins.order_id,
            last,
            [("NEW", ins.quantity)],
        )
        model.trades[offset.trade_id] = offset
    else:
        offset = chain.offset
        if not same_shape:
            offset.version += 1
            offset.price, offset.fill = price, last
            offset.versions.append(("AMEND", ins.quantity))
    model.chains[f"{block}|{root}"] = Chain(
        root,
        ins.alloc_id,
        "ACCEPTED",
        tuple(f.exec_id for f in selected),
        ins.quantity,
        price,
        children,
        offset,
    )
    return ""


# -- confirmations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfirmationOutcome:
    """How a child's confirmation must end, and the exceptions it must have raised."""

    status: str
    version: int
    exceptions: tuple[tuple[str, str], ...]  # (kind, resolution)


def expected_confirmations(
    model: AllocationModel,
    on_time: dict[str, str],
    late: set[str],
) -> dict[str, ConfirmationOutcome]:
    """The end of every child's confirmation.

    ``on_time`` maps the children answered before the deadline to AFFIRMED or REJECTED;
    ``late`` holds those affirmed after it. A child open (not affirmed, not cancelled)
    when the deadline passed raised UNAFFIRMED; affirmed late, it was CLEARED.
    """
    out: dict[str, ConfirmationOutcome] = {}
    for trade in model.trades.values():
        if trade.role != "CHILD":
            continue
        if trade.cancelled:
            out[trade.trade_id] = ConfirmationOutcome("CANCELLED", trade.version, ())
            continue
        answer = on_time.get(trade.trade_id)
        if answer == "AFFIRMED":
            out[trade.trade_id] = ConfirmationOutcome("AFFIRMED", trade.version, ())
            continue
        raised = (("UNAFFIRMED", ""),)
        if trade.trade_id in late:
            out[trade.trade_id] = ConfirmationOutcome(
                "AFFIRMED", trade.version, (*raised, ("CLEARED", "AFFIRMED"))
            )
        else:
            out[trade.trade_id] = ConfirmationOutcome(answer or "CONFIRMED", trade.version, raised)
    return out
