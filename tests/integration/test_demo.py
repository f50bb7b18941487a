"""``tradeflux demo`` end to end: positions reach the query API, and Ctrl-C leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import REPO, wait_for
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except OSError:
        return None


def _our_processes(marker: str) -> list[str]:
    """Return the command lines of running processes that carry ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline or marker.encode() in environ:
            found.append(cmdline)
    return found


def test_demo_shows_positions_within_a_minute_and_ctrl_c_stops_everything(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("demo") + "-"
    port = free_port_block(1)
    env = {**os.environ, "TRADEFLUX_TOPIC_PREFIX": prefix, "TRADEFLUX_RUNTIME_DIR": str(tmp_path)}
    log = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "tradeflux.cli", "--bootstrap", kafka.bootstrap, "demo",
         "--query-port", str(port), "--rate", "300"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        def positions() -> int:
            page = _json(f"http://127.0.0.1:{port}/v1/positions?limit=1")
            return page["total"] if page else 0

        assert wait_for(positions, 60, "positions in the query API") > 0
        pnl = wait_for(lambda: (_json(f"http://127.0.0.1:{port}/v1/pnl") or {}).get("total"), 30,
                       "P&L in the query API")  # fmt: skip
        assert pnl > 0
        assert _our_processes(prefix), "the demo's processes carry its topic prefix"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
        log.close()
    output = (tmp_path / "demo.out").read_text()
    assert "all demo processes stopped" in output
    assert _our_processes(prefix) == []
