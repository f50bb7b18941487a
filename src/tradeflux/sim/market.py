"""A seeded market: per instrument a random walk on its tick grid, FX rates drifting slightly.

Floats drive the walks internally (log prices, log rates); everything that leaves this
module is a Decimal: a price is a whole number of ticks times the instrument's tick
size, an FX rate is rounded to the decimals the market quotes it in. Each walk moves
lazily, by the time elapsed since it was last looked at, so asking for one instrument
costs O(1) whatever the size of the universe. Time comes from the caller (``now``), so
a run is a pure function of the seed and the sequence of calls.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from tradeflux.domain.schemas import FxRate, Instrument, Price

USD = "USD"

# Currencies quoted against USD with the currency first (EURUSD); the rest are USDxxx.
_BASE_FIRST = frozenset({"EUR", "GBP", "AUD", "NZD"})

# Rough units of each currency per US dollar, to start the FX walks somewhere plausible.
_UNITS_PER_USD: dict[str, float] = {
    "EUR": 0.92, "GBP": 0.79, "JPY": 150.0, "CHF": 0.88, "CAD": 1.36, "AUD": 1.52,
    "NZD": 1.65, "HKD": 7.8, "SGD": 1.34, "SEK": 10.5, "NOK": 10.6, "DKK": 6.9,
    "CNY": 7.2, "KRW": 1350.0, "INR": 83.0, "BRL": 5.0, "ZAR": 18.5, "MXN": 17.0,
    "PLN": 4.0, "CZK": 23.0, "HUF": 360.0, "TRY": 32.0, "ILS": 3.7, "TWD": 32.0,
    "THB": 36.0, "MYR": 4.7, "IDR": 15800.0, "SAR": 3.75,
}  # fmt: skip

# Share prices are quoted in bigger numbers in some currencies (a 3,000 yen stock).
_PRICE_SCALE: dict[str, float] = {
    "JPY": 100.0, "KRW": 1000.0, "IDR": 1000.0, "HUF": 100.0, "INR": 10.0, "TWD": 10.0,
}  # fmt: skip

_MIN_TICKS = 2  # a mid never walks below two ticks, so the bid stays positive


@dataclass
class _Walk:
    """A geometric random walk: its log level and the time it was last moved to."""

    log_level: float
    at_s: float


def fx_pair(currency: str) -> str:
    """Return the market pair quoting ``currency`` against USD (``EURUSD``, ``USDJPY``)."""
    return f"{currency}{USD}" if currency in _BASE_FIRST else f"{USD}{currency}"


def _rate_decimals(rate: float) -> int:
    """Return how many decimals the market quotes a rate of this size in."""
    if rate >= 1000:
        return 1
    return 3 if rate >= 20 else 5


class MarketModel:
    """Prices of instruments and FX rates, random-walking from ``start``.

    Instruments without a positive tick size are not priced.

    FX: each currency of an instrument, of ``currencies`` or of ``fx_start`` walks
    against USD, starting from the rate ``fx_start`` gives for its USD pair (else a
    plausible one); quoted are its USD pair and every pair of ``fx_start``.

    ``price_vol`` and ``fx_vol`` are the standard deviations of the log level per
    square root of a second (5e-4 is about 3% an hour, a lively market; 2e-5 is a
    quiet FX market). A price's bid and ask lie ``spread_bp`` basis points apart
    (at least a tick either side of the mid); ``last`` is the mid.
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        currencies: Iterable[str] = (),
        fx_start: Sequence[FxRate] = (),
        *,
        start: dt.datetime,
        seed: int = 0,
        price_vol: float = 5e-4,
        fx_vol: float = 2e-5,
        spread_bp: float = 10.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self._rng = random.Random(f"market:{seed}")  # noqa: S311 - a simulation, not crypto
        self._price_vol = price_vol
        self._fx_vol = fx_vol
        self._half_spread = spread_bp / 2 / 10_000
        start_s = start.timestamp()
        instruments = [i for i in instruments if i.tick_size > 0]  # no grid, no price
        self._instruments = {i.instrument_id: i for i in instruments}
        self._ticks = {i.instrument_id: float(i.tick_size) for i in instruments}
        self._walks: dict[str, _Walk] = {}
        for inst in instruments:
            scale = _PRICE_SCALE.get(inst.currency, 1.0)
            level = math.exp(self._rng.uniform(math.log(5.0), math.log(500.0))) * scale
            level = max(level, 20 * float(inst.tick_size))
            self._walks[inst.instrument_id] = _Walk(math.log(level), start_s)
        given = {r.pair: float(r.rate) for r in fx_start if r.rate > 0}
        wanted = {i.currency for i in instruments} | set(currencies)
        wanted |= {r.base for r in fx_start} | {r.quote for r in fx_start}
        self._fx: dict[str, _Walk] = {}  # log units of each currency per US dollar
        for currency in sorted(wanted - {USD}):
            if f"{USD}{currency}" in given:
                units = given[f"{USD}{currency}"]
            elif f"{currency}{USD}" in given:
                units = 1 / given[f"{currency}{USD}"]
            else:
                units = _UNITS_PER_USD.get(currency) or self._rng.uniform(0.5, 5.0)
            self._fx[currency] = _Walk(math.log(units), start_s)
        pairs = {fx_pair(c) for c in self._fx} | {
            r.pair for r in fx_start if {r.base, r.quote} <= set(self._fx) | {USD}
        }
        self._pairs = sorted(pairs)

    @property
    def instrument_ids(self) -> list[str]:
        """Return the ids of the instruments priced, in the order given."""
        return list(self._walks)

    @property
    def fx_pairs(self) -> list[str]:
        """Return the FX pairs quoted (``EURUSD``, ``USDJPY``, given crosses), sorted."""
        return list(self._pairs)

    def _move(self, walk: _Walk, vol: float, now: dt.datetime) -> float:
        """Move ``walk`` to ``now`` (never backwards) and return its level."""
        now_s = now.timestamp()
        elapsed_s = now_s - walk.at_s
        if elapsed_s > 0:
            walk.log_level += vol * math.sqrt(elapsed_s) * self._rng.gauss(0.0, 1.0)
            walk.at_s = now_s
        return math.exp(walk.log_level)

    def mid_ticks(self, instrument_id: str, now: dt.datetime) -> int:
        """Return the mid price of ``instrument_id`` at ``now`` as a whole number of ticks."""
        level = self._move(self._walks[instrument_id], self._price_vol, now)
        return max(_MIN_TICKS, round(level / self._ticks[instrument_id]))

    def on_grid(self, instrument_id: str, ticks: int) -> Decimal:
        """Return the price of ``ticks`` ticks of ``instrument_id`` (exact, on its grid)."""
        return Decimal(ticks) * self._instruments[instrument_id].tick_size

    def price(self, instrument_id: str, now: dt.datetime) -> Price:
        """Return the quote of ``instrument_id`` at ``now``: bid, ask and last on the grid."""
        mid = self.mid_ticks(instrument_id, now)
        half = max(1, round(mid * self._half_spread))
        return Price(
            instrument_id=instrument_id,
            bid=self.on_grid(instrument_id, max(1, mid - half)),
            ask=self.on_grid(instrument_id, mid + half),
            last=self.on_grid(instrument_id, mid),
            time=now,
        )

    def prices(self, now: dt.datetime) -> list[Price]:
        """Return the quotes of every instrument at ``now``, in the order given."""
        return [self.price(i, now) for i in self._walks]

    def _units_per_usd(self, currency: str, now: dt.datetime) -> float:
        if currency == USD:
            return 1.0
        return self._move(self._fx[currency], self._fx_vol, now)

    def fx_rate(self, pair: str, now: dt.datetime) -> FxRate:
        """Return the rate of ``pair`` (6 letters, both currencies quoted) at ``now``.

        Crosses are consistent with the USD legs: ``EURGBP = USDGBP / USDEUR``.
        """
        base, quote = pair[:3], pair[3:]
        level = self._units_per_usd(quote, now) / self._units_per_usd(base, now)
        decimals = _rate_decimals(level)
        return FxRate(
            pair=pair,
            base=base,
            quote=quote,
            rate=Decimal(f"{level:.{decimals}f}"),
            time=now,
        )

    def fx_rates(self, now: dt.datetime) -> list[FxRate]:
        """Return the rates of every pair at ``now``, sorted by pair."""
        return [self.fx_rate(p, now) for p in self._pairs]
