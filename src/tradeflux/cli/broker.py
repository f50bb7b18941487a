"""``tradeflux broker`` and ``tradeflux topics``: a local Kafka and the topic set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tradeflux.broker import local
from tradeflux.broker.admin import describe_cluster
from tradeflux.broker.jars import fetch_kafka, find_java, is_fetched, pinned_kafka_version
from tradeflux.broker.topics import TopicSet, create_topics, describe_topics, list_topics
from tradeflux.cli.app import (
    RuntimeDir,
    _state,
    broker_app,
    console,
    err_console,
    topics_app,
)
from tradeflux.config import Settings, load_settings
from tradeflux.errors import TradefluxError


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
    sasl: Annotated[
        bool,
        typer.Option(
            "--sasl",
            help="SASL/SCRAM-SHA-512 and the StandardAuthorizer: one user per tradeflux "
            "process, nothing allowed without an ACL (`tradeflux acls apply`). A new cluster "
            "(or --fresh) only.",
        ),
    ] = False,
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
        cluster = local.start_cluster(settings, nodes=nodes, port=port, fresh=fresh, sasl=sasl)
    console.print(
        f"Kafka {cluster.kafka_version} is up at {cluster.bootstrap} "
        f"({len(cluster.nodes)} node(s), cluster id {cluster.cluster_id}, "
        f"{time.monotonic() - started:.1f}s)"
    )
    console.print(f"use it: export TRADEFLUX_BOOTSTRAP={cluster.bootstrap}")
    if cluster.sasl:
        credentials = local.load_credentials(settings)
        console.print(
            f"SASL/SCRAM-SHA-512 with the StandardAuthorizer; passwords in "
            f"{local.credentials_file(settings)} (0600). Each process's environment:",
            markup=False,
        )
        for user in (local.ADMIN_USER, *local.SASL_USERS):
            env = local.sasl_environment(user, credentials[user])
            line = " ".join(f"{k}={v}" for k, v in env.items())
            console.print(f"  {user}: export {line}", markup=False, soft_wrap=True)
        console.print(
            "then, as admin: tradeflux topics create && tradeflux acls apply", markup=False
        )


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
        settings = local.admin_settings(
            load_settings(_state.config, runtime_dir=runtime_dir), cluster
        )
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
