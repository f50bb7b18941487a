"""Monitoring against the running system: what the dashboards and rules read is exported, and
Debian's Prometheus finds every service and alerts when one is SIGKILLed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.kafka_tools import wait_for
from tests.support.promql import (
    PROMETHEUS_OWN,
    exported,
    label_names_by_metric,
    load_rules,
    metric_names,
    pending_metric,
    recorded_names,
)
from tests.support.system import System, running_prometheus, running_system, wait_until
from tests.support.tools import require_prometheus
from tradeflux import dashboards
from tradeflux.config import Settings
from tradeflux.local_prometheus import prepare_folder
from tradeflux.services import SHIPPED

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TARGET_LABELS = frozenset({"job", "service", "instance"})
"""Labels Prometheus gives every sample of a target (file discovery)."""


@pytest.fixture(scope="module")
def system(kafka: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with running_system(kafka, tmp_path_factory.mktemp("system")) as running:
        yield running


def records_in(system: System, name: str) -> float:
    families = [
        line for line in system.metrics(name).splitlines()
        if line.startswith("tradeflux_records_in_total{")
    ]  # fmt: skip
    return sum(float(line.rsplit(" ", 1)[1]) for line in families)


def test_dashboards_and_rules_read_only_metrics_the_running_services_export(
    system: System,
) -> None:
    for name in (*SHIPPED, "query"):  # samples of every histogram and label, not just TYPE lines
        wait_until(lambda n=name: records_in(system, n) > 0, 120, f"{name} to process", system)
    offered = {name: exported(system.metrics(name)) for name in system.procs}
    everything: dict[str, set[str]] = {}
    for names in offered.values():
        for metric, labels in names.items():
            everything.setdefault(metric, set()).update(labels)
    rules = load_rules()
    recorded = recorded_names(rules)
    problems: list[str] = []

    def check(where: str, expr: str, pool: dict[str, set[str]]) -> None:
        for name in sorted(metric_names(expr) - recorded - PROMETHEUS_OWN):
            if name not in pool:
                problems.append(f"{where}: {name} is not exported")
        for name, labels in label_names_by_metric(expr).items():
            if pool.get(name):  # the labels its samples carry, and the target's
                unknown = labels - pool[name] - TARGET_LABELS
                if unknown:
                    problems.append(f"{where}: {name} has no label {sorted(unknown)}")

    for uid, model in dashboards.dashboards().items():
        service = uid.removeprefix("tradeflux-")
        for expr in dashboards.expressions(model):
            check(f"dashboard {uid}", expr, offered.get(service, everything))
    for rule in rules:
        name = rule.get("alert") or rule["record"]
        waits_for = pending_metric(rule)
        if waits_for is not None:
            assert waits_for not in everything, (
                f"{waits_for} is exported now: take pending_metric off rule {name}"
            )
            continue
        check(f"rule {name}", rule["expr"], everything)
    assert problems == []


def test_prometheus_finds_every_service_and_alerts_when_one_is_killed_until_it_is_back(
    system: System, tmp_path: Path
) -> None:
    require_prometheus()
    folder = tmp_path / "prometheus"
    config_path = prepare_folder(folder)
    # The test configuration: second-long intervals, and the down alerts' `for` shortened.
    config = yaml.safe_load(config_path.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="900ms", evaluation_interval="1s")
    config_path.write_text(yaml.safe_dump(config))
    rules_path = folder / "rules" / "tradeflux.rules.yml"
    rules = yaml.safe_load(rules_path.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in ("TradefluxServiceDown", "TradefluxInstanceDown"):
                rule["for"] = "2s"
    rules_path.write_text(yaml.safe_dump(rules))
    expected = set(system.procs)
    assert expected == {*SHIPPED, "query", "gateway"}

    with running_prometheus(folder, system.targets()) as prometheus:

        def services(promql: str) -> set[str]:
            return {r["metric"].get("service", "") for r in prometheus.query(promql)}

        wait_until(
            lambda: services('up{job="tradeflux"} == 1') == expected, 90,
            f"every service's target up: {expected}", system,
        )  # fmt: skip
        wait_until(
            lambda: services('count by (service) ({job="tradeflux", __name__=~"tradeflux_.+"})')
            == expected, 60, "series of every service", system,
        )  # fmt: skip
        assert prometheus.firing("TradefluxServiceDown") == []

        risk = system.procs["risk"]
        risk.kill()
        fired = wait_for(
            lambda: prometheus.firing("TradefluxServiceDown"), 60, "TradefluxServiceDown to fire"
        )
        assert fired == [
            {"alertname": "TradefluxServiceDown", "service": "risk", "severity": "critical"}
        ]
        (instance,) = prometheus.firing("TradefluxInstanceDown")
        assert instance["instance"] == f"127.0.0.1:{risk.port}"

        risk.start()
        wait_until(lambda: services('up{service="risk"} == 1'), 90, "risk back up", system)
        wait_for(
            lambda: prometheus.firing("TradefluxServiceDown") == [], 30, "the alert to resolve"
        )
        assert prometheus.firing("TradefluxInstanceDown") == []
