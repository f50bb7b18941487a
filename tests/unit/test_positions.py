"""The average-cost fold: its arithmetic, its order, the event it reads."""

from __future__ import annotations

import datetime as dt
import decimal

import msgspec
import pytest

from tests.support.positions import T0, D, figures, fold, trade
from tradeflux.domain.positions import FLAT, PositionEvent, PositionState, apply_fill
from tradeflux.domain.schemas import EnrichedTrade, Position, Side

# ---- average-cost arithmetic --------------------------------------------------------


def test_buys_average_into_the_cost() -> None:
    s = apply_fill(FLAT, "BUY", D(100), D(10), D(1))
    s = apply_fill(s, "BUY", D(50), D(13), D(1))
    assert figures(s) == (D(150), D(11), D(0))


def test_a_partial_sell_realizes_against_the_average_and_keeps_it() -> None:
    s = PositionState(D(150), D(11), D(0))
    s = apply_fill(s, "SELL", D(60), D(12), D(1))
    assert figures(s) == (D(90), D(11), D(60))


def test_selling_out_closes_to_flat_with_zero_average() -> None:
    s = PositionState(D(90), D(11), D(60))
    s = apply_fill(s, "SELL", D(90), D(9), D(1))
    assert figures(s) == (D(0), D(0), D(-120))


def test_a_sell_through_zero_realizes_the_long_and_opens_a_short_at_the_price() -> None:
    s = PositionState(D(90), D(11), D(0))
    s = apply_fill(s, "SELL", D(150), D(12), D(1))
    assert figures(s) == (D(-60), D(12), D(90))


def test_a_buy_covering_a_short_realizes_average_minus_price() -> None:
    s = PositionState(D(-60), D(12), D(90))
    s = apply_fill(s, "BUY", D(20), D(10), D(1))
    assert figures(s) == (D(-40), D(12), D(130))


def test_a_buy_through_zero_opens_a_long_at_the_price() -> None:
    s = PositionState(D(-40), D(12), D(0))
    s = apply_fill(s, "BUY", D(100), D("12.50"), D(1))
    assert figures(s) == (D(60), D("12.50"), D(-20))


def test_shorts_average_into_the_cost_too() -> None:
    s = apply_fill(FLAT, "SELL", D(10), D(20), D(1))
    s = apply_fill(s, "SELL", D(30), D(24), D(1))
    assert figures(s) == (D(-40), D(23), D(0))


def test_realized_pnl_scales_with_the_multiplier() -> None:
    s = apply_fill(FLAT, "BUY", D(2), D("4500.25"), D(50))
    s = apply_fill(s, "SELL", D(2), D("4501.75"), D(50))
    assert figures(s) == (D(0), D(0), D("150.00"))


def test_an_average_that_does_not_terminate_rounds_to_64_digits_half_even() -> None:
    s = apply_fill(FLAT, "BUY", D(1), D(10), D(1))
    s = apply_fill(s, "BUY", D(2), D("10.01"), D(1))
    assert s.avg_cost == D("10.00" + "6" * 59 + "7")
    s = apply_fill(s, "SELL", D(3), D(11), D(1))
    assert figures(s) == (D(0), D(0), D("2.97" + "9" * 60))


def test_the_fill_arithmetic_does_not_depend_on_the_threads_decimal_context() -> None:
    with decimal.localcontext(prec=5, traps=[decimal.Inexact]):
        s = apply_fill(FLAT, "BUY", D("123456789012.12345678"), D("999999999.99999999"), D(1))
        s = apply_fill(s, "SELL", D("0.00000001"), D("0.00000001"), D("99999999"))
    assert s.quantity == D("123456789012.12345677")
    assert s.realized_pnl == D("-999999989.9999999800000002")  # (p - A) * c * m, exact


# ---- folding ------------------------------------------------------------------------


def test_the_fold_orders_by_trade_time_then_trade_id() -> None:
    a = trade("A", "BUY", 100, 10, seconds=0)
    b = trade("B", "SELL", 100, 12, seconds=5)
    c = trade("C", "BUY", 50, 11, seconds=5)
    position = fold(c, b, a)  # B before C at the same time
    assert figures(position) == (D(50), D(11), D(200))
    assert (position.trade_count, position.last_trade_id, position.as_of) == (
        3,
        "C",
        T0 + dt.timedelta(seconds=5),
    )


def test_an_empty_fold_is_flat() -> None:
    assert fold() == Position(
        account="ACC-1",
        instrument="ACME.XNYS",
        currency="USD",
        quantity=D(0),
        avg_cost=D(0),
        realized_pnl=D(0),
        multiplier=D(1),
    )


def test_each_fill_uses_its_own_multiplier() -> None:
    position = fold(
        trade("A", "BUY", 1, 100, multiplier=10),
        trade("B", "SELL", 1, 101, seconds=1, multiplier=20),
    )
    assert position.realized_pnl == D(20)


def test_the_position_event_is_a_projection_of_the_enriched_trade() -> None:
    # PositionEvent repeats eleven EnrichedTrade fields so the service decodes less; if
    # the two drift apart, the positions service would silently misread trades.enriched
    enriched = {f.name: f.type for f in msgspec.structs.fields(EnrichedTrade)}
    projected = {f.name: f.type for f in msgspec.structs.fields(PositionEvent)}
    assert {name: enriched.get(name) for name in projected} == projected
    full = trade("T1", "SELL", "12.5", "101.25", version=3, event_type="AMEND", multiplier=10)
    event = msgspec.json.decode(msgspec.json.encode(full), type=PositionEvent)
    assert {name: getattr(event, name) for name in projected} == {
        name: getattr(full, name) for name in projected
    }
    assert fold(event, multiplier=10) == fold(full, multiplier=10)


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_a_round_trip_at_one_price_realizes_nothing(side: Side) -> None:
    other: Side = "SELL" if side == "BUY" else "BUY"
    position = fold(trade("A", side, 100, "10.37"), trade("B", other, 100, "10.37", seconds=1))
    assert figures(position) == (D(0), D(0), D(0))
