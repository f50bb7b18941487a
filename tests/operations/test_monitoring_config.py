"""The monitoring configuration without a broker: rules under promtool, configs, dashboards."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.kafka_tools import REPO
from tests.support.promql import (
    PROMETHEUS_OWN,
    label_names_by_metric,
    load_rules,
    metric_names,
    pending_metric,
    recorded_names,
)
from tests.support.tools import require_promtool
from tradeflux import dashboards
from tradeflux.services import SHIPPED

MONITORING = REPO / "monitoring"
RULE_TESTS = MONITORING / "rules" / "tests" / "tradeflux.test.yml"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_metric_names_are_read_out_of_promql_but_not_functions_labels_or_keywords() -> None:
    expr = (
        'sum by (service, le) (rate(tradeflux_x_bucket{le="1.0", a=~"b|c"}[5m])) / on (service)'
        " group_left (topic) tradeflux:y:rate1m offset 5m > bool 0.5 or vector(1) unless "
        'label_replace(up, "a", "$1", "b", "(.+)") and ALERTS{alertstate=\'firing\'}'
    )
    assert metric_names(expr) == {"tradeflux_x_bucket", "tradeflux:y:rate1m", "up", "ALERTS"}
    assert label_names_by_metric(expr) == {
        "tradeflux_x_bucket": {"le", "a"},
        "ALERTS": {"alertstate"},
    }


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = require_promtool()
    checked = run(promtool, "check", "rules", MONITORING / "rules" / "tradeflux.rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_promtool_case_that_fires_it() -> None:
    alerts = {r["alert"] for r in load_rules() if "alert" in r}
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {
        t["alertname"]
        for case in cases
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert firing == alerts


def test_every_alert_says_how_bad_what_happened_and_what_to_do() -> None:
    for rule in load_rules():
        if "alert" not in rule:
            continue
        assert rule["alert"].startswith("Tradeflux"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert len(rule["annotations"]["description"]) > 80, rule["alert"]


def test_the_absent_service_alert_names_every_shipped_service_the_gateway_and_query() -> None:
    (rule,) = [r for r in load_rules() if r.get("alert") == "TradefluxServiceAbsent"]
    named = set(re.findall(r'service="([^"]+)"', rule["expr"]))
    assert named == set(dashboards.all_services()) == {*SHIPPED, "gateway", "query"}


def test_only_the_marked_rules_wait_for_metrics_nobody_exports_yet() -> None:
    pending = {r["alert"]: pending_metric(r) for r in load_rules() if pending_metric(r)}
    assert pending == {}  # every metric the rules name is exported now
    for rule in load_rules():
        if pending_metric(rule):
            assert pending_metric(rule) in metric_names(rule["expr"]), rule["alert"]


def test_the_local_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = require_promtool()
    checked = run(promtool, "check", "config", MONITORING / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_the_kubernetes_prometheus_config_is_valid_but_for_its_discovery(tmp_path: Path) -> None:
    # Debian's prometheus is built without Kubernetes discovery; the upstream image that
    # runs on a cluster has it. Everything else (relabelling included) promtool checks.
    promtool = require_promtool()
    config = yaml.safe_load((MONITORING / "kubernetes" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"own_namespace": True}}]
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": ["127.0.0.1:9300"]}]
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "tradeflux.rules.yml").write_text(
        (MONITORING / "rules" / "tradeflux.rules.yml").read_text()
    )
    config["rule_files"] = [str(rules / "*.rules.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    checked = run(promtool, "check", "config", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_one_dashboard_per_service_and_an_overview_each_on_the_chosen_datasource() -> None:
    boards = dashboards.dashboards()
    assert sorted(boards) == sorted(
        ["tradeflux-overview", *(f"tradeflux-{s}" for s in dashboards.all_services())]
    )
    for uid, model in boards.items():
        panels = [p for p in model["panels"] if p["type"] != "row"]
        assert panels, uid
        ids = [p["id"] for p in model["panels"]]
        assert len(set(ids)) == len(ids), uid
        for panel in panels:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, uid
            assert panel["targets"], (uid, panel["title"])


def test_dashboards_read_only_tradeflux_metrics_prometheus_series_or_recorded_rules() -> None:
    recorded = recorded_names(load_rules())
    for uid, model in dashboards.dashboards().items():
        for expr in dashboards.expressions(model):
            for name in metric_names(expr):
                assert (
                    name in recorded or name in PROMETHEUS_OWN or name.startswith("tradeflux_")
                ), (uid, expr)
                if ":" in name:
                    assert name in recorded, f"{uid}: {name} is no recording rule"


def test_write_dashboards_writes_one_json_per_uid(tmp_path: Path) -> None:
    assert dashboards.main([str(tmp_path)]) == 0
    assert sorted(p.stem for p in tmp_path.iterdir()) == sorted(dashboards.dashboards())


def test_a_dashboard_for_an_unknown_service_is_refused() -> None:
    with pytest.raises(ValueError, match="no service 'nosuch'"):
        dashboards.service_dashboard("nosuch")
