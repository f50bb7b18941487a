"""Exchange calendars: a MIC's time zone, its trading sessions, trade and settlement dates.

Backed by exchange_calendars, whose calendars are slow to build (tenths of a second
each), so each MIC's calendar is built once, lazily, over a window from a few years
back to about two years ahead, and its sessions are kept as a sorted list of dates:
a settlement date is then a bisection, a few microseconds. A date outside the window
widens it (rebuilding that calendar once), within :data:`SUPPORTED_START` ..
:data:`SUPPORTED_END`; outside those a :class:`CalendarError` is raised.

Results never depend on the window or on today's date, only on the calendars' rules.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import threading
import warnings
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from tradeflux.errors import TradefluxError

SUPPORTED_START = dt.date(2000, 1, 1)
"""No calendar is built before this date (nor before a calendar's own first date)."""
SUPPORTED_END = dt.date(2099, 12, 31)
"""No calendar is built after this date (nor after a calendar's own last date)."""

_YEARS_BACK = 5
_YEARS_AHEAD = 2


class CalendarError(TradefluxError, ValueError):
    """A MIC has no calendar, or a date lies outside the range its calendar covers."""


@dataclass(frozen=True, slots=True)
class _Sessions:
    """The sessions of one MIC over a window, as sorted dates."""

    mic: str
    tz: ZoneInfo
    days: list[dt.date]  # sorted, one per session
    start: dt.date  # the window built (days[0] is the first session on or after it)
    end: dt.date


_lock = threading.Lock()
_sessions: dict[str, _Sessions] = {}


@functools.cache
def known_mics() -> frozenset[str]:
    """Return every MIC exchange_calendars has a calendar for.

    Its calendar names, and those of its aliases that are MICs too (``XNAS`` for the
    XNYS calendar); not its other aliases (``NYSE``, ``HKEX``), which are no MICs.
    """
    import exchange_calendars as xcals  # type: ignore[import-untyped]  # pandas: seconds

    names: set[str] = set(xcals.get_calendar_names(include_aliases=False))
    aliases = set(xcals.get_calendar_names(include_aliases=True)) - names
    names |= {a for a in aliases if a.startswith("X")}
    return frozenset(n for n in names if len(n) == 4 and n.isalnum() and n.isupper())


def is_known_mic(mic: str) -> bool:
    """Tell whether ``mic`` has an exchange calendar."""
    return mic in known_mics()


def _build(mic: str, start: dt.date, end: dt.date) -> _Sessions:
    """Build the calendar of ``mic`` over ``start`` .. ``end`` and keep its sessions."""
    start, end = max(start, SUPPORTED_START), min(end, SUPPORTED_END)
    try:
        with warnings.catch_warnings():  # its use of pandas APIs deprecated in pandas 3
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            import exchange_calendars as xcals  # imported when a calendar is first needed

            calendar: Any = xcals.get_calendar(mic, start=start.isoformat(), end=end.isoformat())
    except ValueError as exc:  # exchange_calendars' errors: outside the calendar's bounds
        raise CalendarError(
            f"no calendar of {mic} over {start.isoformat()} .. {end.isoformat()} ({exc}); "
            "check the trade time"
        ) from exc
    days = [ts.date() for ts in calendar.sessions]
    tz = calendar.tz if isinstance(calendar.tz, ZoneInfo) else ZoneInfo(str(calendar.tz))
    return _Sessions(mic, tz, days, start, end)


def _calendar(mic: str, covering: dt.date | None = None, sessions_after: int = 0) -> _Sessions:
    """Return the sessions of ``mic``, widened if needed to cover ``covering``.

    ``sessions_after`` asks that many sessions after ``covering`` to be present too.
    """
    cached = _sessions.get(mic)
    if cached is not None and (covering is None or _covers(cached, covering, sessions_after)):
        return cached
    if not is_known_mic(mic):
        raise CalendarError(f"no exchange calendar for MIC {mic!r}; use a MIC that exists")
    with _lock:
        cached = _sessions.get(mic)
        if cached is None:
            this_year = dt.date.today().year
            first = dt.date(this_year - _YEARS_BACK, 1, 1)
            cached = _build(mic, first, dt.date(this_year + _YEARS_AHEAD, 12, 31))
            _sessions[mic] = cached
        while covering is not None and not _covers(cached, covering, sessions_after):
            start, end = cached.start, cached.end
            if covering < start:
                start = dt.date(covering.year - 1, 1, 1)
                if start < SUPPORTED_START <= cached.start:
                    raise _out_of_range(mic, covering)
            else:
                end = dt.date(max(covering.year, end.year) + 2, 12, 31)
                if end > SUPPORTED_END >= cached.end:
                    raise _out_of_range(mic, covering)
            cached = _build(mic, start, end)
            _sessions[mic] = cached
        return cached


def _covers(cal: _Sessions, day: dt.date, sessions_after: int) -> bool:
    """Tell whether ``cal`` holds ``day`` and ``sessions_after`` sessions after it."""
    if day < cal.start or day > cal.end:
        return False
    return bisect.bisect_right(cal.days, day) + sessions_after <= len(cal.days)


def _out_of_range(mic: str, day: dt.date) -> CalendarError:
    return CalendarError(
        f"date {day.isoformat()} is outside the calendars we build for {mic} "
        f"({SUPPORTED_START.isoformat()} .. {SUPPORTED_END.isoformat()}); check the trade time"
    )


def mic_timezone(mic: str) -> ZoneInfo:
    """Return the time zone of the exchange ``mic`` (e.g. America/New_York for XNYS)."""
    return _calendar(mic).tz


def trade_date(trade_time_utc: dt.datetime, mic: str) -> dt.date:
    """Return the date of ``trade_time_utc`` in the time zone of ``mic``.

    The time must be timezone-aware (any offset; it is converted).
    """
    if trade_time_utc.tzinfo is None or trade_time_utc.utcoffset() is None:
        raise ValueError("trade time has no time zone; give an aware (UTC) datetime")
    try:
        return trade_time_utc.astimezone(mic_timezone(mic)).date()
    except OverflowError as exc:
        raise CalendarError(f"trade time {trade_time_utc.isoformat()} cannot be dated") from exc


@functools.lru_cache(maxsize=65536)
def settlement_date(trade_date: dt.date, mic: str, days: int) -> dt.date:
    """Return the ``days``-th session of ``mic`` strictly after ``trade_date``.

    With ``days == 0`` it is the first session on or after ``trade_date`` (the trade
    date itself when it is a session). Cached: it is called once per trade.
    """
    if days < 0:
        raise ValueError(f"settlement days must be 0 or more, got {days}")
    cal = _calendar(mic, trade_date, max(days, 1))
    if days == 0:
        return cal.days[bisect.bisect_left(cal.days, trade_date)]
    return cal.days[bisect.bisect_right(cal.days, trade_date) + days - 1]


def is_session(day: dt.date, mic: str) -> bool:
    """Tell whether ``day`` is a trading session of ``mic``."""
    cal = _calendar(mic, day)
    index = bisect.bisect_left(cal.days, day)
    return index < len(cal.days) and cal.days[index] == day


def sessions_between(start: dt.date, end: dt.date, mic: str) -> list[dt.date]:
    """Return the sessions of ``mic`` from ``start`` to ``end``, both included."""
    _calendar(mic, start)
    cal = _calendar(mic, end)  # widening keeps what was covered, so both ends are in
    return cal.days[bisect.bisect_left(cal.days, start) : bisect.bisect_right(cal.days, end)]
