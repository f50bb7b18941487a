"""``tradeflux demo --monitoring``: Debian's Prometheus scrapes every service of the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import free_port_block
from tests.support.demo import our_processes, running_demo
from tests.support.kafka_tools import wait_for
from tests.support.system import get_text
from tests.support.tools import require_prometheus
from tradeflux.config import Settings
from tradeflux.services import SHIPPED

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_with_monitoring_runs_prometheus_on_every_service_and_stops_it(
    kafka: Settings, tmp_path: Path
) -> None:
    require_prometheus()
    port = free_port_block(1)
    api = f"http://127.0.0.1:{port}/api/v1"

    def up_services() -> set[str]:
        text = get_text(f"{api}/query?query=up%3D%3D1")
        result = json.loads(text)["data"]["result"] if text else []
        return {r["metric"]["service"] for r in result}

    with running_demo(
        kafka, tmp_path, extra=("--monitoring", "--prometheus-port", str(port))
    ) as demo:
        expected = {*SHIPPED, "query"}
        wait_for(lambda: up_services() == expected, 120, f"Prometheus scraping {expected}")
        rules = json.loads(get_text(f"{api}/rules") or "{}")["data"]["groups"]
        alerts = {r["name"] for g in rules for r in g["rules"] if r["type"] == "alerting"}
        assert {"TradefluxServiceDown", "TradefluxConsumerLagGrowing"} <= alerts
        assert f"prometheus: http://127.0.0.1:{port}/alerts" in demo.output.read_text()
        assert demo.interrupt() == 0
    assert get_text(f"http://127.0.0.1:{port}/-/ready") is None
    assert our_processes(demo.prefix) == []
