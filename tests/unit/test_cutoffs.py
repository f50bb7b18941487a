"""Settlement cut-offs per market (domain/cutoffs.py): exact instants, holidays, DST."""

from __future__ import annotations

import datetime as dt

import pytest

from tradeflux.domain.cutoffs import DEFAULT_CUTOFFS, CutoffCalendar, MarketCutoff, parse_cutoffs
from tradeflux.errors import ConfigError

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_a_us_settlement_date_is_cut_off_at_19_new_york_on_the_session_before() -> None:
    calendar = CutoffCalendar()
    # Tuesday 2026-11-24 settles; Monday 19:00 EST is Tuesday 00:00 UTC.
    assert calendar.cutoff_at("USD", dt.date(2026, 11, 24)) == utc(2026, 11, 24, 0, 0)


def test_a_monday_is_cut_off_on_the_friday_before() -> None:
    assert CutoffCalendar().cutoff_at("USD", dt.date(2026, 11, 30)) == utc(2026, 11, 28, 0, 0)


def test_the_day_after_a_us_holiday_is_cut_off_on_the_last_session_before_it() -> None:
    # Thanksgiving, Thursday 2026-11-26, has no session: Friday's cut-off is Wednesday's.
    assert CutoffCalendar().cutoff_at("USD", dt.date(2026, 11, 27)) == utc(2026, 11, 26, 0, 0)


def test_the_cut_off_follows_daylight_saving_time_of_the_market() -> None:
    # Monday 2026-07-06 after Independence Day observed on Friday 07-03: Thursday 19:00 EDT.
    assert CutoffCalendar().cutoff_at("USD", dt.date(2026, 7, 6)) == utc(2026, 7, 2, 23, 0)


def test_each_currency_has_its_markets_calendar_and_time_zone() -> None:
    calendar = CutoffCalendar()
    assert calendar.cutoff_at("EUR", dt.date(2026, 11, 24)) == utc(2026, 11, 23, 17, 0)
    # Monday 2026-11-23 is a Japanese holiday: Tuesday's cut-off is Friday 18:00 JST.
    assert calendar.cutoff_at("JPY", dt.date(2026, 11, 24)) == utc(2026, 11, 20, 9, 0)


def test_a_currency_without_a_market_is_cut_off_at_18_utc_on_the_weekday_before() -> None:
    assert CutoffCalendar().cutoff_at("SEK", dt.date(2026, 11, 30)) == utc(2026, 11, 27, 18, 0)


def test_state_expires_at_the_end_of_the_retention_in_market_time() -> None:
    assert CutoffCalendar().expires_at("USD", dt.date(2026, 11, 24)) == utc(2026, 12, 2, 5, 0)
    assert CutoffCalendar(retention_days=0).expires_at("USD", dt.date(2026, 11, 24)) == utc(
        2026, 11, 25, 5, 0
    )


def test_cut_offs_are_configured_over_the_defaults() -> None:
    cutoffs = parse_cutoffs(" USD=XNYS@21:30, SEK=XSTO@17:00 ")
    assert cutoffs["USD"] == MarketCutoff("USD", "XNYS", dt.time(21, 30))
    assert cutoffs["SEK"] == MarketCutoff("SEK", "XSTO", dt.time(17, 0))
    assert cutoffs["EUR"] == DEFAULT_CUTOFFS["EUR"]
    calendar = CutoffCalendar(cutoffs)
    assert calendar.cutoff_at("USD", dt.date(2026, 11, 24)) == utc(2026, 11, 24, 2, 30)
    assert calendar.cutoff_at("SEK", dt.date(2026, 11, 30)) == utc(2026, 11, 27, 16, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("USD=XNYS", "write CCY=MIC@HH:MM"),
        ("usd=XNYS@19:00", "write CCY=MIC@HH:MM"),
        ("USD=XNYS@25:00", "the hour must be 00 to 23"),
        ("USD=QQQQ@19:00", "no exchange calendar for MIC QQQQ"),
    ],
)
def test_a_malformed_cut_off_is_refused_with_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_cutoffs(text)


def test_a_negative_retention_is_refused() -> None:
    with pytest.raises(ConfigError, match="0 or more days"):
        CutoffCalendar(retention_days=-1)
