"""The arithmetic of a block allocation: the average price and the split into whole lots.

Exact Decimal arithmetic in an explicit, wide context (:data:`CONTEXT`: 60 digits,
half-even), so that no intermediate sum rounds; the only rounding is the stated one:
the average price to its precision, and quantities to whole lots.

The residual rule (largest remainder, ties in instruction order): each account's
requested quantity is rounded down to whole lots; the lots left over (the block minus
the rounded sum) go one each to the accounts with the largest remainder (requested
minus rounded), the earlier account in the instruction first on equal remainders.
The quantities then sum exactly to the block.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal

CONTEXT = decimal.Context(
    prec=60, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation]
)
"""The context of every allocation computation: wide enough that sums and products are exact."""


def _sum(values: Sequence[Decimal] | list[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = CONTEXT.add(total, value)
    return total


class SplitError(ValueError):
    """The quantities cannot be split: they do not sum to the block, or the lot is not positive."""


def average_price(fills: Sequence[tuple[Decimal, Decimal]], places: int) -> Decimal:
    """Return ``Σ(quantity × price) / Σ quantity`` of ``(quantity, price)`` fills, to ``places``.

    Rounded half-even to ``places`` decimal places (``places`` >= 0); raises SplitError
    when the fills have no quantity.
    """
    exact = exact_average_price(fills)
    return exact.quantize(Decimal(1).scaleb(-places), context=CONTEXT)


def exact_average_price(fills: Sequence[tuple[Decimal, Decimal]]) -> Decimal:
    """Return the average price of the fills to the context's 60 digits (for comparisons)."""
    total_qty = Decimal(0)
    amount = Decimal(0)
    for quantity, price in fills:
        total_qty = CONTEXT.add(total_qty, quantity)
        amount = CONTEXT.add(amount, CONTEXT.multiply(quantity, price))
    if total_qty <= 0:
        raise SplitError("the block has no quantity to average")
    return CONTEXT.divide(amount, total_qty)


def matches_stated_price(stated: Decimal, exact: Decimal) -> bool:
    """Tell whether ``exact`` rounded half-even to the decimals ``stated`` shows equals it.

    ``10.02`` matches an exact average of 10.0166..., so does ``10.016667``; ``10.01``
    does not.
    """
    exponent = stated.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or Infinity
        return False
    return exact.quantize(Decimal(1).scaleb(exponent), context=CONTEXT) == stated


def split_block(
    block_qty: Decimal, lot_size: Decimal, requested: Sequence[Decimal]
) -> list[Decimal]:
    """Return the booked quantities of ``requested`` (in order): whole lots, summing to the block.

    ``requested`` must sum exactly to ``block_qty``, which must be a whole number of
    lots; see the module docstring for the residual rule. Raises SplitError otherwise.
    """
    if not lot_size.is_finite() or lot_size <= 0:
        raise SplitError(f"lot size {lot_size} is not positive")
    if any(r <= 0 for r in requested):
        raise SplitError("every requested quantity must be positive")
    if _sum(requested) != block_qty:
        raise SplitError(f"the quantities sum to {_sum(requested)}, not {block_qty}")
    if CONTEXT.remainder(block_qty, lot_size) != 0:
        raise SplitError(f"the block {block_qty} is not a whole number of lots of {lot_size}")
    rounded = [CONTEXT.multiply(CONTEXT.divide_int(r, lot_size), lot_size) for r in requested]
    remainders = [CONTEXT.subtract(r, b) for r, b in zip(requested, rounded, strict=True)]
    left = CONTEXT.subtract(block_qty, _sum(rounded))
    lots_left = int(CONTEXT.divide_int(left, lot_size))
    by_remainder = sorted(range(len(requested)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:lots_left]:
        rounded[i] = CONTEXT.add(rounded[i], lot_size)
    return rounded
