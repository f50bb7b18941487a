"""Browser tests share one check for Chromium, made before any broker starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import require_chromium


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; skip (developer machine) or fail (CI) when it is not installed."""
    return require_chromium()
