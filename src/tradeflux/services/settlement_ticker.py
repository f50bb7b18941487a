"""The settlement ticker: a tick into every partition of ``trades.by_counterparty``.

Settlement's cut-offs follow its stream time, the largest recorded time of a partition's
records; these ticks move it on when a partition has no trades (services/ticker.py).
``TRADEFLUX_TICK_MS`` sets the interval (default 1000).
"""

from __future__ import annotations

import os

from tradeflux import topics
from tradeflux.errors import ConfigError
from tradeflux.services.ticker import DEFAULT_EVERY_MS, ticker_for


def _every_ms() -> int:
    raw = os.environ.get("TRADEFLUX_TICK_MS", str(DEFAULT_EVERY_MS))
    if not raw.isdigit() or int(raw) < 10:
        raise ConfigError(f"TRADEFLUX_TICK_MS={raw!r}: give whole milliseconds, at least 10")
    return int(raw)


SERVICE = ticker_for(topics.BY_COUNTERPARTY, _every_ms(), name="settlement-ticker")
