"""Affirmation deadlines: SEC 15c6-2 for US equities, calendar rules elsewhere, time zones, DST."""

from __future__ import annotations

import datetime as dt

import pytest

from tradeflux.domain.confirmation_deadlines import (
    SEC_15C6_2,
    AffirmationRule,
    AffirmationRules,
    parse_rules,
)
from tradeflux.errors import ConfigError

UTC = dt.UTC
RULES = AffirmationRules()


def at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(15, 0), tzinfo=UTC)


@pytest.mark.parametrize(
    ("mic", "trade_date", "deadline"),
    [
        # The day before Independence Day (observed Friday 2026-07-03): still 21:00 EDT
        # on trade date, not after the holiday.
        ("XNYS", dt.date(2026, 7, 2), dt.datetime(2026, 7, 3, 1, 0, tzinfo=UTC)),
        # The day before Thanksgiving 2026-11-26, in winter time: 21:00 EST.
        ("XNAS", dt.date(2026, 11, 25), dt.datetime(2026, 11, 26, 2, 0, tzinfo=UTC)),
        # US summer time starts on Sunday 2026-03-08: the Friday before is EST, the
        # change day itself and the Monday after are EDT.
        ("XNYS", dt.date(2026, 3, 6), dt.datetime(2026, 3, 7, 2, 0, tzinfo=UTC)),
        ("XNYS", dt.date(2026, 3, 8), dt.datetime(2026, 3, 9, 1, 0, tzinfo=UTC)),
        ("XNYS", dt.date(2026, 3, 9), dt.datetime(2026, 3, 10, 1, 0, tzinfo=UTC)),
        # ... and ends on Sunday 2026-11-01.
        ("XNYS", dt.date(2026, 10, 31), dt.datetime(2026, 11, 1, 1, 0, tzinfo=UTC)),
        ("XNYS", dt.date(2026, 11, 1), dt.datetime(2026, 11, 2, 2, 0, tzinfo=UTC)),
    ],
)
def test_us_equities_are_due_by_21_00_new_york_time_on_trade_date(
    mic: str, trade_date: dt.date, deadline: dt.datetime
) -> None:
    assert RULES.rule_for(mic) == SEC_15C6_2
    assert RULES.deadline(mic, trade_date, at(trade_date)) == deadline


def test_a_session_rule_skips_the_holiday_and_the_weekend() -> None:
    next_session_noon = AffirmationRule(sessions_after=1, cutoff=dt.time(12, 0))
    # Thursday 2026-07-02, before Friday's holiday: due Monday 2026-07-06 12:00 EDT.
    deadline = next_session_noon.deadline("XNYS", dt.date(2026, 7, 2), at(dt.date(2026, 7, 2)))
    assert deadline == dt.datetime(2026, 7, 6, 16, 0, tzinfo=UTC)


def test_the_default_rule_is_noon_of_the_next_session_in_the_markets_own_time_zone() -> None:
    # London, Friday 2026-03-27; UK summer time starts Sunday 2026-03-29: Monday's noon is
    # BST (11:00 UTC), where the trade date's noon was GMT (12:00 UTC).
    trade_date = dt.date(2026, 3, 27)
    assert RULES.deadline("XLON", trade_date, at(trade_date)) == dt.datetime(
        2026, 3, 30, 11, 0, tzinfo=UTC
    )
    # Tokyo has no daylight saving: 12:00 JST is 03:00 UTC, the next session.
    trade_date = dt.date(2026, 11, 24)
    assert RULES.deadline("XTKS", trade_date, at(trade_date)) == dt.datetime(
        2026, 11, 25, 3, 0, tzinfo=UTC
    )


def test_a_cut_off_in_the_skipped_spring_hour_takes_the_offset_before_the_change() -> None:
    rule = AffirmationRule(sessions_after=0, cutoff=dt.time(2, 30), tz="America/New_York")
    day = dt.date(2026, 3, 8)  # 02:00 EST jumps to 03:00 EDT: 02:30 does not exist
    assert rule.deadline("XNYS", day, at(day)) == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_a_delay_rule_counts_from_the_trade_time() -> None:
    rule = AffirmationRule(delay=dt.timedelta(seconds=90))
    trade_time = dt.datetime(2026, 11, 24, 14, 0, 0, 125_000, tzinfo=UTC)
    assert rule.deadline("XETR", dt.date(2026, 11, 24), trade_time) == trade_time + dt.timedelta(
        seconds=90
    )


def test_configured_rules_override_markets_and_the_default() -> None:
    rules = parse_rules("XLON=0@18:30, XNYS=1@09:00 ,*=+90s")
    assert rules.rule_for("XLON") == AffirmationRule(0, dt.time(18, 30))
    assert rules.rule_for("XNYS") == AffirmationRule(1, dt.time(9, 0), tz="America/New_York")
    assert rules.rule_for("XNAS") == SEC_15C6_2  # untouched US default
    assert rules.rule_for("XETR") == AffirmationRule(delay=dt.timedelta(seconds=90))
    assert parse_rules("") == AffirmationRules()


@pytest.mark.parametrize("text", ["XLON", "XLON=12:00", "XLON=1@25:00", "=1@12:00", "*=90s"])
def test_a_bad_rule_is_a_config_error_that_shows_the_syntax(text: str) -> None:
    with pytest.raises(ConfigError, match="XLON=1@12:00|not a time of day"):
        parse_rules(text)
