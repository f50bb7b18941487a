"""Scraping the services' /metrics: targets, sums over labels, rates between scrapes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import generate_latest

from tradeflux.errors import ConfigError
from tradeflux.query.service_metrics import ScrapeTarget, ServiceScraper, parse_targets, summarize
from tradeflux.stream.metrics import StreamMetrics


def test_targets_parse_from_name_equals_url_pairs() -> None:
    assert parse_targets(None) == []
    assert parse_targets(" a=http://h:1/metrics , b=https://h:2/m,") == [
        ScrapeTarget("a", "http://h:1/metrics"),
        ScrapeTarget("b", "https://h:2/m"),
    ]


@pytest.mark.parametrize(
    "text", ["http://h:1/metrics", "a=h:1", "=http://h", "a=http://x,a=http://y"]
)
def test_malformed_targets_are_a_config_error_with_an_example(text: str) -> None:
    with pytest.raises(ConfigError, match="metrics-urls"):
        parse_targets(text)


def test_summarize_sums_the_tradeflux_metrics_over_labels() -> None:
    m = StreamMetrics("positions", "p-1")
    m.records_in.labels(**m.labels()).inc(10)
    m.records_out.labels(**m.labels(), topic="positions").inc(4)
    m.records_out.labels(**m.labels(), topic="changelog").inc(5)
    m.lag.labels(**m.labels(), partition="0").set(7)
    m.lag.labels(**m.labels(), partition="3").set(1)
    sums, instances = summarize(generate_latest(m.registry).decode())
    assert sums["tradeflux_records_in_total"] == 10
    assert sums["tradeflux_records_out_total"] == 9
    assert sums["tradeflux_consumer_lag_records"] == 8
    assert instances == 1


def test_rates_come_from_the_change_between_scrapes_and_down_services_say_why() -> None:
    m = StreamMetrics("validator", "v-1")
    counter = m.records_in.labels(**m.labels())

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down":
            return httpx.Response(503)
        return httpx.Response(200, content=generate_latest(m.registry))

    scraper = ServiceScraper(
        [ScrapeTarget("v", "http://up/metrics"), ScrapeTarget("d", "http://down/m")]
    )

    async def scrape_twice() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            counter.inc(100)
            first = await scraper.scrape_once(client)
            assert first[0].records_in_per_s == 0.0  # one scrape: no rate yet
            counter.inc(50)
            await asyncio.sleep(0.05)
            second = await scraper.scrape_once(client)
            assert second[0].records_in_total == 150
            assert second[0].records_in_per_s > 0
            assert (second[1].up, second[1].name) == (False, "d")
            assert "503" in (second[1].error or "")

    asyncio.run(scrape_twice())
