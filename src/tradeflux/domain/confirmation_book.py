"""The confirmation of each allocated child: its status, its deadline, its exceptions.

:class:`ConfirmationBook` applies one child's records to its :class:`ChildState` (the
value of the confirmations service's ``children`` store) and collects what they send:
confirmation revisions and affirmation exceptions, or the reason a ConfirmationAck is
refused. Time is the partition's stream time, passed in; the deadline rules are given.
Rules: docs/domain-rules.md, "Confirmation and affirmation".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from tradeflux.domain.allocation_clock import to_datetime, to_ms
from tradeflux.domain.confirmation_deadlines import AffirmationRules
from tradeflux.domain.confirmation_events import (
    AffirmationException,
    ChildAllocated,
    Confirmation,
    ConfirmationAck,
    ConfirmationRejectReason,
    ConfirmationStatus,
    ExceptionKind,
    Issue,
    Resolution,
    confirm_id_of,
    parse_confirm_id,
)
from tradeflux.domain.schemas import EnrichedTrade

OPEN: frozenset[ConfirmationStatus] = frozenset({"PENDING", "CONFIRMED", "REJECTED"})
"""The statuses that still need an affirmation."""


class ChildState(msgspec.Struct, frozen=True, kw_only=True):
    """What the service keeps per child trade id.

    ``confirmation`` is the latest revision (None while only a booking was seen);
    ``booked`` the latest event the validator accepted; ``issued_id`` the ConfirmID last
    sent ("" if none was: a cancel then sends nothing).
    """

    confirmation: Confirmation | None = None
    allocated_version: int = 0
    booked: EnrichedTrade | None = None
    issued_id: str = ""
    exception_raised: bool = False
    cleared: bool = False

    @property
    def deadline_ms(self) -> int | None:
        """Return the deadline in ms since the epoch, or None while there is no confirmation."""
        return None if self.confirmation is None else to_ms(self.confirmation.deadline)

    @property
    def open(self) -> bool:
        """Tell whether the child still waits for an affirmation."""
        return self.confirmation is not None and self.confirmation.status in OPEN


@dataclass
class ConfirmationEffects:
    """What applying records sends: confirmation revisions, exceptions, refused acks."""

    confirmations: list[Confirmation] = field(default_factory=list)
    exceptions: list[AffirmationException] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, event: str) -> None:
        """Count a business event."""
        self.counts[event] = self.counts.get(event, 0) + 1


class AckRefused(Exception):  # noqa: N818 - an outcome: the ack is dead-lettered
    """A ConfirmationAck that answers no open confirmation."""

    def __init__(self, reason: ConfirmationRejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ConfirmationBook:
    """Applies records to child states; the caller stores the states it returns."""

    def __init__(self, rules: AffirmationRules) -> None:
        self.rules = rules
        self.effects = ConfirmationEffects()

    def allocated(self, state: ChildState | None, msg: ChildAllocated, now_ms: int) -> ChildState:
        """Apply a child the allocations service booked, amended or cancelled."""
        state = state or ChildState()
        event = msg.event
        if event.version <= state.allocated_version:
            self.effects.count("ignored_version")
            return state
        now = to_datetime(now_ms)
        if event.event_type == "CANCEL":
            if state.confirmation is None:  # nothing was confirmed: nothing to say
                return msgspec.structs.replace(state, allocated_version=event.version)
            issue: Issue = "CANCEL" if state.issued_id else ""
            cancelled = msgspec.structs.replace(
                state.confirmation,
                confirm_id=confirm_id_of(event.trade_id, event.version),
                version=event.version,
                status="CANCELLED",
                issue=issue,
                ref_confirm_id=state.issued_id,
                updated_at=now,
            )
            state = msgspec.structs.replace(
                state,
                confirmation=cancelled,
                allocated_version=event.version,
                issued_id=cancelled.confirm_id if issue else "",
            )
            self.effects.confirmations.append(cancelled)
            if state.exception_raised and not state.cleared:
                state = self._exception(state, "CLEARED", now_ms, "CANCELLED")
            self.effects.count("cancelled")
            return state
        deadline = self.rules.deadline(msg.mic, msg.trade_date, event.trade_time)
        confirmation = Confirmation(
            confirm_id=confirm_id_of(event.trade_id, event.version),
            trade_id=event.trade_id,
            version=event.version,
            status="PENDING",
            block_id=msg.block_id,
            alloc_id=msg.alloc_id,
            account=event.account,
            instrument=event.instrument,
            side=event.side,
            quantity=event.quantity,
            avg_px=event.price,
            currency=event.currency,
            counterparty=event.counterparty,
            mic=msg.mic,
            trade_date=msg.trade_date,
            trade_time=event.trade_time,
            deadline=deadline,
            session=msg.session,
            updated_at=now,
        )
        state = msgspec.structs.replace(
            state, confirmation=confirmation, allocated_version=event.version
        )
        booked = state.booked
        if booked is not None and booked.version == event.version:
            return self._issue(state, booked, now_ms)
        self.effects.confirmations.append(confirmation)
        return state

    def booked(self, state: ChildState | None, trade: EnrichedTrade, now_ms: int) -> ChildState:
        """Apply the validator's acceptance of a child event: a pending confirmation goes out."""
        state = state or ChildState()
        if state.booked is not None and trade.version <= state.booked.version:
            self.effects.count("ignored_version")
            return state
        state = msgspec.structs.replace(state, booked=trade)
        current = state.confirmation
        if trade.event_type == "CANCEL" or current is None:
            return state
        if current.status == "PENDING" and trade.version == current.version:
            return self._issue(state, trade, now_ms)
        return state

    def acknowledged(
        self, state: ChildState | None, ack: ConfirmationAck, now_ms: int
    ) -> ChildState:
        """Apply the client's answer; raise AckRefused when it answers no open confirmation."""
        parsed = parse_confirm_id(ack.confirm_id)
        if parsed is None:
            raise AckRefused(
                ConfirmationRejectReason.BAD_CONFIRM_ID,
                f"ConfirmID {ack.confirm_id!r} is not trade_id#version",
            )
        current = state.confirmation if state is not None else None
        if state is None or current is None:
            raise AckRefused(
                ConfirmationRejectReason.UNKNOWN_CONFIRMATION, f"no confirmation {ack.confirm_id}"
            )
        if parsed[1] != current.version:
            raise AckRefused(
                ConfirmationRejectReason.STALE_CONFIRMATION,
                f"{ack.confirm_id} answers version {parsed[1]}; the confirmation is at "
                f"{current.confirm_id}",
            )
        if current.status == "CANCELLED":
            raise AckRefused(
                ConfirmationRejectReason.CONFIRMATION_CANCELLED, f"{current.trade_id} is cancelled"
            )
        if current.status == "PENDING":
            raise AckRefused(
                ConfirmationRejectReason.CONFIRMATION_NOT_ISSUED,
                f"{current.confirm_id} was not sent yet (the child is not on the books)",
            )
        if ack.affirm_status == "RECEIVED":
            self.effects.count("acks_received")
            return state
        status: ConfirmationStatus = "AFFIRMED" if ack.affirm_status == "AFFIRMED" else "REJECTED"
        if current.status == status:
            self.effects.count("duplicate_acks")
            return state
        now = to_datetime(now_ms)
        revised = msgspec.structs.replace(
            current,
            status=status,
            issue="",
            ref_confirm_id="",
            affirmed_at=now if status == "AFFIRMED" else None,
            reject_reason=(ack.reason or ack.text) if status == "REJECTED" else "",
            updated_at=now,
        )
        state = msgspec.structs.replace(state, confirmation=revised)
        self.effects.confirmations.append(revised)
        self.effects.count(status.lower())
        if status == "AFFIRMED" and state.exception_raised and not state.cleared:
            state = self._exception(state, "CLEARED", now_ms, "AFFIRMED")
        return state

    def overdue(self, state: ChildState, now_ms: int) -> ChildState:
        """Raise the child's exception if it is open past its deadline (once per child)."""
        deadline_ms = state.deadline_ms
        if (
            state.open
            and not state.exception_raised
            and deadline_ms is not None
            and now_ms > deadline_ms
        ):
            return self._exception(state, "UNAFFIRMED", now_ms, "")
        return state

    # -- helpers -----------------------------------------------------------------------

    def _issue(self, state: ChildState, trade: EnrichedTrade, now_ms: int) -> ChildState:
        """Send the confirmation of a booked child: CONFIRMED, with the booked economics."""
        assert state.confirmation is not None  # noqa: S101 - the callers check
        issue: Issue = "REPLACE" if state.issued_id else "NEW"
        confirmed = msgspec.structs.replace(
            state.confirmation,
            status="CONFIRMED",
            issue=issue,
            ref_confirm_id=state.issued_id,
            isin=trade.isin,
            symbol=trade.symbol,
            gross_amount=trade.notional,
            net_money=trade.notional,
            settlement_date=trade.settlement_date,
            counterparty_lei=trade.counterparty_lei,
            updated_at=to_datetime(now_ms),
        )
        self.effects.confirmations.append(confirmed)
        self.effects.count("confirmed")
        return msgspec.structs.replace(
            state, confirmation=confirmed, issued_id=confirmed.confirm_id
        )

    def _exception(
        self, state: ChildState, kind: ExceptionKind, now_ms: int, resolution: Resolution
    ) -> ChildState:
        current = state.confirmation
        assert current is not None  # noqa: S101 - only confirmed children have deadlines
        late_ms = now_ms - to_ms(current.deadline) if kind == "CLEARED" else 0
        self.effects.exceptions.append(
            AffirmationException(
                trade_id=current.trade_id,
                confirm_id=current.confirm_id,
                kind=kind,
                status=current.status,
                resolution=resolution,
                deadline=current.deadline,
                at=to_datetime(now_ms),
                late_ms=max(0, late_ms),
                account=current.account,
                block_id=current.block_id,
                alloc_id=current.alloc_id,
                instrument=current.instrument,
                mic=current.mic,
                trade_date=current.trade_date,
            )
        )
        self.effects.count("exceptions_raised" if kind == "UNAFFIRMED" else "exceptions_cleared")
        if kind == "UNAFFIRMED":
            return msgspec.structs.replace(state, exception_raised=True)
        return msgspec.structs.replace(state, cleared=True)
