"""The one decimal context of positions, P&L, risk, netting and validation's notional.

Python's ``decimal`` operators use the calling thread's current context (28 digits by
default, and a new thread gets a fresh copy of ``decimal.DefaultContext``), so a sum of
two large amounts may round in one thread and not in another, and a quantize of an amount
beyond 26 integer digits raises. The domain never uses that context: every operation that
can round, or raise, goes through :data:`ARITHMETIC` by the functions below
(``a + b`` is ``add(a, b)``); comparisons, ``Decimal(str)`` and ``max``/``min`` need no
context.

The precision, 64 significant digits, is enough for every figure the documented bounds
(domain/bounds.py, docs/domain-rules.md "Bounds") allow, with at most 10**9 effective
trades per position, account or obligation:

- a notional ``quantity * price * multiplier`` has at most 18 + 18 + 10 = 46 significant
  digits: exact;
- a sum of notionals (risk, netting): each below 10**12 * 10**9 * 10**8 = 10**29 with
  at most 24 decimal places, times 10**9 trades: at most 62 digits: exact, so any order
  of the same trades gives the same sums (whatever notional bound is configured);
- a position's quantity: at most 10**21 with 8 places, 29 digits: exact;
- P&L: ``(last - avg_cost) * quantity * multiplier * fx`` is below
  10**9 * 10**21 * 10**8 * 10**16 = 10**54 (an FX factor, even via USD, is below 10**16),
  as is a risk figure in base currency; quantized to 0.01 either needs 56 digits, so the
  quantize never raises;
- an average cost or an inverse FX rate (a division) is rounded to 64 digits, half-even.

Traps: InvalidOperation, DivisionByZero and Overflow raise (none can happen inside the
bounds; outside them an error is better than a silent NaN); Inexact and Rounded do not.
"""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)

PRECISION = 64
"""Significant digits of every rounded result."""

ARITHMETIC = Context(
    prec=PRECISION,
    rounding=ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    capitals=1,
    clamp=0,
    flags=[],
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""The context of all domain arithmetic (module-level, never the thread's)."""

_CENT = Decimal("0.01")

add = ARITHMETIC.add
subtract = ARITHMETIC.subtract
multiply = ARITHMETIC.multiply
divide = ARITHMETIC.divide
remainder = ARITHMETIC.remainder
absolute = ARITHMETIC.abs
negate = ARITHMETIC.minus


def to_cents(amount: Decimal) -> Decimal:
    """Return ``amount`` quantized to 0.01, half-even (in :data:`ARITHMETIC`)."""
    return ARITHMETIC.quantize(amount, _CENT)


def total(amounts: list[Decimal]) -> Decimal:
    """Return the sum of ``amounts`` (0 for none), left to right, in :data:`ARITHMETIC`."""
    result = Decimal(0)
    for amount in amounts:
        result = add(result, amount)
    return result
