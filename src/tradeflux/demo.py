"""``tradeflux demo``: the whole system on one machine, and a live summary in the terminal.

Starts (or reuses) a local broker, creates the topics, loads the sample reference data,
starts every service as its own process, the ticker (the post-trade services' clock),
drives the simulator (trades, and blocks that are allocated, confirmed and affirmed),
and serves the dashboard. The demo gives every market an affirmation deadline of 90
seconds after the trade (``TRADEFLUX_AFFIRM_DEADLINES``), so that late and missing
affirmations show within minutes; the real rules are the defaults of ``tradeflux run``.
Ctrl-C (or SIGTERM) stops every process it started, in reverse order, and waits for them.
With ``--monitoring`` it also runs Debian's Prometheus on ``monitoring/`` (file-based
discovery of every service's ``/metrics``, the alerting rules loaded).

Auth stays on: at start the demo writes a tokens file of its own (under
``<runtime dir>/demo/``, 0600): a token with ``read`` and ``metrics`` for itself, the
query service's scraper and scripts (``api.token``), and a one-time login token whose
link it prints, ``http://127.0.0.1:8000/?token=...``: one click sets the dashboard's
session cookie. Every process it starts verifies against that file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tradeflux.config import Settings
from tradeflux.local_prometheus import (
    ScrapeTarget,
    find_prometheus,
    prepare_folder,
    prometheus_command,
    write_targets,
)
from tradeflux.security.tokens import (
    SCOPE_METRICS,
    SCOPE_READ,
    StaticToken,
    new_token,
    token_digest,
    write_tokens_file,
)
from tradeflux.services import SHIPPED

SERVICES = SHIPPED
DEMO_DEADLINES = "XNYS=+90s,XNAS=+90s,*=+90s"
"""Affirmation deadlines of the demo: 90 seconds after the trade, everywhere."""
BLOCK_RATE = 0.5
"""Simulated blocks per second."""


DEMO_CUTOFF_AFTER = dt.timedelta(minutes=3)
"""How soon after the demo starts it moves the USD settlement cut-off, so FINALs appear."""


def demo_cutoffs(now: dt.datetime) -> str:
    """Return ``TRADEFLUX_SETTLEMENT_CUTOFFS`` for the demo: USD cut off a few minutes from now.

    Today's US trades settle on the next New York session, cut off today: moving that
    cut-off to ``now + DEMO_CUTOFF_AFTER`` makes their obligations FINAL during the demo
    (on a day with a New York session), and the trades after it ADJUSTMENTs.
    """
    local = (now + DEMO_CUTOFF_AFTER).astimezone(ZoneInfo("America/New_York"))
    return f"USD=XNYS@{local:%H:%M}"


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct ports nobody listens on now, on loopback.

    All are held at once while chosen: one at a time, the system may hand out the same
    port twice.
    """
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class Component:
    """A process the demo runs."""

    name: str
    args: list[str]
    metrics_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    last_in: float = 0.0
    last_at: float = field(default_factory=time.monotonic)
    rate: float = 0.0
    command: list[str] | None = None  # a program of its own instead of a tradeflux command
    env: dict[str, str] = field(default_factory=dict)  # on top of the demo's environment

    def start(self, env: dict[str, str], log_dir: Path) -> None:
        """Start the process with its output in ``log_dir/<name>.log``."""
        self.log_path = log_dir / f"{self.name}.log"
        argv = self.command or [sys.executable, "-m", "tradeflux.cli", *self.args]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**env, **self.env},
                start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
            )

    def alive(self) -> bool:
        """Tell whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL: nothing is left running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass(frozen=True)
class DemoAuth:
    """The demo's credentials: files the processes read, the token it sends, the login link's."""

    env: dict[str, str]  # what every process it starts gets
    headers: dict[str, str]  # what the demo itself sends to /metrics and /v1/status
    login_token: str | None  # None: auth is off (tradeflux --auth none demo)
    api_token_file: Path | None


def demo_auth(settings: Settings, folder: Path) -> DemoAuth:
    """Write fresh tokens (read+metrics, and a one-time login) unless auth is off."""
    if settings.auth == "none":
        return DemoAuth({"TRADEFLUX_AUTH": "none"}, {}, None, None)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    api, login = new_token(), new_token()
    tokens = folder / "tokens.toml"
    write_tokens_file(tokens, [
        StaticToken("demo", token_digest(api), frozenset({SCOPE_READ, SCOPE_METRICS})),
        StaticToken("dashboard-login", token_digest(login), frozenset({SCOPE_READ}), once=True),
    ])  # fmt: skip
    api_file = folder / "api.token"
    api_file.touch(mode=0o600, exist_ok=True)
    api_file.chmod(0o600)
    api_file.write_text(api + "\n")
    env = {
        "TRADEFLUX_AUTH": "token",
        "TRADEFLUX_TOKENS_FILE": str(tokens),
        "TRADEFLUX_SCRAPE_TOKEN_FILE": str(api_file),
    }
    return DemoAuth(env, {"Authorization": f"Bearer {api}"}, login, api_file)


def _get(url: str, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=0.5) as resp:  # noqa: S310 - loopback
        body: bytes = resp.read()
        return body


def scrape(port: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Return the tradeflux metrics of a service (summed over labels), or {} if unreachable."""
    try:
        text = _get(f"http://127.0.0.1:{port}/metrics", headers or {}).decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("tradeflux_") and not sample.name.endswith("_created"):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
                if "event" in sample.labels:
                    name = f"event:{sample.labels['event']}"
                    out[name] = out.get(name, 0.0) + sample.value
    return out


def rejected(metrics: dict[str, float]) -> float:
    """Return the records a service rejected or dead-lettered."""
    rejects = sum(v for k, v in metrics.items() if k.startswith("event:rejected_"))
    return rejects + metrics.get("tradeflux_dead_letters_total", 0.0)


def components(settings: Settings, rate: int, query_port: int) -> list[Component]:
    """Return the demo's processes in start order."""
    prefix = ["--prefix", settings.topic_prefix] if settings.topic_prefix else []
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    comps = [
        Component(
            name,
            ["run", name, "--instance-id", "demo", "--metrics-port", str(ports[name]), *prefix],
            ports[name],
            env={"TRADEFLUX_AFFIRM_DEADLINES": DEMO_DEADLINES} if name == "confirmations" else {},
        )
        for name in SERVICES
    ]
    metrics_urls = ",".join(f"{c.name}=http://127.0.0.1:{c.metrics_port}/metrics" for c in comps)
    comps.append(
        Component(
            "query", ["query", "--port", str(query_port), "--metrics-urls", metrics_urls, *prefix]
        )  # fmt: skip
    )
    comps.append(Component("ticker", ["ticker", "--every", "1", *prefix]))
    comps.append(
        Component(
            "simulator",
            [
                "simulate",
                "--rate",
                str(rate),
                "--duration",
                "0",
                "--block-rate",
                str(BLOCK_RATE),
                *prefix,
            ],
        )  # fmt: skip
    )
    return comps


def prometheus_component(
    comps: list[Component],
    query_port: int,
    folder: Path,
    port: int,
    token_file: Path | None = None,
) -> Component:
    """Return Prometheus scraping ``comps`` (and the query service), its run folder prepared."""
    binary = find_prometheus()  # before anything starts: a missing one is a one-line error
    prepare_folder(folder, token_file=token_file)
    targets = [ScrapeTarget(c.name, f"127.0.0.1:{c.metrics_port}") for c in comps if c.metrics_port]
    write_targets(folder, [*targets, ScrapeTarget("query", f"127.0.0.1:{query_port}")])
    return Component("prometheus", [], command=prometheus_command(folder, port, binary))


def read_model_counts(query_port: int, headers: dict[str, str] | None = None) -> dict[str, int]:
    """Return the query service's table sizes (``/v1/status``), or {} while it starts."""
    try:
        body = _get(f"http://127.0.0.1:{query_port}/v1/status", headers or {})
        counts: dict[str, int] = json.loads(body).get("counts", {})
        return counts
    except (OSError, ValueError):
        return {}


def read_model_caption(counts: dict[str, int]) -> str:
    """Say what the read model holds: positions, P&L, alerts, bars, obligations, reports."""
    if not counts:
        return "read model: starting ..."
    c = {k: counts.get(k, 0) for k in ("open_positions", "accounts_with_pnl", "alerts", "bars",
                                       "obligations", "final_obligations", "reports",
                                       "late_reports", "rejects_seen", "allocations",
                                       "confirmations", "open_affirmation_exceptions")}  # fmt: skip
    return (
        f"read model: {c['open_positions']:,} open positions · {c['accounts_with_pnl']:,} "
        f"P&L accounts · {c['alerts']:,} alerts · {c['bars']:,} bars · "
        f"{c['obligations']:,} obligations ({c['final_obligations']:,} FINAL) · "
        f"{c['reports']:,} reports ({c['late_reports']:,} late) · {c['rejects_seen']:,} rejects"
        f" · {c['allocations']:,} allocations · {c['confirmations']:,} confirmations "
        f"({c['open_affirmation_exceptions']:,} unaffirmed past deadline)"
    )


def summary_table(
    comps: list[Component], query_port: int, headers: dict[str, str] | None = None
) -> Table:
    """Build the live summary: each process, its throughput and lag, and what it produced."""
    caption = read_model_caption(read_model_counts(query_port, headers))
    table = Table(
        title=f"tradeflux demo — dashboard http://127.0.0.1:{query_port}/ — Ctrl-C stops",
        caption=caption,
    )
    for col in ("process", "state", "records in", "records/s", "lag", "rejected"):
        table.add_column(col, justify="left" if col in ("process", "state") else "right")
    now = time.monotonic()
    for c in comps:
        state = "running" if c.alive() else f"exited {c.proc.returncode if c.proc else '?'}"
        if c.metrics_port is None:
            table.add_row(c.name, state, "", "", "", "")
            continue
        m = scrape(c.metrics_port, headers)
        records_in = m.get("tradeflux_records_in_total", 0.0)
        if now - c.last_at >= 1.0:
            c.rate = (records_in - c.last_in) / (now - c.last_at)
            c.last_in, c.last_at = records_in, now
        table.add_row(
            c.name,
            state,
            f"{records_in:,.0f}",
            f"{c.rate:,.0f}",
            f"{m.get('tradeflux_consumer_lag_records', 0.0):,.0f}",
            f"{rejected(m):,.0f}",
        )
    return table


def run_demo(
    settings: Settings,
    rate: int,
    query_port: int,
    log_dir: Path,
    console: Console,
    prometheus_port: int | None = None,
) -> None:
    """Start every component, show the summary until Ctrl-C, then stop all of them.

    ``prometheus_port`` set: Prometheus runs too, at ``127.0.0.1:prometheus_port``.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    auth = demo_auth(settings, settings.runtime_dir / "demo")
    env = {**os.environ, "TRADEFLUX_BOOTSTRAP": settings.bootstrap, **auth.env}
    headers = auth.headers
    if not env.get("TRADEFLUX_SETTLEMENT_CUTOFFS"):
        env["TRADEFLUX_SETTLEMENT_CUTOFFS"] = demo_cutoffs(dt.datetime.now(dt.UTC))
        console.print(f"settlement cut-off for the demo: {env['TRADEFLUX_SETTLEMENT_CUTOFFS']}")
    comps = components(settings, rate, query_port)
    if prometheus_port is not None:
        folder = settings.runtime_dir / "demo-prometheus"
        comps.insert(
            0,
            prometheus_component(comps, query_port, folder, prometheus_port, auth.api_token_file),
        )
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        for c in comps:
            c.start(env, log_dir)
            console.print(
                f"started {c.name} (pid {c.proc.pid if c.proc else '?'}, log {c.log_path})"
            )
        link = f"http://127.0.0.1:{query_port}/"
        if auth.login_token is not None:
            link += f"?token={auth.login_token}"
        console.print(f"dashboard: {link}", markup=False, soft_wrap=True)
        if auth.api_token_file is not None:
            console.print(
                f"the link logs one browser in once; scripts: a read+metrics bearer token is in "
                f"{auth.api_token_file}",
                markup=False,
                soft_wrap=True,
            )
        if prometheus_port is not None:
            console.print(f"prometheus: http://127.0.0.1:{prometheus_port}/alerts")
        # transient: on exit the live table goes, and the final one is printed once below
        with Live(
            summary_table(comps, query_port, headers),
            console=console,
            refresh_per_second=1,
            transient=True,
        ) as live:
            while not stopping:
                time.sleep(1.0)
                live.update(summary_table(comps, query_port, headers))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(Exception, KeyboardInterrupt):
            console.print(summary_table(comps, query_port, headers))  # the state at Ctrl-C
        console.print("stopping ...")
        for c in reversed(comps):
            with contextlib.suppress(Exception):
                c.stop()
        console.print("all demo processes stopped")
