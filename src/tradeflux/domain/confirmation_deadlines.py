"""When a confirmation must be affirmed: a rule per market, evaluated in the market's time zone.

A rule is either a calendar rule (``sessions_after`` sessions of the MIC's exchange
calendar after the trade date, at a local ``cutoff``; 0 is the trade date itself,
session or not) or a fixed delay after the trade time (for demos and tests). US
equities follow SEC rule 15c6-2 as the DTC affirmation cut-off reads it: affirmed by
21:00 New York time on trade date. Every other market takes the default rule unless
configured; the default default is 12:00 local time on the first session after the
trade date.

The local cut-off becomes a UTC instant through zoneinfo, so a daylight-saving change
between two dates moves the UTC deadline by the hour it should; a cut-off that falls
in the hour a spring change skips is read with the offset before the change (Python's
``fold=0``), one that falls twice in autumn at its first occurrence.

Configuration text (``TRADEFLUX_AFFIRM_DEADLINES``): comma-separated ``MIC=RULE``, with
``*`` for the default; ``RULE`` is ``N@HH:MM`` (N sessions after, local cut-off) or
``+Ns`` (N seconds after the trade time), e.g. ``XLON=1@12:00,XTKS=0@18:00,*=1@12:00``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from zoneinfo import ZoneInfo

from tradeflux.domain.calendars import mic_timezone, settlement_date
from tradeflux.errors import ConfigError

NEW_YORK = "America/New_York"
US_EQUITY_MICS = frozenset(
    {"XNYS", "XNAS", "XASE", "ARCX", "BATS", "BATY", "EDGA", "EDGX", "IEXG", "MEMX", "XCHI"}
)
"""US equity venues: their trades are due by 21:00 New York time on trade date."""


@dataclass(frozen=True)
class AffirmationRule:
    """How a market's affirmation deadline is found from a trade's date and time.

    ``delay`` set: the deadline is the trade time plus it. Otherwise the ``cutoff``
    (local time, in ``tz`` or else the MIC's time zone) of the trade date
    (``sessions_after`` 0) or of the ``sessions_after``-th session after it.
    """

    sessions_after: int = 1
    cutoff: dt.time = dt.time(12, 0)
    tz: str | None = None
    delay: dt.timedelta | None = None

    def deadline(self, mic: str, trade_date: dt.date, trade_time: dt.datetime) -> dt.datetime:
        """Return the deadline (UTC) of a trade on ``mic`` of ``trade_date`` at ``trade_time``."""
        if self.delay is not None:
            return trade_time.astimezone(dt.UTC) + self.delay
        zone = ZoneInfo(self.tz) if self.tz else mic_timezone(mic)
        day = trade_date
        if self.sessions_after > 0:
            day = settlement_date(trade_date, mic, self.sessions_after)
        return dt.datetime.combine(day, self.cutoff, tzinfo=zone).astimezone(dt.UTC)

    def describe(self) -> str:
        """Return the rule as configuration text (``1@12:00``, ``+90s``)."""
        if self.delay is not None:
            return f"+{int(self.delay.total_seconds())}s"
        text = f"{self.sessions_after}@{self.cutoff:%H:%M}"
        return text + (f" {self.tz}" if self.tz else "")


SEC_15C6_2 = AffirmationRule(sessions_after=0, cutoff=dt.time(21, 0), tz=NEW_YORK)
"""US equities: 21:00 New York time on trade date."""


@dataclass(frozen=True)
class AffirmationRules:
    """The rule of each configured market, and the rule of every other."""

    by_mic: Mapping[str, AffirmationRule] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(US_EQUITY_MICS, SEC_15C6_2))
    )
    default: AffirmationRule = AffirmationRule()

    def rule_for(self, mic: str) -> AffirmationRule:
        """Return the rule of ``mic``."""
        return self.by_mic.get(mic, self.default)

    def deadline(self, mic: str, trade_date: dt.date, trade_time: dt.datetime) -> dt.datetime:
        """Return the affirmation deadline (UTC) of a trade on ``mic``."""
        return self.rule_for(mic).deadline(mic, trade_date, trade_time)


_RULE = re.compile(r"(?:(?P<n>\d{1,2})@(?P<h>\d{1,2}):(?P<m>\d{2})|\+(?P<s>\d{1,7})s)")


def parse_rules(text: str, source: str = "TRADEFLUX_AFFIRM_DEADLINES") -> AffirmationRules:
    """Return the US defaults overridden by ``MIC=RULE,...`` (see the module docstring)."""
    base = AffirmationRules()
    by_mic = dict(base.by_mic)
    default = base.default
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        mic, eq, rule_text = (p.strip() for p in item.partition("="))
        match = _RULE.fullmatch(rule_text)
        if not eq or not mic or match is None:
            raise ConfigError(
                f"{source}: {item!r} is not MIC=N@HH:MM or MIC=+Ns; for example XLON=1@12:00,*=+90s"
            )
        if match["s"] is not None:
            rule = AffirmationRule(delay=dt.timedelta(seconds=int(match["s"])))
        else:
            hour, minute = int(match["h"]), int(match["m"])
            if hour > 23 or minute > 59:
                raise ConfigError(f"{source}: {item!r}: the cut-off is not a time of day")
            tz = NEW_YORK if mic in US_EQUITY_MICS else None
            rule = AffirmationRule(int(match["n"]), dt.time(hour, minute), tz=tz)
        if mic == "*":
            default = rule
        else:
            by_mic[mic] = rule
    return AffirmationRules(MappingProxyType(by_mic), default)
