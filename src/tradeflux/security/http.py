"""The ASGI middleware every HTTP edge runs behind: Host, Origin, bearer scopes, headers.

Per request, in this order (each refusal is a JSON ``{"error", "detail"}`` and nothing
reaches the application):

1. ``/healthz`` and ``/readyz`` pass (probes carry no credentials; they reveal no trade data).
2. ``Host`` must be one of the allowed host names (loopback names by default): 400
   otherwise, so a DNS-rebound name cannot read the API from a browser.
3. A ``POST``, ``PUT`` or ``PATCH`` must be ``application/json``: 415 otherwise, before any
   of the body is read (what a cross-site form or ``text/plain`` fetch sends, which needs
   no CORS preflight).
4. An ``Origin`` (or ``Sec-Fetch-Site: cross-site``) other than the edge's own origin or a
   configured one: 403. There is no CORS: no other site's page may call these edges.
5. The login link (``GET /?token=...``, where sessions are on): the token is verified and
   exchanged for a session cookie (HttpOnly, SameSite=Strict, Secure under TLS), then a
   303 to ``/`` drops the token from the address bar.
6. The scope the path needs: a bearer token (``Authorization: Bearer``) or, where sessions
   are on, the session cookie; none or invalid: 401 with ``WWW-Authenticate``; valid
   without the scope: 403.

Every response gets the security headers: a Content-Security-Policy without inline
script or style and ``frame-ancestors 'none'``, ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``, ``Cache-Control: no-store``
unless the application set one, and HSTS under TLS.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import msgspec

from tradeflux.security.tokens import ANONYMOUS, Authenticator, InvalidToken, Principal

log = logging.getLogger("tradeflux.security")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SESSION_TTL_S = 12 * 3600
_ENCODE = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Rule:
    """The scope a path needs: ``path`` exactly, or every path under it if it ends with ``/``."""

    path: str
    scope: str | None  # None: open

    def matches(self, path: str) -> bool:
        """Tell whether this rule covers ``path``."""
        return path.startswith(self.path) if self.path.endswith("/") else path == self.path


class SessionStore:
    """Browser sessions of the login link: a random id per login, held in memory.

    Bounded (the oldest goes first past ``max_sessions``); a session ends at its
    credential's expiry or after ``ttl_s``. A restart logs every browser out.
    """

    def __init__(self, ttl_s: float = SESSION_TTL_S, max_sessions: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> tuple[str, int]:
        """Start a session for ``principal``; return its id and its lifetime in seconds."""
        lifetime = self.ttl_s
        if principal.expires_at is not None:
            left = (principal.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
            lifetime = max(0.0, min(lifetime, left))
        session_id = secrets.token_urlsafe(32)
        session = Principal(principal.name, principal.scopes, "session", principal.expires_at)
        with self._lock:
            while len(self._sessions) >= self.max_sessions:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session_id] = (session, time.monotonic() + lifetime)
        return session_id, int(lifetime)

    def get(self, session_id: str) -> Principal | None:
        """Return the principal of a live session, or None."""
        with self._lock:
            found = self._sessions.get(session_id)
            if found is None:
                return None
            if time.monotonic() >= found[1]:
                del self._sessions[session_id]
                return None
            return found[0]


@dataclass
class EdgePolicy:
    """What one HTTP edge enforces; ``authenticator`` None means auth is off (``--auth none``)."""

    authenticator: Authenticator | None
    rules: Sequence[Rule]
    default_scope: str | None
    allowed_hosts: frozenset[str] = frozenset(LOOPBACK_HOSTS)
    allowed_origins: frozenset[str] = frozenset()
    sessions: SessionStore | None = None  # the dashboard's login link and cookie
    tls: bool = False
    content_security_policy: str = CONTENT_SECURITY_POLICY
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def cookie_name(self) -> str:
        """The session cookie: ``__Host-`` prefixed (Secure, this host only) under TLS."""
        return "__Host-tradeflux_session" if self.tls else "tradeflux_session"

    def scope_for(self, path: str) -> str | None:
        """Return the scope ``path`` needs (the first matching rule, else the default)."""
        for rule in self.rules:
            if rule.matches(path):
                return rule.scope
        return self.default_scope

    def host_allowed(self, host_header: str) -> bool:
        """Tell whether a ``Host`` header names an allowed host (any port)."""
        if "*" in self.allowed_hosts:
            return True
        return host_name(host_header) in self.allowed_hosts


def host_name(host_header: str) -> str:
    """Return the host of a ``Host`` header without its port, lower case (``[::1]`` -> ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class SecurityMiddleware:
    """Wraps an ASGI app with an :class:`EdgePolicy` (see the module doc)."""

    def __init__(self, app: ASGIApp, policy: EdgePolicy) -> None:
        self.app = app
        self.policy = policy
        headers = {
            "content-security-policy": policy.content_security_policy,
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
            "x-frame-options": "DENY",
            "cross-origin-opener-policy": "same-origin",
            "cross-origin-resource-policy": "same-origin",
            **{k.lower(): v for k, v in policy.extra_headers.items()},
        }
        if policy.tls:
            headers["strict-transport-security"] = "max-age=31536000"
        self._security_headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection: refuse it, or pass it on with the security headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self._with_headers(send)
        path: str = scope["path"]
        if path in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refuse_host_or_origin(scope, headers)
        if refusal is not None:
            await refusal(send)
            return
        policy = self.policy
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        login = scope.get("method") in ("GET", "HEAD") and path == "/" and "token" in query
        if policy.sessions is not None and login:
            await self._login(query["token"][0], send)
            return
        needed = policy.scope_for(path)
        if needed is not None:
            principal, problem = await self._principal(headers)
            if principal is None:
                await _reply(send, 401, "unauthorized", problem, self._challenge(problem))
                return
            if not principal.allows(needed):
                detail = f"{principal.name} lacks the {needed!r} scope"
                challenge = f'Bearer error="insufficient_scope", scope="{needed}"'
                await _reply(send, 403, "forbidden", detail, challenge)
                return
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _refuse_host_or_origin(
        self, scope: Scope, headers: dict[str, str]
    ) -> Callable[[Send], Awaitable[None]] | None:
        policy = self.policy
        host = headers.get("host", "")
        if not policy.host_allowed(host):
            detail = f"Host {host_name(host)!r} is not an allowed host name of this service"
            return lambda send: _reply(send, 400, "host not allowed", detail)
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
            if media_type != "application/json":
                detail = f"send Content-Type: application/json, not {media_type or 'none'}"
                return lambda send: _reply(send, 415, "unsupported media type", detail)
        origin = headers.get("origin")
        scheme = "https" if policy.tls else "http"
        own = f"{scheme}://{host.strip().lower()}"
        if origin is not None and origin.lower() != own and origin not in policy.allowed_origins:
            detail = f"requests from {origin} are refused; only {own} may call this service"
            return lambda send: _reply(send, 403, "cross-origin request refused", detail)
        if origin is None and headers.get("sec-fetch-site") == "cross-site":
            detail = "cross-site requests are refused"
            return lambda send: _reply(send, 403, "cross-origin request refused", detail)
        return None

    async def _principal(self, headers: dict[str, str]) -> tuple[Principal | None, str]:
        """Return the request's principal, or None and why not."""
        authn = self.policy.authenticator
        if authn is None:
            return ANONYMOUS, ""
        authorization = headers.get("authorization")
        if authorization is not None:
            kind, _, token = authorization.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                return None, "Authorization must be 'Bearer <token>'"
            try:
                if authn.may_block:
                    return await anyio.to_thread.run_sync(authn.verify, token.strip()), ""
                return authn.verify(token.strip()), ""
            except InvalidToken as exc:
                return None, str(exc)
        sessions = self.policy.sessions
        if sessions is not None and "cookie" in headers:
            cookie = SimpleCookie()
            try:
                cookie.load(headers["cookie"])
            except Exception:  # noqa: BLE001 - a malformed cookie is no session
                return None, "malformed Cookie header"
            morsel = cookie.get(self.policy.cookie_name)
            if morsel is not None:
                principal = sessions.get(morsel.value)
                if principal is not None:
                    return principal, ""
                return None, "the session ended; open a new login link"
        if sessions is not None:
            return None, "no bearer token nor session; open a login link (/?token=...)"
        return None, "no bearer token"

    async def _login(self, token: str, send: Send) -> None:
        """Exchange a login link's token for a session cookie and redirect to ``/``."""
        policy = self.policy
        assert policy.sessions is not None  # noqa: S101 - checked by the caller
        if policy.authenticator is None:
            principal: Principal = ANONYMOUS
        else:
            try:
                principal = policy.authenticator.verify_login(token)
            except InvalidToken as exc:
                await _reply(send, 401, "unauthorized", str(exc), self._challenge(str(exc)))
                return
        session_id, max_age = policy.sessions.create(principal)
        attributes = f"Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
        if policy.tls:
            attributes += "; Secure"
        log.info("dashboard login principal=%s via=%s", principal.name, principal.via)
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", f"{policy.cookie_name}={session_id}; {attributes}".encode()),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _challenge(problem: str) -> str:
        detail = problem.replace('"', "'")
        return f'Bearer realm="tradeflux", error="invalid_token", error_description="{detail}"'

    def _with_headers(self, send: Send) -> Send:
        extra = self._security_headers

        async def sender(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                added = [(k, v) for k, v in extra if k not in present]
                if b"cache-control" not in present:
                    added.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        return sender


async def _reply(
    send: Send, status: int, error: str, detail: str, challenge: str | None = None
) -> None:
    body = _ENCODE({"error": error, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if challenge is not None:
        headers.append((b"www-authenticate", challenge.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
