"""Stable reason codes of rejected allocation instructions (``reason`` of an AllocationAck).

Codes are part of the contract with the senders and the dashboard: never rename one,
only add. The order of the checks, first failing wins, is in docs/domain-rules.md,
"Block allocation". ``FIX_REJ_CODES`` gives each its FIX 4.4 AllocRejCode(88).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class AllocationRejectReason(enum.StrEnum):
    """Why the allocations service rejected an instruction."""

    INCOMPLETE_INSTRUCTION = "INCOMPLETE_INSTRUCTION"  # a NEW/REPLACE without side, qty, ...
    UNSUPPORTED_ALLOC_TYPE = "UNSUPPORTED_ALLOC_TYPE"  # AllocType(626) not 1, 2 or 5
    ALLOC_ID_EXISTS = "ALLOC_ID_EXISTS"  # the AllocID was accepted before, with other content
    UNKNOWN_ALLOCATION = "UNKNOWN_ALLOCATION"  # REPLACE/CANCEL of an AllocID never accepted
    STALE_ALLOCATION = "STALE_ALLOCATION"  # REPLACE/CANCEL of an AllocID since replaced
    ALLOCATION_CANCELLED = "ALLOCATION_CANCELLED"  # REPLACE/CANCEL of a cancelled allocation
    NO_ALLOCATIONS = "NO_ALLOCATIONS"  # NoAllocs empty
    DUPLICATE_ACCOUNT = "DUPLICATE_ACCOUNT"  # an account twice in NoAllocs
    NON_POSITIVE_ALLOC_QTY = "NON_POSITIVE_ALLOC_QTY"  # an AllocQty <= 0
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"  # an AllocAccount not on refdata.accounts
    ACCOUNT_INACTIVE = "ACCOUNT_INACTIVE"  # an AllocAccount not ACTIVE
    ALLOC_QTY_MISMATCH = "ALLOC_QTY_MISMATCH"  # the AllocQtys do not sum to Quantity(53)
    UNKNOWN_BLOCK = "UNKNOWN_BLOCK"  # no live execution of the order on the trade date
    UNKNOWN_EXECUTION = "UNKNOWN_EXECUTION"  # an ExecID of NoExecs is no live execution of it
    BLOCK_ALREADY_ALLOCATED = "BLOCK_ALREADY_ALLOCATED"  # an execution is in another allocation
    MISMATCHED_BLOCK = "MISMATCHED_BLOCK"  # side/instrument differ, or the executions disagree
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"  # the block's instrument is not on refdata
    BLOCK_QTY_MISMATCH = "BLOCK_QTY_MISMATCH"  # Quantity(53) is not the executions' sum
    AVG_PX_MISMATCH = "AVG_PX_MISMATCH"  # AvgPx(6) is not the executions' average price


ACCOUNT_LEVEL = frozenset(
    {AllocationRejectReason.UNKNOWN_ACCOUNT, AllocationRejectReason.ACCOUNT_INACTIVE}
)
"""Rejects of an account, not of the block (AllocStatus(87) 2 "account level reject")."""

_R = AllocationRejectReason
FIX_REJ_CODES: Mapping[str, int] = MappingProxyType(
    {
        _R.INCOMPLETE_INSTRUCTION: 7,  # other
        _R.UNSUPPORTED_ALLOC_TYPE: 7,
        _R.ALLOC_ID_EXISTS: 7,
        _R.UNKNOWN_ALLOCATION: 7,
        _R.STALE_ALLOCATION: 7,
        _R.ALLOCATION_CANCELLED: 7,
        _R.NO_ALLOCATIONS: 8,  # incorrect allocated quantity
        _R.DUPLICATE_ACCOUNT: 8,
        _R.NON_POSITIVE_ALLOC_QTY: 8,
        _R.UNKNOWN_ACCOUNT: 0,  # unknown account(s)
        _R.ACCOUNT_INACTIVE: 0,
        _R.ALLOC_QTY_MISMATCH: 8,
        _R.UNKNOWN_BLOCK: 12,  # unknown ClOrdID
        _R.UNKNOWN_EXECUTION: 10,  # unknown or stale ExecID
        _R.BLOCK_ALREADY_ALLOCATED: 7,
        _R.MISMATCHED_BLOCK: 11,  # mismatched data value
        _R.UNKNOWN_INSTRUMENT: 11,
        _R.BLOCK_QTY_MISMATCH: 1,  # incorrect quantity
        _R.AVG_PX_MISMATCH: 2,  # incorrect average price
    }
)
"""AllocRejCode(88) of each reason, as FIX 4.4 numbers them."""
