"""Enriched trades and folds for the positions tests (tests/unit/test_positions*.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tradeflux.domain.positions import PositionState, fold_position
from tradeflux.domain.schemas import EnrichedTrade, EventType, Position, Side

D = Decimal
T0 = dt.datetime(2025, 11, 26, 14, 30, tzinfo=dt.UTC)


def trade(
    trade_id: str,
    side: Side,
    qty: str | int,
    price: str | int,
    *,
    seconds: int = 0,
    version: int = 1,
    event_type: EventType = "NEW",
    account: str = "ACC-1",
    instrument: str = "ACME.XNYS",
    multiplier: str | int = 1,
) -> EnrichedTrade:
    quantity, px, m = D(qty), D(price), D(multiplier)
    return EnrichedTrade(
        event_type=event_type,
        trade_id=trade_id,
        version=version,
        account=account,
        instrument=instrument,
        side=side,
        quantity=quantity,
        price=px,
        currency="USD",
        venue="XNYS",
        counterparty="CP-1",
        trade_time=T0 + dt.timedelta(seconds=seconds),
        source="test",
        ingest_time=T0,
        isin="US0378331005",
        symbol="ACME",
        mic="XNYS",
        multiplier=m,
        book="EQ-US",
        legal_entity="TFX LLC",
        base_currency="USD",
        counterparty_lei="HWUPKR0MPOU8FGXBT394",
        notional=quantity * px * m,
        trade_date=T0.date(),
        settlement_date=T0.date(),
    )


def fold(*trades: EnrichedTrade, multiplier: str | int = 1) -> Position:
    return fold_position("ACC-1", "ACME.XNYS", "USD", D(multiplier), trades)


def figures(p: Position | PositionState) -> tuple[Decimal, Decimal, Decimal]:
    return p.quantity, p.avg_cost, p.realized_pnl
