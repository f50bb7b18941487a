"""The checks of an allocation instruction, in the order docs/domain-rules.md gives them.

Each check raises :class:`Rejected` (a reason code and a detail) on the first failure,
or :class:`MustWait` when the answer depends on executions that may still come (the
instruction is then held, see ``allocation_book``). Pure: the order's executions and
the reference data are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from tradeflux.domain.allocation_codes import AllocationRejectReason as Reason
from tradeflux.domain.allocation_events import SUPPORTED_ALLOC_TYPES, AllocationInstruction
from tradeflux.domain.allocation_split import CONTEXT, exact_average_price, matches_stated_price
from tradeflux.domain.schemas import Account, EnrichedTrade, Instrument


class Rejected(Exception):  # noqa: N818 - an outcome: the first failing check
    """The instruction fails a check: answer REJECTED with ``reason``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class MustWait(Exception):  # noqa: N818 - an outcome: executions may still come
    """The instruction cannot be decided until more of its block's executions arrive."""


@dataclass(frozen=True)
class RefView:
    """The reference data an allocation checks: instruments (lot size) and accounts."""

    instruments: Mapping[str, Instrument]
    accounts: Mapping[str, Account]


def execution_key(trade: EnrichedTrade) -> str:
    """Return the key an execution is held under in its order (``account|trade_id``)."""
    return f"{trade.account}|{trade.trade_id}"


def same_instruction(a: AllocationInstruction, b: AllocationInstruction) -> bool:
    """Tell whether ``b`` resends ``a``: equal in all but when, how and on which session."""
    strip = {"received_at": None, "session": "", "source": ""}
    return msgspec.structs.replace(a, **strip) == msgspec.structs.replace(b, **strip)


def check_shape(ins: AllocationInstruction) -> None:
    """Reject a NEW or REPLACE that lacks what a booking needs, or of an unbooked AllocType."""
    missing = [
        name
        for name, value in (
            ("side", ins.side),
            ("instrument", ins.instrument or None),
            ("quantity", ins.quantity),
            ("avg_px", ins.avg_px),
        )
        if value is None
    ]
    if missing:
        detail = f"a {ins.trans_type} needs {', '.join(missing)}"
        raise Rejected(Reason.INCOMPLETE_INSTRUCTION, detail)
    assert ins.quantity is not None and ins.avg_px is not None  # noqa: S101 - just checked
    if not ins.quantity.is_finite() or ins.quantity <= 0 or not ins.avg_px.is_finite():
        raise Rejected(Reason.INCOMPLETE_INSTRUCTION, "Quantity and AvgPx must be positive numbers")
    if ins.avg_px_precision is not None and not 0 <= ins.avg_px_precision <= 12:
        raise Rejected(Reason.INCOMPLETE_INSTRUCTION, "AvgPxPrecision must be 0 to 12")
    if ins.alloc_type not in SUPPORTED_ALLOC_TYPES:
        detail = f"AllocType {ins.alloc_type} is not booked; send 1, 2 or 5"
        raise Rejected(Reason.UNSUPPORTED_ALLOC_TYPE, detail)
    if not ins.allocations:
        raise Rejected(Reason.NO_ALLOCATIONS, "NoAllocs is empty")


def check_accounts(ins: AllocationInstruction, accounts: Mapping[str, Account]) -> None:
    """Check NoAllocs: distinct accounts, positive quantities, known and active, summing up."""
    seen: set[str] = set()
    for entry in ins.allocations:
        if entry.account in seen:
            raise Rejected(Reason.DUPLICATE_ACCOUNT, f"account {entry.account} twice")
        seen.add(entry.account)
        if not entry.quantity.is_finite() or entry.quantity <= 0:
            detail = f"AllocQty {entry.quantity} of {entry.account} is not positive"
            raise Rejected(Reason.NON_POSITIVE_ALLOC_QTY, detail)
    for entry in ins.allocations:
        account = accounts.get(entry.account)
        if account is None:
            raise Rejected(Reason.UNKNOWN_ACCOUNT, f"no account {entry.account!r}")
        if account.status != "ACTIVE":
            detail = f"account {entry.account!r} is {account.status}"
            raise Rejected(Reason.ACCOUNT_INACTIVE, detail)
    total = _sum(e.quantity for e in ins.allocations)
    if total != ins.quantity:
        detail = f"the AllocQtys sum to {total}, not to Quantity {ins.quantity}"
        raise Rejected(Reason.ALLOC_QTY_MISMATCH, detail)


def select_block(
    ins: AllocationInstruction,
    executions: Iterable[EnrichedTrade],
    taken: Mapping[str, str],
    instruments: Mapping[str, Instrument],
    timed_out: bool,
) -> list[EnrichedTrade]:
    """Return the block's executions, checked against the instruction; or reject, or wait.

    ``executions`` are the order's latest events; ``taken`` maps the executions of the
    order's other live allocations to their AllocID. Without ``exec_ids`` the block is
    every live execution on the trade date, in ``(trade_time, trade_id)`` order.
    """
    live = [t for t in executions if t.event_type != "CANCEL" and t.trade_date == ins.trade_date]
    day = ins.trade_date.isoformat()
    if ins.exec_ids:
        by_id = {t.trade_id: t for t in live}
        missing = [e for e in ins.exec_ids if e not in by_id]
        if missing:
            if not timed_out:
                raise MustWait
            detail = f"no live execution {missing[0]!r} of order {ins.order_id} on {day}"
            raise Rejected(Reason.UNKNOWN_EXECUTION, detail)
        selected = [by_id[e] for e in dict.fromkeys(ins.exec_ids)]
    else:
        selected = sorted(live, key=lambda t: (t.trade_time, t.trade_id, t.account))
    if not selected:
        if not timed_out:
            raise MustWait
        raise Rejected(Reason.UNKNOWN_BLOCK, f"no execution of order {ins.order_id} on {day}")
    for t in selected:
        other = taken.get(execution_key(t))
        if other is not None:
            detail = f"execution {t.trade_id} is allocated by {other}"
            raise Rejected(Reason.BLOCK_ALREADY_ALLOCATED, detail)
    _check_consistent(ins, selected, instruments)
    total = _sum(t.quantity for t in selected)
    assert ins.quantity is not None and ins.avg_px is not None  # noqa: S101 - check_shape
    if total != ins.quantity:
        if total < ins.quantity and not ins.exec_ids and not timed_out:
            raise MustWait  # more executions of the order may come
        detail = f"the block's executions sum to {total}, not to Quantity {ins.quantity}"
        raise Rejected(Reason.BLOCK_QTY_MISMATCH, detail)
    exact = exact_average_price([(t.quantity, t.price) for t in selected])
    if not matches_stated_price(ins.avg_px, exact):
        detail = f"AvgPx {ins.avg_px} is not the executions' average price {exact.normalize()}"
        raise Rejected(Reason.AVG_PX_MISMATCH, detail)
    return selected


def _check_consistent(
    ins: AllocationInstruction, selected: list[EnrichedTrade], instruments: Mapping[str, Instrument]
) -> None:
    """Check the executions agree with each other and with the instruction's side and instrument."""
    first = selected[0]
    for t in selected[1:]:
        for name in ("account", "instrument", "side", "currency", "counterparty"):
            if getattr(t, name) != getattr(first, name):
                detail = f"executions {first.trade_id} and {t.trade_id} differ in {name}"
                raise Rejected(Reason.MISMATCHED_BLOCK, detail)
    if ins.side != first.side:
        raise Rejected(Reason.MISMATCHED_BLOCK, f"the block is a {first.side}, not a {ins.side}")
    if ins.instrument not in (first.instrument, first.isin, first.symbol):
        detail = f"the block is in {first.instrument}, not in {ins.instrument}"
        raise Rejected(Reason.MISMATCHED_BLOCK, detail)
    if first.instrument not in instruments:
        raise Rejected(Reason.UNKNOWN_INSTRUMENT, f"no instrument {first.instrument!r}")


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = CONTEXT.add(total, value)
    return total
