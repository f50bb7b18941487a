"""The dashboard of a real ``tradeflux demo`` run in headless Chromium: positions and alerts.

Everything is the shipped system: the demo starts the services, the query service and the
simulator against the session's broker, with the sample reference data (whose limits the
simulated flow crosses within seconds). The screenshot goes to ``test-output/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import OUTPUT, dashboard_page, wait_in_page
from tests.support.demo import answers, running_demo
from tests.support.kafka_tools import wait_for
from tradeflux.config import Settings
from tradeflux.services import SHIPPED

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]


def test_dashboard_of_a_demo_run_shows_positions_and_an_alert(
    chromium: Path, kafka: Settings, tmp_path: Path
) -> None:
    problems: list[str] = []
    OUTPUT.mkdir(exist_ok=True)
    with running_demo(kafka, tmp_path) as demo:
        wait_for(lambda: answers(f"{demo.url}/healthz"), 60, "the query service to answer")
        link = wait_for(demo.login_link, 30, "the demo to print its dashboard link")
        with dashboard_page(link, problems) as page:  # one click: the link logs the browser in
            page.wait_for_selector("#conn.pill-live", timeout=60_000)
            page.wait_for_selector("#pos-table tbody tr td.instr", timeout=60_000)
            page.wait_for_selector("#alerts-feed li.alert .badge", timeout=90_000)
            position = page.locator("#pos-table tbody tr").first.inner_text()
            assert "ACC-" in position, position
            alert = page.locator("#alerts-feed li.alert").first.inner_text()
            assert "ACC-" in alert and ("BREACH" in alert or "CLEARED" in alert), alert
            page.wait_for_selector("#pnl-table tbody tr td.acct", timeout=30_000)
            wait_in_page(
                page,
                f"document.querySelectorAll('#svc-table .badge.up').length === {len(SHIPPED)}",
                60,
                "every service up",
            )
            page.wait_for_selector("#bar-chart canvas", timeout=30_000)  # analytics' bars
            wait_in_page(
                page, "document.getElementById('bar-empty').offsetParent === null", 60,
                "the bar chart shown",
            )  # fmt: skip
            tile = page.locator(".kpi", has_text="Open positions").locator(".value")
            assert tile.inner_text() not in ("", "0", "—")
            page.screenshot(path=str(OUTPUT / "demo-dashboard.png"))
        assert demo.interrupt() == 0  # Ctrl-C after the page closed: no error from it
    assert problems == []
