"""The ``tradeflux`` command: broker, topics, and (in later issues) services, demo, bench.

Errors a user can fix print one line and exit non-zero; ``--debug`` shows the trace.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tradeflux.broker import local
from tradeflux.broker.admin import describe_cluster
from tradeflux.broker.jars import fetch_kafka, find_java, is_fetched, pinned_kafka_version
from tradeflux.broker.topics import TopicSet, create_topics, describe_topics, list_topics
from tradeflux.config import Settings, load_settings
from tradeflux.errors import TradefluxError


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

    def settings(self, **flags: Any) -> Settings:
        return load_settings(self.config, bootstrap=self.bootstrap, **flags)


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
) -> None:
    _state.bootstrap, _state.config, _state.debug = bootstrap, config, debug
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


def _fetch_with_progress(settings: Settings) -> Path:
    """Fetch the broker jars, showing a line per artifact (or a spinner on a terminal)."""
    version = settings.kafka_version or pinned_kafka_version()
    if is_fetched(settings.cache_dir, version):
        return fetch_kafka(settings.cache_dir, version)
    count = 0
    with err_console.status(f"fetching Apache Kafka {version} from Maven Central") as status:

        def on_artifact(name: str) -> None:
            nonlocal count
            count += 1
            status.update(f"fetching Apache Kafka {version}: {count} files, last {name}")
            if not err_console.is_terminal and count % 10 == 1:
                err_console.print(f"fetching Apache Kafka {version}: {count} files, last {name}")

        libs = fetch_kafka(settings.cache_dir, version, on_artifact)
    err_console.print(f"Apache Kafka {version} fetched into {libs}")
    return libs


@broker_app.command("fetch")
def broker_fetch(
    kafka_version: Annotated[
        str | None,
        typer.Option(help="Kafka version [env: TRADEFLUX_KAFKA_VERSION] [default: pinned]"),
    ] = None,
) -> None:
    """Fetch the broker's jars from Maven Central into ~/.cache/tradeflux (once)."""
    settings = _state.settings(kafka_version=kafka_version)
    find_java()
    libs = _fetch_with_progress(settings)
    console.print(f"broker jars ready: {libs}")


@broker_app.command("start")
def broker_start(
    nodes: Annotated[int, typer.Option(help="1, or 3 for a fault-test cluster (RF 3).")] = 1,
    port: Annotated[
        int, typer.Option(help="Client port of node 1; node i uses port+2(i-1), controller +1.")
    ] = 9092,
    fresh: Annotated[bool, typer.Option(help="Wipe the local cluster's data first.")] = False,
    runtime_dir: RuntimeDir = None,
) -> None:
    """Start a local KRaft cluster and wait until it answers a metadata request."""
    if nodes not in (1, 3):
        raise TradefluxError(f"--nodes must be 1 or 3, got {nodes}")
    settings = _state.settings(runtime_dir=runtime_dir)
    find_java()
    _fetch_with_progress(settings)
    started = time.monotonic()
    with err_console.status(f"starting {nodes} Kafka node(s)"):
        cluster = local.start_cluster(settings, nodes=nodes, port=port, fresh=fresh)
    console.print(
        f"Kafka {cluster.kafka_version} is up at {cluster.bootstrap} "
        f"({len(cluster.nodes)} node(s), cluster id {cluster.cluster_id}, "
        f"{time.monotonic() - started:.1f}s)"
    )
    console.print(f"use it: export TRADEFLUX_BOOTSTRAP={cluster.bootstrap}")


@broker_app.command("stop")
def broker_stop(runtime_dir: RuntimeDir = None) -> None:
    """Stop the local cluster (SIGTERM, then SIGKILL after 60 s); its data is kept."""
    settings = _state.settings(runtime_dir=runtime_dir)
    pids = local.stop_cluster(settings)
    if pids:
        console.print(f"stopped {len(pids)} Kafka node(s) (pids {', '.join(map(str, pids))})")
    else:
        console.print("no local Kafka node was running")


@broker_app.command("status")
def broker_status(runtime_dir: RuntimeDir = None) -> None:
    """Print the cluster id, nodes and broker version as the cluster reports them."""
    settings = _state.settings(runtime_dir=runtime_dir)
    cluster = local.load_cluster(settings)
    if _state.bootstrap is None and "TRADEFLUX_BOOTSTRAP" not in _environ():
        if cluster is None or not local.running_pids(settings):
            raise TradefluxError(
                "no local broker is running; start one with `tradeflux broker start` "
                "(or pass --bootstrap to ask another cluster)"
            )
        settings = load_settings(_state.config, bootstrap=cluster.bootstrap)
    info = describe_cluster(settings)
    versions = {}
    if cluster is not None:
        versions = {n.port: local.reported_version(n) for n in cluster.nodes}
    console.print(f"cluster id: {info.cluster_id}")
    console.print(f"controller: {info.controller_id}")
    table = Table("node", "address", "broker version", "commit")
    for node_id, host, port in info.nodes:
        reported = versions.get(port)
        version, commit = reported if reported else ("not reported", "")
        table.add_row(str(node_id), f"{host}:{port}", version, commit)
    console.print(table)


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


@broker_app.command("logs")
def broker_logs(
    node: Annotated[int, typer.Option(help="Node id.")] = 1,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    runtime_dir: RuntimeDir = None,
) -> None:
    """Print the end of a local node's log (server.log)."""
    settings = _state.settings(runtime_dir=runtime_dir)
    cluster = local.load_cluster(settings)
    if cluster is None:
        raise TradefluxError("no local broker has been started in this runtime folder")
    match = [n for n in cluster.nodes if n.node_id == node]
    if not match:
        raise TradefluxError(f"no node {node}; the local cluster has {len(cluster.nodes)}")
    for line in local.tail_log(match[0], lines):
        console.print(line, markup=False)
    if follow:
        with match[0].log_file.open(errors="replace") as f:
            f.seek(0, 2)
            try:
                while True:
                    line = f.readline()
                    if line:
                        console.print(line.rstrip("\n"), markup=False)
                    else:
                        time.sleep(0.2)
            except KeyboardInterrupt:
                return


TopicSetOption = Annotated[
    TopicSet, typer.Option("--set", help="Which topics: all, core (trades to P&L), refdata.")
]


@topics_app.command("create")
def topics_create(
    topic_set: TopicSetOption = TopicSet.ALL,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions per topic [env: TRADEFLUX_PARTITIONS] [6]")
    ] = None,
    replication: Annotated[
        int | None,
        typer.Option(help="Replication factor [env: TRADEFLUX_REPLICATION] [min(3, brokers)]"),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
) -> None:
    """Create the topic set idempotently and check co-partitioning."""
    settings = _state.settings(partitions=partitions, replication=replication, topic_prefix=prefix)
    outcome = create_topics(settings, topic_set)
    table = Table("topic", "outcome")
    for name, what in outcome.items():
        table.add_row(name, what)
    console.print(table)


@topics_app.command("list")
def topics_list() -> None:
    """List the cluster's topics (internal ones left out)."""
    for name in list_topics(_state.settings()):
        console.print(name, markup=False)


@topics_app.command("describe")
def topics_describe(
    names: Annotated[list[str] | None, typer.Argument(help="Topics (default: all).")] = None,
) -> None:
    """Show partitions, replication, cleanup policy and leaders of topics."""
    table = Table("topic", "partitions", "replication", "cleanup.policy", "leaders", "min ISR")
    for t in describe_topics(_state.settings(), names or None):
        table.add_row(
            t.name,
            str(t.partitions),
            str(t.replication),
            t.cleanup_policy,
            ",".join(map(str, t.leaders)),
            str(min(t.in_sync, default=0)),
        )
    console.print(table)


@refdata_app.command("load")
def refdata_load(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="CSV or JSON files; the kind comes from the name (instruments, accounts, "
            "counterparties, limits, fx, prices), e.g. data/refdata/*.csv"
        ),
    ],
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
) -> None:
    """Validate reference data files and load the good rows into their compacted topics.

    Bad rows (check digits, currency and MIC codes, ...) are listed by line and not loaded;
    the exit code is 1 if any row was bad.
    """
    from tradeflux.gateway.refdata import load_files

    settings = _state.settings(topic_prefix=prefix)
    report = load_files(files, settings.client_config(), settings.topic_prefix)
    for name, count in report.loaded.items():
        console.print(f"{name}: {count} rows loaded", markup=False)
    bad = 0
    for name, errors in report.errors.items():
        for error in errors:
            bad += 1
            err_console.print(f"{name}:{error.line}: {error.message}", markup=False)
    if bad:
        raise TradefluxError(f"{bad} bad row(s) were not loaded (listed above)")


@app.command("run")
def run(
    target: Annotated[
        str,
        typer.Argument(
            help="The service: validator, positions, pnl, risk, or any Service as module:attribute."
        ),
    ],
    instance_id: Annotated[
        str | None,
        typer.Option(
            help="Stable id of this instance (its transactional id); keep it across restarts "
            "so a restarted instance fences its crashed self at once [default: hostname]"
        ),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve /metrics, /healthz, /readyz here (0: any port).")
    ] = None,
    batch_max_records: Annotated[int, typer.Option(help="Most records per batch.")] = 5000,
    batch_max_wait_ms: Annotated[
        int, typer.Option(help="Longest wait for a batch's first record, ms.")
    ] = 100,
    static_membership: Annotated[
        bool,
        typer.Option(
            help="Join as a static member (group.instance.id from --instance-id): a restart "
            "takes its partitions back at once, but a stop does not hand them over until the "
            "session times out."
        ),
    ] = False,
    session_timeout_ms: Annotated[
        int, typer.Option(help="Group session timeout: how soon a dead instance's partitions move.")
    ] = 10000,
) -> None:
    """Run one service instance against the configured cluster (exactly-once, until SIGTERM)."""
    import socket

    from tradeflux.stream.app import RuntimeConfig
    from tradeflux.stream.runner import (
        ServiceNotFoundError,
        configure_logging,
        load_service,
        run_service,
    )

    settings = _state.settings(topic_prefix=prefix)
    configure_logging(logging.DEBUG if _state.debug else logging.INFO)
    if ":" not in target:  # a shipped service by name
        target = f"tradeflux.services.{target.replace('-', '_')}:SERVICE"
    try:
        service = load_service(target)
    except ServiceNotFoundError as exc:
        raise TradefluxError(
            f"{exc}; name a shipped service (validator, positions, pnl, risk) or a Service as "
            "module:attribute"
        ) from None
    config = RuntimeConfig(
        client=settings.client_config(),
        instance_id=instance_id or socket.gethostname(),
        topic_prefix=settings.topic_prefix,
        batch_max_records=batch_max_records,
        batch_max_wait_ms=batch_max_wait_ms,
        session_timeout_ms=session_timeout_ms,
        static_membership=static_membership,
        metrics_port=metrics_port,
    )
    for name, value in settings.describe().items():
        logging.getLogger("tradeflux").info("setting %s=%s", name, value)
    code = run_service(service, config)
    if code:
        raise typer.Exit(code)


@app.command("demo")
def demo(
    rate: Annotated[int, typer.Option(help="Simulated trades per second.")] = 200,
    query_port: Annotated[int, typer.Option(help="Port of the query API and dashboard.")] = 8000,
    refdata: Annotated[Path, typer.Option(help="Folder of reference data files to load.")] = Path(
        "data/refdata"
    ),
    keep_broker: Annotated[
        bool, typer.Option(help="Leave the local broker running after Ctrl-C.")
    ] = False,
    runtime_dir: RuntimeDir = None,
) -> None:
    """Run the whole system locally: broker, topics, refdata, services, simulator, dashboard.

    Ctrl-C stops every process the demo started (and the broker, if it started it).
    """
    from tradeflux.demo import run_demo
    from tradeflux.gateway.refdata import load_files

    settings = _state.settings(runtime_dir=runtime_dir)
    started_broker = False
    if _state.bootstrap is None and "TRADEFLUX_BOOTSTRAP" not in _environ():
        if not local.running_pids(settings):
            broker_start(nodes=1, port=9092, fresh=False, runtime_dir=runtime_dir)
            started_broker = True
        cluster = local.load_cluster(settings)
        assert cluster is not None  # noqa: S101 - started just above
        _state.bootstrap = cluster.bootstrap
    settings = _state.settings(runtime_dir=runtime_dir)
    try:
        topics_create(TopicSet.ALL, None, None, None)
        files = sorted(p for p in refdata.glob("*.csv") if not p.name.startswith("bad-"))
        if not files:
            raise TradefluxError(f"no reference data files in {refdata}; pass --refdata DIR")
        report = load_files(files, settings.client_config(), settings.topic_prefix)
        console.print(f"reference data loaded: {sum(report.loaded.values())} rows")
        run_demo(settings, rate, query_port, settings.runtime_dir / "demo-logs", console)
    finally:
        if started_broker and not keep_broker:
            pids = local.stop_cluster(settings)
            console.print(f"stopped the local broker ({len(pids)} node(s))")


@app.command("simulate")
def simulate(
    rate: Annotated[float, typer.Option(help="Trade records per second (Poisson).")] = 1000,
    duration: Annotated[float, typer.Option(help="Seconds to run; 0 runs until Ctrl-C.")] = 60,
    seed: Annotated[
        int | None, typer.Option(help="Random seed, for a repeatable run [default: random]")
    ] = None,
    amend_rate: Annotated[float, typer.Option(help="Share of records that amend a trade.")] = 0.05,
    cancel_rate: Annotated[float, typer.Option(help="Share that cancel a trade.")] = 0.02,
    duplicate_rate: Annotated[float, typer.Option(help="Share that resend a record.")] = 0.01,
    malformed_rate: Annotated[float, typer.Option(help="Share that are malformed.")] = 0.01,
    refdata: Annotated[
        Path,
        typer.Option(help="Folder of instruments.csv, accounts.csv, counterparties.csv (fx.csv)."),
    ] = Path("data/refdata"),
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
) -> None:
    """Send simulated trades to trades.raw and quotes to marketdata.prices and .fx."""
    from tradeflux.sim.producer import simulate_to_kafka
    from tradeflux.sim.trades import TradeMix

    mix = TradeMix(amend_rate, cancel_rate, duplicate_rate, malformed_rate)
    settings = _state.settings(topic_prefix=prefix)
    report = simulate_to_kafka(
        settings,
        refdata_dir=refdata,
        rate_per_s=rate,
        duration_s=duration,
        seed=seed,
        mix=mix,
        console=err_console,
    )
    if report.interrupted and duration:
        raise typer.Exit(130)


@app.command("gateway")
def gateway(
    fix_port: Annotated[
        int, typer.Option(min=1, max=65535, help="FIX 4.4 acceptor port (drop-copy sessions).")
    ] = 9878,
    http_port: Annotated[
        int, typer.Option(min=0, max=65535, help="HTTP port of POST /v1/trades (0: any port).")
    ] = 8080,
    no_fix: Annotated[bool, typer.Option("--no-fix", help="Run HTTP ingest only.")] = False,
    host: Annotated[
        str,
        typer.Option(
            help="Interface HTTP listens on (0.0.0.0: every one); FIX listens on every "
            "interface (QuickFIX has no bind address)."
        ),
    ] = "127.0.0.1",
    fix_sender_comp_id: Annotated[
        str, typer.Option(help="Our SenderCompID in the FIX sessions.")
    ] = "TRADEFLUX",
    fix_target_comp_id: Annotated[
        list[str] | None,
        typer.Option(help="A sender's CompID; one FIX session each, repeatable [DROPCOPY]."),
    ] = None,
    fix_settings: Annotated[
        Path | None,
        typer.Option(help="A QuickFIX acceptor settings file to use instead of the options above."),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest HTTP request body; larger ones get 413.")
    ] = 1 << 20,
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
    runtime_dir: Annotated[
        Path | None,
        typer.Option(
            "--runtime-dir",
            help="Folder of the FIX sequence-number store and logs, under gateway/fix "
            "[env: TRADEFLUX_RUNTIME_DIR] [default: ~/.local/state/tradeflux]",
        ),
    ] = None,
) -> None:
    """Capture trades into trades.raw: a FIX 4.4 drop-copy acceptor and POST /v1/trades.

    A trade is acknowledged (FIX: sequence number stored; HTTP: 202) only once Kafka has it.

    Runs until SIGTERM or Ctrl-C.
    """
    from tradeflux.gateway.fix import FixSettings
    from tradeflux.gateway.runner import GatewayConfig, run_gateway
    from tradeflux.stream.runner import configure_logging

    if fix_settings is not None and not fix_settings.is_file():
        raise TradefluxError(f"--fix-settings {fix_settings}: no such file")
    settings = _state.settings(topic_prefix=prefix, runtime_dir=runtime_dir)
    configure_logging(logging.DEBUG if _state.debug else logging.INFO)
    for name, value in settings.describe().items():
        logging.getLogger("tradeflux").info("setting %s=%s", name, value)
    fix = None
    if not no_fix:
        fix = FixSettings(
            folder=settings.runtime_dir / "gateway" / "fix",
            port=fix_port,
            sender_comp_id=fix_sender_comp_id,
            target_comp_ids=tuple(fix_target_comp_id or ("DROPCOPY",)),
            settings_file=fix_settings,
        )
    config = GatewayConfig(
        client=settings.client_config(),
        topic_prefix=settings.topic_prefix,
        host=host,
        http_port=http_port,
        max_body_bytes=max_body_bytes,
        fix=fix,
    )
    code = run_gateway(config)
    if code:
        raise typer.Exit(code)


@app.command("query")
def query(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="HTTP port of the API and dashboard.")
    ] = 8000,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0: every one).")
    ] = "127.0.0.1",
    metrics_urls: Annotated[
        str | None,
        typer.Option(
            envvar="TRADEFLUX_METRICS_URLS",
            help="The services' /metrics as name=url,... for GET /v1/services and the "
            "dashboard, e.g. validator=http://127.0.0.1:9301/metrics [env: "
            "TRADEFLUX_METRICS_URLS] [default: none]",
            show_envvar=False,
        ),
    ] = None,
    instance_id: Annotated[
        str, typer.Option(help="Instance label of this process's own /metrics.")
    ] = "query",
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
) -> None:
    """Serve the read model of every output topic over HTTP JSON, live events and the dashboard.

    Reads positions, pnl, risk.alerts, analytics.bars, settlement.obligations,
    trades.rejected and refdata.* whole (read_committed) and follows them; answers from
    memory. The dashboard is at /, the API under /v1 (OpenAPI at /openapi.json),
    server-sent events at /v1/stream, /healthz, /readyz (caught up) and /metrics.
    Runs until SIGTERM or Ctrl-C.
    """
    from tradeflux.query.server import QueryService, serve
    from tradeflux.query.service_metrics import parse_targets
    from tradeflux.stream.runner import configure_logging

    targets = parse_targets(metrics_urls)
    settings = _state.settings(topic_prefix=prefix)
    configure_logging(logging.DEBUG if _state.debug else logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per /metrics scrape
    logger = logging.getLogger("tradeflux")
    for name, value in settings.describe().items():
        logger.info("setting %s=%s", name, value)
    for target in targets:
        logger.info("setting metrics_url %s=%s", target.name, target.url)
    service = QueryService(settings, targets, instance_id=instance_id)
    logger.info("query service listening url=http://%s:%d/", host, port)
    serve(service, host, port)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and a non-zero exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="tradeflux", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("tradeflux: interrupted")
        return 130
    except typer.TyperException as exc:  # usage errors; typer >= 0.26 vendors click
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help it printed is the answer
            return exc.exit_code
        err_console.print(
            f"tradeflux: error: {exc.format_message()} (see --help)", markup=False, soft_wrap=True
        )
        return exc.exit_code
    except TradefluxError as exc:
        if _state.debug:
            raise
        err_console.print(f"tradeflux: error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("tradeflux: interrupted")
        return 130
    # typer returns (not raises) the code of typer.Exit, and 130 for Ctrl-C in a command.
    if isinstance(code, int) and code != 0:
        if code == 130:
            err_console.print("tradeflux: interrupted")
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
