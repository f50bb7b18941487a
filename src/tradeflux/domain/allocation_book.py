"""The allocation of blocks, per order: executions, instructions, and what they book.

:class:`OrderBook` holds one order's state (an :class:`OrderState`, the value of the
allocations service's ``orders`` store) and applies the records of its key to it:
executions (:meth:`OrderBook.apply_execution`) and instructions
(:meth:`OrderBook.receive`), deciding the instructions waiting in arrival order
(:meth:`OrderBook.drain`) as far as the executions allow. Decisions are
:class:`Booking` effects the service emits: trade events for ``trades.raw`` (children
and the offset), allocated children for the confirmations service, acks and the
allocation of record. Pure: time is passed in (the partition's stream time), and the
reference data are mappings. Rules: docs/domain-rules.md, "Block allocation".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from tradeflux.domain.allocation_checks import (
    MustWait,
    RefView,
    Rejected,
    check_accounts,
    check_shape,
    execution_key,
    same_instruction,
    select_block,
)
from tradeflux.domain.allocation_clock import to_datetime
from tradeflux.domain.allocation_codes import AllocationRejectReason as Reason
from tradeflux.domain.allocation_events import (
    DEFAULT_AVG_PX_PRECISION,
    AllocatedChild,
    Allocation,
    AllocationAck,
    AllocationInstruction,
    block_id_of,
)
from tradeflux.domain.allocation_split import (
    SplitError,
    average_price,
    split_block,
)
from tradeflux.domain.allocation_state import Booking, Chain, OrderState, Pending
from tradeflux.domain.confirmation_events import ChildAllocated
from tradeflux.domain.schemas import (
    AllocationRef,
    EnrichedTrade,
    EventType,
    TradeEvent,
)

ALLOCATION_SOURCE = "allocation"
"""The ``source`` of every trade event the allocations service books."""


@dataclass
class Effects:
    """What applying records to an order sends out, in order."""

    trades: list[TradeEvent] = field(default_factory=list)  # to trades.raw
    children: list[ChildAllocated] = field(default_factory=list)  # to confirmations.in
    acks: list[AllocationAck] = field(default_factory=list)
    allocations: list[Allocation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, event: str) -> None:
        """Count a business event."""
        self.counts[event] = self.counts.get(event, 0) + 1


class OrderBook:
    """Applies one order's records to its state (``state``); ``effects`` is what they send."""

    def __init__(self, state: OrderState, refdata: RefView, wait_ms: int) -> None:
        self.state = state
        self.refdata = refdata
        self.wait_ms = wait_ms
        self.effects = Effects()

    # -- executions --------------------------------------------------------------------

    def apply_execution(self, trade: EnrichedTrade) -> None:
        """Hold the latest version of an execution; flag an allocation it changes."""
        key = execution_key(trade)
        held = self.state.executions.get(key)
        if held is not None and trade.version <= held.version:
            self.effects.count("ignored_version")
            return
        executions = {**self.state.executions, key: trade}
        chains = self.state.chains
        changed = [c for c in chains if c.status == "ACCEPTED" and key in c.exec_keys]
        if held is not None and changed:
            self.effects.count("execution_changed_after_allocation")
            chains = tuple(
                msgspec.structs.replace(c, block_changed=True) if c in changed else c
                for c in chains
            )
            for chain in chains:
                if chain.block_changed and chain.alloc_id in {c.alloc_id for c in changed}:
                    self.effects.allocations.append(self._record(chain))
        self.state = msgspec.structs.replace(self.state, executions=executions, chains=chains)
        self.effects.count("executions")

    # -- instructions ------------------------------------------------------------------

    def receive(self, instruction: AllocationInstruction, at_ms: int) -> None:
        """Queue an instruction behind those waiting (it is decided by :meth:`drain`)."""
        pending = (*self.state.pending, Pending(instruction=instruction, since_ms=at_ms))
        self.state = msgspec.structs.replace(self.state, pending=pending)

    def waiting_since(self) -> int | None:
        """Return when the first waiting instruction arrived (ms), or None if none waits."""
        return self.state.pending[0].since_ms if self.state.pending else None

    def drain(self, now_ms: int) -> None:
        """Decide the waiting instructions in order, until one must wait longer."""
        while self.state.pending:
            head = self.state.pending[0]
            timed_out = now_ms >= head.since_ms + self.wait_ms
            try:
                self._decide(head.instruction, now_ms, timed_out)
            except MustWait:
                if not head.announced:
                    self._ack(head.instruction, "PENDING", now_ms, detail="waiting for executions")
                    rest = self.state.pending[1:]
                    announced = msgspec.structs.replace(head, announced=True)
                    self.state = msgspec.structs.replace(self.state, pending=(announced, *rest))
                return
            except Rejected as rejection:
                self.effects.count(f"rejected_{rejection.reason.lower()}")
                self._ack(head.instruction, "REJECTED", now_ms, rejection.reason, rejection.detail)
            self.state = msgspec.structs.replace(self.state, pending=self.state.pending[1:])

    def _decide(self, ins: AllocationInstruction, now_ms: int, timed_out: bool) -> None:
        """Book ``ins``, or raise Rejected (the first failing check) or MustWait."""
        before = self.state.accepted.get(ins.alloc_id)
        if before is not None:
            if same_instruction(before, ins):
                self.effects.count("duplicates")
                return
            raise Rejected(
                Reason.ALLOC_ID_EXISTS,
                f"AllocID {ins.alloc_id} was accepted before",
            )
        chain = self._chain_of(ins) if ins.trans_type != "NEW" else None
        if ins.trans_type == "CANCEL":
            assert chain is not None  # noqa: S101 - _chain_of raises otherwise
            self._cancel(chain, ins, now_ms)
            return
        check_shape(ins)
        check_accounts(ins, self.refdata.accounts)
        taken = {
            key: other.alloc_id
            for other in self.state.chains
            if other is not chain and other.status == "ACCEPTED"
            for key in other.exec_keys
        }
        executions = self.state.executions.values()
        selected = select_block(ins, executions, taken, self.refdata.instruments, timed_out)
        self._book(ins, chain, selected, now_ms)

    def _chain_of(self, ins: AllocationInstruction) -> Chain:
        """Return the allocation a REPLACE or CANCEL names, or reject."""
        for chain in self.state.chains:
            if chain.last.alloc_id == ins.ref_alloc_id:
                if chain.status == "CANCELLED":
                    raise Rejected(
                        Reason.ALLOCATION_CANCELLED,
                        f"allocation {chain.alloc_id} is cancelled",
                    )
                return chain
        if ins.ref_alloc_id in self.state.accepted:
            raise Rejected(
                Reason.STALE_ALLOCATION,
                f"AllocID {ins.ref_alloc_id} was replaced since; name the latest in RefAllocID",
            )
        raise Rejected(
            Reason.UNKNOWN_ALLOCATION,
            f"no accepted allocation {ins.ref_alloc_id!r} of this order",
        )

    # -- booking -----------------------------------------------------------------------

    def _book(
        self,
        ins: AllocationInstruction,
        chain: Chain | None,
        selected: list[EnrichedTrade],
        now_ms: int,
    ) -> None:
        """Book a NEW, or re-book the chain a REPLACE changes; ack and record it."""
        first = selected[0]
        instrument = self.refdata.instruments[first.instrument]
        places = DEFAULT_AVG_PX_PRECISION if ins.avg_px_precision is None else ins.avg_px_precision
        assert ins.quantity is not None  # noqa: S101 - checked by _check_shape
        price = average_price([(t.quantity, t.price) for t in selected], places)
        try:
            quantities = split_block(
                ins.quantity, instrument.lot_size, [e.quantity for e in ins.allocations]
            )
        except SplitError as exc:  # the block itself is no whole number of lots
            raise Rejected(Reason.BLOCK_QTY_MISMATCH, str(exc)) from None
        trade_time = max(t.trade_time for t in selected)
        now = to_datetime(now_ms)
        block_id = block_id_of(ins.order_id, ins.trade_date)
        root = ins.alloc_id if chain is None else chain.alloc_id
        unmoved = chain is not None and (chain.avg_px, chain.trade_time) == (price, trade_time)
        shape = _Shape(first, block_id, root, price, trade_time, now, unmoved)
        old = {c.account: c for c in chain.children} if chain is not None else {}
        children: list[Booking] = []
        for entry, quantity in zip(ins.allocations, quantities, strict=True):
            before = old.pop(entry.account, None)
            child_id = f"{block_id}/{ins.alloc_id}/{entry.account}"
            asked = (entry.quantity, quantity)
            children.append(self._rebook(shape, before, entry.account, asked, child_id, ins))
        for before in old.values():  # accounts the replace leaves out
            asked = (before.requested, Decimal(0))
            children.append(self._rebook(shape, before, before.account, asked, "", ins))
        offset_id = f"{block_id}/{root}/OFFSET"
        offset = self._rebook(
            shape,
            chain.offset if chain is not None else None,
            first.account,
            (ins.quantity, ins.quantity),
            offset_id,
            ins,
            role="OFFSET",
        )
        new_chain = Chain(
            alloc_id=root,
            last=ins,
            status="ACCEPTED",
            exec_keys=tuple(execution_key(t) for t in selected),
            quantity=ins.quantity,
            avg_px=price,
            trade_time=trade_time,
            children=tuple(children),
            offset=offset,
            replaces=0 if chain is None else chain.replaces + 1,
            updated_at=now,
        )
        self._keep(new_chain, chain, ins)
        self.effects.count("allocated" if chain is None else "replaced")

    def _rebook(
        self,
        shape: _Shape,
        before: Booking | None,
        account: str,
        quantities: tuple[Decimal, Decimal],
        trade_id: str,
        ins: AllocationInstruction,
        role: str = "CHILD",
    ) -> Booking:
        """Book one account's new quantity against what it had: NEW, AMEND, CANCEL or nothing."""
        requested, quantity = quantities
        if before is not None and before.live:
            if quantity == 0:
                event = self._event(shape, "CANCEL", before.trade_id, before.version + 1,
                                    account, before.quantity, role)  # fmt: skip
                self._send(event, ins, role)
                return msgspec.structs.replace(
                    before, requested=requested, quantity=quantity, version=event.version,
                    cancelled=True,
                )  # fmt: skip
            if shape.unmoved and quantity == before.quantity:
                return msgspec.structs.replace(before, requested=requested)  # nothing to re-book
            event = self._event(
                shape, "AMEND", before.trade_id, before.version + 1, account, quantity, role
            )
            self._send(event, ins, role)
            return msgspec.structs.replace(
                before, requested=requested, quantity=quantity, version=event.version
            )
        if quantity == 0:
            if before is not None:
                return msgspec.structs.replace(before, requested=requested)
            return Booking(
                account=account, requested=requested, trade_id="", quantity=quantity, version=0
            )
        event = self._event(shape, "NEW", trade_id, 1, account, quantity, role)
        self._send(event, ins, role)
        return Booking(
            account=account, requested=requested, trade_id=trade_id, quantity=quantity, version=1
        )

    def _event(
        self,
        shape: _Shape,
        event_type: EventType,
        trade_id: str,
        version: int,
        account: str,
        quantity: Decimal,
        role: str,
    ) -> TradeEvent:
        first = shape.first
        side = first.side if role == "CHILD" else ("SELL" if first.side == "BUY" else "BUY")
        return TradeEvent(
            event_type=event_type,
            trade_id=trade_id,
            version=version,
            account=account,
            instrument=first.instrument,
            side=side,
            quantity=quantity,
            price=shape.price,
            currency=first.currency,
            venue=first.venue,
            counterparty=first.counterparty,
            trade_time=shape.trade_time,
            source=ALLOCATION_SOURCE,
            ingest_time=shape.now,
            order_id=first.order_id,
            allocation=AllocationRef(
                block_id=shape.block_id,
                alloc_id=shape.root,
                role="CHILD" if role == "CHILD" else "OFFSET",
            ),  # fmt: skip
        )

    def _send(self, event: TradeEvent, ins: AllocationInstruction, role: str) -> None:
        self.effects.trades.append(event)
        if role == "CHILD" and event.allocation is not None:
            instrument = self.refdata.instruments.get(event.instrument)
            self.effects.children.append(
                ChildAllocated(
                    event=event,
                    block_id=event.allocation.block_id,
                    alloc_id=ins.alloc_id,
                    mic=instrument.mic if instrument is not None else event.venue,
                    trade_date=ins.trade_date,
                    session=ins.session,
                )
            )

    def _cancel(self, chain: Chain, ins: AllocationInstruction, now_ms: int) -> None:
        """Cancel every live booking of the chain; its executions are free again."""
        first = self.state.executions.get(chain.exec_keys[0]) if chain.exec_keys else None
        now = to_datetime(now_ms)
        children = []
        for booking in (*chain.children, chain.offset):
            role = "OFFSET" if booking is chain.offset else "CHILD"
            if booking.live and first is not None:
                shape = _Shape(
                    first, block_id_of(ins.order_id, chain.last.trade_date), chain.alloc_id,
                    chain.avg_px, chain.trade_time, now,
                )  # fmt: skip
                event = self._event(shape, "CANCEL", booking.trade_id, booking.version + 1,
                                    booking.account, booking.quantity, role)  # fmt: skip
                self._send(event, ins, role)
                booking = msgspec.structs.replace(
                    booking, quantity=Decimal(0), version=event.version, cancelled=True
                )
            children.append(booking)
        cancelled = msgspec.structs.replace(
            chain,
            last=ins,
            status="CANCELLED",
            children=tuple(children[:-1]),
            offset=children[-1],
            updated_at=now,
        )
        self._keep(cancelled, chain, ins)
        self.effects.count("cancelled")

    def _keep(self, new_chain: Chain, old: Chain | None, ins: AllocationInstruction) -> None:
        """Store the chain, remember the AllocID, ack and record the allocation."""
        chains = tuple(new_chain if c is old else c for c in self.state.chains)
        if old is None:
            chains = (*chains, new_chain)
        accepted = {**self.state.accepted, ins.alloc_id: ins}
        self.state = msgspec.structs.replace(self.state, chains=chains, accepted=accepted)
        record = self._record(new_chain)
        self.effects.allocations.append(record)
        self._ack(ins, "ACCEPTED", None, allocation=record)

    # -- output ------------------------------------------------------------------------

    def _record(self, chain: Chain) -> Allocation:
        first = self.state.executions.get(chain.exec_keys[0]) if chain.exec_keys else None
        ins = chain.last
        return Allocation(
            block_id=block_id_of(self.state.order_id, ins.trade_date),
            order_id=self.state.order_id,
            alloc_id=chain.alloc_id,
            last_alloc_id=ins.alloc_id,
            status=chain.status,
            trade_date=ins.trade_date,
            account=first.account if first else "",
            instrument=first.instrument if first else ins.instrument,
            side=first.side if first else (ins.side or "BUY"),
            currency=first.currency if first else "",
            quantity=chain.quantity,
            avg_px=chain.avg_px,
            executions=tuple(k.partition("|")[2] for k in chain.exec_keys),
            children=tuple(
                AllocatedChild(
                    account=c.account,
                    requested=c.requested,
                    quantity=c.quantity,
                    trade_id=c.trade_id,
                    version=c.version,
                    cancelled=c.cancelled,
                )
                for c in chain.children
            ),
            offset_trade_id=chain.offset.trade_id,
            block_changed=chain.block_changed,
            replaces=chain.replaces,
            source=ins.source,
            session=ins.session,
            text=ins.text,
            updated_at=chain.updated_at,
        )

    def _ack(
        self,
        ins: AllocationInstruction,
        status: str,
        now_ms: int | None,
        reason: str = "",
        detail: str = "",
        allocation: Allocation | None = None,
    ) -> None:
        at = allocation.updated_at if allocation is not None else to_datetime(now_ms or 0)
        self.effects.acks.append(
            AllocationAck(
                alloc_id=ins.alloc_id,
                trans_type=ins.trans_type,
                ref_alloc_id=ins.ref_alloc_id,
                order_id=ins.order_id,
                trade_date=ins.trade_date,
                block_id=block_id_of(ins.order_id, ins.trade_date),
                status=status,  # type: ignore[arg-type]
                reason=reason,
                detail=detail,
                allocation_id=allocation.alloc_id if allocation is not None else "",
                children=allocation.children if allocation is not None else (),
                source=ins.source,
                session=ins.session,
                at=at,
            )
        )


@dataclass(frozen=True)
class _Shape:
    """What every booking of one decision shares."""

    first: EnrichedTrade
    block_id: str
    root: str
    price: Decimal
    trade_time: dt.datetime
    now: dt.datetime
    unmoved: bool = False  # price and trade time as the chain had them: equal quantities stay
