"""``tradeflux token`` (static API tokens) and ``tradeflux acls`` (Kafka ACLs per principal)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tradeflux.cli.app import app, console
from tradeflux.errors import TradefluxError
from tradeflux.security.tokens import (
    SCOPES,
    StaticToken,
    StaticTokens,
    new_token,
    token_digest,
    write_tokens_file,
)

token_app = typer.Typer(help="Static API tokens for the HTTP edges (a TOML file of SHA-256s).")
app.add_typer(token_app, name="token", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who holds the token, e.g. prometheus.")],
    tokens_file: Annotated[
        Path, typer.Option(help="The tokens file to add it to (created 0600 if missing).")
    ],
    scope: Annotated[list[str], typer.Option(help=f"A scope, repeatable: {', '.join(SCOPES)}.")],
    once: Annotated[
        bool, typer.Option("--once", help="A login link token: one browser login, no bearer.")
    ] = False,
) -> None:
    """Create a random token, add its SHA-256 to the file, and print the token (only now)."""
    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        raise TradefluxError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    entries: list[StaticToken] = []
    if tokens_file.exists():
        entries = list(StaticTokens.from_file(tokens_file).entries)
    if any(e.name == name for e in entries):
        raise TradefluxError(f"{tokens_file} has a token named {name!r} already; pick another")
    token = new_token()
    entries.append(StaticToken(name, token_digest(token), frozenset(scope), once))
    write_tokens_file(tokens_file, entries)
    console.print(token, markup=False)
