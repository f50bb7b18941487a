"""Debian's Prometheus on this machine, scraping tradeflux's services by file-based discovery.

A run folder holds a copy of ``monitoring/prometheus.yml`` and ``monitoring/rules/``
(the same layout, so the config's relative paths hold), ``targets/tradeflux.json`` (the
services' ``/metrics`` addresses of this run) and the TSDB under ``data/``. ``tradeflux
demo --monitoring`` makes one in its runtime folder; the monitoring tests make their own.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeflux.errors import TradefluxError

MONITORING_DIR = Path(__file__).resolve().parents[2] / "monitoring"
"""The monitoring configuration of a source checkout."""

JOB = "tradeflux"
TARGETS_FILE = Path("targets") / "tradeflux.json"


class MonitoringError(TradefluxError):
    """Prometheus cannot be started here."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``/metrics`` to scrape: the service it belongs to and its ``host:port``."""

    service: str
    address: str


def targets_document(targets: Iterable[ScrapeTarget]) -> list[dict[str, Any]]:
    """Return Prometheus' file-discovery document: one group per service, job ``tradeflux``."""
    by_service: dict[str, list[str]] = {}
    for target in targets:
        by_service.setdefault(target.service, []).append(target.address)
    return [
        {"targets": addresses, "labels": {"job": JOB, "service": service}}
        for service, addresses in by_service.items()
    ]


def write_targets(folder: Path, targets: Iterable[ScrapeTarget]) -> Path:
    """Write the targets file of ``folder`` whole (Prometheus watches it: never half a file)."""
    path = folder / TARGETS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(targets_document(targets), indent=2) + "\n")
    os.replace(partial, path)
    return path


def prepare_folder(
    folder: Path, source: Path = MONITORING_DIR, token_file: Path | None = None
) -> Path:
    """Copy the Prometheus config and rules of ``source`` into ``folder``; return the config.

    ``token_file`` (a bearer token with the ``metrics`` scope): Prometheus sends it with
    every scrape, for services whose /metrics need it (docs/security.md).
    """
    config = source / "prometheus.yml"
    if not config.is_file():
        raise MonitoringError(
            f"no Prometheus config at {config}; run from a tradeflux source checkout "
            "(the monitoring/ folder)"
        )
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    text = config.read_text()
    if token_file is not None:
        anchor = "    honor_labels: true\n"
        if anchor not in text:
            raise MonitoringError(f"{config}: no scrape job to give the metrics token to")
        auth = f"    authorization:\n      type: Bearer\n      credentials_file: {token_file}\n"
        text = text.replace(anchor, anchor + auth, 1)
    (folder / "prometheus.yml").write_text(text)
    for rules in sorted((source / "rules").glob("*.rules.yml")):
        shutil.copyfile(rules, folder / "rules" / rules.name)
    return folder / "prometheus.yml"


def find_prometheus() -> str:
    """Return the ``prometheus`` server on PATH, or say how to install Debian's."""
    found = shutil.which("prometheus")
    if found is None:
        raise MonitoringError(
            "no prometheus on PATH; install Debian's: sudo apt-get install "
            "--no-install-recommends prometheus"
        )
    return found


def prometheus_command(folder: Path, port: int, binary: str | None = None) -> list[str]:
    """Return the command that runs Prometheus on ``folder`` at ``127.0.0.1:port``."""
    return [
        binary or find_prometheus(),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
