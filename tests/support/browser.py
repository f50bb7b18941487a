"""Debian's Chromium driven by Playwright (never a browser Playwright downloads)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.kafka_tools import REPO

CHROMIUM = Path(os.environ.get("TRADEFLUX_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = REPO / "test-output"


def require_chromium() -> Path:
    """Return Debian's chromium; skip (developer machine) or fail (CI) when it is missing."""
    if CHROMIUM.is_file():
        return CHROMIUM
    message = (
        f"no Chromium at {CHROMIUM}: install Debian's with `apt-get update && apt-get install -y "
        "chromium` (or point TRADEFLUX_CHROMIUM at one)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def dashboard_page(url: str, problems: list[str]) -> Iterator[Any]:
    """Open ``url`` in headless Chromium; console errors and page errors go to ``problems``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 960})

            def on_console(msg: Any) -> None:
                if msg.type == "error":
                    problems.append(f"console error: {msg.text}")

            page.on("console", on_console)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.goto(url, wait_until="load")
            yield page
        finally:
            browser.close()


def wait_in_page(page: Any, predicate: str, timeout_s: float, what: str) -> None:
    """Poll a JavaScript ``predicate`` (an expression) in ``page`` until it is true.

    Not ``page.wait_for_function``: Playwright builds its predicate with ``eval`` inside
    the page, which the dashboard's Content-Security-Policy (no 'unsafe-eval') refuses;
    ``page.evaluate`` runs through the DevTools protocol, outside the page's CSP.
    """
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)
