"""The contenders of bench/latency.py: the core pipeline's three hops, and how each starts.

Every contender reads TradeEvent JSON keyed by trade id from ``<prefix>trades.raw`` and
writes ``<prefix>trades.enriched`` (keyed by account), ``<prefix>positions`` (keyed
``account|instrument``, in the account's partition) and ``<prefix>pnl`` (keyed by account):

- **tradeflux**: ``tradeflux run`` of the shipped validator, positions and pnl services,
  three processes (and, for the SSE hop, ``tradeflux query``).
- **Kafka Streams**: ``ChainApp`` in bench/peers/kafka-streams, one JVM, three
  sub-topologies, exactly_once_v2, at its default commit interval or at one given.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers import contenders as peers

from tradeflux import topics

REPO = Path(__file__).resolve().parents[2]
TRADEFLUX_SERVICES = ("validator", "positions", "pnl")
CHAIN_MAIN = "io.tradeflux.bench.ChainApp"


@dataclass(frozen=True)
class ChainContender:
    """One implementation of the chain under one configuration."""

    key: str  # short id, in topic and group names
    label: str
    runtime: str  # "tradeflux" or "kstreams"
    commit_ms: str = "default"  # Kafka Streams' commit.interval.ms
    sse: bool = False  # also run the query service and an SSE client (tradeflux)
    settings: tuple[str, ...] = ()  # more Kafka Streams settings, KEY=VALUE


# What tradeflux's runtime sets on its own clients for latency (src/tradeflux/stream/app.py),
# given to the latency-tuned Kafka Streams row too: the transactional producer retries a
# CONCURRENT_TRANSACTIONS (the previous commit's markers still being written) after 5 ms,
# not 100, and the consumer's fetch waits at most 10 ms for data, not 500.
KS_LATENCY_SETTINGS = ("producer.retry.backoff.ms=5", "producer.linger.ms=1",
                       "consumer.fetch.max.wait.ms=10")  # fmt: skip


def chain_contenders(
    ks_commit_ms: int, sse: str, ks_settings: tuple[str, ...] = ()
) -> list[ChainContender]:
    """Return tradeflux (with SSE: ``same`` run, a ``separate`` one, or ``off``) and KS twice.

    ``ks_settings`` (KEY=VALUE) go to both Kafka Streams rows, e.g. num.stream.threads=3.
    """
    ks_default_ms = 100  # StreamsConfig: commit.interval.ms is 100 under exactly_once_v2
    out = [ChainContender("tradeflux", "tradeflux (3 services)", "tradeflux", sse=sse == "same")]
    if sse == "separate":
        out.append(
            ChainContender("tradeflux-sse", "tradeflux + query service, SSE client", "tradeflux",
                           sse=True)
        )  # fmt: skip
    out += [
        ChainContender("ks", f"Kafka Streams, commit {ks_default_ms} ms (default)", "kstreams",
                       settings=ks_settings),
        ChainContender("ks-tuned", f"Kafka Streams, commit {ks_commit_ms} ms, clients as "
                       "tradeflux's (for latency)", "kstreams", str(ks_commit_ms),
                       settings=KS_LATENCY_SETTINGS + ks_settings),
    ]  # fmt: skip
    return out


def topic_names(prefix: str) -> dict[str, str]:
    """Return the chain's topics by role: raw, enriched, positions, pnl."""
    return {
        "raw": prefix + topics.RAW.name,
        "enriched": prefix + topics.ENRICHED.name,
        "positions": prefix + topics.POSITIONS.name,
        "pnl": prefix + topics.PNL.name,
    }


@dataclass
class Started:
    """One process of a contender, with its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM the process (its group), SIGKILL it after 30 s."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


@dataclass
class Running:
    """Every process of one contender."""

    procs: list[Started] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.procs.append(Started(name, proc, log))

    def failed(self) -> str | None:
        """Return why a process ended (with the end of its log), or None if all run."""
        for p in self.procs:
            code = p.proc.poll()
            if code is not None:
                tail = " | ".join(p.log.read_text(errors="replace").strip().splitlines()[-3:])
                return f"{p.name} exited with code {code}; log {p.log}: {tail[-400:]}"
        return None

    def pids(self) -> dict[str, int]:
        return {p.name: p.proc.pid for p in self.procs}

    def logs(self) -> list[str]:
        """The processes' logs, and the services' batch traces (``--batch-trace``)."""
        texts = [p.log.read_text(errors="replace") for p in self.procs]
        traces = [p.log.with_suffix(".batches") for p in self.procs]
        return texts + [t.read_text(errors="replace") for t in traces if t.is_file()]

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def start_tradeflux(
    running: Running, bootstrap: str, prefix: str, workdir: Path, extra: list[str],
    query_port: int | None,
) -> None:  # fmt: skip
    """Start the three services (and the query service on ``query_port``)."""
    path = f"{REPO / 'src'}{os.pathsep}{REPO}"  # this tree's code, whatever is installed
    env = {**os.environ, "PYTHONPATH": path, "TRADEFLUX_BOOTSTRAP": bootstrap,
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    cli = [sys.executable, "-m", "tradeflux.cli"]
    for name in TRADEFLUX_SERVICES:
        log = workdir / f"{prefix}{name}.log"
        argv = [*cli, "run", name, "--prefix", prefix, "--instance-id", f"{name}-bench",
                "--batch-trace", str(log.with_suffix(".batches")), *extra]  # fmt: skip
        running.start(name, argv, env, log)
    if query_port is not None:
        argv = [*cli, "--auth", "none", "query", "--port", str(query_port), "--prefix", prefix]
        running.start("query", argv, env, workdir / f"{prefix}query.log")


def start_kafka_streams(running: Running, bootstrap: str, prefix: str, workdir: Path,
                        c: ChainContender) -> None:  # fmt: skip
    """Start the Kafka Streams chain (one JVM), its state in the work folder."""
    names = topic_names(prefix)
    state = workdir / f"state-{prefix.strip('-')}"
    state.mkdir(parents=True, exist_ok=True)
    argv = [peers.java(), f"-Xmx{peers.KS_HEAP}", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", str(peers.KS_JAR), CHAIN_MAIN, bootstrap, names["raw"], names["enriched"],
            names["positions"], names["pnl"], f"{prefix}chain", str(state), c.commit_ms,
            *c.settings]  # fmt: skip
    running.start("kafka-streams", argv, dict(os.environ), workdir / f"{prefix}ks.log")
