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


acls_app = typer.Typer(
    help="Least-privilege Kafka ACLs per tradeflux process, from the topic registry and the "
    "services' declared topics, stores, tables, groups and transactional ids."
)
app.add_typer(acls_app, name="acls", no_args_is_help=True)

PrefixOption = Annotated[
    str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
]
TemplateOption = Annotated[
    str,
    typer.Option(
        help="How a component's principal is named, e.g. 'User:CN=tradeflux-{name},O=Bank'."
    ),
]
ComponentOption = Annotated[
    list[str] | None,
    typer.Option("--component", help="Only these components (repeatable) [default: all]."),
]


@acls_app.command("plan")
def acls_plan(
    prefix: PrefixOption = None,
    principal_template: TemplateOption = "User:{name}",
    component: ComponentOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="kafka-acls (commands an admin runs) or table.")
    ] = "kafka-acls",
) -> None:
    """Print every ACL the components need: kafka-acls.sh lines an admin can run, or a table."""
    from tradeflux.cli.app import _state
    from tradeflux.security.acls import kafka_acls_commands, plan

    settings = _state.settings(topic_prefix=prefix)
    acls = plan(settings.topic_prefix, principal_template, component)
    if output_format == "table":
        for acl in acls:
            console.print(
                f"{acl.principal}\t{acl.operation}\t{acl.resource_type}\t{acl.pattern}\t"
                f"{acl.resource_name}",
                markup=False,
            )
    elif output_format == "kafka-acls":
        for line in kafka_acls_commands(acls, settings.bootstrap):
            console.print(line, markup=False, soft_wrap=True)
    else:
        raise TradefluxError(f"--format {output_format}: use kafka-acls or table")


@acls_app.command("apply")
def acls_apply(
    prefix: PrefixOption = None,
    principal_template: TemplateOption = "User:{name}",
    component: ComponentOption = None,
) -> None:
    """Create the ACLs of ``plan`` on the cluster (run as its admin; existing ones stay)."""
    from tradeflux.broker.acl_admin import create_acls
    from tradeflux.cli.app import _state
    from tradeflux.security.acls import plan

    settings = _state.settings(topic_prefix=prefix)
    acls = plan(settings.topic_prefix, principal_template, component)
    count = create_acls(settings, acls)
    principals = sorted({a.principal for a in acls})
    console.print(
        f"{count} ACLs in place for {len(principals)} principals: {', '.join(principals)}"
    )
