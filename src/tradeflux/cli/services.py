"""Service commands: ``refdata load``, ``run``, ``demo``, ``simulate``, ``gateway``, ``query``.

And ``ticker``, the clock of the post-trade services.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from tradeflux.broker import local
from tradeflux.broker.topics import TopicSet
from tradeflux.cli.app import (
    RuntimeDir,
    _state,
    app,
    console,
    err_console,
    refdata_app,
)
from tradeflux.cli.broker import _environ, broker_start, topics_create
from tradeflux.config import Settings
from tradeflux.errors import TradefluxError
from tradeflux.services import SHIPPED, service_target


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


_RUNTIME_HELP = "[env: TRADEFLUX_{}] [default: {}]"


@app.command("run")
def run(
    target: Annotated[
        str,
        typer.Argument(
            help=f"The service: {', '.join(SHIPPED)}, or any Service as module:attribute."
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
    metrics_host: Annotated[
        str | None,
        typer.Option(
            help="Interface of /metrics, /healthz, /readyz (0.0.0.0 in a pod) "
            + _RUNTIME_HELP.format("METRICS_HOST", "127.0.0.1")
        ),
    ] = None,
    batch_max_records: Annotated[
        int | None,
        typer.Option(
            help="Most records per batch " + _RUNTIME_HELP.format("BATCH_MAX_RECORDS", 5000)
        ),
    ] = None,
    batch_max_wait_ms: Annotated[
        int | None,
        typer.Option(
            help="Longest wait for a batch's first record, ms "
            + _RUNTIME_HELP.format("BATCH_MAX_WAIT_MS", 100)
        ),
    ] = None,
    max_batch_ms: Annotated[
        int | None,
        typer.Option(
            help="Most processing time per batch, ms: lower for latency, higher (or 0: no "
            "limit) for throughput " + _RUNTIME_HELP.format("MAX_BATCH_MS", 250)
        ),
    ] = None,
    fetch_wait_ms: Annotated[
        int | None,
        typer.Option(
            help="Longest time the broker holds an input fetch while nothing new is there, ms "
            "(a record ends the wait at once) " + _RUNTIME_HELP.format("FETCH_WAIT_MS", 10)
        ),
    ] = None,
    transaction_producers: Annotated[
        int,
        typer.Option(
            min=1,
            max=4,
            help="Transactional producers that take turns, batch by batch; 1 makes every "
            "batch wait for the coordinator to finish the previous commit (ids: "
            "GROUP-INSTANCE, then GROUP-INSTANCE#2...)",
        ),
    ] = 2,
    static_membership: Annotated[
        bool,
        typer.Option(
            help="Join as a static member (group.instance.id from --instance-id): a restart "
            "takes its partitions back at once, but a stop does not hand them over until the "
            "session times out."
        ),
    ] = False,
    session_timeout_ms: Annotated[
        int | None,
        typer.Option(
            help="Group session timeout: how soon a dead instance's partitions move "
            + _RUNTIME_HELP.format("SESSION_TIMEOUT_MS", 10000)
        ),
    ] = None,
    cluster_wait_s: Annotated[
        float | None,
        typer.Option(
            help="How long an unavailable cluster is waited out before the instance exits "
            + _RUNTIME_HELP.format("CLUSTER_WAIT_S", 300)
        ),
    ] = None,
    group_protocol: Annotated[
        str | None,
        typer.Option(
            help="Consumer group protocol: classic (cooperative-sticky) or consumer (KIP-848) "
            + _RUNTIME_HELP.format("GROUP_PROTOCOL", "classic")
        ),
    ] = None,
    batch_trace: Annotated[
        Path | None,
        typer.Option(help="Append one line per committed batch here (latency breakdown)."),
    ] = None,
) -> None:
    """Run one service instance against the configured cluster (exactly-once, until SIGTERM).

    Transient cluster errors are waited out (readiness false meanwhile); the instance exits
    with one line when misconfigured, refused by the cluster, replaced by a live instance
    with its id, or past --cluster-wait-s.
    """
    from tradeflux.stream.config import RuntimeConfig
    from tradeflux.stream.runner import (
        ServiceNotFoundError,
        configure_logging,
        load_service,
        run_service,
    )
    from tradeflux.tracing import configure_tracing

    settings = _state.settings(
        topic_prefix=prefix,
        metrics_host=metrics_host,
        batch_max_records=batch_max_records,
        batch_max_wait_ms=batch_max_wait_ms,
        max_batch_ms=max_batch_ms,
        fetch_wait_ms=fetch_wait_ms,
        session_timeout_ms=session_timeout_ms,
        cluster_wait_s=cluster_wait_s,
        group_protocol=group_protocol,
    )
    configure_logging(logging.DEBUG if _state.debug else logging.INFO)
    if ":" not in target:  # a shipped service by name
        target = service_target(target)
    try:
        service = load_service(target, settings)
    except ServiceNotFoundError as exc:
        raise TradefluxError(
            f"{exc}; name a shipped service ({', '.join(SHIPPED)}) or a Service as module:attribute"
        ) from None
    hooks = _metrics_hook(settings, metrics_port)
    instance = instance_id or socket.gethostname()
    tracing = configure_tracing(
        service.name, instance, settings.otlp_endpoint, sample_ratio=settings.trace_sample_ratio
    )
    config = RuntimeConfig(
        client=settings.client_config(),
        instance_id=instance,
        topic_prefix=settings.topic_prefix,
        batch_max_records=settings.batch_max_records,
        batch_max_wait_ms=settings.batch_max_wait_ms,
        max_batch_ms=settings.max_batch_ms,
        fetch_wait_ms=settings.fetch_wait_ms,
        session_timeout_ms=settings.session_timeout_ms,
        static_membership=static_membership,
        transaction_producers=transaction_producers,
        group_protocol="consumer" if settings.group_protocol == "consumer" else "classic",
        cluster_wait_s=settings.cluster_wait_s,
        metrics_port=metrics_port,
        metrics_host=settings.metrics_host,
        batch_trace=str(batch_trace) if batch_trace is not None else None,
        tracing=tracing,
        **hooks,
    )
    for name, value in settings.describe().items():
        logging.getLogger("tradeflux").info("setting %s=%s", name, value)
    code = run_service(service, config)
    if code:
        raise typer.Exit(code)


def _metrics_hook(settings: Settings, metrics_port: int | None) -> dict[str, Any]:
    """Return the RuntimeConfig argument that makes /metrics need the ``metrics`` scope."""
    from tradeflux.security.policy import metrics_authorize

    if metrics_port is None:
        return {}
    authorize = metrics_authorize(settings)
    return {} if authorize is None else {"metrics_authorize": authorize}


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
    monitoring: Annotated[
        bool,
        typer.Option(
            "--monitoring",
            help="Also run Debian's Prometheus (apt-get install prometheus) with "
            "monitoring/prometheus.yml: every service scraped, the alerting rules loaded.",
        ),
    ] = False,
    prometheus_port: Annotated[
        int, typer.Option(help="Port of Prometheus with --monitoring.")
    ] = 9090,
    runtime_dir: RuntimeDir = None,
) -> None:
    """Run the whole system locally: broker, topics, refdata, services, simulator, dashboard.

    Ctrl-C stops every process the demo started (and the broker, if it started it).
    """
    from tradeflux.demo import run_demo
    from tradeflux.gateway.refdata import load_files
    from tradeflux.local_prometheus import find_prometheus

    if monitoring:
        find_prometheus()  # missing: one line now, before a broker is started
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
        run_demo(
            settings,
            rate,
            query_port,
            settings.runtime_dir / "demo-logs",
            console,
            prometheus_port=prometheus_port if monitoring else None,
        )
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
    block_rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Blocks per second to fill, allocate and affirm (needs the allocations and "
            "confirmations topics; 0: none).",
        ),
    ] = 0.0,
    refdata: Annotated[
        Path,
        typer.Option(help="Folder of instruments.csv, accounts.csv, counterparties.csv (fx.csv)."),
    ] = Path("data/refdata"),
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
) -> None:
    """Send simulated trades to trades.raw and quotes to marketdata.prices and .fx.

    With --block-rate, blocks too: fills, allocation instructions to allocations.in and
    affirmations to confirmations.in.
    """
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
        block_rate_per_s=block_rate,
    )
    if report.interrupted and duration:
        raise typer.Exit(130)


@app.command("gateway")
def gateway(
    fix_port: Annotated[
        int, typer.Option(min=1, max=65535, help="FIX 4.4 acceptor port (drop-copy sessions).")
    ] = 9878,
    fix_host: Annotated[
        str, typer.Option(help="Interface FIX listens on (0.0.0.0: every one).")
    ] = "127.0.0.1",
    fix_tls_cert: Annotated[
        Path | None, typer.Option(help="FIX over TLS: the certificate (PEM).")
    ] = None,
    fix_tls_key: Annotated[Path | None, typer.Option(help="FIX over TLS: its key (PEM).")] = None,
    fix_tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            help="Require a FIX client certificate from this CA whose CN (or a DNS name) is "
            "the session's SenderCompID."
        ),
    ] = None,
    fix_max_message_bytes: Annotated[
        int, typer.Option(min=256, help="Largest FIX BodyLength; a larger one closes the link.")
    ] = 64 * 1024,
    fix_logon_timeout_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds a FIX connection has to log on (TLS included).")
    ] = 10.0,
    fix_max_connections: Annotated[
        int, typer.Option(min=1, help="Most FIX connections at once, logged on or not.")
    ] = 32,
    fix_engine_port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="The QuickFIX engine's own loopback port (0: any free one)."
        ),
    ] = 0,
    http_port: Annotated[
        int, typer.Option(min=0, max=65535, help="HTTP port of POST /v1/trades (0: any port).")
    ] = 8080,
    no_fix: Annotated[bool, typer.Option("--no-fix", help="Run HTTP ingest only.")] = False,
    host: Annotated[
        str,
        typer.Option(help="Interface HTTP listens on (0.0.0.0: every one); FIX: --fix-host."),
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
    from tradeflux.gateway.fix_door import FixDoorSettings, free_loopback_port
    from tradeflux.gateway.http import SCOPE_RULES
    from tradeflux.gateway.runner import GatewayConfig, run_gateway
    from tradeflux.security.policy import (
        check_bind,
        check_plaintext_fix,
        edge_policy,
        uvicorn_tls,
    )
    from tradeflux.security.tokens import SCOPE_TRADES_WRITE
    from tradeflux.stream.runner import configure_logging

    if fix_settings is not None and not fix_settings.is_file():
        raise TradefluxError(f"--fix-settings {fix_settings}: no such file")
    settings = _state.settings(topic_prefix=prefix, runtime_dir=runtime_dir)
    configure_logging(logging.DEBUG if _state.debug else logging.INFO)
    for name, value in settings.describe().items():
        logging.getLogger("tradeflux").info("setting %s=%s", name, value)
    check_bind(settings, host)
    policy = edge_policy(settings, SCOPE_RULES, SCOPE_TRADES_WRITE)
    http_tls = uvicorn_tls(settings)
    fix = door = None
    if not no_fix:
        senders = tuple(fix_target_comp_id or ("DROPCOPY",))
        fix = FixSettings(
            folder=settings.runtime_dir / "gateway" / "fix",
            port=fix_engine_port or free_loopback_port(),
            sender_comp_id=fix_sender_comp_id,
            target_comp_ids=senders,
            settings_file=fix_settings,
        )
        door = FixDoorSettings(
            host=fix_host, port=fix_port, tls_cert=fix_tls_cert, tls_key=fix_tls_key,
            tls_client_ca=fix_tls_client_ca, max_message_bytes=fix_max_message_bytes,
            logon_timeout_s=fix_logon_timeout_s, max_connections=fix_max_connections,
            our_comp_id=fix_sender_comp_id, sender_comp_ids=frozenset(senders),
        )  # fmt: skip
        if fix_tls_cert is None:
            check_plaintext_fix(settings, fix_host)
    from tradeflux.services.validator import notional_bounds
    from tradeflux.tracing import configure_tracing

    tracing = configure_tracing(
        "gateway", f"{socket.gethostname()}-{http_port}", settings.otlp_endpoint,
        sample_ratio=settings.trace_sample_ratio,
    )  # fmt: skip
    config = GatewayConfig(
        client=settings.client_config(),
        topic_prefix=settings.topic_prefix,
        host=host,
        http_port=http_port,
        max_body_bytes=max_body_bytes,
        fix=fix,
        notional_bounds=notional_bounds(settings),  # the validator's, from the same setting
        fix_door=door,
        http_policy=policy,
        http_tls=http_tls,
        tracing=tracing,
    )
    code = run_gateway(config)
    if code:
        raise typer.Exit(code)


@app.command("ticker")
def ticker(
    every: Annotated[
        float, typer.Option(min=0.05, help="Seconds between two ticks of every partition.")
    ] = 1.0,
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
) -> None:
    """Keep the post-trade services' time moving: a clock tick into every partition.

    Writes {"kind":"tick"} into each partition of allocations.in and confirmations.in every
    --every seconds, so that a quiet partition's stream time passes waits and deadlines.
    Runs until SIGTERM or Ctrl-C.
    """
    import signal
    import threading

    from tradeflux.gateway.ticker import TICKED, run_ticker
    from tradeflux.gateway.writer import TradeWriter
    from tradeflux.stream.runner import configure_logging

    settings = _state.settings(topic_prefix=prefix)
    configure_logging(logging.DEBUG if _state.debug else logging.INFO)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: stop.set())
    writer = TradeWriter(settings.client_config(), settings.topic_prefix)
    logging.getLogger("tradeflux").info(
        "ticker started every_s=%g topics=%s",
        every,
        ",".join(settings.topic_prefix + t for t in TICKED),
    )
    try:
        written = run_ticker(writer, every, stop)
    finally:
        writer.close()
    logging.getLogger("tradeflux").info("ticker stopped ticks=%d", written)


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
    from tradeflux.security.policy import check_bind
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
    check_bind(settings, host)
    service = QueryService(settings, targets, instance_id=instance_id)
    scheme = "https" if service.tls else "http"
    logger.info("query service listening url=%s://%s:%d/", scheme, host, port)
    serve(service, host, port)
