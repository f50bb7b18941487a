"""Profit and loss of an account in its base currency (docs/domain-rules.md, P&L).

Conversion and sums are Decimal in the one context of domain/arithmetic.py (64 digits,
enough that nothing inside the bounds rounds a sum or makes the quantize raise); amounts
are quantized to 0.01 (half-even) once, at the end, per account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from tradeflux.domain.arithmetic import add, divide, multiply, subtract, to_cents
from tradeflux.domain.schemas import AccountPnL, FxRate, Position, Price

_ONE = Decimal(1)
_ZERO = Decimal(0)
_USD = "USD"


def _direct_factor(ccy: str, base: str, fx: Mapping[str, FxRate]) -> Decimal | None:
    """Return 1, the rate of ``ccy+base``, or ``1 / rate`` of ``base+ccy``; None if neither."""
    if ccy == base:
        return _ONE
    rate = fx.get(ccy + base)
    if rate is not None:
        return rate.rate
    rate = fx.get(base + ccy)
    if rate is not None:
        return divide(_ONE, rate.rate)
    return None


def conversion_factor(ccy: str, base: str, fx: Mapping[str, FxRate]) -> Decimal | None:
    """Return what an amount in ``ccy`` is multiplied by to be in ``base``, or None.

    ``fx`` maps a pair (``"EURUSD"``: quote units per base unit) to its rate. The first
    rule that applies: 1 for the same currency; the rate of ``ccy+base``; ``1 / rate`` of
    ``base+ccy``; else via USD, the factor of ``ccy`` to USD times that of USD to ``base``
    (each by the same three rules).
    """
    direct = _direct_factor(ccy, base, fx)
    if direct is not None:
        return direct
    to_usd = _direct_factor(ccy, _USD, fx)
    from_usd = _direct_factor(_USD, base, fx)
    if to_usd is None or from_usd is None:
        return None
    return multiply(to_usd, from_usd)


def convert(amount: Decimal, ccy: str, base: str, fx: Mapping[str, FxRate]) -> Decimal | None:
    """Return ``amount`` of ``ccy`` in ``base``: ``amount * conversion_factor``, or None."""
    factor = conversion_factor(ccy, base, fx)
    return None if factor is None else multiply(amount, factor)


def account_pnl(
    account: str,
    base_currency: str,
    positions: Iterable[Position],
    prices: Mapping[str, Price],
    fx: Mapping[str, FxRate],
) -> AccountPnL:
    """Return the realized, unrealized and total P&L of ``account`` in ``base_currency``.

    Positions are taken in instrument order. Each contributes ``realized_pnl`` and
    ``(last - avg_cost) * quantity * multiplier``, both converted from its currency. A
    position without a price of its instrument, or without a conversion of its currency,
    is left out of both sums and listed in ``missing_marks`` (in instrument order).
    ``realized`` and ``unrealized`` are quantized to 0.01 half-even; ``total`` is their
    sum. ``positions`` counts all the positions given, left out or not.
    """
    realized = _ZERO
    unrealized = _ZERO
    counted = 0
    missing: list[str] = []
    for position in sorted(positions, key=lambda p: p.instrument):
        counted += 1
        price = prices.get(position.instrument)
        factor = conversion_factor(position.currency, base_currency, fx)
        if price is None or factor is None:
            missing.append(position.instrument)
            continue
        realized = add(realized, multiply(position.realized_pnl, factor))
        mark_gain = multiply(subtract(price.last, position.avg_cost), position.quantity)
        unrealized = add(unrealized, multiply(multiply(mark_gain, position.multiplier), factor))
    realized_q = to_cents(realized)
    unrealized_q = to_cents(unrealized)
    return AccountPnL(
        account=account,
        base_currency=base_currency,
        realized=realized_q,
        unrealized=unrealized_q,
        total=add(realized_q, unrealized_q),
        positions=counted,
        missing_marks=tuple(missing),
    )
