"""The Kubernetes manifests: rendered by kustomize, valid for Kubernetes, true to the services.

kustomize is the pinned build ./dev makes from the Go module proxy; the schemas are the
ones kubernetes-validate ships (no network).
"""

from __future__ import annotations

import functools
import importlib
import re
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from tests.support.kafka_tools import REPO
from tests.support.tools import require_kustomize
from tradeflux import topics
from tradeflux.cli import app as tradeflux_cli
from tradeflux.query.readmodel import TOPICS as QUERY_TOPICS
from tradeflux.services import SHIPPED

DEPLOY = REPO / "deploy" / "kubernetes"
OVERLAYS = ("local", "production")
KUBERNETES = kubernetes_validate.latest_version()

PENDING_OPTIONS: dict[str, str] = {}
"""Options the manifests pass that the CLI does not have yet, and their command (none now:
``tradeflux run --metrics-host`` exists); the test below says when one arrives."""


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    kustomize = require_kustomize()
    path = DEPLOY / "overlays" / overlay if overlay != "base" else DEPLOY / "base"
    done = subprocess.run(
        [str(kustomize), "build", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def of_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] == kind}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(workload: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def service_of(name: str) -> Any:
    return importlib.import_module(f"tradeflux.services.{name.replace('-', '_')}").SERVICE


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Tell whether a label selector (matchLabels, matchExpressions In) selects ``labels``."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_the_manifests_are_valid_kubernetes_objects(overlay: str) -> None:
    documents = rendered(overlay)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    if overlay != "base":
        namespaced = [d for d in documents if d["kind"] != "Namespace"]
        assert {d["metadata"].get("namespace") for d in namespaced} == {
            "tradeflux-dev" if overlay == "local" else "tradeflux"
        }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_shipped_service_has_a_deployment_whose_environment_names_its_topics(
    overlay: str,
) -> None:
    deployments = of_kind(overlay, "Deployment")
    for name in SHIPPED:
        service = service_of(name)
        deployment = deployments[name]
        assert container(deployment)["args"][:2] == ["run", name]
        variables = env(deployment)
        assert variables["TRADEFLUX_INPUT_TOPICS"] == ",".join(t.name for t in service.inputs)
        assert variables["TRADEFLUX_TABLE_TOPICS"] == ",".join(
            t.topic for t in service.global_tables
        )
        dead_letters = [service.dead_letter_topic] if service.dead_letter_topic else []
        assert variables["TRADEFLUX_OUTPUT_TOPICS"] == ",".join(
            [t.name for t in service.outputs] + dead_letters
        )
        assert variables["TRADEFLUX_CHANGELOG_TOPICS"] == ",".join(
            f"{name}-{s.name}-changelog" for s in service.stores if s.logged
        )
    extra = set(deployments) - set(SHIPPED)
    assert extra == {"gateway-http", "gateway-fix", "query", "prometheus"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_and_the_query_service_name_what_they_write_and_read(overlay: str) -> None:
    deployments = of_kind(overlay, "Deployment")
    assert env(deployments["query"])["TRADEFLUX_INPUT_TOPICS"] == ",".join(QUERY_TOPICS)
    for name in ("gateway-http", "gateway-fix"):
        assert env(deployments[name])["TRADEFLUX_OUTPUT_TOPICS"] == ",".join(
            [topics.RAW.name, topics.ALLOCATIONS_IN.name, topics.CONFIRMATIONS_IN.name]
        )
    assert "--no-fix" in container(deployments["gateway-http"])["args"]
    fix = deployments["gateway-fix"]
    assert fix["spec"]["replicas"] == 1
    assert fix["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_is_probed_sized_budgeted_and_runs_as_its_own_account(
    overlay: str,
) -> None:
    deployments = of_kind(overlay, "Deployment")
    budgets = of_kind(overlay, "PodDisruptionBudget")
    accounts = set(of_kind(overlay, "ServiceAccount"))
    used: dict[str, set[str]] = {}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert matches(deployment["spec"]["selector"], labels), name
        main = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        readiness, liveness = main["readinessProbe"], main["livenessProbe"]
        assert readiness["httpGet"]["port"] in ports and liveness["httpGet"]["port"] in ports
        expected_ready = "/readyz" if name in SHIPPED or name == "query" else None
        if expected_ready:
            assert (readiness["httpGet"]["path"], liveness["httpGet"]["path"]) == (
                "/readyz",
                "/healthz",
            ), name
        requests, limits = main["resources"]["requests"], main["resources"]["limits"]
        assert requests["cpu"] and requests["memory"] and limits["memory"], name
        assert "cpu" not in limits, f"{name}: a CPU limit throttles the loop; request only"
        if name != "prometheus":
            assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
            assert int(pod["metadata"]["annotations"]["prometheus.io/port"]) in ports.values()
            assert labels["app.kubernetes.io/part-of"] == "tradeflux"
        (budget,) = [b for b in budgets.values() if matches(b["spec"]["selector"], labels)]
        assert budget["spec"]["maxUnavailable"] == 1, name
        account = pod["spec"]["serviceAccountName"]
        assert account in accounts, name
        used.setdefault(account, set()).add(labels["app.kubernetes.io/name"])
    # one identity per service (the gateway's two Deployments are one principal)
    assert all(len(services) == 1 for services in used.values()), used


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_principal_reads_its_own_kafka_credentials(overlay: str) -> None:
    workloads = {**of_kind(overlay, "Deployment"), **of_kind(overlay, "Job")}
    for name, workload in workloads.items():
        if name == "prometheus":
            continue
        refs = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in container(workload)["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        principal = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        expected = "admin" if name == "tradeflux-topics" else principal
        assert refs == {f"tradeflux-kafka-{expected}"}, name
    assert not of_kind(overlay, "Secret"), "secrets never come from the repository"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_let_principals_reach_only_kafka_and_dns(
    overlay: str,
) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    deny = policies["tradeflux-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "egress" not in deny
    workloads = {**of_kind(overlay, "Deployment"), **of_kind(overlay, "Job")}
    for name, workload in workloads.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert matches(policies["tradeflux-default-deny"]["spec"]["podSelector"], labels), name
        egress = sorted(
            policy
            for policy, p in policies.items()
            if "Egress" in p["spec"]["policyTypes"]
            and p["spec"].get("egress")
            and matches(p["spec"]["podSelector"], labels)
        )
        if name == "prometheus":
            assert egress == ["tradeflux-dns", "tradeflux-prometheus"]
        else:
            assert egress == ["tradeflux-dns", "tradeflux-kafka-egress"], name


def cli_accepts(args: list[str]) -> tuple[bool, str]:
    """Tell whether ``tradeflux ARGS`` names only options its command has (``--help`` added).

    The command's ``--help`` is eager: it answers once every option name was parsed,
    without running the command.
    """
    result = CliRunner().invoke(tradeflux_cli, [*args, "--help"])
    return result.exit_code == 0, result.output


def test_the_manifests_pass_only_options_the_tradeflux_cli_has() -> None:
    workloads = {**of_kind("production", "Deployment"), **of_kind("production", "Job")}
    for name, workload in workloads.items():
        if name == "prometheus":
            continue
        args = list(container(workload)["args"])
        pending = [a for a in args if a.split("=", 1)[0] in PENDING_OPTIONS]
        given = [a for a in args if a not in pending]
        ok, output = cli_accepts(given)
        assert ok, f"{name}: tradeflux {' '.join(given)}: {output}"
        for option in pending:
            ok, output = cli_accepts([*given, option])
            assert not ok and "No such option" in output, (
                f"tradeflux {args[0]} has {option} now: take it off PENDING_OPTIONS"
            )


def test_the_containerfile_builds_from_paths_that_exist_and_exposes_the_manifest_ports() -> None:
    text = (REPO / "Containerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.MULTILINE):
        assert (REPO / source).exists(), source
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", text, re.MULTILINE)[1].split()}
    ports = {
        p["containerPort"]
        for d in of_kind("production", "Deployment").values()
        if d["metadata"]["name"] != "prometheus"
        for p in container(d)["ports"]
    }
    assert ports == exposed
    assert re.search(r'^ENTRYPOINT \["tradeflux"\]$', text, re.MULTILINE)


def test_the_first_step_of_docs_deploy_selects_the_topics_job_its_account_and_settings() -> None:
    # docs/deploy.md: kubectl apply -k ... -l 'app.kubernetes.io/name in (topics,settings)'
    selected = sorted(
        (d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] == "ConfigMap" else
         d["metadata"]["name"])
        for d in rendered("production")
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") in ("topics", "settings")
    )  # fmt: skip
    assert selected == [
        ("ConfigMap", "tradeflux-settings"),
        ("Job", "tradeflux-topics"),
        ("ServiceAccount", "tradeflux-topics"),
    ]
    assert "in (topics,settings)" in (REPO / "docs" / "deploy.md").read_text()
