from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tradeflux.domain.pnl import account_pnl, conversion_factor, convert
from tradeflux.domain.schemas import AccountPnL, FxRate, Position, Price

D = Decimal
T = dt.datetime(2026, 1, 2, 16, tzinfo=dt.UTC)


def rates(**pairs: str) -> dict[str, FxRate]:
    return {p: FxRate(pair=p, base=p[:3], quote=p[3:], rate=D(r), time=T) for p, r in pairs.items()}


FX = rates(EURUSD="1.0842", GBPUSD="1.25", USDJPY="150", EURGBP="0.85")


def position(
    instrument: str, currency: str, qty: str, avg: str, realized: str = "0", m: str = "1"
) -> Position:
    return Position(
        account="ACC-1",
        instrument=instrument,
        currency=currency,
        quantity=D(qty),
        avg_cost=D(avg),
        realized_pnl=D(realized),
        multiplier=D(m),
        trade_count=1,
    )


def price(instrument: str, last: str) -> Price:
    return Price(instrument_id=instrument, bid=D(last), ask=D(last), last=D(last), time=T)


# ---- conversion ---------------------------------------------------------------------


def test_the_same_currency_converts_at_one() -> None:
    assert convert(D("123.45"), "USD", "USD", {}) == D("123.45")


def test_a_direct_pair_multiplies_by_its_rate() -> None:
    assert convert(D(100), "EUR", "USD", FX) == D("108.4200")


def test_an_inverse_pair_multiplies_by_one_over_its_rate() -> None:
    assert convert(D(1500), "JPY", "USD", FX) == D(10)
    usdjpy = rates(USDJPY="151.37")
    # 1 / 151.37 in 64 digits, half-even (domain/arithmetic.py)
    factor = D("0.006606328863050802668956860672524278258571711699808416462971526723")
    assert conversion_factor("JPY", "USD", usdjpy) == factor
    assert convert(D(100), "JPY", "USD", usdjpy) == D(
        "0.6606328863050802668956860672524278258571711699808416462971526723"
    )


def test_without_a_pair_the_conversion_goes_via_usd() -> None:
    assert convert(D(100), "GBP", "JPY", FX) == D("18750.00")


def test_via_usd_the_amount_is_multiplied_by_the_product_of_the_two_factors() -> None:
    # (1 / 150) * (1 / 1.25) = 0.00533...334 in 64 digits; times 15000
    assert conversion_factor("JPY", "GBP", rates(USDJPY="150", GBPUSD="1.25")) == D(
        "0.00" + "5" + "3" * 62 + "4"
    )
    assert convert(D(15000), "JPY", "GBP", rates(USDJPY="150", GBPUSD="1.25")) == D(
        "80." + "0" * 61 + "1"
    )


def test_a_direct_cross_is_preferred_to_going_via_usd() -> None:
    assert convert(D(100), "EUR", "GBP", FX) == D("85.00")
    assert convert(D(85), "GBP", "EUR", rates(EURGBP="0.85")) == D("99." + "9" * 62)


@pytest.mark.parametrize(
    "ccy,base", [("CHF", "USD"), ("CHF", "EUR"), ("EUR", "CHF"), ("HKD", "JPY")]
)
def test_no_rate_means_no_conversion(ccy: str, base: str) -> None:
    assert convert(D(1), ccy, base, FX) is None


# ---- account P&L --------------------------------------------------------------------


MARKS = [price("ACME.XNYS", "10.50"), price("SAP.XETR", "190"), price("NESN.XSWX", "98")]
PRICES = {p.instrument_id: p for p in MARKS}
POSITIONS = [
    position("SAP.XETR", "EUR", "-10", "200"),
    position("ACME.XNYS", "USD", "100", "10", realized="5.125"),
    position("7203.XTKS", "JPY", "100", "2891"),  # no price
    position("NESN.XSWX", "CHF", "5", "97"),  # no CHF rate
]


def test_account_pnl_sums_converted_realized_and_unrealized_and_lists_missing_marks() -> None:
    pnl = account_pnl("ACC-1", "USD", POSITIONS, PRICES, FX)
    assert pnl == AccountPnL(
        account="ACC-1",
        base_currency="USD",
        realized=D("5.12"),  # 5.125 half-even
        unrealized=D("158.42"),  # 50.00 + (190 - 200) * -10 * 1.0842
        total=D("163.54"),
        positions=4,
        missing_marks=("7203.XTKS", "NESN.XSWX"),
    )


def test_the_order_positions_come_in_does_not_matter() -> None:
    assert account_pnl("ACC-1", "USD", reversed(POSITIONS), PRICES, FX) == account_pnl(
        "ACC-1", "USD", POSITIONS, PRICES, FX
    )


def test_amounts_are_quantized_half_even_once_at_the_end() -> None:
    held = [
        position("A", "USD", "0", "0", realized="0.0049"),
        position("B", "USD", "0", "0", realized="0.0011"),
    ]
    marks = {"A": price("A", "1"), "B": price("B", "1")}
    pnl = account_pnl("ACC-1", "USD", held, marks, FX)
    assert pnl.realized == D("0.01")  # 0.0060, not 0.00 + 0.00
    half = account_pnl(
        "ACC-1", "USD", [position("A", "USD", "0", "0", realized="0.135")], marks, FX
    )
    assert half.realized == D("0.14")


def test_total_is_the_sum_of_the_quantized_parts() -> None:
    held = [position("A", "USD", "1", "0.995", realized="0.005")]
    pnl = account_pnl("ACC-1", "USD", held, {"A": price("A", "1")}, FX)
    assert (pnl.realized, pnl.unrealized, pnl.total) == (D("0.00"), D("0.00"), D("0.00"))
    held = [position("A", "USD", "1", "0.985", realized="0.015")]
    pnl = account_pnl("ACC-1", "USD", held, {"A": price("A", "1")}, FX)
    assert (pnl.realized, pnl.unrealized, pnl.total) == (D("0.02"), D("0.02"), D("0.04"))


def test_positions_convert_into_a_non_usd_base() -> None:
    pnl = account_pnl(
        "ACC-2", "EUR", [position("ACME.XNYS", "USD", "100", "10", realized="108.42")], PRICES, FX
    )
    assert (pnl.realized, pnl.unrealized) == (D("100.00"), D("46.12"))  # 50 / 1.0842 = 46.117...


def test_unrealized_pnl_scales_with_the_multiplier() -> None:
    held = [position("ES", "USD", "2", "4500.25", m="50")]
    pnl = account_pnl("ACC-1", "USD", held, {"ES": price("ES", "4510.75")}, FX)
    assert pnl.unrealized == D("1050.00")


def test_a_flat_position_without_a_price_is_still_a_missing_mark() -> None:
    pnl = account_pnl("ACC-1", "USD", [position("ZZZ", "USD", "0", "0", realized="7")], {}, FX)
    assert (pnl.realized, pnl.positions, pnl.missing_marks) == (D("0.00"), 1, ("ZZZ",))


def test_no_positions_is_zero_pnl() -> None:
    assert account_pnl("ACC-1", "JPY", [], {}, {}) == AccountPnL(
        account="ACC-1",
        base_currency="JPY",
        realized=D("0.00"),
        unrealized=D("0.00"),
        total=D("0.00"),
        positions=0,
    )
