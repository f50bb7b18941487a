"""The HTTP edges' security without a broker: the gateway and query apps in process.

Each answer exactly: 401 without or with a bad token, 403 without the scope, 400 for a
foreign Host, 403 for a foreign Origin, 415 for what a cross-site form sends, the
dashboard's login link and cookie, and the security headers on every answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.support.auth import AUDIENCE, ISSUER, Issuer, Tokens, bearer, tokens_file
from tradeflux.config import Settings, load_settings
from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.http import SCOPE_RULES, create_app
from tradeflux.query.server import QueryService
from tradeflux.security import SecurityConfigError
from tradeflux.security.policy import check_bind, edge_policy
from tradeflux.security.tokens import SCOPE_TRADES_WRITE

TRADE = {
    "event_type": "NEW", "trade_id": "T-1", "version": 1, "account": "ACC-1",
    "instrument": "DE0007164600", "side": "BUY", "quantity": 100, "price": "101.25",
    "currency": "EUR", "venue": "XETR", "counterparty": "CP-1",
    "trade_time": "2026-11-24T09:00:00Z",
}  # fmt: skip
JSON = {"Content-Type": "application/json"}


class RecordingWriter:
    max_record_bytes = 1_000_000  # what the topic takes, as the transactional writer says

    def __init__(self) -> None:
        self.written: list[TradeEvent] = []

    def encode(self, event: TradeEvent) -> bytes:
        return msgspec.json.encode(event)

    def write(self, events: list[TradeEvent]) -> None:
        self.written.extend(events)


def call(
    app: Any, method: str, path: str, base: str = "http://127.0.0.1:8080", **kw: Any
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            return await client.request(method, path, **kw)

    return asyncio.run(go())


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return tokens_file(tmp_path / "tokens.toml")


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path / "jwks.json")


def settings(tokens: Tokens, issuer: Issuer, **more: Any) -> Settings:
    return load_settings(
        env={}, tokens_file=tokens.path, jwks_file=issuer.jwks_file, jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE, **more,
    )  # fmt: skip


@pytest.fixture
def gateway(tokens: Tokens, issuer: Issuer) -> tuple[Any, RecordingWriter]:
    writer = RecordingWriter()
    policy = edge_policy(settings(tokens, issuer), SCOPE_RULES, SCOPE_TRADES_WRITE)
    return create_app(writer, policy=policy), writer


def post(app: Any, headers: dict[str, str], body: bytes | None = None, **kw: Any) -> httpx.Response:
    return call(app, "POST", "/v1/trades", content=body or msgspec.json.encode(TRADE),
                headers=headers, **kw)  # fmt: skip


def test_without_a_token_a_post_is_401_with_a_bearer_challenge_and_writes_nothing(
    gateway: tuple[Any, RecordingWriter],
) -> None:
    app, writer = gateway
    response = post(app, JSON)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "detail": "no bearer token"}
    assert response.headers["www-authenticate"].startswith('Bearer realm="tradeflux"')
    assert writer.written == []


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda i: i.mint("trades:write", expires_in_s=-120), "JWT expired"),
        (lambda i: i.mint("trades:write", aud="other-api"), "JWT is for another audience"),
        (lambda i: "tf_not-a-known-token", "unknown API token"),
        (lambda i: i.mint("trades:write")[:-4] + "AAAA", "JWT signature does not verify"),
    ],
)
def test_expired_wrong_audience_unknown_or_forged_tokens_are_401(
    gateway: tuple[Any, RecordingWriter], issuer: Issuer, make: Any, detail: str
) -> None:
    app, writer = gateway
    response = post(app, {**JSON, **bearer(make(issuer))})
    assert (response.status_code, response.json()) == (
        401,
        {"error": "unauthorized", "detail": detail},
    )
    assert writer.written == []


def test_a_token_without_the_scope_is_403_and_the_right_scope_202(
    gateway: tuple[Any, RecordingWriter], tokens: Tokens, issuer: Issuer
) -> None:
    app, writer = gateway
    for token in (tokens.reader, issuer.mint("read metrics")):
        response = post(app, {**JSON, **bearer(token)})
        assert response.status_code == 403
        assert response.json()["detail"].endswith("lacks the 'trades:write' scope")
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert writer.written == []
    for token in (tokens.writer, issuer.mint("trades:write")):
        response = post(app, {**JSON, **bearer(token)})
        assert (response.status_code, response.json()) == (202, {"accepted": 1})
    assert [e.trade_id for e in writer.written] == ["T-1", "T-1"]


def test_metrics_need_the_metrics_scope_and_healthz_is_open(
    gateway: tuple[Any, RecordingWriter], tokens: Tokens
) -> None:
    app, _ = gateway
    assert call(app, "GET", "/metrics").status_code == 401
    assert call(app, "GET", "/metrics", headers=bearer(tokens.writer)).status_code == 403
    scraped = call(app, "GET", "/metrics", headers=bearer(tokens.scraper))
    assert scraped.status_code == 200 and "tradeflux_gateway_http_requests" in scraped.text
    assert call(app, "GET", "/healthz").status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])  # fmt: skip
def test_a_post_that_is_not_application_json_is_415_and_writes_nothing(
    gateway: tuple[Any, RecordingWriter], tokens: Tokens, content_type: str | None
) -> None:
    app, writer = gateway
    headers = bearer(tokens.writer) | ({"Content-Type": content_type} if content_type else {})
    response = post(app, headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported media type"
    assert writer.written == []
    charset = post(
        app, {**bearer(tokens.writer), "Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 202


def test_a_cross_site_text_plain_post_is_refused_before_anything_is_read(
    gateway: tuple[Any, RecordingWriter], tokens: Tokens
) -> None:
    """What a foreign page in the operator's browser can send: no token, text/plain, Origin."""
    app, writer = gateway
    forged = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    response = post(app, forged)
    assert (response.status_code, response.json()["error"]) == (415, "unsupported media type")
    with_token = post(app, {**forged, **bearer(tokens.writer)})  # even with a token
    assert with_token.status_code == 415
    json_from_elsewhere = post(
        app, {**JSON, **bearer(tokens.writer), "Origin": "https://evil.example"}
    )
    assert json_from_elsewhere.status_code == 403
    assert json_from_elsewhere.json()["error"] == "cross-origin request refused"
    fetch_metadata = post(app, {**JSON, **bearer(tokens.writer), "Sec-Fetch-Site": "cross-site"})
    assert fetch_metadata.status_code == 403
    same_origin = post(app, {**JSON, **bearer(tokens.writer), "Origin": "http://127.0.0.1:8080"})
    assert same_origin.status_code == 202
    assert len(writer.written) == 1


def test_a_foreign_host_header_is_400_before_authentication(
    gateway: tuple[Any, RecordingWriter], tokens: Tokens
) -> None:
    app, writer = gateway
    response = post(app, {**JSON, **bearer(tokens.writer)}, base="http://rebound.evil.example:8080")
    assert response.status_code == 400
    assert response.json() == {
        "error": "host not allowed",
        "detail": "Host 'rebound.evil.example' is not an allowed host name of this service",
    }
    for host in ("http://localhost:8080", "http://[::1]:8080"):
        assert post(app, {**JSON, **bearer(tokens.writer)}, base=host).status_code == 202
    assert len(writer.written) == 2


def test_every_answer_carries_the_security_headers(
    gateway: tuple[Any, RecordingWriter], tokens: Tokens
) -> None:
    app, _ = gateway
    for response in (post(app, JSON), post(app, {**JSON, **bearer(tokens.writer)}),
                     call(app, "GET", "/healthz")):  # fmt: skip
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


# The query service and its dashboard ------------------------------------------------------


@pytest.fixture
def query(tokens: Tokens, issuer: Issuer) -> Any:
    base = dataclasses.replace(settings(tokens, issuer), bootstrap="127.0.0.1:1")
    return QueryService(base).app  # its lifespan (the Kafka reader) never starts


def test_the_query_api_needs_read_and_its_metrics_need_metrics(query: Any, tokens: Tokens) -> None:
    assert call(query, "GET", "/v1/positions").status_code == 401
    assert call(query, "GET", "/v1/positions", headers=bearer(tokens.scraper)).status_code == 403
    page = call(query, "GET", "/v1/positions", headers=bearer(tokens.reader))
    assert (page.status_code, page.json()["total"]) == (200, 0)
    assert call(query, "GET", "/metrics", headers=bearer(tokens.reader)).status_code == 403
    assert call(query, "GET", "/metrics", headers=bearer(tokens.scraper)).status_code == 200
    assert call(query, "GET", "/readyz").status_code == 503  # open, and not ready
    assert call(query, "GET", "/", headers={"Host": "evil.example"}).status_code == 400


def test_the_login_link_sets_a_strict_httponly_session_cookie_once(
    query: Any, tokens: Tokens
) -> None:
    assert call(query, "GET", "/").status_code == 401
    login = call(query, "GET", "/", params={"token": tokens.login})
    assert (login.status_code, login.headers["location"]) == (303, "/")
    cookie = login.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    session = rest.split(";")[0]
    assert name == "tradeflux_session"
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {a.strip() for a in cookie.split(";")}
    assert tokens.login not in cookie
    with_cookie = {"Cookie": f"tradeflux_session={session}"}
    page = call(query, "GET", "/", headers=with_cookie)
    assert page.status_code == 200 and "/static/assets/app.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (
        call(query, "GET", "/v1/stream", headers=with_cookie, params={"events": "nope"}).status_code
        == 422
    )
    again = call(query, "GET", "/", params={"token": tokens.login})
    assert again.status_code == 401 and "used already" in again.json()["detail"]
    forged = call(query, "GET", "/v1/positions", headers={"Cookie": "tradeflux_session=guess"})
    assert forged.status_code == 401


def test_auth_none_is_refused_off_loopback_unless_meant() -> None:
    off = load_settings(env={}, auth="none")
    check_bind(off, "127.0.0.1")
    check_bind(off, "::1")
    with pytest.raises(SecurityConfigError) as caught:
        check_bind(off, "0.0.0.0")  # noqa: S104
    assert str(caught.value).startswith("--auth none with HTTP on 0.0.0.0 would let anyone")
    check_bind(load_settings(env={}, auth="none", allow_insecure_bind=True), "0.0.0.0")  # noqa: S104
    check_bind(load_settings(env={}), "0.0.0.0")  # noqa: S104 - auth on


def test_auth_on_without_a_verifier_is_a_one_line_config_error() -> None:
    with pytest.raises(SecurityConfigError, match="nothing verifies tokens"):
        edge_policy(load_settings(env={}), SCOPE_RULES, SCOPE_TRADES_WRITE)


def test_the_dashboard_has_no_inline_script_style_or_handler_for_the_csp_to_refuse() -> None:
    web = Path(__file__).resolve().parents[2] / "web"
    html = (web / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # onclick=... is inline script
    # the chart library injects a <style> for its logo unless told not to
    sources = " ".join(p.read_text() for p in (web / "src").glob("*.ts"))
    assert "attributionLogo: true" not in sources
