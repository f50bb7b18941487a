"""The dashboard in a real headless Chromium while records are being produced.

Debian's ``chromium`` (``apt-get install chromium``) driven by Playwright; never a
browser that Playwright downloads. Without chromium the test is skipped on a developer's
machine and fails in CI (``CI=true``). The screenshot goes to ``test-output/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.browser.feed import Feeder, bar
from tests.conftest import unique
from tests.support.auth import Tokens, tokens_file
from tests.support.browser import OUTPUT, dashboard_page, wait_in_page
from tests.support.kafka_tools import create_query_topics
from tradeflux.config import Settings
from tradeflux.domain.finality import ObligationStatement
from tradeflux.domain.schemas import SettlementObligation
from tradeflux.query.server import BackgroundServer, QueryService
from tradeflux.query.service_metrics import ScrapeTarget
from tradeflux.security.http import CONTENT_SECURITY_POLICY
from tradeflux.security.policy import metrics_authorize
from tradeflux.stream.metrics import HealthServer, StreamMetrics

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

OBLIGATION = "CP-007|USD|2026-11-27"


def final_and_adjustment() -> tuple[ObligationStatement, ObligationStatement]:
    """A FINAL statement of one obligation and its first ADJUSTMENT, as settlement writes them."""
    figures = SettlementObligation(
        counterparty="CP-007", counterparty_lei="5299007W3X0B5CI8IV57", currency="USD",
        settlement_date=dt.date(2026, 11, 27), net_cash=Decimal("-1000.00"),
        cash_paid=Decimal("1000.00"), cash_received=Decimal(0), trade_count=1,
    )  # fmt: skip
    cutoff = dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)
    final = ObligationStatement(
        kind="FINAL", sequence=0, counterparty="CP-007", currency="USD",
        settlement_date=figures.settlement_date, cutoff_at=cutoff, recorded_at=cutoff,
        obligation=figures,
    )  # fmt: skip
    adjusted = msgspec.structs.replace(figures, net_cash=Decimal("-1500.00"))
    adjustment = msgspec.structs.replace(
        final, kind="ADJUSTMENT", sequence=1, obligation=adjusted, previous=figures,
        net_cash_change=Decimal("-500.00"), trade_id="T9", version=2, event_type="AMEND",
    )  # fmt: skip
    return final, adjustment


SERVICES = ("validator", "positions", "pnl")


class FakeServiceMetrics:
    """The /metrics of the three pipeline services, counting what the feeder writes."""

    def __init__(self, settings: Settings) -> None:
        self.metrics = {name: StreamMetrics(name, f"{name}-1") for name in SERVICES}
        authorize = metrics_authorize(settings)  # the metrics scope, as `tradeflux run` needs
        self.servers = [
            HealthServer(m, 0, alive=lambda: True, ready=lambda: True, authorize=authorize)
            for m in self.metrics.values()
        ]
        for server in self.servers:
            server.start()

    def targets(self) -> list[ScrapeTarget]:
        return [
            ScrapeTarget(name, f"http://127.0.0.1:{server.port}/metrics")
            for name, server in zip(SERVICES, self.servers, strict=True)
        ]

    def count(self, n: int) -> None:
        for m in self.metrics.values():
            m.records_in.labels(**m.labels()).inc(n)
            m.records_out.labels(**m.labels(), topic="out").inc(n)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture()
def live_world(
    chromium: Path, kafka: Settings, tmp_path: Path
) -> Iterator[tuple[Feeder, BackgroundServer, threading.Thread, Tokens]]:
    """The query service with auth on (static tokens) over a fed prefix, and fake services."""
    prefix = unique("dash") + "."
    create_query_topics(kafka, prefix)
    feeder = Feeder(kafka, prefix)
    feeder.history(dt.datetime.now(dt.UTC))  # bars of the last minutes, before the page opens
    tokens = tokens_file(tmp_path / "tokens.toml")
    scrape = tmp_path / "scrape.token"
    scrape.write_text(tokens.scraper)
    settings = dataclasses.replace(
        kafka, topic_prefix=prefix, auth="token", tokens_file=tokens.path,
        scrape_token_file=scrape,
    )  # fmt: skip
    fake = FakeServiceMetrics(settings)
    feeder.on_trade = fake.count
    service = QueryService(settings, fake.targets())
    server = BackgroundServer(service).start()
    thread = threading.Thread(target=feeder.run, kwargs={"rate_per_s": 25.0}, daemon=True)
    try:
        assert service.follower.wait_ready(60), "the query service did not catch up"
        yield feeder, server, thread, tokens
    finally:
        feeder.stop_event.set()
        if thread.is_alive():
            thread.join(30)
        server.stop()
        fake.stop()


def test_dashboard_shows_positions_and_alerts_as_they_are_produced(
    live_world: tuple[Feeder, BackgroundServer, threading.Thread, Tokens],
) -> None:
    """Logged in by the one-time link (auth on), under the CSP: no console error at all."""
    feeder, server, thread, tokens = live_world
    problems: list[str] = []
    OUTPUT.mkdir(exist_ok=True)
    with dashboard_page(f"{server.url}/?token={tokens.login}", problems) as page:
        assert page.url == server.url + "/"  # the token left the address bar
        page.wait_for_selector("#conn.pill-live", timeout=30_000)
        # nothing was produced yet: no position, no alert on the page
        assert page.locator("#pos-table tbody tr").count() == 0
        assert page.locator("#alerts-feed li.alert").count() == 0

        thread.start()  # now records flow: the page must show them as they come
        page.wait_for_selector("#pos-table tbody tr td.instr", timeout=30_000)
        page.wait_for_selector("#alerts-feed li.alert .badge", timeout=30_000)
        first_row = page.locator("#pos-table tbody tr").first.inner_text()
        assert "ACC-" in first_row, first_row
        alert = page.locator("#alerts-feed li.alert").first.inner_text()
        assert "ACC-" in alert and ("BREACH" in alert or "CLEARED" in alert), alert
        # the rest of the page fills in too: P&L, rejects with reasons, bars, services
        page.wait_for_selector("#pnl-table tbody tr td.acct", timeout=30_000)
        page.wait_for_selector("#rej-reasons .reason", timeout=30_000)
        page.wait_for_selector("#bar-chart canvas", timeout=30_000)
        wait_in_page(
            page,
            "document.querySelectorAll('#alerts-feed li.alert').length >= 3"
            " && document.querySelectorAll('#svc-table .badge.up').length === 3",
            60,
            "three alerts and three services up",
        )
        assert page.locator("#bar-empty").is_hidden()
        tile = page.locator(".kpi", has_text="Open positions").locator(".value")
        assert tile.inner_text() not in ("", "0", "—")
        # an obligation made FINAL at its cut-off appears, and its adjustment is counted
        final, adjustment = final_and_adjustment()
        feeder.send("settlement.statements", OBLIGATION, final)
        feeder.producer.flush(10)
        row = page.locator("#final-table tbody tr", has_text="CP-007")
        row.wait_for(timeout=30_000)
        assert "-1,000.00" in row.inner_text() or "-1000.00" in row.inner_text(), row.inner_text()
        feeder.send("settlement.statements", OBLIGATION, adjustment)
        feeder.producer.flush(10)
        wait_in_page(
            page,
            "[...document.querySelectorAll('#final-table tbody tr')].some("
            "r => r.textContent.includes('CP-007') && r.cells[6].textContent === '1')",
            30,
            "CP-007's FINAL obligation with one adjustment",
        )
        page.screenshot(path=str(OUTPUT / "dashboard.png"))
        # the dashboard's own response headers, as the browser got them (its session cookie)
        answer = page.context.request.get(server.url + "/")
        assert answer.status == 200
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert page.context.request.get(server.url + "/?token=" + tokens.login).status == 401
        # a window whose trades were all cancelled (analytics' tombstone) leaves the chart
        start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        key = f"ZZZ.XNAS|{start.isoformat().replace('+00:00', 'Z')}"
        option = page.locator("#bar-instrument option[value='ZZZ.XNAS']")
        feeder.send("analytics.bars", key, bar("ZZZ.XNAS", start, [Decimal("10.00")], [100]))
        feeder.producer.flush(10)
        option.wait_for(state="attached", timeout=30_000)
        feeder.send("analytics.bars", key, None)
        feeder.producer.flush(10)
        option.wait_for(state="detached", timeout=30_000)
    assert feeder.written.get("positions", 0) > 0
    assert problems == []
