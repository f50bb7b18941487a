"""The settlement ticker: a tick into every partition of ``trades.by_counterparty``.

Settlement's cut-offs follow its stream time, the largest recorded time of a partition's
records; these ticks move it on when a partition has no trades (services/ticker.py).
The ``tick_ms`` setting (``TRADEFLUX_TICK_MS``) sets the interval (default 1000).
"""

from __future__ import annotations

from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.services.ticker import ticker_for
from tradeflux.stream.topology import Service


def build(settings: Settings | None = None) -> Service:
    """Return the ticker of ``trades.by_counterparty``, every ``tick_ms``."""
    every_ms = (settings or Settings()).tick_ms
    return ticker_for(topics.BY_COUNTERPARTY, every_ms, name="ticker-settlement")


SERVICE = build()
