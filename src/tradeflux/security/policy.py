"""The security settings put to work: verifiers, edge policies, TLS, and the refusals at start.

Authentication is on unless ``auth = "none"``; ``--auth none`` (or plaintext FIX) on an
address other than loopback is refused at start unless ``--allow-insecure-bind`` says
it is meant (or, for HTTP, a client certificate is required: then the certificate is the
authentication).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tradeflux.config import Settings
from tradeflux.security import SecurityConfigError, SecurityError
from tradeflux.security.http import EdgePolicy, Rule, SessionStore
from tradeflux.security.tokens import (
    SCOPE_METRICS,
    Authenticator,
    InvalidToken,
    JwtVerifier,
    StaticTokens,
)

log = logging.getLogger("tradeflux.security")


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def authenticator(settings: Settings) -> Authenticator | None:
    """Return the token verifiers the settings configure; None when auth is off."""
    if settings.auth == "none":
        return None
    jwt_verifier = None
    if settings.jwks_file is not None or settings.jwks_url is not None:
        if not settings.jwt_issuer or not settings.jwt_audience:
            raise SecurityConfigError(
                "JWT verification needs --jwt-issuer and --jwt-audience with the JWKS "
                "(the iss and aud every accepted token must carry)"
            )
        jwt_verifier = JwtVerifier(
            settings.jwt_issuer, settings.jwt_audience, settings.jwks_file, settings.jwks_url
        )
        try:
            jwt_verifier.prefetch()  # a wrong URL shows at start, not on the first request
        except SecurityError as exc:
            log.warning("jwks not fetched at start (verification fetches again): %s", exc)
    elif settings.jwt_issuer or settings.jwt_audience:
        raise SecurityConfigError("--jwt-issuer/--jwt-audience need --jwks-file or --jwks-url")
    static = StaticTokens.from_file(settings.tokens_file) if settings.tokens_file else None
    return Authenticator(jwt_verifier, static)


def _names(text: str) -> frozenset[str]:
    return frozenset(part.strip().lower().strip("[]") for part in text.split(",") if part.strip())


def check_bind(settings: Settings, host: str, what: str = "HTTP") -> None:
    """Refuse auth off on a non-loopback address unless a client certificate or the flag says so."""
    if settings.auth != "none" or is_loopback(host):
        return
    if settings.tls_client_ca is not None:
        log.warning(
            "auth none on %s: every client with a certificate from %s has every scope",
            host,
            settings.tls_client_ca,
        )
        return
    if settings.allow_insecure_bind:
        log.warning("auth none on %s (--allow-insecure-bind): anyone who reaches it may", host)
        return
    raise SecurityConfigError(
        f"--auth none with {what} on {host} would let anyone on that network in; bind "
        "127.0.0.1, turn auth on (--tokens-file or --jwks-*), require client certificates "
        "(--tls-client-ca), or pass --allow-insecure-bind if that is really meant"
    )


def check_plaintext_fix(settings: Settings, host: str) -> None:
    """Refuse FIX without TLS on a non-loopback address unless ``--allow-insecure-bind``."""
    if is_loopback(host):
        return
    if settings.allow_insecure_bind:
        log.warning("plaintext FIX on %s (--allow-insecure-bind): trades cross it in clear", host)
        return
    raise SecurityConfigError(
        f"FIX without TLS on {host} would carry trades in clear; give --fix-tls-cert and "
        "--fix-tls-key, bind --fix-host 127.0.0.1, or pass --allow-insecure-bind"
    )


def edge_policy(
    settings: Settings,
    rules: Sequence[Rule],
    default_scope: str | None,
    sessions: bool = False,
) -> EdgePolicy:
    """Return the policy of one HTTP edge from the settings."""
    return EdgePolicy(
        authenticator=authenticator(settings),
        rules=rules,
        default_scope=default_scope,
        allowed_hosts=_names(settings.allowed_hosts),
        allowed_origins=frozenset(o.strip() for o in settings.allowed_origins.split(",") if o),
        sessions=SessionStore() if sessions else None,
        tls=settings.tls_cert is not None,
    )


def uvicorn_tls(settings: Settings) -> dict[str, Any]:
    """Return uvicorn's TLS settings (empty without a certificate); mTLS with a client CA."""
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise SecurityConfigError("--tls-client-ca needs --tls-cert and --tls-key")
        return {}
    if settings.tls_cert is None or settings.tls_key is None:
        raise SecurityConfigError("TLS needs both --tls-cert and --tls-key")
    for path in (settings.tls_cert, settings.tls_key, settings.tls_client_ca):
        if path is not None and not path.is_file():
            raise SecurityConfigError(f"TLS file {path} does not exist")
    tls: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert),
        "ssl_keyfile": str(settings.tls_key),
    }
    if settings.tls_client_ca is not None:
        tls["ssl_ca_certs"] = str(settings.tls_client_ca)
        tls["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return tls


def metrics_authorize(settings: Settings) -> Callable[[Mapping[str, str]], int] | None:
    """Return the ``HealthServer`` hook: 200 for a bearer token with ``metrics``, else 401/403.

    None when auth is off (the server then answers everyone, as before).
    """
    authn = authenticator(settings)
    if authn is None:
        return None

    def authorize(headers: Mapping[str, str]) -> int:
        lower = {k.lower(): v for k, v in headers.items()}
        kind, _, token = lower.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return 401
        try:
            principal = authn.verify(token.strip())
        except InvalidToken:
            return 401
        return 200 if principal.allows(SCOPE_METRICS) else 403

    return authorize


def scrape_headers(settings: Settings) -> dict[str, str]:
    """Return the headers this process sends to the services' /metrics (a bearer token, if set)."""
    if settings.scrape_token_file is None:
        return {}
    try:
        token = settings.scrape_token_file.read_text().strip()
    except OSError as exc:
        raise SecurityConfigError(
            f"--scrape-token-file {settings.scrape_token_file}: {exc.strerror}"
        ) from None
    return {"Authorization": f"Bearer {token}"}
