"""Bearer tokens: JWTs against a JWKS file (signature, iss, aud, exp, scopes) and static tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import jwt
import pytest

from tests.support.auth import AUDIENCE, ISSUER, Issuer, tokens_file
from tradeflux.security import SecurityConfigError
from tradeflux.security.tokens import (
    Authenticator,
    InvalidToken,
    JwtVerifier,
    StaticTokens,
    scopes_of,
)


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    return Issuer(tmp_path / "jwks.json")


def verifier(issuer: Issuer) -> JwtVerifier:
    return JwtVerifier(ISSUER, AUDIENCE, jwks_file=issuer.jwks_file, leeway_s=0)


def test_a_valid_jwt_gives_its_subject_and_scopes(issuer: Issuer) -> None:
    principal = verifier(issuer).verify(issuer.mint("read metrics", scp=["trades:write"]))
    assert principal.name == "client-1"
    assert principal.scopes == frozenset({"read", "metrics", "trades:write"})
    assert principal.via == "jwt"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"expires_in_s": -5}, "JWT expired"),
        ({"aud": "someone-else"}, "JWT is for another audience"),
        ({"iss": "https://evil.example/"}, "JWT is from another issuer"),
        ({"exp": None}, "JWT lacks the 'exp' claim"),
        ({"aud": None}, "JWT lacks the 'aud' claim"),
    ],
)
def test_expired_foreign_or_incomplete_jwts_are_refused_saying_why(
    issuer: Issuer, claims: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidToken) as caught:
        verifier(issuer).verify(issuer.mint("read", **claims))  # type: ignore[arg-type]
    assert str(caught.value) == reason


def test_a_jwt_signed_by_another_key_with_the_same_kid_is_refused(
    issuer: Issuer, tmp_path: Path
) -> None:
    impostor = Issuer(tmp_path / "other.json", kid=issuer.kid)
    with pytest.raises(InvalidToken, match="^JWT signature does not verify$"):
        verifier(issuer).verify(impostor.mint("read"))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: dict[str, object], secret: bytes) -> str:
    signing = b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode()) + "."
    signing += b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_hmac_signed_with_the_public_key_and_alg_none_are_refused(issuer: Issuer) -> None:
    public_jwk = json.loads(issuer.jwks_file.read_text())["keys"][0]
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800, "scope": "read"}
    confused = hs256(claims, json.dumps(public_jwk).encode())  # PyJWT refuses to make it
    with pytest.raises(InvalidToken, match="algorithm 'HS256' is not accepted"):
        verifier(issuer).verify(confused)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(InvalidToken, match="algorithm 'none' is not accepted"):
        verifier(issuer).verify(unsigned)


def test_an_unknown_kid_is_refused(issuer: Issuer, tmp_path: Path) -> None:
    stranger = Issuer(tmp_path / "stranger.json", kid="k9")
    with pytest.raises(InvalidToken, match="^no key 'k9' in the JWKS$"):
        verifier(issuer).verify(stranger.mint("read"))


def test_scopes_come_from_scope_and_scp_in_either_form() -> None:
    assert scopes_of({"scope": "read  metrics"}) == {"read", "metrics"}
    assert scopes_of({"scp": ["read", 7]}) == {"read"}
    assert scopes_of({"scp": "metrics"}) == {"metrics"}
    assert scopes_of({"scope": ["not", "a", "string"]}) == frozenset()


def test_static_tokens_match_by_digest_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    tokens = tokens_file(tmp_path / "tokens.toml")
    static = StaticTokens.from_file(tokens.path)
    assert tokens.writer not in tokens.path.read_text()  # only digests on disk
    assert (tmp_path / "tokens.toml").stat().st_mode & 0o777 == 0o600
    principal = static.verify(tokens.writer)
    assert (principal.name, principal.scopes, principal.via) == (
        "writer",
        frozenset({"trades:write"}),
        "token",
    )
    with pytest.raises(InvalidToken, match="^unknown API token$"):
        static.verify(tokens.writer + "x")


def test_a_login_token_logs_in_once_and_is_never_a_bearer(tmp_path: Path) -> None:
    tokens = tokens_file(tmp_path / "tokens.toml")
    authn = Authenticator(None, StaticTokens.from_file(tokens.path))
    with pytest.raises(InvalidToken, match="no bearer token"):
        authn.verify(tokens.login)
    assert authn.verify_login(tokens.login).scopes == frozenset({"read"})
    with pytest.raises(InvalidToken, match="used already"):
        authn.verify_login(tokens.login)
    assert authn.verify_login(tokens.reader).name == "reader"  # a plain token may log in again
    assert authn.verify_login(tokens.reader).name == "reader"


def test_a_jwt_where_only_static_tokens_are_configured_is_refused(
    issuer: Issuer, tmp_path: Path
) -> None:
    authn = Authenticator(None, StaticTokens.from_file(tokens_file(tmp_path / "t.toml").path))
    with pytest.raises(InvalidToken, match="JWTs are not accepted here"):
        authn.verify(issuer.mint("read"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no [[token]] entry"),
        ('[[token]]\nname = "a b"\nsha256 = "00"\nscopes = []\n', "name must be"),
        ('[[token]]\nname = "a"\nsha256 = "00"\nscopes = []\n', "sha256 must be 64"),
        (f'[[token]]\nname = "a"\nsha256 = "{"0" * 64}"\nscopes = ["admin"]\n', "scopes must be"),
    ],
)
def test_a_bad_tokens_file_is_a_config_error_naming_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    with pytest.raises(SecurityConfigError, match=message.replace("[", r"\[")):
        StaticTokens.from_file(path)


def test_nothing_to_verify_with_is_a_config_error() -> None:
    with pytest.raises(SecurityConfigError, match="nothing verifies tokens"):
        Authenticator(None, None)
