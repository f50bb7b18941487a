"""The ``tradeflux`` command's root: the typer app, its groups, shared options and consoles."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tradeflux.config import Settings, load_settings


def _console(stderr: bool) -> Console:
    """Return a console; output to a pipe or file is never wrapped or cut at 80 columns.

    Scripts and logs read what the commands print (cluster ids, topic names, the
    ``export`` line), so only a terminal gets rich's width-fitted layout.
    """
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream is not None and stream.isatty() else 10_000
    return Console(stderr=stderr, highlight=False, width=width)


console = _console(stderr=False)
err_console = _console(stderr=True)

app = typer.Typer(
    name="tradeflux",
    help=(
        "Real-time trade flow processing on Apache Kafka.\n\n"
        "Settings come from flags, then TRADEFLUX_* environment variables, then a TOML "
        "config file (--config or TRADEFLUX_CONFIG), then defaults. Point every command at "
        "an existing cluster with --bootstrap or TRADEFLUX_BOOTSTRAP; any librdkafka "
        "setting passes through as TRADEFLUX_KAFKA_<NAME> (e.g. TRADEFLUX_KAFKA_SECURITY_"
        "PROTOCOL=SASL_SSL) or in the config file's kafka table."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help texts say [env: ...] and [default: ...] literally
)
broker_app = typer.Typer(
    help="A local Apache Kafka (KRaft) fetched from Maven Central and run with java.",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="The tradeflux topic set (ARCHITECTURE.md section 3).")
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics", no_args_is_help=True)
refdata_app = typer.Typer(help="Reference data: instruments, accounts, counterparties, ...")
app.add_typer(refdata_app, name="refdata", no_args_is_help=True)


class _State:
    """Options of the top-level command, shared with subcommands."""

    config: Path | None = None
    bootstrap: str | None = None
    debug: bool = False
    security: dict[str, Any] = {}  # the root's --auth ... flags, set once

    def settings(self, **flags: Any) -> Settings:
        return load_settings(self.config, bootstrap=self.bootstrap, **{**self.security, **flags})


_state = _State()


@app.callback()
def _root(
    bootstrap: Annotated[
        str | None,
        typer.Option(
            "--bootstrap",
            "-b",
            help="Kafka bootstrap servers host:port[,...] [env: TRADEFLUX_BOOTSTRAP] "
            "[default: 127.0.0.1:9092]",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file [env: TRADEFLUX_CONFIG]"),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show stack traces and debug logs.")
    ] = False,
    auth: Annotated[
        str | None,
        typer.Option(
            help="HTTP authentication of the gateway, the query API and every /metrics: "
            "token (bearer JWTs and/or static API tokens) or none (loopback only) "
            "[env: TRADEFLUX_AUTH] [default: token]"
        ),
    ] = None,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            help="Static API tokens (TOML, SHA-256 of each token; `tradeflux token create`) "
            "[env: TRADEFLUX_TOKENS_FILE]"
        ),
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="JWT signing keys, a JWKS file [env: TRADEFLUX_JWKS_FILE]")
    ] = None,
    jwks_url: Annotated[
        str | None,
        typer.Option(help="JWT signing keys, the IdP's JWKS URL (https) [env: TRADEFLUX_JWKS_URL]"),
    ] = None,
    jwt_issuer: Annotated[
        str | None, typer.Option(help="The iss every JWT must carry [env: TRADEFLUX_JWT_ISSUER]")
    ] = None,
    jwt_audience: Annotated[
        str | None,
        typer.Option(help="The aud every JWT must carry [env: TRADEFLUX_JWT_AUDIENCE]"),
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            help="Host header names the HTTP edges answer, comma separated; * any "
            "[env: TRADEFLUX_ALLOWED_HOSTS] [default: 127.0.0.1,localhost,::1]"
        ),
    ] = None,
    allowed_origins: Annotated[
        str | None,
        typer.Option(
            help="Other origins (scheme://host:port) allowed to call [env: "
            "TRADEFLUX_ALLOWED_ORIGINS] [default: none]"
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="HTTPS certificate (PEM) [env: TRADEFLUX_TLS_CERT]")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="HTTPS private key (PEM) [env: TRADEFLUX_TLS_KEY]")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            help="Require a client certificate signed by this CA (mTLS) [env: "
            "TRADEFLUX_TLS_CLIENT_CA]"
        ),
    ] = None,
    allow_insecure_bind: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-bind",
            help="Allow --auth none (HTTP) or plaintext FIX on a non-loopback address "
            "[env: TRADEFLUX_ALLOW_INSECURE_BIND]",
        ),
    ] = False,
    scrape_token_file: Annotated[
        Path | None,
        typer.Option(
            help="File of the bearer token sent to the services' /metrics "
            "[env: TRADEFLUX_SCRAPE_TOKEN_FILE]"
        ),
    ] = None,
) -> None:
    _state.bootstrap, _state.config, _state.debug = bootstrap, config, debug
    _state.security = {
        "auth": auth,
        "tokens_file": tokens_file,
        "jwks_file": jwks_file,
        "jwks_url": jwks_url,
        "jwt_issuer": jwt_issuer,
        "jwt_audience": jwt_audience,
        "allowed_hosts": allowed_hosts,
        "allowed_origins": allowed_origins,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_client_ca": tls_client_ca,
        "allow_insecure_bind": True if allow_insecure_bind else None,
        "scrape_token_file": scrape_token_file,
    }
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not debug:
        # librdkafka reports every refused connection; the command reports the outcome.
        logging.getLogger("tradeflux.kafka").setLevel(logging.CRITICAL)


RuntimeDir = Annotated[
    Path | None,
    typer.Option(
        "--runtime-dir",
        help="Folder for the local broker's data and logs [env: TRADEFLUX_RUNTIME_DIR] "
        "[default: ~/.local/state/tradeflux]",
    ),
]
