"""Credentials for tests of the HTTP edges: a JWKS with its signing key, and static tokens."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tradeflux.security.tokens import StaticToken, new_token, token_digest, write_tokens_file

ISSUER = "https://idp.test.example/"
AUDIENCE = "tradeflux"


@dataclass
class Issuer:
    """An RSA key pair standing in for an identity provider, its JWKS in ``jwks_file``."""

    jwks_file: Path
    kid: str = "k1"

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks_file.write_text(
            json.dumps({"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]})
        )

    def mint(self, scope: str = "", expires_in_s: float = 300, **claims: Any) -> str:
        now = dt.datetime.now(dt.UTC)
        body: dict[str, Any] = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": "client-1", "iat": now,
            "exp": now + dt.timedelta(seconds=expires_in_s), **claims,
        }  # fmt: skip
        if scope:
            body["scope"] = scope
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


@dataclass(frozen=True)
class Tokens:
    """A tokens file and the tokens it holds the digests of."""

    path: Path
    writer: str  # trades:write
    reader: str  # read
    scraper: str  # metrics
    login: str  # read, once
    operator: str  # read and metrics


def tokens_file(path: Path) -> Tokens:
    """Write a tokens file with one token per scope and a one-time login token."""
    writer, reader, scraper, login, operator = (new_token() for _ in range(5))
    write_tokens_file(path, [
        StaticToken("writer", token_digest(writer), frozenset({"trades:write"})),
        StaticToken("reader", token_digest(reader), frozenset({"read"})),
        StaticToken("scraper", token_digest(scraper), frozenset({"metrics"})),
        StaticToken("browser", token_digest(login), frozenset({"read"}), once=True),
        StaticToken("operator", token_digest(operator), frozenset({"read", "metrics"})),
    ])  # fmt: skip
    return Tokens(path, writer, reader, scraper, login, operator)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
