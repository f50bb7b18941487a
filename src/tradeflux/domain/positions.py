"""Positions: the average-cost fold of a position's effective trades (docs/domain-rules.md).

A position is the fold of its effective trades (the latest version of each trade id;
a CANCEL removes it) ordered by ``(trade_time, trade_id)``, starting flat. Arithmetic is
Decimal in Python's default context, in exactly the operations the rules list, so that
the reference model and this code agree to the last digit.

:class:`PositionBook` is the state the positions service keeps per ``account|instrument``:
the fills of its trades by trade id, and the fold so far. A NEW that comes last in fold
order is applied incrementally; anything else (an AMEND, a CANCEL, a trade that sorts
before the last one) re-folds. Both give the same result, by construction and by test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

import msgspec

from tradeflux.domain.schemas import EnrichedTrade, Position, Side

_ZERO = Decimal(0)


class PositionState(msgspec.Struct, frozen=True, array_like=True):
    """The running figures of a position: signed quantity, average cost, realized P&L.

    ``avg_cost`` is the average price of the open quantity (0 when flat);
    ``realized_pnl`` is in the instrument's currency.
    """

    quantity: Decimal
    avg_cost: Decimal
    realized_pnl: Decimal


FLAT = PositionState(_ZERO, _ZERO, _ZERO)
"""The state a position starts from."""


def apply_fill(
    position_state: PositionState, side: Side, qty: Decimal, price: Decimal, multiplier: Decimal
) -> PositionState:
    """Return the position after one fill of ``qty`` (positive) at ``price``.

    A fill on the side of the position (or from flat) averages into the cost; one against
    it realizes ``(price - avg_cost) * closed qty * multiplier`` (sign-adjusted for a
    short); a fill that crosses zero opens the remainder at ``price``.
    """
    q = qty if side == "BUY" else -qty
    p, m = price, multiplier
    big_q, a, r = position_state.quantity, position_state.avg_cost, position_state.realized_pnl
    if big_q == 0 or (q > 0) == (big_q > 0):
        a = (abs(big_q) * a + abs(q) * p) / (abs(big_q) + abs(q))
        return PositionState(big_q + q, a, r)
    c = min(abs(q), abs(big_q))
    r = r + (p - a) * c * m if big_q > 0 else r + (a - p) * c * m
    new_q = big_q + q
    if new_q == 0:
        a = _ZERO
    elif (new_q > 0) != (big_q > 0):
        a = p
    return PositionState(new_q, a, r)


class Fill(msgspec.Struct, frozen=True, array_like=True):
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
    def of(cls, trade: EnrichedTrade) -> Fill:
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

    @property
    def fold_key(self) -> tuple[dt.datetime, str]:
        """Return the fold order of this fill: ``(trade_time, trade_id)``."""
        return (self.trade_time, self.trade_id)


def _fold(fills: Iterable[Fill]) -> tuple[PositionState, int, Fill | None]:
    """Fold live fills in fold order; return the state, their count and the last one."""
    state, count, last = FLAT, 0, None
    for fill in sorted(fills, key=lambda f: f.fold_key):
        state = apply_fill(state, fill.side, fill.quantity, fill.price, fill.multiplier)
        count += 1
        last = fill
    return state, count, last


def _position(
    account: str,
    instrument: str,
    currency: str,
    multiplier: Decimal,
    state: PositionState,
    count: int,
    last: Fill | None,
) -> Position:
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
    return _position(account, instrument, currency, multiplier, state, count, last)


class PositionBook(msgspec.Struct, frozen=True, kw_only=True):
    """The trades of one ``account|instrument`` and their fold; a value of the positions store.

    ``fills`` holds the latest version seen of every trade id, cancels included as
    tombstones, so that versions arriving in any order give the position of the final
    effective versions: an event whose version is not above the one held is ignored.
    ``currency`` and ``multiplier`` (reported on the position) are those of the last
    event applied. Immutable: :meth:`apply` returns a new book (store values are never
    mutated).
    """

    account: str
    instrument: str
    currency: str
    multiplier: Decimal
    fills: dict[str, Fill] = msgspec.field(default_factory=dict)
    state: PositionState = FLAT
    trade_count: int = 0
    last: Fill | None = None  # the last live fill in fold order

    @classmethod
    def open(
        cls, account: str, instrument: str, currency: str, multiplier: Decimal
    ) -> PositionBook:
        """Return an empty (flat) book."""
        return cls(account=account, instrument=instrument, currency=currency, multiplier=multiplier)

    @classmethod
    def empty(cls, trade: EnrichedTrade) -> PositionBook:
        """Return an empty book for the position of ``trade``."""
        return cls.open(trade.account, trade.instrument, trade.currency, trade.multiplier)

    @property
    def position(self) -> Position:
        """Return the position this book folds to."""
        return _position(
            self.account,
            self.instrument,
            self.currency,
            self.multiplier,
            self.state,
            self.trade_count,
            self.last,
        )

    def effective_fills(self) -> list[Fill]:
        """Return the live fills, in fold order."""
        return sorted((f for f in self.fills.values() if f.live), key=lambda f: f.fold_key)

    def apply(self, event: EnrichedTrade) -> tuple[PositionBook, Position]:
        """Return the book with ``event`` applied, and its position.

        An event whose version is not above the held version of its trade id changes
        nothing: the same book (``is`` self) and its position come back. A NEW version
        of a trade not live in the book that sorts after the last fill is folded on
        incrementally; any other change re-folds the live fills.
        """
        held = self.fills.get(event.trade_id)
        if held is not None and event.version <= held.version:
            return self, self.position
        fill = Fill.of(event)
        fills = dict(self.fills)
        fills[fill.trade_id] = fill
        was_live = held is not None and held.live
        last: Fill | None
        if fill.live and not was_live and (self.last is None or fill.fold_key > self.last.fold_key):
            state = apply_fill(self.state, fill.side, fill.quantity, fill.price, fill.multiplier)
            count, last = self.trade_count + 1, fill
        elif not fill.live and not was_live:
            state, count, last = self.state, self.trade_count, self.last
        else:
            state, count, last = _fold(f for f in fills.values() if f.live)
        book = PositionBook(
            account=self.account,
            instrument=self.instrument,
            currency=event.currency,
            multiplier=event.multiplier,
            fills=fills,
            state=state,
            trade_count=count,
            last=last,
        )
        return book, book.position
