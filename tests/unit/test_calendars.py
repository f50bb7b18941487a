"""Trade and settlement dates over weekends and published exchange holidays.

Every expected date was checked against the exchange's published holiday calendar
(NYSE, LSE, Deutsche Boerse Xetra, Euronext Paris, JPX, HKEX, SIX) for that year.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tradeflux.domain.calendars import (
    CalendarError,
    is_session,
    mic_timezone,
    sessions_between,
    settlement_date,
    trade_date,
)

D = dt.date
UTC = dt.UTC

SETTLEMENTS = [
    # (mic, trade date, days, settlement date, why)
    ("XNYS", D(2025, 1, 10), 1, D(2025, 1, 13), "Friday, over the weekend"),
    ("XNYS", D(2025, 1, 11), 1, D(2025, 1, 13), "a Saturday trade settles on the next session"),
    ("XNYS", D(2025, 11, 26), 1, D(2025, 11, 28), "over Thanksgiving (Thu 27 Nov)"),
    ("XNYS", D(2025, 11, 26), 2, D(2025, 12, 1), "Thanksgiving, then the weekend"),
    ("XNYS", D(2025, 7, 3), 1, D(2025, 7, 7), "Independence Day on Friday 4 July"),
    ("XNYS", D(2025, 4, 17), 1, D(2025, 4, 21), "Good Friday"),
    ("XNYS", D(2025, 1, 8), 1, D(2025, 1, 10), "closed 9 Jan 2025, national day of mourning"),
    ("XNYS", D(2024, 12, 24), 1, D(2024, 12, 26), "Christmas Day 2024 (Wed)"),
    ("XLON", D(2025, 12, 24), 2, D(2025, 12, 30), "Christmas and Boxing Day 2025 (Thu, Fri)"),
    ("XLON", D(2026, 12, 24), 2, D(2026, 12, 30), "Boxing Day 2026 is a Saturday: Mon 28 closed"),
    ("XLON", D(2025, 4, 17), 2, D(2025, 4, 23), "Good Friday and Easter Monday 2025"),
    ("XLON", D(2025, 5, 2), 1, D(2025, 5, 6), "early May bank holiday (Mon 5 May)"),
    ("XETR", D(2025, 12, 23), 2, D(2025, 12, 30), "Xetra closed 24, 25, 26 Dec"),
    ("XETR", D(2025, 12, 30), 2, D(2026, 1, 5), "Xetra closed 31 Dec and 1 Jan"),
    ("XETR", D(2025, 4, 30), 2, D(2025, 5, 5), "Labour Day (Thu 1 May)"),
    ("XPAR", D(2025, 12, 23), 2, D(2025, 12, 29), "Euronext open 24 Dec, closed 25 and 26"),
    ("XTKS", D(2024, 12, 30), 1, D(2025, 1, 6), "TSE closed 31 Dec to 3 Jan"),
    ("XTKS", D(2024, 12, 30), 2, D(2025, 1, 7), "New Year holidays, then T+2"),
    ("XTKS", D(2025, 4, 28), 2, D(2025, 5, 1), "Showa Day (Tue 29 Apr)"),
    ("XTKS", D(2025, 5, 2), 1, D(2025, 5, 7), "Golden Week: 5 May and substitute 6 May"),
    ("XHKG", D(2025, 1, 27), 2, D(2025, 2, 3), "Lunar New Year 29 to 31 Jan 2025"),
    ("XSWX", D(2025, 7, 31), 1, D(2025, 8, 4), "Swiss National Day (Fri 1 Aug)"),
]


@pytest.mark.parametrize(
    "mic,traded,days,settles,why", SETTLEMENTS, ids=[f"{c[0]}-{c[1]}-T+{c[2]}" for c in SETTLEMENTS]
)
def test_settlement_is_the_nth_session_strictly_after_the_trade_date(
    mic: str, traded: dt.date, days: int, settles: dt.date, why: str
) -> None:
    assert settlement_date(traded, mic, days) == settles, why


def test_t_plus_zero_settles_on_the_trade_date_when_it_is_a_session() -> None:
    assert settlement_date(D(2025, 1, 10), "XNYS", 0) == D(2025, 1, 10)


def test_t_plus_zero_of_a_weekend_trade_settles_on_the_next_session() -> None:
    assert settlement_date(D(2025, 1, 11), "XNYS", 0) == D(2025, 1, 13)


def test_negative_settlement_days_are_refused() -> None:
    with pytest.raises(ValueError):
        settlement_date(D(2025, 1, 10), "XNYS", -1)


@pytest.mark.parametrize(
    "mic,day,open_",
    [
        ("XNYS", D(2025, 1, 9), False),  # national day of mourning
        ("XNYS", D(2025, 11, 28), True),  # day after Thanksgiving: half day, still a session
        ("XLON", D(2025, 12, 24), True),  # half day
        ("XETR", D(2025, 12, 24), False),
        ("XTKS", D(2024, 12, 31), False),
        ("XTKS", D(2025, 5, 6), False),  # substitute holiday
        ("XHKG", D(2025, 1, 28), True),  # Lunar New Year's Eve: half day
        ("XNYS", D(2025, 1, 11), False),  # Saturday
    ],
)
def test_is_session_follows_the_exchange_calendar(mic: str, day: dt.date, open_: bool) -> None:
    assert is_session(day, mic) is open_


def test_sessions_between_lists_the_open_days_inclusive() -> None:
    assert sessions_between(D(2025, 12, 22), D(2025, 12, 31), "XLON") == [
        D(2025, 12, 22),
        D(2025, 12, 23),
        D(2025, 12, 24),
        D(2025, 12, 29),
        D(2025, 12, 30),
        D(2025, 12, 31),
    ]


@pytest.mark.parametrize(
    "when,mic,day",
    [
        (dt.datetime(2025, 1, 1, 23, 30, tzinfo=UTC), "XTKS", D(2025, 1, 2)),
        (dt.datetime(2025, 6, 30, 14, 59, tzinfo=UTC), "XTKS", D(2025, 6, 30)),
        (dt.datetime(2025, 6, 30, 15, 0, tzinfo=UTC), "XTKS", D(2025, 7, 1)),
        (dt.datetime(2025, 7, 1, 3, 59, tzinfo=UTC), "XNYS", D(2025, 6, 30)),  # EDT, UTC-4
        (dt.datetime(2025, 7, 1, 4, 0, tzinfo=UTC), "XNYS", D(2025, 7, 1)),
        (dt.datetime(2025, 1, 15, 4, 30, tzinfo=UTC), "XNYS", D(2025, 1, 14)),  # EST, UTC-5
        (dt.datetime(2025, 1, 15, 5, 0, tzinfo=UTC), "XNYS", D(2025, 1, 15)),
        (dt.datetime(2025, 3, 30, 23, 30, tzinfo=UTC), "XLON", D(2025, 3, 31)),  # BST from 30 Mar
        (dt.datetime(2025, 3, 29, 23, 30, tzinfo=UTC), "XLON", D(2025, 3, 29)),  # still GMT
        (dt.datetime(2025, 3, 9, 22, 30, tzinfo=UTC), "XETR", D(2025, 3, 9)),  # CET, UTC+1
        (dt.datetime(2025, 3, 9, 23, 30, tzinfo=UTC), "XETR", D(2025, 3, 10)),
    ],
)
def test_trade_date_is_the_date_in_the_venue_time_zone(
    when: dt.datetime, mic: str, day: dt.date
) -> None:
    assert trade_date(when, mic) == day


def test_trade_date_accepts_any_offset() -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    assert trade_date(dt.datetime(2025, 7, 1, 9, 0, tzinfo=tokyo), "XNYS") == D(2025, 6, 30)


def test_trade_date_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError):
        trade_date(dt.datetime(2025, 7, 1, 12, 0), "XNYS")


@pytest.mark.parametrize(
    "mic,zone",
    [
        ("XNYS", "America/New_York"),
        ("XNAS", "America/New_York"),
        ("XLON", "Europe/London"),
        ("XTKS", "Asia/Tokyo"),
    ],
)
def test_each_mic_has_its_exchange_time_zone(mic: str, zone: str) -> None:
    assert str(mic_timezone(mic)) == zone


def test_an_unknown_mic_is_a_calendar_error() -> None:
    with pytest.raises(CalendarError):
        settlement_date(D(2025, 1, 10), "XFOO", 1)


def test_dates_outside_the_built_window_widen_the_calendar() -> None:
    # Thanksgiving 2031 is Thursday 27 November; Christmas 2003 fell on a Thursday.
    assert settlement_date(D(2031, 11, 26), "XNYS", 1) == D(2031, 11, 28)
    assert settlement_date(D(2003, 12, 24), "XLON", 2) == D(2003, 12, 30)
    assert settlement_date(D(2025, 11, 26), "XNYS", 1) == D(2025, 11, 28)


def test_dates_before_the_supported_range_are_a_calendar_error() -> None:
    with pytest.raises(CalendarError):
        settlement_date(D(1995, 3, 1), "XNYS", 1)
