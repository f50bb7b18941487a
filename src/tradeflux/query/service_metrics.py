"""Throughput and consumer lag of every service, scraped from their Prometheus /metrics.

The targets come from ``--metrics-urls name=url,...`` (or ``TRADEFLUX_METRICS_URLS``).
A background task scrapes all of them every second; ``/v1/services`` answers from the
last scrape. Rates are the change of a counter between two scrapes, per second.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tradeflux.errors import ConfigError

log = logging.getLogger("tradeflux.query")

RECORDS_IN = "tradeflux_records_in_total"
RECORDS_OUT = "tradeflux_records_out_total"
DEAD_LETTERS = "tradeflux_dead_letters_total"
LAG = "tradeflux_consumer_lag_records"
ASSIGNED = "tradeflux_assigned_partitions"
ABORTS = "tradeflux_transaction_aborts_total"
_WANTED = frozenset({RECORDS_IN, RECORDS_OUT, DEAD_LETTERS, LAG, ASSIGNED, ABORTS})


@dataclass(frozen=True)
class ScrapeTarget:
    """A service's name and the URL of its /metrics."""

    name: str
    url: str


def parse_targets(text: str | None) -> list[ScrapeTarget]:
    """Parse ``name=url,name=url``; raise ConfigError with an example if malformed."""
    targets: list[ScrapeTarget] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, url = part.partition("=")
        name, url = name.strip(), url.strip()
        if not eq or not name or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"--metrics-urls: {part!r} is not name=http://host:port/metrics; for example "
                "validator=http://127.0.0.1:9301/metrics,positions=http://127.0.0.1:9302/metrics"
            )
        if any(t.name == name for t in targets):
            raise ConfigError(f"--metrics-urls: service {name!r} is named twice")
        targets.append(ScrapeTarget(name, url))
    return targets


class ServiceStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One service as its /metrics last said: counters, their rates, and its consumer lag."""

    name: str
    url: str
    up: bool
    error: str | None = None
    instances: int = 0
    records_in_total: int = 0
    records_in_per_s: float = 0.0
    records_out_total: int = 0
    records_out_per_s: float = 0.0
    dead_letters_total: int = 0
    consumer_lag_records: int = 0
    assigned_partitions: int = 0
    transaction_aborts_total: int = 0
    scraped_at: dt.datetime | None = None


def summarize(text: str) -> tuple[dict[str, float], int]:
    """Return the tradeflux metrics of a /metrics text summed over labels, and the instances."""
    sums = dict.fromkeys(_WANTED, 0.0)
    instances: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _WANTED:
                sums[sample.name] += sample.value
                if sample.name == RECORDS_IN:
                    instances.add(sample.labels.get("instance", ""))
    return sums, len(instances)


def _rate(before: float, now: float, span_s: float) -> float:
    """Per-second increase of a counter; a restarted process counts again from 0."""
    return (now - before if now >= before else now) / span_s


@dataclass
class _Previous:
    at: float
    records_in: float
    records_out: float


@dataclass
class ServiceScraper:
    """Scrapes every target each ``every_s`` and keeps the last ``ServiceStatus`` of each."""

    targets: Sequence[ScrapeTarget]
    every_s: float = 1.0
    headers: dict[str, str] = field(default_factory=dict)  # e.g. a bearer token with metrics
    timeout_s: float = 0.8
    statuses: list[ServiceStatus] = field(default_factory=list)
    _previous: dict[str, _Previous] = field(default_factory=dict)

    async def run(self) -> None:
        """Scrape until cancelled."""
        if not self.targets:
            return
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers) as client:
            while True:
                await self.scrape_once(client)
                await asyncio.sleep(self.every_s)

    async def scrape_once(self, client: httpx.AsyncClient) -> list[ServiceStatus]:
        """Scrape all targets concurrently and replace ``statuses``."""
        results = await asyncio.gather(*(self._scrape(client, t) for t in self.targets))
        self.statuses = list(results)
        return self.statuses

    async def _scrape(self, client: httpx.AsyncClient, target: ScrapeTarget) -> ServiceStatus:
        now = dt.datetime.now(dt.UTC)
        try:
            response = await client.get(target.url)
            response.raise_for_status()
            sums, instances = summarize(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            return ServiceStatus(
                name=target.name, url=target.url, up=False, error=str(exc) or type(exc).__name__,
                scraped_at=now,
            )  # fmt: skip
        at = time.monotonic()
        records_in, records_out = sums[RECORDS_IN], sums[RECORDS_OUT]
        prev = self._previous.get(target.name)
        in_rate = out_rate = 0.0
        if prev is not None and at > prev.at:
            in_rate = _rate(prev.records_in, records_in, at - prev.at)
            out_rate = _rate(prev.records_out, records_out, at - prev.at)
        self._previous[target.name] = _Previous(at, records_in, records_out)
        return ServiceStatus(
            name=target.name,
            url=target.url,
            up=True,
            instances=instances,
            records_in_total=int(records_in),
            records_in_per_s=round(in_rate, 1),
            records_out_total=int(records_out),
            records_out_per_s=round(out_rate, 1),
            dead_letters_total=int(sums[DEAD_LETTERS]),
            consumer_lag_records=int(sums[LAG]),
            assigned_partitions=int(sums[ASSIGNED]),
            transaction_aborts_total=int(sums[ABORTS]),
            scraped_at=now,
        )
