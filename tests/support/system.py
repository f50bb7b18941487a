"""The whole system as processes on the real broker (every shipped service, query, gateway),
and Debian's Prometheus scraping it: for the monitoring tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import REPO, wait_for
from tests.support.pipeline import REFDATA_FILES, produce_marks, produce_trades, simulated_session
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.gateway.refdata import load_files
from tradeflux.local_prometheus import ScrapeTarget, prometheus_command, write_targets
from tradeflux.services import SHIPPED


def get_text(url: str, timeout_s: float = 2.0) -> str | None:
    """Return the body at ``url``, or None while it does not answer 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback
            return str(resp.read().decode())
    except OSError:
        return None


@dataclass
class Proc:
    """One process of the system: a tradeflux command (or another program), its log, its port."""

    name: str
    argv: list[str]
    port: int
    log_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self) -> None:
        """Start it (again), its output appended to its log."""
        self.log_path = self.log_dir / f"{self.name}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO
            )

    def alive(self) -> bool:
        """Tell whether it runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL it and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s: nothing is left running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        """Return its log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    @property
    def metrics_url(self) -> str:
        """Its /metrics."""
        return f"http://127.0.0.1:{self.port}/metrics"


@dataclass
class System:
    """Every service of the system running under one topic prefix."""

    settings: Settings
    prefix: str
    procs: dict[str, Proc] = field(default_factory=dict)

    def targets(self) -> list[ScrapeTarget]:
        """Return the scrape targets of every process."""
        return [ScrapeTarget(name, f"127.0.0.1:{p.port}") for name, p in self.procs.items()]

    def metrics(self, name: str) -> str:
        """Return the /metrics text of process ``name`` (waiting for it to answer)."""
        proc = self.procs[name]
        text: str = wait_for(lambda: get_text(proc.metrics_url), 60, f"{name} /metrics")
        return text

    def assert_running(self) -> None:
        """Fail with the end of its log if a process has exited."""
        for name, proc in self.procs.items():
            assert proc.alive(), f"{name} exited:\n{proc.log()[-3000:]}"


_INSTRUCTION = json.dumps({
    "alloc_id": "AL-MON-1", "order_id": "ORD-MON-1", "trade_date": "2026-11-24", "side": "BUY",
    "instrument": "7203.XTKS", "quantity": 900, "avg_px": "2502.5",
    "allocations": [{"account": "CL-A", "quantity": 600}, {"account": "CL-B", "quantity": 300}],
}).encode()  # fmt: skip
_ACK = json.dumps(
    {"confirm_id": "ORD-MON-1:20261124/AL-MON-1/CL-A#1", "affirm_status": "AFFIRMED"}
).encode()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tradeflux.cli", *args]


@contextmanager
def running_system(settings: Settings, log_dir: Path, trades: int = 400) -> Iterator[System]:
    """Start topics, refdata, the seven services, the query service and the gateway; feed them.

    The trades (simulated, with rejects) go to trades.raw directly; one batch goes through the
    gateway's HTTP ingest, so its metrics count too.
    """
    prefix = unique("mon") + "-"
    with_prefix = replace(settings, topic_prefix=prefix, partitions=2)
    create_topics(with_prefix, TopicSet.ALL)
    assert not load_files(REFDATA_FILES, settings.client_config(), prefix).errors
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}",
        "TRADEFLUX_BOOTSTRAP": settings.bootstrap,
        "TRADEFLUX_AUTH": "none",  # loopback only: the HTTP edges and /metrics answer anyone
    }
    names = [*SHIPPED, "query", "gateway"]
    base = free_port_block(len(names))
    system = System(settings, prefix)
    for i, name in enumerate(names):
        port = base + i
        if name == "query":
            argv = _cli(
                "query", "--port", str(port), "--prefix", prefix, "--instance-id", "query-1"
            )
        elif name == "gateway":
            argv = _cli(
                "gateway", "--http-port", str(port), "--fix-port", str(free_port_block(1)),
                "--prefix", prefix, "--runtime-dir", str(log_dir / "gateway-state"),
            )  # fmt: skip
        else:
            argv = _cli(
                "run", name, "--prefix", prefix, "--instance-id", f"{name}-1",
                "--metrics-port", str(port), "--session-timeout-ms", "6000",
            )  # fmt: skip
        system.procs[name] = Proc(name, argv, port, log_dir, env)
    try:
        for proc in system.procs.values():
            proc.start()
        session = simulated_session(trades, seed=15)
        produce_marks(settings, prefix, session)
        produce_trades(settings, prefix, session)
        gateway = system.procs["gateway"]
        events = [json.loads(r.value) for r in session.records[:20] if r.malformed is None]
        body = json.dumps([{**e, "trade_id": f"GW-{e['trade_id']}"} for e in events]).encode()

        def post(path: str, payload: bytes) -> bool:
            system.assert_running()
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"http://127.0.0.1:{gateway.port}{path}",
                payload,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
                    return bool(resp.status == 202)
            except OSError:
                return False

        wait_for(lambda: post("/v1/trades", body), 90, "the gateway to accept a batch of trades",
                 every_s=0.5)  # fmt: skip
        # The post-trade services' inputs come from senders too: an instruction for a block
        # that has no fills (allocations waits for them) and an ack nobody waits for (a
        # dead letter): each service has records in, so its metrics have samples.
        for path, payload in (("/v1/allocations", _INSTRUCTION), ("/v1/confirmation-acks", _ACK)):
            wait_for(lambda p=path, b=payload: post(p, b), 60, f"the gateway to accept {path}",
                     every_s=0.5)  # fmt: skip
        yield system
    finally:
        for proc in system.procs.values():
            proc.stop()


@dataclass
class Prometheus:
    """Debian's Prometheus on a run folder, and its HTTP API."""

    folder: Path
    port: int
    proc: subprocess.Popen[bytes]

    def api(self, path: str, **params: str) -> Any:
        """Return the ``data`` of a successful API answer, or None."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        text = get_text(f"http://127.0.0.1:{self.port}/api/v1/{path}{query}")
        if text is None:
            return None
        answer = json.loads(text)
        return answer["data"] if answer.get("status") == "success" else None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Return the instant vector of ``promql`` now (empty while Prometheus starts)."""
        data = self.api("query", query=promql)
        return list(data["result"]) if data else []

    def firing(self, alertname: str) -> list[dict[str, str]]:
        """Return the labels of every firing alert ``alertname``."""
        data = self.api("alerts")
        alerts = data["alerts"] if data else []
        return [
            a["labels"]
            for a in alerts
            if a["labels"].get("alertname") == alertname and a["state"] == "firing"
        ]

    def log(self) -> str:
        """Return what Prometheus logged."""
        return (self.folder / "prometheus.log").read_text(errors="replace")


@contextmanager
def running_prometheus(folder: Path, targets: list[ScrapeTarget]) -> Iterator[Prometheus]:
    """Run Prometheus on ``folder`` (config and rules already there) with ``targets``."""
    write_targets(folder, targets)
    port = free_port_block(1)
    with (folder / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            prometheus_command(folder, port), stdout=log, stderr=subprocess.STDOUT
        )
    prometheus = Prometheus(folder, port, proc)
    try:
        wait_for(
            lambda: proc.poll() is None and get_text(f"http://127.0.0.1:{port}/-/ready"),
            60, "Prometheus to be ready",
        )  # fmt: skip
        yield prometheus
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_until(condition: Any, timeout_s: float, what: str, system: System) -> Any:
    """wait_for, failing at once if a process of ``system`` has exited."""

    def check() -> Any:
        system.assert_running()
        return condition()

    return wait_for(check, timeout_s, what, every_s=0.5)
