"""The dashboard's post-trade panels in headless Chromium: allocations, confirmations, overdue."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from tests.browser.feed import Feeder
from tests.conftest import unique
from tests.support.allocation_fixtures import allocation, confirmation, exception
from tests.support.browser import OUTPUT, dashboard_page, wait_in_page
from tests.support.kafka_tools import create_query_topics
from tradeflux.config import Settings
from tradeflux.domain.allocation_events import AllocationAck
from tradeflux.query.server import BackgroundServer, QueryService

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.integration]

T = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def test_allocations_confirmations_and_open_exceptions_show_as_they_come(
    chromium: object, kafka: Settings
) -> None:
    prefix = unique("dash-post") + "."
    create_query_topics(kafka, prefix)
    feeder = Feeder(kafka, prefix)
    service = QueryService(dataclasses.replace(kafka, topic_prefix=prefix, auth="none"))
    problems: list[str] = []
    with BackgroundServer(service) as server, dashboard_page(server.url + "/", problems) as page:
        page.wait_for_selector("#conn.pill-live", timeout=30_000)
        assert page.locator("#alloc-table tbody tr").count() == 0
        feeder.send("allocations.status", "O1:20261124|AL-1", allocation("O1:20261124"))
        rejected = AllocationAck(
            alloc_id="AL-9", trans_type="NEW", order_id="O9", trade_date=dt.date(2026, 11, 24),
            block_id="O9:20261124", status="REJECTED", reason="UNKNOWN_ACCOUNT",
            detail="no account 'ACC-X'", at=T,
        )  # fmt: skip
        feeder.send("allocations.acks", "AL-9", rejected)
        for trade_id, status in (("C1", "AFFIRMED"), ("C2", "CONFIRMED"), ("C3", "CONFIRMED")):
            feeder.send("confirmations", trade_id, confirmation(trade_id, status, 1))
        feeder.send("confirmations.exceptions", "C2", exception("C2", "UNAFFIRMED"))
        feeder.send("confirmations.exceptions", "C3", exception("C3", "UNAFFIRMED"))
        feeder.producer.flush(10)
        wait_in_page(
            page,
            "document.querySelectorAll('#alloc-table tbody tr').length === 2"
            " && document.querySelectorAll('#aff-table tbody tr').length === 2",
            # The first records wait for the follower to find the new topics: beside a busy
            # core and a second test worker, their leaders took long enough that 30 s failed.
            90,
            "two allocations and two open exceptions",
        )
        table = page.locator("#alloc-table").inner_text()
        assert "UNKNOWN_ACCOUNT" in table and "O1:20261124" in table and "CL-A 300" in table
        assert "ACCEPTED" in table
        assert page.locator("#aff-status .affirmed .n").inner_text() == "1"
        assert page.locator("#aff-status .confirmed .n").inner_text() == "2"
        assert "2 unaffirmed past deadline" in page.locator("#aff-hint").inner_text()
        page.screenshot(path=str(OUTPUT / "dashboard-postrade.png"))
        # C3 affirmed late: its exception clears and it leaves the list
        feeder.send("confirmations", "C3", confirmation("C3", "AFFIRMED", 1))
        feeder.send("confirmations.exceptions", "C3", exception("C3", "CLEARED"))
        feeder.producer.flush(10)
        wait_in_page(
            page, "document.querySelectorAll('#aff-table tbody tr').length === 1", 30,
            "one open exception left",
        )  # fmt: skip
        assert "1 cleared late" in page.locator("#aff-hint").inner_text()
        assert Decimal(page.locator("#aff-status .affirmed .n").inner_text()) == 2
    assert problems == []
