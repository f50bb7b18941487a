"""Writes what the services would write (positions, P&L, bars, alerts, rejects), for the dashboard.

The risk and analytics services do not exist yet; their records here follow the field
names the read model and the dashboard read (see ``tradeflux.query.readmodel``).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from confluent_kafka import Producer

from tradeflux.config import Settings
from tradeflux.domain.schemas import AccountPnL, Position, position_key

_ENCODE = msgspec.json.Encoder(decimal_format="string").encode
INSTRUMENTS = {
    "AAPL.XNAS": Decimal("189.40"),
    "VOD.XLON": Decimal("72.18"),
    "SAP.XETR": Decimal("171.06"),
}
CURRENCY = {"AAPL.XNAS": "USD", "VOD.XLON": "GBP", "SAP.XETR": "EUR"}
ACCOUNTS = ("ACC-0001", "ACC-0002", "ACC-0003", "ACC-0004", "ACC-0005")
REASONS = ("ODD_LOT", "OFF_TICK", "UNKNOWN_INSTRUMENT", "STALE_VERSION", "SCHEMA_INVALID")
BAR_S = 5


def bar(
    instrument: str, start: dt.datetime, prices: list[Decimal], qty: list[int]
) -> dict[str, Any]:
    """An OHLC bar of a window, as the analytics service will write it."""
    notional = sum(p * q for p, q in zip(prices, qty, strict=True))
    volume = sum(qty)
    return {
        "instrument": instrument,
        "window_start": start.isoformat().replace("+00:00", "Z"),
        "window_end": (start + dt.timedelta(seconds=BAR_S)).isoformat().replace("+00:00", "Z"),
        "open": str(prices[0]),
        "high": str(max(prices)),
        "low": str(min(prices)),
        "close": str(prices[-1]),
        "volume": str(volume),
        "vwap": str((notional / volume).quantize(Decimal("0.0001"))),
        "count": len(prices),
        "late": 0,
    }


def alert(
    account: str, status: str, value: Decimal, threshold: Decimal, at: dt.datetime
) -> dict[str, Any]:
    """A limit alert, as the risk service will write it."""
    return {
        "account": account,
        "status": status,
        "limit": "gross_notional",
        "value": str(value),
        "threshold": str(threshold),
        "currency": "USD",
        "time": at.isoformat().replace("+00:00", "Z"),
    }


class Feeder:
    """Produces a small live market of output records to ``prefix``-ed topics."""

    def __init__(self, settings: Settings, prefix: str, seed: int = 7) -> None:
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.producer = Producer(
            settings.client_config(**{"linger.ms": 5, "enable.idempotence": True})
        )
        self.prices = dict(INSTRUMENTS)
        self.positions: dict[str, Position] = {}
        self.windows: dict[str, tuple[dt.datetime, list[Decimal], list[int]]] = {}
        self.stop_event = threading.Event()
        self.written: dict[str, int] = {}
        self.on_trade: Callable[[int], None] = lambda records: None

    def send(
        self, topic: str, key: str, value: Any, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Produce ``value`` (a struct, a dict, bytes, or None for a tombstone) under ``key``."""
        data = value if value is None or isinstance(value, bytes) else _ENCODE(value)
        self.producer.produce(self.prefix + topic, key=key.encode(), value=data, headers=headers)
        self.written[topic] = self.written.get(topic, 0) + 1

    def walk(self, instrument: str) -> Decimal:
        step = self.prices[instrument] * Decimal(self.rng.gauss(0, 0.0015))
        self.prices[instrument] = max(
            Decimal("1"), (self.prices[instrument] + step).quantize(Decimal("0.01"))
        )
        return self.prices[instrument]

    def history(self, now: dt.datetime, windows: int = 60) -> None:
        """Bars of the last ``windows`` windows for every instrument."""
        start = now.replace(microsecond=0) - dt.timedelta(seconds=BAR_S * windows)
        start -= dt.timedelta(seconds=start.second % BAR_S)
        for i in range(windows):
            for instrument in INSTRUMENTS:
                ticks = [self.walk(instrument) for _ in range(self.rng.randint(3, 9))]
                qty = [self.rng.randint(1, 40) * 100 for _ in ticks]
                at = start + dt.timedelta(seconds=BAR_S * i)
                self.send(
                    "analytics.bars",
                    f"{instrument}|{int(at.timestamp())}",
                    bar(instrument, at, ticks, qty),
                )
        self.producer.flush(10)

    def trade(self, now: dt.datetime) -> None:
        """One fill: a position, its account's P&L, a bar revision."""
        account = self.rng.choice(ACCOUNTS)
        instrument = self.rng.choice(list(INSTRUMENTS))
        price = self.walk(instrument)
        qty = Decimal(self.rng.choice((-1, 1)) * self.rng.randint(1, 30) * 100)
        key = position_key(account, instrument)
        old = self.positions.get(key)
        quantity = (old.quantity if old else Decimal(0)) + qty
        pos = Position(
            account=account,
            instrument=instrument,
            currency=CURRENCY[instrument],
            quantity=quantity,
            avg_cost=price,
            realized_pnl=Decimal(self.rng.randint(-50000, 80000)) / 100,
            trade_count=(old.trade_count if old else 0) + 1,
            last_trade_id=f"T{self.rng.randint(1, 10**9)}",
            as_of=now,
        )
        self.positions[key] = pos
        self.send("positions", key, pos)
        mine = [p for p in self.positions.values() if p.account == account]
        realized = sum((p.realized_pnl for p in mine), Decimal(0))
        unrealized = sum(
            ((self.prices[p.instrument] - p.avg_cost) * p.quantity for p in mine), Decimal(0)
        )
        self.send(
            "pnl",
            account,
            AccountPnL(
                account=account,
                base_currency="USD",
                realized=realized.quantize(Decimal("0.01")),
                unrealized=unrealized.quantize(Decimal("0.01")),
                total=(realized + unrealized).quantize(Decimal("0.01")),
                positions=len(mine),
            ),
        )
        start = now.replace(microsecond=0) - dt.timedelta(seconds=now.second % BAR_S)
        open_start, prices, sizes = self.windows.get(instrument, (start, [], []))
        if open_start != start:
            prices, sizes = [], []
        prices.append(price)
        sizes.append(int(abs(qty)))
        self.windows[instrument] = (start, prices, sizes)
        key = f"{instrument}|{int(start.timestamp())}"
        self.send("analytics.bars", key, bar(instrument, start, prices, sizes))

    def reject(self, now: dt.datetime) -> None:
        reason = self.rng.choice(REASONS)
        trade_id = f"T{self.rng.randint(1, 10**9)}"
        headers = [
            ("tf.stage", b"validator"),
            ("tf.reason", reason.encode()),
            ("tf.error", b""),
            ("tf.detail", f"{reason.lower().replace('_', ' ')} in {trade_id}".encode()),
            ("tf.source.topic", (self.prefix + "trades.raw").encode()),
            ("tf.source.partition", b"0"),
            ("tf.source.offset", str(self.rng.randint(1, 99999)).encode()),
        ]
        self.send(
            "trades.rejected", trade_id, b'{"trade_id": "' + trade_id.encode() + b'"}', headers
        )

    def breach(self, now: dt.datetime, status: str = "BREACHED") -> None:
        account = self.rng.choice(ACCOUNTS)
        threshold = Decimal(100_000_000)
        value = threshold * Decimal(
            self.rng.uniform(1.01, 1.3) if status == "BREACHED" else self.rng.uniform(0.7, 0.95)
        )
        self.send(
            "risk.alerts",
            account,
            alert(account, status, value.quantize(Decimal("0.01")), threshold, now),
        )

    def run(self, rate_per_s: float = 20.0) -> None:
        """Write until ``stop_event`` is set: trades, now and then a reject or an alert."""
        n = 0
        self.breach(dt.datetime.now(dt.UTC))
        while not self.stop_event.wait(1 / rate_per_s):
            now = dt.datetime.now(dt.UTC)
            self.trade(now)
            self.on_trade(1)
            n += 1
            if n % 7 == 0:
                self.reject(now)
            if n % 25 == 0:
                self.breach(now, self.rng.choice(("BREACHED", "CLEARED")))
            self.producer.poll(0)
        self.producer.flush(10)
