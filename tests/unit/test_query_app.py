"""The query app without a broker: health before reading, validation, OpenAPI, dashboard assets."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tradeflux.config import load_settings
from tradeflux.query.server import QueryService


class Client:
    """Calls the ASGI app in-process; its lifespan (and so the Kafka reader) never starts."""

    def __init__(self) -> None:
        self.service = QueryService(load_settings(env={}, bootstrap="127.0.0.1:1", auth="none"))
        self.app = self.service.app

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            base = "http://127.0.0.1:8000"
            async with httpx.AsyncClient(transport=transport, base_url=base) as c:
                return await c.get(path, **kwargs)

        return asyncio.run(call())


def client() -> Client:
    return Client()


def test_not_ready_before_anything_was_read_but_healthy() -> None:
    c = client()
    ready = c.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert c.get("/healthz").status_code == 200


def test_listings_are_empty_pages_and_services_an_empty_list_without_urls() -> None:
    c = client()
    assert c.get("/v1/positions").json() == {"total": 0, "limit": 100, "offset": 0, "items": []}
    assert c.get("/v1/services").json() == []
    assert c.get("/v1/rejects/reasons").json() == {}


def test_page_parameters_are_validated() -> None:
    c = client()
    assert c.get("/v1/pnl", params={"limit": 10_001}).status_code == 422
    assert c.get("/v1/alerts", params={"offset": "x"}).status_code == 422
    bad = c.get("/v1/stream", params={"events": "nope"})
    assert bad.status_code == 422
    assert "nope" in bad.json()["detail"]


def test_dashboard_and_its_bundle_are_served_locally() -> None:
    c = client()
    page = c.get("/")
    assert page.status_code == 200
    assert 'src="/static/assets/app.js"' in page.text
    assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
    js = c.get("/static/assets/app.js")
    assert js.status_code == 200
    assert "javascript" in js.headers["content-type"]
    assert c.get("/static/assets/app.css").status_code == 200
    assert c.get("/static/favicon.svg").status_code == 200
    assert c.get("/docs").status_code == 404  # FastAPI's docs page would load a CDN


def test_openapi_lists_every_route_with_its_schema() -> None:
    doc = client().get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name in ("Position", "AccountPnL", "RejectedTrade", "ServiceStatus", "Instrument"):
        assert name in schemas
    for path, op in doc["paths"].items():
        if path.startswith("/v1/") and path != "/v1/stream" and "{" not in path:
            ref = op["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            target = ref.get("$ref") or ref.get("items", {}).get("$ref") or ""
            assert not target or target.split("/")[-1] in schemas, path
