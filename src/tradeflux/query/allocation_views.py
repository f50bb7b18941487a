"""The read model of the post-trade topics: allocations, their acks, confirmations, exceptions.

Part of :class:`~tradeflux.query.readmodel.ReadModel` (which holds the lock and pages the
listings): it decodes the services' own structs, so the API schemas and the dashboard's
types follow the domain.

- ``allocations.status`` (compacted): the latest :class:`Allocation` per block and
  allocation;
- ``allocations.acks`` (log, bounded): every :class:`AllocationAck`, and the latest per
  AllocID;
- ``confirmations`` (compacted): the latest :class:`Confirmation` per child;
- ``confirmations.exceptions`` (log, bounded): every :class:`AffirmationException`, and
  which children are open (raised, not cleared).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import msgspec

from tradeflux import topics
from tradeflux.domain.allocation_events import Allocation, AllocationAck
from tradeflux.domain.confirmation_events import AffirmationException, Confirmation

ALLOCATIONS = topics.ALLOCATIONS.name
ALLOCATION_ACKS = topics.ALLOCATION_ACKS.name
CONFIRMATIONS = topics.CONFIRMATIONS.name
AFFIRMATION_EXCEPTIONS = topics.AFFIRMATION_EXCEPTIONS.name
TOPICS = (ALLOCATIONS, ALLOCATION_ACKS, CONFIRMATIONS, AFFIRMATION_EXCEPTIONS)
KINDS = {
    ALLOCATIONS: "allocation",
    ALLOCATION_ACKS: "allocation_ack",
    CONFIRMATIONS: "confirmation",
    AFFIRMATION_EXCEPTIONS: "affirmation_exception",
}


class AllocationViews:
    """The tables of the post-trade topics (not thread-safe: the ReadModel locks)."""

    def __init__(self, max_log_entries: int = 50_000) -> None:
        self.allocations: dict[str, Allocation] = {}
        self.acks: collections.deque[AllocationAck] = collections.deque(maxlen=max_log_entries)
        self.last_ack: dict[str, AllocationAck] = {}
        self.confirmations: dict[str, Confirmation] = {}
        self.exceptions: collections.deque[AffirmationException] = collections.deque(
            maxlen=max_log_entries
        )
        self.open_exceptions: dict[str, AffirmationException] = {}
        self.cleared = 0
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            ALLOCATIONS: msgspec.json.Decoder(Allocation),
            ALLOCATION_ACKS: msgspec.json.Decoder(AllocationAck),
            CONFIRMATIONS: msgspec.json.Decoder(Confirmation),
            AFFIRMATION_EXCEPTIONS: msgspec.json.Decoder(AffirmationException),
        }

    def apply(self, topic: str, key: str, value: bytes | None) -> tuple[bool, Any]:
        """Apply one record; return (changed, the new struct or None for a removed key).

        Raises msgspec.DecodeError on a value that is not the topic's struct.
        """
        if value is None:
            tables: dict[str, dict[str, Any]] = {
                ALLOCATIONS: self.allocations,
                CONFIRMATIONS: self.confirmations,
            }
            table = tables.get(topic)
            removed = table is not None and table.pop(key, None) is not None
            return removed, None
        item = self._decoders[topic].decode(value)
        if topic == ALLOCATIONS:
            self.allocations[key] = item
        elif topic == CONFIRMATIONS:
            self.confirmations[key] = item
        elif topic == ALLOCATION_ACKS:
            self.acks.append(item)
            self.last_ack[item.alloc_id] = item
        else:
            self.exceptions.append(item)
            if item.kind == "UNAFFIRMED":
                self.open_exceptions[item.trade_id] = item
            else:
                self.open_exceptions.pop(item.trade_id, None)
                self.cleared += 1
        return True, item

    def allocations_matching(
        self, status: str | None, order_id: str | None, account: str | None
    ) -> Iterator[Allocation]:
        """Yield allocations, newest change first; ``account`` matches the house or a child."""
        ordered = sorted(self.allocations.values(), key=lambda a: (a.updated_at, a.block_id),
                         reverse=True)  # fmt: skip
        for a in ordered:
            if status is not None and a.status != status:
                continue
            if order_id is not None and a.order_id != order_id:
                continue
            if (
                account is not None
                and a.account != account
                and all(c.account != account for c in a.children)
            ):
                continue
            yield a

    def acks_matching(self, alloc_id: str | None, status: str | None) -> Iterator[AllocationAck]:
        """Yield acks, newest first, filtered."""
        for ack in reversed(self.acks):
            if (alloc_id is None or ack.alloc_id == alloc_id) and (
                status is None or ack.status == status
            ):
                yield ack

    def confirmations_matching(
        self, status: str | None, account: str | None, block_id: str | None
    ) -> Iterator[Confirmation]:
        """Yield confirmations by deadline then trade id, filtered."""
        for c in sorted(self.confirmations.values(), key=lambda c: (c.deadline, c.trade_id)):
            if status is not None and c.status != status:
                continue
            if account is not None and c.account != account:
                continue
            if block_id is not None and c.block_id != block_id:
                continue
            yield c

    def exceptions_matching(self, open_only: bool) -> Iterator[AffirmationException]:
        """Yield exceptions newest first; ``open_only``: those not cleared, by deadline."""
        if open_only:
            yield from sorted(self.open_exceptions.values(), key=lambda e: (e.deadline, e.trade_id))
            return
        yield from reversed(self.exceptions)

    def counts(self) -> dict[str, int]:
        """How many entries each table holds, and the confirmations per status."""
        per_status = collections.Counter(c.status for c in self.confirmations.values())
        return {
            "allocations": len(self.allocations),
            "allocation_acks": len(self.acks),
            "confirmations": len(self.confirmations),
            **{f"confirmations_{s.lower()}": n for s, n in sorted(per_status.items())},
            "affirmation_exceptions": len(self.exceptions),
            "open_affirmation_exceptions": len(self.open_exceptions),
            "cleared_affirmation_exceptions": self.cleared,
        }
