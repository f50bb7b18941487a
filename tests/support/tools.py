"""Command-line tools the monitoring and deployment tests run (installed by ./dev test)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tradeflux.config import load_settings

KUSTOMIZE_VERSION = "v5.7.1"
"""The kustomize ./dev builds from the Go module proxy (sigs.k8s.io/kustomize/kustomize/v5)."""


def _missing(message: str) -> None:
    """Skip on a developer's machine; fail in CI, where ./dev test installs every tool."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str, install: str) -> Path:
    """Return the path of command ``name``, or skip/fail saying how to install it."""
    found = shutil.which(name)
    if found is None:
        _missing(f"no {name} on PATH: {install}")
    return Path(str(found))


def require_promtool() -> Path:
    """Return Debian's promtool (package prometheus)."""
    return require_tool(
        "promtool", "apt-get update && apt-get install -y --no-install-recommends prometheus"
    )


def require_prometheus() -> Path:
    """Return Debian's prometheus server."""
    return require_tool(
        "prometheus", "apt-get update && apt-get install -y --no-install-recommends prometheus"
    )


def kustomize_path() -> Path:
    """Where ./dev installs kustomize (``TRADEFLUX_KUSTOMIZE`` overrides)."""
    if os.environ.get("TRADEFLUX_KUSTOMIZE"):
        return Path(os.environ["TRADEFLUX_KUSTOMIZE"])
    return load_settings().cache_dir / "tools" / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"


def require_kustomize() -> Path:
    """Return the kustomize binary ./dev built."""
    path = kustomize_path()
    if not path.is_file():
        _missing(
            f"no kustomize at {path}: run ./dev test, or GOBIN={path.parent} go install "
            f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}"
        )
    return path
