"""The listings of the post-trade tables, paged like every listing of the read model."""

from __future__ import annotations

from tradeflux.domain.allocation_events import Allocation, AllocationAck
from tradeflux.domain.confirmation_events import AffirmationException, Confirmation
from tradeflux.query.pages import Page, page
from tradeflux.query.readmodel import ReadModel


def list_allocations(
    model: ReadModel,
    status: str | None = None,
    order_id: str | None = None,
    account: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[Allocation]:
    """Return the allocations of record, the latest changed first, filtered."""
    with model.lock:
        return page(
            model.allocations.allocations_matching(status, order_id, account), limit, offset
        )


def list_allocation_acks(
    model: ReadModel,
    alloc_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[AllocationAck]:
    """Return the answers to allocation instructions, newest first, filtered."""
    with model.lock:
        return page(model.allocations.acks_matching(alloc_id, status), limit, offset)


def list_confirmations(
    model: ReadModel,
    status: str | None = None,
    account: str | None = None,
    block_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[Confirmation]:
    """Return confirmations by deadline, filtered."""
    with model.lock:
        matches = model.allocations.confirmations_matching(status, account, block_id)
        return page(matches, limit, offset)


def list_affirmation_exceptions(
    model: ReadModel, open_only: bool = False, limit: int = 100, offset: int = 0
) -> Page[AffirmationException]:
    """Return affirmation exceptions, newest first (``open_only``: not cleared, by deadline)."""
    with model.lock:
        return page(model.allocations.exceptions_matching(open_only), limit, offset)
