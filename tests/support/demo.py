"""Run ``tradeflux demo`` as a user would, against the session's broker, and find its processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import REPO
from tradeflux.config import Settings


def get_json(url: str, token: str | None = None) -> Any:
    """Return the JSON at ``url`` (bearer ``token`` if given), or None if it does not answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=2) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except OSError:
        return None


def answers(url: str) -> bool:
    """Tell whether ``url`` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return bool(resp.status == 200)
    except OSError:
        return False


_LINK = re.compile(r"dashboard: (http://\S+)")


def our_processes(marker: str) -> list[str]:
    """Return the command lines of running processes that carry ``marker`` (args or env)."""
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


@dataclass
class DemoRun:
    """A running ``tradeflux demo``: its query port, topic prefix, process and output file."""

    port: int
    prefix: str
    proc: subprocess.Popen[bytes]
    output: Path
    runtime_dir: Path

    @property
    def url(self) -> str:
        """The dashboard's (and query API's) base URL."""
        return f"http://127.0.0.1:{self.port}"

    def login_link(self) -> str | None:
        """The one-click dashboard link the demo printed (with its one-time token), once printed."""
        found = _LINK.search(self.output.read_text(errors="replace"))
        return found.group(1) if found else None

    def token(self) -> str | None:
        """The read+metrics bearer token the demo wrote for scripts, once written."""
        path = self.runtime_dir / "demo" / "api.token"
        return path.read_text().strip() if path.exists() else None

    def get_json(self, path: str) -> Any:
        """GET ``path`` of the query API as a script would, with the demo's API token."""
        return get_json(f"{self.url}{path}", self.token())

    def total(self, path: str) -> int:
        """Return the ``total`` of a query API list (0 while it does not answer)."""
        page = self.get_json(f"{path}?limit=1")
        return int(page["total"]) if page else 0

    def interrupt(self, timeout_s: float = 60) -> int:
        """Press Ctrl-C (SIGINT, as a terminal does) and return the demo's exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout_s)


@contextmanager
def running_demo(
    kafka: Settings, tmp_path: Path, rate: int = 300, extra: tuple[str, ...] = ()
) -> Iterator[DemoRun]:
    """Start ``tradeflux demo`` with its own topic prefix; kill it if the test did not stop it.

    ``extra`` are more options of ``tradeflux demo`` (e.g. ``--monitoring``).
    """
    prefix = unique("demo") + "-"
    port = free_port_block(1)
    env = {**os.environ, "TRADEFLUX_TOPIC_PREFIX": prefix, "TRADEFLUX_RUNTIME_DIR": str(tmp_path)}
    output = tmp_path / "demo.out"
    with output.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradeflux.cli", "--bootstrap", kafka.bootstrap, "demo",
             "--query-port", str(port), "--rate", str(rate), *extra],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield DemoRun(port, prefix, proc, output, tmp_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
