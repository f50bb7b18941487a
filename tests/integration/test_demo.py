"""``tradeflux demo`` end to end: positions reach the query API, and Ctrl-C leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.demo import get_json, our_processes, running_demo
from tests.support.kafka_tools import wait_for
from tradeflux.config import Settings
from tradeflux.services import SHIPPED

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_shows_positions_within_a_minute_and_ctrl_c_stops_everything(
    kafka: Settings, tmp_path: Path
) -> None:
    with running_demo(kafka, tmp_path) as demo:
        assert wait_for(lambda: demo.total("/v1/positions"), 60, "positions in the query API") > 0
        assert wait_for(lambda: demo.total("/v1/pnl"), 30, "P&L in the query API") > 0
        expected = set(SHIPPED)

        def services_up() -> set[str]:
            statuses = demo.get_json("/v1/services") or []
            return {s["name"] for s in statuses if s["up"] and s["records_in_total"] > 0}

        assert wait_for(lambda: services_up() == expected, 30, f"{expected} up and counting")
        assert wait_for(lambda: demo.total("/v1/allocations"), 90, "allocations in the API") > 0
        assert wait_for(lambda: demo.total("/v1/confirmations"), 60, "confirmations") > 0
        assert our_processes(demo.prefix), "the demo's processes carry its topic prefix"
        assert get_json(f"{demo.url}/v1/positions") is None  # 401 without the token
        link = demo.login_link()
        assert link is not None and link.startswith(f"{demo.url}/?token=tf_")
        assert demo.interrupt() == 0
    output = demo.output.read_text()
    assert "all demo processes stopped" in output
    assert "open positions" in output and "alerts" in output  # the read model's caption
    assert our_processes(demo.prefix) == []
