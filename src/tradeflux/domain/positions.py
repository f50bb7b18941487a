"""Positions: the average-cost fold of a position's effective trades (docs/domain-rules.md).

A position is the fold of its effective trades (the latest version of each trade id;
a CANCEL removes it) ordered by ``(trade_time, trade_id)``, starting flat. Arithmetic is
Decimal in the one context of domain/arithmetic.py (64 digits, half-even), in exactly the
operations the rules list, so that the reference model and this code agree to the last
digit.

Here: the fold's arithmetic (:func:`apply_fill`), a trade as the fold reads it
(:class:`PositionEvent`, :class:`Fill`) and the whole fold (:func:`fold_position`).
Folding a position incrementally, in state that stays small however many trades it
has, is domain/position_book.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

import msgspec

from tradeflux.domain.arithmetic import absolute, add, divide, multiply, negate, subtract
from tradeflux.domain.schemas import EnrichedTrade, EventType, Position, Side

_ZERO = Decimal(0)


# gc=False on the state's structs: they refer only to strings, numbers, dates and each
# other, so they can form no reference cycle, and the collector need not scan the
# millions of them a busy service holds.
class PositionState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The running figures of a position: signed quantity, average cost, realized P&L.

    ``avg_cost`` is the average price of the open quantity (0 when flat);
    ``realized_pnl`` is in the instrument's currency.
    """

    quantity: Decimal
    avg_cost: Decimal
    realized_pnl: Decimal


FLAT = PositionState(_ZERO, _ZERO, _ZERO)
"""The state a position starts from."""


class PositionEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fields of an enriched trade event that a position reads.

    The positions service decodes ``trades.enriched`` records straight into this: the
    decoder skips the other fields (venue, counterparty, enrichment), a third less work
    than a whole :class:`EnrichedTrade`. Anything that takes a trade event here takes
    either.
    """

    event_type: EventType
    trade_id: str
    version: int
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    currency: str
    trade_time: dt.datetime
    multiplier: Decimal


FoldEvent = EnrichedTrade | PositionEvent
"""A trade event as the position fold reads it."""


def apply_fill(
    position_state: PositionState, side: Side, qty: Decimal, price: Decimal, multiplier: Decimal
) -> PositionState:
    """Return the position after one fill of ``qty`` (positive) at ``price``.

    A fill on the side of the position (or from flat) averages into the cost; one against
    it realizes ``(price - avg_cost) * closed qty * multiplier`` (sign-adjusted for a
    short); a fill that crosses zero opens the remainder at ``price``. Every operation is
    in the :data:`~tradeflux.domain.arithmetic.ARITHMETIC` context.
    """
    fill_qty = qty if side == "BUY" else negate(qty)
    held_qty = position_state.quantity
    avg_cost = position_state.avg_cost
    realized = position_state.realized_pnl
    if held_qty == 0 or (fill_qty > 0) == (held_qty > 0):
        held, filled = absolute(held_qty), absolute(fill_qty)
        cost = add(multiply(held, avg_cost), multiply(filled, price))
        avg_cost = divide(cost, add(held, filled))
        return PositionState(add(held_qty, fill_qty), avg_cost, realized)
    closed_qty = min(absolute(fill_qty), absolute(held_qty))
    gain_per_unit = subtract(price, avg_cost) if held_qty > 0 else subtract(avg_cost, price)
    realized = add(realized, multiply(multiply(gain_per_unit, closed_qty), multiplier))
    new_qty = add(held_qty, fill_qty)
    if new_qty == 0:
        avg_cost = _ZERO
    elif (new_qty > 0) != (held_qty > 0):
        avg_cost = price
    return PositionState(new_qty, avg_cost, realized)


class Fill(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One version of a trade as a position sees it; ``live`` False is a cancel (tombstone)."""

    trade_id: str
    version: int
    trade_time: dt.datetime
    side: Side
    quantity: Decimal
    price: Decimal
    multiplier: Decimal
    live: bool = True

    @classmethod
    def of(cls, trade: FoldEvent) -> Fill:
        """Return the fill of an enriched trade; a CANCEL gives a tombstone."""
        return cls(
            trade.trade_id,
            trade.version,
            trade.trade_time,
            trade.side,
            trade.quantity,
            trade.price,
            trade.multiplier,
            trade.event_type != "CANCEL",
        )


def fold_key(f: Fill) -> tuple[dt.datetime, str]:
    """Return the fold order of a fill: ``(trade_time, trade_id)``."""
    return (f.trade_time, f.trade_id)


def _fold(fills: Iterable[Fill]) -> tuple[PositionState, int, Fill | None]:
    """Fold live fills in fold order; return the state, their count and the last one."""
    state, count, last = FLAT, 0, None
    for fill in sorted(fills, key=fold_key):
        state = apply_fill(state, fill.side, fill.quantity, fill.price, fill.multiplier)
        count += 1
        last = fill
    return state, count, last


def position_of(
    account: str,
    instrument: str,
    currency: str,
    multiplier: Decimal,
    state: PositionState,
    count: int,
    last: Fill | None,
) -> Position:
    """Return the position of ``state`` after ``count`` live fills, ``last`` the last."""
    return Position(
        account=account,
        instrument=instrument,
        currency=currency,
        quantity=state.quantity,
        avg_cost=state.avg_cost,
        realized_pnl=state.realized_pnl,
        multiplier=multiplier,
        trade_count=count,
        last_trade_id=last.trade_id if last is not None else "",
        as_of=last.trade_time if last is not None else None,
    )


def fold_position(
    account: str,
    instrument: str,
    currency: str,
    multiplier: Decimal,
    trades: Iterable[EnrichedTrade],
) -> Position:
    """Return the position that is the fold of ``trades``, its effective trades.

    ``trades`` holds one effective (not cancelled) version per trade id, in any order:
    they are folded by ``(trade_time, trade_id)``, each with its own multiplier.
    ``multiplier`` and ``currency`` are those reported on the position.
    """
    state, count, last = _fold(Fill.of(t) for t in trades)
    return position_of(account, instrument, currency, multiplier, state, count, last)
