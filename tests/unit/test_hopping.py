"""Hopping windows (domain/windows.py, services/analytics.py) and total bar arithmetic."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest

from tests.unit.test_windows import T0, at, trade
from tradeflux.domain.windows import BarTrade, HoppingSpec, WindowSpec, bar_of, vwap_of
from tradeflux.services import analytics
from tradeflux.stream.harness import Output, TestDriver

S = dt.timedelta(seconds=1)
HOP = HoppingSpec(size=60 * S, advance=15 * S, grace=2 * S)


def starts(seconds: float) -> list[dt.datetime]:
    """The starts of the hopping windows that hold a trade at ``seconds`` after T0."""
    return sorted(phase.start_of(at(seconds)) for phase in HOP.phases())


def test_a_hopping_spec_is_size_over_advance_tumbling_series_offset_by_the_advance() -> None:
    assert [(p.size, p.offset, p.grace) for p in HOP.phases()] == [
        (60 * S, 0 * S, 2 * S), (60 * S, 15 * S, 2 * S), (60 * S, 30 * S, 2 * S),
        (60 * S, 45 * S, 2 * S),
    ]  # fmt: skip


def test_a_trade_is_in_every_window_that_overlaps_its_time() -> None:
    # T0 is 15:00:00, on a minute boundary.
    assert starts(20) == [at(-30), at(-15), at(0), at(15)]
    assert starts(15) == [at(-30), at(-15), at(0), at(15)]  # a window's start is inclusive
    assert starts(14.999999) == [at(-45), at(-30), at(-15), at(0)]


def test_offset_windows_know_their_own_starts() -> None:
    phase = WindowSpec(60 * S, 2 * S, offset=15 * S)
    assert phase.holds(at(15)) and phase.holds(at(-45))
    assert not phase.holds(at(0))


@pytest.mark.parametrize(
    ("size", "advance"), [(60, 25), (10, 15), (60, 0)], ids=["not a multiple", "too big", "zero"]
)
def test_a_hopping_spec_refuses_an_advance_that_does_not_divide_the_size(
    size: int, advance: int
) -> None:
    with pytest.raises(ValueError, match="hopping window"):
        HoppingSpec(size * S, advance * S, 0 * S)


def _hops(out: list[Output]) -> dict[str, tuple[Decimal, int, bool]]:
    return {
        o.key or "": (o.value.volume, o.value.count, o.value.final)
        for o in out
        if o.topic == "analytics.hopping_bars" and o.value is not None
    }


def test_the_service_sends_overlapping_bars_with_each_trade_in_each_of_its_windows() -> None:
    assert (analytics.HOPPING.size, analytics.HOPPING.advance) == (60 * S, 15 * S)
    driver = TestDriver(analytics.SERVICE)
    out = driver.send(
        [
            ("AAPL.XNAS", trade("T1", 1, "NEW", 0, "1", "10.00")),
            ("AAPL.XNAS", trade("T2", 1, "NEW", 20, "2", "10.00")),
            ("AAPL.XNAS", trade("T3", 1, "NEW", 50, "4", "10.00")),
        ]
    )
    key = "AAPL.XNAS|2026-11-24T{}Z".format
    assert _hops(out) == {
        key("14:59:15"): (Decimal(1), 1, True),  # [-45, 15) closed: stream time 50 > 15 + 2
        key("14:59:30"): (Decimal(3), 2, True),  # [-30, 30) closed at 32
        key("14:59:45"): (Decimal(3), 2, True),  # [-15, 45) closed at 47
        key("15:00:00"): (Decimal(7), 3, False),  # [0, 60)
        key("15:00:15"): (Decimal(6), 2, False),  # [15, 75)
        key("15:00:30"): (Decimal(4), 1, False),  # [30, 90)
        key("15:00:45"): (Decimal(4), 1, False),  # [45, 105)
    }


def test_a_trade_late_for_one_window_still_goes_into_its_open_windows() -> None:
    driver = TestDriver(analytics.SERVICE)
    task = driver.task(0)
    counted: Counter[str] = Counter()
    take = task.take_counts
    task.take_counts = lambda: (lambda c: (counted.update(c), c)[1])(take())  # type: ignore[method-assign]
    driver.send([("AAPL.XNAS", trade("T1", 1, "NEW", 18, "1", "10.00"))])
    out = driver.send([("AAPL.XNAS", trade("T2", 1, "NEW", 10, "5", "10.00"))])
    # [-45, 15) closed at 17; the other three windows of 10 s are open.
    assert counted["hopping_late"] == 1
    assert sorted(_hops(out)) == [
        "AAPL.XNAS|2026-11-24T14:59:30Z",
        "AAPL.XNAS|2026-11-24T14:59:45Z",
        "AAPL.XNAS|2026-11-24T15:00:00Z",
    ]
    assert counted["late"] == 1  # and it is late for its tumbling 5 s window [10, 15) too


def test_bar_arithmetic_is_total_for_values_far_beyond_28_digits() -> None:
    price, quantity = Decimal("1" + "0" * 30 + ".25"), Decimal("7" * 25)
    notional = Decimal("7777777777777777777777777000001944444444444444444444444.25")  # exact
    trades = [
        BarTrade("T1", "A", T0, quantity, price, notional),
        BarTrade("T2", "A", T0, Decimal("0.000001"), Decimal("0.01"), Decimal("1E-8")),
    ]
    bar = bar_of("X", T0, 5 * S, "USD", trades)
    assert bar is not None
    # Exact, where Python's default context (28 digits) would have rounded both.
    assert bar.volume == Decimal("7777777777777777777777777.000001")
    assert bar.notional == Decimal(
        "7777777777777777777777777000001944444444444444444444444.25000001"
    )
    assert bar.vwap.as_tuple().exponent == -6


def test_vwap_is_the_default_contexts_result_for_ordinary_values() -> None:
    value, volume = Decimal("4012.0000"), Decimal(400)
    assert vwap_of(value, volume) == Decimal("10.030000")
    assert vwap_of(Decimal(10), Decimal(3)) == Decimal("3.333333")
    assert vwap_of(Decimal("0.0000025"), Decimal(1)) == Decimal("0.000002")  # half-even
