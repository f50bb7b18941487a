"""The dashboard bundle (built from web/ by ./dev: `npm run build`) matches its sources."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
STATIC = REPO / "src" / "tradeflux" / "query" / "static"
FIXED = [
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "build.mjs",
    "favicon.svg",
]


def source_hash() -> str:
    """The recipe of web/build.mjs: SHA-256 over each source's path and bytes, sorted by path."""
    files = FIXED + [
        p.relative_to(WEB).as_posix() for p in sorted((WEB / "src").rglob("*")) if p.is_file()
    ]
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\n")
        digest.update((WEB / rel).read_bytes())
        digest.update(b"\n")
    return digest.hexdigest()


def test_the_bundle_was_built_from_the_current_sources() -> None:
    info = json.loads((STATIC / "build-info.json").read_text())
    assert info["sources_sha256"] == source_hash(), (
        "web/ changed since the bundle was built: run `npm --prefix web ci && npm --prefix web "
        "run build` (./dev does it)"
    )
    assert "lightweight-charts" in info["packages"]


def test_the_page_loads_only_local_assets() -> None:
    html = (STATIC / "index.html").read_text()
    for asset in ("/static/assets/app.js", "/static/assets/app.css", "/static/favicon.svg"):
        assert asset in html
        assert (STATIC / asset.removeprefix("/static/")).is_file()
    bundle = (STATIC / "assets" / "app.js").read_text()
    assert "import(" not in bundle and 'from"http' not in bundle  # one self-contained module
