"""Settlement cut-offs per market: when a settlement date's obligations become FINAL.

docs/domain-rules.md, "Settlement cut-off". An obligation settles in its currency's market
(its central securities depository): USD obligations at DTC, EUR in T2S, and so on. Each
market has a daily cut-off, a local time on its own calendar: at the cut-off on the last
session before settlement date ``S`` the obligations of ``S`` become FINAL. A settlement
date on a Monday is cut off on the Friday before; a session day after a holiday, on the
last session before the holiday.

The state of a settlement date (its legs, obligations and statements) is kept until the
end of ``S + retention_days`` in the market's time zone, then dropped from memory.

:data:`DEFAULT_CUTOFFS` are this project's defaults, not market rules: a time a little
before each market's overnight settlement batch. A bank sets the ones its custodians give
it (``TRADEFLUX_SETTLEMENT_CUTOFFS``, see :func:`parse_cutoffs`). A currency with no entry
uses :data:`FALLBACK_CUTOFF`: 18:00 UTC on the weekday (Monday to Friday) before ``S``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from tradeflux.domain.calendars import CalendarError, is_known_mic, mic_timezone, sessions_between
from tradeflux.errors import ConfigError

_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class MarketCutoff:
    """The daily cut-off of one currency's settlement market.

    ``mic`` names the exchange calendar whose sessions are the market's business days and
    whose time zone ``local_time`` is in; None is the weekday rule in UTC.
    """

    currency: str
    mic: str | None
    local_time: dt.time


DEFAULT_CUTOFFS: dict[str, MarketCutoff] = {
    c.currency: c
    for c in (
        MarketCutoff("USD", "XNYS", dt.time(19, 0)),  # DTC, New York
        MarketCutoff("EUR", "XETR", dt.time(18, 0)),  # T2S, Frankfurt time
        MarketCutoff("GBP", "XLON", dt.time(18, 0)),  # CREST
        MarketCutoff("CHF", "XSWX", dt.time(18, 0)),  # SIX SIS
        MarketCutoff("JPY", "XTKS", dt.time(18, 0)),  # JASDEC
        MarketCutoff("HKD", "XHKG", dt.time(18, 0)),  # CCASS
    )
}
"""Our defaults: a currency's market, its calendar and its local cut-off time."""

FALLBACK_CUTOFF = dt.time(18, 0)
"""The cut-off of a currency without an entry: this time in UTC on the weekday before S."""

DEFAULT_RETENTION_DAYS = 7
"""Days after the settlement date that its state is kept in memory."""

_ENTRY = re.compile(r"^([A-Z]{3})=([A-Z0-9]{4})@([0-2][0-9]):([0-5][0-9])$")


def parse_cutoffs(text: str) -> dict[str, MarketCutoff]:
    """Return :data:`DEFAULT_CUTOFFS` with the entries of ``text`` on top.

    ``text`` is comma-separated ``CCY=MIC@HH:MM`` entries, e.g. ``USD=XNYS@21:30,EUR=XETR@18:00``:
    the currency's cut-off is HH:MM in the MIC's time zone on the last session of the MIC's
    calendar before the settlement date. Raises ConfigError on a malformed entry.
    """
    cutoffs = dict(DEFAULT_CUTOFFS)
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None:
            raise ConfigError(
                f"settlement cut-off {entry!r}: write CCY=MIC@HH:MM, for example USD=XNYS@19:00"
            )
        currency, mic, hour, minute = match.groups()
        if int(hour) > 23:
            raise ConfigError(f"settlement cut-off {entry!r}: the hour must be 00 to 23")
        if not is_known_mic(mic):
            raise ConfigError(
                f"settlement cut-off {entry!r}: no exchange calendar for MIC {mic}; "
                "use the MIC of the market's main exchange"
            )
        cutoffs[currency] = MarketCutoff(currency, mic, dt.time(int(hour), int(minute)))
    return cutoffs


@dataclass
class CutoffCalendar:
    """When each settlement date of each currency is cut off, and when its state expires.

    Pure rules over the exchange calendars; results are cached per (currency, date).
    """

    cutoffs: dict[str, MarketCutoff] = field(default_factory=lambda: dict(DEFAULT_CUTOFFS))
    retention_days: int = DEFAULT_RETENTION_DAYS
    _cache: dict[tuple[str, dt.date], tuple[dt.datetime, dt.datetime]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.retention_days < 0:
            raise ConfigError(
                f"settlement retention must be 0 or more days, got {self.retention_days}"
            )

    def cutoff_at(self, currency: str, settlement_date: dt.date) -> dt.datetime:
        """Return the instant (aware UTC) the obligations of ``settlement_date`` become FINAL."""
        return self._times(currency, settlement_date)[0]

    def expires_at(self, currency: str, settlement_date: dt.date) -> dt.datetime:
        """Return the instant (aware UTC) the state of ``settlement_date`` is dropped.

        Midnight at the end of ``settlement_date + retention_days``, market time.
        """
        return self._times(currency, settlement_date)[1]

    def _times(self, currency: str, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        key = (currency, day)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._compute(currency, day)
            if len(self._cache) > 100_000:  # a few currencies times a few dates in practice
                self._cache.clear()
            self._cache[key] = cached
        return cached

    def _compute(self, currency: str, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        rule = self.cutoffs.get(currency)
        tz = _UTC
        cutoff_day: dt.date | None = None
        local = FALLBACK_CUTOFF
        if rule is not None:
            local = rule.local_time
            if rule.mic is not None:
                try:
                    tz = mic_timezone(rule.mic)
                    cutoff_day = _previous_session(day, rule.mic)
                except CalendarError:
                    tz, cutoff_day = _UTC, None  # outside the calendar: the weekday rule
        if cutoff_day is None:
            cutoff_day = _previous_weekday(day)
        cutoff = dt.datetime.combine(cutoff_day, local, tzinfo=tz).astimezone(dt.UTC)
        last_day = day + dt.timedelta(days=self.retention_days + 1)
        expiry = dt.datetime.combine(last_day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
        return cutoff, max(expiry, cutoff)


def _previous_session(day: dt.date, mic: str) -> dt.date | None:
    """Return the last session of ``mic`` strictly before ``day`` (within 30 days), or None."""
    sessions = sessions_between(day - dt.timedelta(days=30), day - dt.timedelta(days=1), mic)
    return sessions[-1] if sessions else None


def _previous_weekday(day: dt.date) -> dt.date:
    """Return the Monday-to-Friday day strictly before ``day``."""
    previous = day - dt.timedelta(days=1)
    while previous.weekday() >= 5:
        previous -= dt.timedelta(days=1)
    return previous
