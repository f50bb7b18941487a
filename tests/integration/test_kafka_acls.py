"""Kafka principals and ACLs on a broker of its own: SASL/SCRAM and the StandardAuthorizer.

One SASL cluster for the session (1 node, 512 MB heap), started only by these tests. The
pipeline (gateway → validator → positions → pnl, the refdata loader and the query reader)
runs with one principal each and the ACLs of ``tradeflux acls apply``; a principal that
steps outside them is denied, and the operator sees it as one line.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import msgspec
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tests.conftest import _cache_dir, free_port_block, unique
from tests.support.kafka_tools import REPO, ServiceProcess, read_all, wait_for
from tests.support.pipeline import REFDATA_FILES
from tradeflux.broker import local
from tradeflux.config import Settings, load_settings
from tradeflux.query.server import QueryService

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class SaslCluster:
    """The module's SASL broker: its bootstrap, the admin's settings, every user's password."""

    bootstrap: str
    admin: Settings
    passwords: dict[str, str]

    def env(self, user: str) -> dict[str, str]:
        """The environment of a process running as ``user``."""
        return {"TRADEFLUX_BOOTSTRAP": self.bootstrap,
                **local.sasl_environment(user, self.passwords[user])}  # fmt: skip

    def settings(self, user: str) -> Settings:
        return replace(self.admin, kafka=local.sasl_client_config(user, self.passwords[user]))


@pytest.fixture(scope="session")
def sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslCluster]:
    runtime = tmp_path_factory.mktemp("sasl-runtime")
    settings = load_settings(
        env={}, runtime_dir=runtime, cache_dir=_cache_dir(), broker_heap="512m"
    )
    cluster = local.start_cluster(settings, nodes=1, port=free_port_block(2), sasl=True)
    try:
        admin = local.admin_settings(settings, cluster)
        yield SaslCluster(cluster.bootstrap, admin, local.load_credentials(settings))
    finally:
        local.stop_cluster(settings)


def cli(
    sasl: SaslCluster, user: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **sasl.env(user)}
    return subprocess.run([sys.executable, "-m", "tradeflux.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def world(sasl: SaslCluster) -> str:
    """A topic prefix with the core topics (created by the admin), refdata, and its ACLs."""
    prefix = unique("acl") + "."
    made = cli(sasl, "admin", "topics", "create", "--set", "core", "--prefix", prefix,
               "--partitions", "3")  # fmt: skip
    assert made.returncode == 0, made.stderr
    applied = cli(sasl, "admin", "acls", "apply", "--prefix", prefix)
    assert applied.returncode == 0, applied.stderr
    assert "ACLs in place for 18 principals" in applied.stdout
    loaded = cli(sasl, "refdata", "refdata", "load", "--prefix", prefix, *map(str, REFDATA_FILES))
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    return prefix


def trade(trade_id: str, account: str = "ACC-0001") -> dict[str, object]:
    return {
        "event_type": "NEW", "trade_id": trade_id, "version": 1, "account": account,
        "instrument": "HO.XNYS", "side": "BUY", "quantity": 100, "price": "190.25",
        "currency": "USD", "venue": "XNYS", "counterparty": "CP-001",
        "trade_time": dt.datetime.now(dt.UTC).isoformat(),
    }  # fmt: skip


class GatewayAs:
    """``tradeflux --auth none gateway --no-fix`` (loopback) running as a Kafka principal."""

    def __init__(self, sasl: SaslCluster, user: str, prefix: str, folder: Path) -> None:
        port = free_port_block(1)
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = folder / f"gateway-{user}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO), **sasl.env(user),
               "TRADEFLUX_KAFKA_DELIVERY_TIMEOUT_MS": "5000"}  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tradeflux.cli", "--auth", "none", "gateway", "--no-fix",
                 "--http-port", str(port), "--prefix", prefix, "--runtime-dir", str(folder)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(self._up, 60, f"the gateway as {user}")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def post(self, body: object) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/trades", content=msgspec.json.encode(body), timeout=30,
                          headers={"Content-Type": "application/json"})  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def test_the_pipeline_runs_with_one_principal_per_service(
    sasl: SaslCluster, world: str, tmp_path: Path
) -> None:
    prefix = world
    services = [
        ServiceProcess(sasl.admin, name, prefix, f"{name}-1", tmp_path, env=sasl.env(name))
        for name in ("validator", "positions", "pnl")
    ]
    gateway = GatewayAs(sasl, "gateway", prefix, tmp_path)
    query_settings = replace(sasl.settings("query"), topic_prefix=prefix, auth="none")
    query = QueryService(query_settings)  # its follower reads as the query principal
    query.follower.start()
    try:
        accepted = gateway.post([trade(f"ACL-{i}") for i in range(5)])
        assert (accepted.status_code, accepted.json()) == (202, {"accepted": 5})

        def positions() -> int:
            for proc in services:
                assert proc.alive(), proc.log()[-3000:]
            assert query.follower.alive(), query.follower.status()
            return query.model.list_positions(None, None, False, 10, 0).total

        wait_for(positions, 120, "positions in the query's read model", every_s=1.0)
        wait_for(lambda: query.model.list_pnl(None, 10, 0).total, 60, "P&L", every_s=1.0)
        assert query.follower.status().error is None
        assert len(read_all(sasl.admin, prefix + "trades.enriched")) == 5
        for proc in services:
            assert proc.terminate() == 0, proc.log()[-3000:]
    finally:
        query.follower.stop()
        gateway.stop()
        for proc in services:
            if proc.alive():
                proc.kill()


def test_the_positions_principal_is_denied_writing_trades_raw(
    sasl: SaslCluster, world: str, tmp_path: Path
) -> None:
    prefix = world
    producer = Producer({**sasl.settings("positions").client_config(), "enable.idempotence": True})
    errors: list[KafkaError] = []
    producer.produce(prefix + "trades.raw", b"{}", b"X", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(30)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # what the operator sees: a gateway run with the wrong principal answers 503 and logs it once
    gateway = GatewayAs(sasl, "positions", prefix, tmp_path)
    try:
        refused = gateway.post([trade("DENIED-1")])
        assert refused.status_code == 503
        assert refused.json()["written"] == "none"
        assert "authoriz" in refused.json()["detail"].lower()
        lines = [line for line in gateway.log().splitlines() if "level=ERROR" in line]
        assert len(lines) == 1, lines
        assert "not written to Kafka" in lines[0] and "uthoriz" in lines[0]
    finally:
        gateway.stop()
    assert [m.key() for m in read_all(sasl.admin, prefix + "trades.raw")
            if m.key() == b"DENIED-1"] == []  # fmt: skip


def test_the_gateway_principal_is_denied_reading_positions(
    sasl: SaslCluster, world: str, tmp_path: Path
) -> None:
    prefix = world
    consumer = Consumer({**sasl.settings("gateway").client_config(),
                         "group.id": "gateway-reader", "enable.auto.commit": False})  # fmt: skip
    try:
        topic = consumer.list_topics(prefix + "positions", timeout=10).topics[prefix + "positions"]
        consumer.assign([TopicPartition(prefix + "positions", 0, 0)])
        codes = [m.error().code() for m in consumer.consume(10, 10) if m.error() is not None]
    finally:
        consumer.close()
    assert topic.error is not None
    assert topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    denied = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}
    assert codes and set(codes) <= denied, codes


def run_pnl_as_the_gateway(sasl: SaslCluster, prefix: str, folder: Path) -> tuple[int, list[str]]:
    """``tradeflux run pnl`` (which reads positions) with the gateway's credentials."""
    proc = ServiceProcess(sasl.admin, "pnl", prefix, "pnl-as-gateway", folder,
                          env=sasl.env("gateway"))  # fmt: skip
    try:
        code = proc.proc.wait(timeout=120)
    finally:
        if proc.alive():
            proc.kill()
    lines = [line for line in proc.log().splitlines() if "level=ERROR" in line]
    return code, lines


def test_a_service_run_as_the_wrong_principal_stops_with_one_line(
    sasl: SaslCluster, world: str, tmp_path: Path
) -> None:
    code, errors = run_pnl_as_the_gateway(sasl, world, tmp_path)
    print("\n`tradeflux run pnl` as the gateway principal printed:\n" + "\n".join(errors))
    assert code != 0
    assert len(errors) == 1, errors
    assert f"{world}positions" in errors[0]


def test_a_service_run_as_the_wrong_principal_says_it_is_not_authorized(
    sasl: SaslCluster, world: str, tmp_path: Path
) -> None:
    _code, errors = run_pnl_as_the_gateway(sasl, world, tmp_path)
    assert len(errors) == 1 and "authoriz" in errors[0].lower(), errors
