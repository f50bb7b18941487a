"""Bearer tokens: JWTs verified against a JWKS, and static API tokens from a file.

A token becomes a :class:`Principal` (a name and its scopes) or raises :class:`InvalidToken`
with a one-line reason. The scopes of the system:

- ``trades:write``: ``POST /v1/trades`` (the gateway);
- ``read``: the query API, its event stream and the dashboard;
- ``metrics``: every ``/metrics`` (scrapers).

JWT (OIDC access tokens): the signature is checked with the key of the token's ``kid``
from a JWKS file or URL (asymmetric algorithms only, never ``none`` or HMAC), then
``iss``, ``aud`` and ``exp`` are required and checked (with a small leeway for clock
skew). Scopes come from ``scope`` (space separated, RFC 8693) and ``scp`` (a list or a
string, as some identity providers send them).

Static tokens (TOML, ``--tokens-file``): each entry holds the SHA-256 of a token, never
the token itself, so the file is no credential::

    [[token]]
    name = "prometheus"
    sha256 = "9f86d0..."       # hex SHA-256 of the token
    scopes = ["metrics"]
    # once = true              # a login link: good for one browser login, never as a bearer

Every entry's digest is compared, in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import threading
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from tradeflux.security import SecurityConfigError, SecurityError

SCOPE_TRADES_WRITE = "trades:write"
SCOPE_READ = "read"
SCOPE_METRICS = "metrics"
SCOPES = (SCOPE_TRADES_WRITE, SCOPE_READ, SCOPE_METRICS)
# Public-key algorithms only: a JWKS holds public keys, and an HMAC "verified" with one is
# the classic algorithm-confusion forgery.
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class InvalidToken(SecurityError):  # noqa: N818 - named for what the caller hears: 401
    """The token is missing, malformed, expired, for someone else, or unknown."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a name (JWT ``sub``, or the static token's name) and scopes.

    ``expires_at`` is when the credential stops being valid (None: never, a static token).
    ``login_once``: a login-link token, exchanged once for a browser session, never a bearer.
    """

    name: str
    scopes: frozenset[str]
    via: str  # "jwt", "token", "session" or "anonymous" (auth off)
    expires_at: dt.datetime | None = None
    login_once: bool = False

    def allows(self, scope: str) -> bool:
        """Tell whether this principal holds ``scope``."""
        return scope in self.scopes


ANONYMOUS = Principal("anonymous", frozenset(SCOPES), "anonymous")
"""The principal of every request when auth is off (``--auth none``)."""


def looks_like_jwt(token: str) -> bool:
    """Tell whether ``token`` has a JWT's three dot-separated parts (static tokens have none)."""
    return token.count(".") == 2


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """Return the scopes of JWT ``claims``: ``scope`` (space separated) and ``scp`` (list/str)."""
    found: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        found.update(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        found.update(scp.split())
    elif isinstance(scp, list):
        found.update(s for s in scp if isinstance(s, str))
    return frozenset(found)


class JwtVerifier:
    """Verifies JWTs: signature (JWKS key of the token's ``kid``), ``iss``, ``aud``, ``exp``.

    ``jwks_url``: keys are fetched with PyJWT's ``PyJWKClient`` (cached, refetched for an
    unknown ``kid``); that may block on the network, so ``may_block`` is True and callers in
    an event loop verify in a worker thread. ``jwks_file``: read once at construction.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks_file: Path | None = None,
        jwks_url: str | None = None,
        leeway_s: float = 30.0,
    ) -> None:
        if (jwks_file is None) == (jwks_url is None):
            raise SecurityConfigError(
                "JWT verification needs exactly one of --jwks-file, --jwks-url"
            )
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._client: PyJWKClient | None = None
        self._keys: dict[str, PyJWK] = {}
        self.may_block = jwks_url is not None
        if jwks_url is not None:
            if not jwks_url.startswith("https://") and not _is_loopback_url(jwks_url):
                raise SecurityConfigError(
                    f"--jwks-url {jwks_url}: keys must come over https (or from loopback)"
                )
            self._client = PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
        else:
            assert jwks_file is not None  # noqa: S101 - checked above
            self._keys = _read_jwks(jwks_file)

    def _key(self, token: str) -> PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidToken("malformed JWT") from None
        kid = header.get("kid")
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise InvalidToken(f"JWT algorithm {alg!r} is not accepted")
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientError as exc:
                raise InvalidToken(f"no signing key for this JWT ({exc})") from None
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        key = self._keys.get(str(kid))
        if key is None:
            raise InvalidToken(f"no key {kid!r} in the JWKS")
        return key

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid JWT, or raise InvalidToken saying what is wrong."""
        key = self._key(token)
        algorithm = key.algorithm_name
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise InvalidToken(f"JWKS key algorithm {algorithm!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("JWT expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("JWT is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("JWT is from another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"JWT lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("JWT signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"JWT rejected ({type(exc).__name__})") from None
        name = str(claims.get("sub") or claims.get("client_id") or claims.get("azp") or "?")
        expires = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
        return Principal(name, scopes_of(claims), "jwt", expires)

    def prefetch(self) -> None:
        """Fetch the JWKS now (URL only), so a wrong URL shows at start rather than per request."""
        if self._client is not None:
            try:
                self._client.get_jwk_set()
            except jwt.PyJWKClientError as exc:
                raise SecurityError(f"cannot fetch the JWKS ({exc})") from None


def _is_loopback_url(url: str) -> bool:
    return url.startswith(("http://127.", "http://localhost", "http://[::1]"))


def _read_jwks(path: Path) -> dict[str, PyJWK]:
    """Read a JWKS file into {kid: key}; a bad file is a SecurityConfigError."""
    try:
        data = json.loads(path.read_text())
        keyset = PyJWKSet.from_dict(data)
    except FileNotFoundError:
        raise SecurityConfigError(f"--jwks-file {path} does not exist") from None
    except (OSError, ValueError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
        raise SecurityConfigError(f"--jwks-file {path} is no usable JWKS ({exc})") from None
    keys: dict[str, PyJWK] = {}
    for i, key in enumerate(keyset.keys):
        keys[str(key.key_id) if key.key_id is not None else f"#{i}"] = key
    if not keys:
        raise SecurityConfigError(f"--jwks-file {path} holds no key")
    return keys


@dataclass(frozen=True)
class StaticToken:
    """One entry of a tokens file: a name, the token's SHA-256 (hex) and its scopes."""

    name: str
    sha256: str
    scopes: frozenset[str]
    once: bool = False


def token_digest(token: str) -> str:
    """Return the hex SHA-256 a tokens file holds for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Return a fresh random API token (256 bits, URL-safe, no dots: never taken for a JWT)."""
    return "tf_" + secrets.token_urlsafe(32).replace(".", "_")


class StaticTokens:
    """The static API tokens of a tokens file (see the module doc), read once."""

    def __init__(self, entries: Sequence[StaticToken]) -> None:
        self.entries = tuple(entries)
        self._used: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> StaticTokens:
        """Read and check a tokens file; every problem is a SecurityConfigError naming it."""
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SecurityConfigError(f"--tokens-file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SecurityConfigError(
                f"--tokens-file {path} is not readable TOML ({exc})"
            ) from None
        entries = []
        for i, raw in enumerate(data.get("token", [])):
            where = f"--tokens-file {path}: token #{i + 1}"
            name, digest, scopes = raw.get("name"), raw.get("sha256"), raw.get("scopes")
            if not isinstance(name, str) or not _NAME.match(name):
                raise SecurityConfigError(f"{where}: name must be letters, digits, . _ @ -")
            if not isinstance(digest, str) or not _HEX64.match(digest):
                raise SecurityConfigError(
                    f"{where} ({name}): sha256 must be 64 lower-case hex digits"
                )
            if not isinstance(scopes, list) or not all(s in SCOPES for s in scopes):
                raise SecurityConfigError(
                    f"{where} ({name}): scopes must be a list of {', '.join(SCOPES)}"
                )
            entries.append(StaticToken(name, digest, frozenset(scopes), bool(raw.get("once"))))
        if not entries:
            raise SecurityConfigError(f"--tokens-file {path} holds no [[token]] entry")
        return cls(entries)

    def verify(self, token: str) -> Principal:
        """Return the principal of a known token, or raise InvalidToken."""
        digest = token_digest(token)
        match: StaticToken | None = None
        for entry in self.entries:  # every entry, so the time does not tell which matched
            if hmac.compare_digest(digest, entry.sha256):
                match = entry
        if match is None:
            raise InvalidToken("unknown API token")
        return Principal(match.name, match.scopes, "token", None, login_once=match.once)

    def consume_once(self, token: str) -> None:
        """Mark a one-time login token used; raise InvalidToken if it was used before."""
        digest = token_digest(token)
        with self._lock:
            if digest in self._used:
                raise InvalidToken("this login link was used already; ask for a new one")
            self._used.add(digest)


def write_tokens_file(path: Path, entries: Iterable[StaticToken]) -> None:
    """Write ``entries`` as a tokens file, readable by its owner only (0600)."""
    lines = []
    for entry in entries:
        scopes = ", ".join(f'"{s}"' for s in sorted(entry.scopes))
        lines += ["[[token]]", f'name = "{entry.name}"', f'sha256 = "{entry.sha256}"',
                  f"scopes = [{scopes}]"]  # fmt: skip
        if entry.once:
            lines.append("once = true")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines))


class Authenticator:
    """Turns a bearer token into a Principal with whichever verifiers are configured."""

    def __init__(self, jwt_verifier: JwtVerifier | None, static: StaticTokens | None) -> None:
        if jwt_verifier is None and static is None:
            raise SecurityConfigError(
                "authentication is on but nothing verifies tokens: pass --tokens-file, or "
                "--jwks-file/--jwks-url with --jwt-issuer and --jwt-audience (or --auth none "
                "on a loopback address)"
            )
        self.jwt = jwt_verifier
        self.static = static

    @property
    def may_block(self) -> bool:
        """Tell whether verifying may wait on the network (a JWKS URL)."""
        return self.jwt is not None and self.jwt.may_block

    def verify(self, token: str) -> Principal:
        """Return the principal of ``token`` or raise InvalidToken (never a bearer login link)."""
        principal = self._verify(token)
        if principal.login_once:
            raise InvalidToken("a login link's token is no bearer token")
        return principal

    def verify_login(self, token: str) -> Principal:
        """Verify a login link's token; a one-time token is consumed by this call."""
        principal = self._verify(token)
        if principal.login_once and self.static is not None:
            self.static.consume_once(token)
        return principal

    def _verify(self, token: str) -> Principal:
        if not token:
            raise InvalidToken("empty token")
        if looks_like_jwt(token):
            if self.jwt is None:
                raise InvalidToken("JWTs are not accepted here (no JWKS configured)")
            return self.jwt.verify(token)
        if self.static is None:
            raise InvalidToken("static API tokens are not accepted here (no tokens file)")
        return self.static.verify(token)
