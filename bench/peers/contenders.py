"""The contenders of bench/compare.py: how each is built and started.

Every contender reads EnrichedTrade JSON keyed by account from one input topic and writes
Position JSON keyed ``account|instrument`` (the raw loop copies the trades instead).
Each run gets a fresh group / application id, so it starts from offset 0 with empty state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PEERS = REPO / "bench" / "peers"
KS_DIR = PEERS / "kafka-streams"
KS_JAR = KS_DIR / "target" / "positions-kafka-streams.jar"
KS_HEAP = "512m"
VENVS = {"quix": PEERS / ".venv-quix", "faust": PEERS / ".venv-faust"}
TRADEFLUX_PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Contender:
    """One implementation of the positions job under one configuration."""

    key: str  # short id, used in topic and group names
    label: str
    guarantee: str  # "exactly-once", "at-least-once" or "none"
    kind: str  # "positions" or "copy" (the raw loop)
    runtime: str  # "tradeflux", "raw", "kstreams", "quix", "faust"
    commit: str = "default"  # commit interval as the runtime takes it (ms for KS, s for Quix)
    instances: int = 1  # consumers in the group: tradeflux processes, Kafka Streams threads


@dataclass(frozen=True)
class Launch:
    """A command to start a contender, its environment and its working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    group: str  # its consumer group on the input (application id, app id, ...)
    members: int = 1  # consumers it runs in that group


def contenders(tradeflux_commit_ms: int) -> list[Contender]:
    """Return every contender; interval-based peers at their default and at tradeflux's."""
    ks_default_ms = 100  # StreamsConfig: commit.interval.ms defaults to 100 under exactly_once_v2
    quix_default_s = 5.0  # quixstreams.Application(commit_interval=5.0)
    same = " = tradeflux's" if tradeflux_commit_ms == ks_default_ms else ""
    out = [
        Contender("tradeflux", "tradeflux (positions service as shipped)", "exactly-once",
                  "positions", "tradeflux"),
        Contender("ks", f"Kafka Streams, commit {ks_default_ms} ms (default{same})",
                  "exactly-once", "positions", "kstreams"),
        # Both scale out the same way: more consumers in one group, partitions split
        # among them (tradeflux: processes, as `tradeflux run` is deployed; Kafka Streams:
        # stream threads in one JVM, num.stream.threads).
        Contender("tradeflux2", "tradeflux, 2 instances (processes) in one group",
                  "exactly-once", "positions", "tradeflux", instances=2),
        Contender("ks2", f"Kafka Streams, 2 stream threads, commit {ks_default_ms} ms",
                  "exactly-once", "positions", "kstreams", instances=2),
    ]  # fmt: skip
    if tradeflux_commit_ms != ks_default_ms:
        out.append(
            Contender(f"ks{tradeflux_commit_ms}",
                      f"Kafka Streams, commit {tradeflux_commit_ms} ms (tradeflux's)",
                      "exactly-once", "positions", "kstreams", str(tradeflux_commit_ms))
        )  # fmt: skip
    out += [
        Contender("quix", f"Quix Streams, commit {quix_default_s:g} s (default)", "exactly-once",
                  "positions", "quix"),
        Contender(f"quix{tradeflux_commit_ms}",
                  f"Quix Streams, commit {tradeflux_commit_ms} ms (tradeflux's)",
                  "exactly-once", "positions", "quix", str(tradeflux_commit_ms / 1000)),
        Contender("faust", "Faust, table", "at-least-once", "positions", "faust"),
        Contender("raw", "raw consume-produce loop (limit; no state)", "none", "copy", "raw"),
    ]  # fmt: skip
    return out


def launch(
    c: Contender, bootstrap: str, source: str, target: str, run_id: str, workdir: Path,
    tradeflux_prefix: str = "",
) -> Launch:  # fmt: skip
    """Return how to start contender ``c`` reading ``source`` and writing ``target``.

    tradeflux's topics come from ``tradeflux_prefix`` (``<prefix>trades.enriched`` in,
    ``<prefix>positions`` out): ``source`` and ``target`` must be those names.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    state = workdir / f"state-{run_id}"
    group = f"positions-{run_id}"  # the peers' application / consumer group / app id
    state.mkdir(parents=True, exist_ok=True)
    if c.runtime == "tradeflux":
        assert source == f"{tradeflux_prefix}trades.enriched", source
        assert target == f"{tradeflux_prefix}positions", target
        env.update(PYTHONPATH=str(REPO), BENCH_SERVICE_NAME=f"positions-{run_id}")
        group = f"{tradeflux_prefix}positions-{run_id}"
        argv = [str(TRADEFLUX_PYTHON), "-m", "tradeflux.cli", "--bootstrap", bootstrap, "run",
                "bench.peers.tradeflux_service:SERVICE", "--prefix", tradeflux_prefix,
                "--instance-id", "bench"]  # fmt: skip
        if c.instances > 1:
            argv = [str(TRADEFLUX_PYTHON), str(PEERS / "instances.py"), str(c.instances), "--",
                    *argv]  # fmt: skip
    elif c.runtime == "raw":
        group = f"raw-{run_id}"
        argv = [str(TRADEFLUX_PYTHON), str(REPO / "bench" / "raw_loop.py"), bootstrap, source,
                target, group]  # fmt: skip
    elif c.runtime == "kstreams":
        argv = [java(), f"-Xmx{KS_HEAP}", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-jar", str(KS_JAR), bootstrap, source, target, f"positions-{run_id}",
                str(state), c.commit, str(c.instances)]  # fmt: skip
    elif c.runtime == "quix":
        argv = [str(VENVS["quix"] / "bin" / "python"), str(PEERS / "quix" / "positions_app.py"),
                bootstrap, source, target, f"positions-{run_id}", str(state), c.commit]  # fmt: skip
    elif c.runtime == "faust":
        env.update(BENCH_BOOTSTRAP=bootstrap, BENCH_INPUT=source, BENCH_OUTPUT=target,
                   BENCH_APP_ID=f"positions-{run_id}", BENCH_STATE_DIR=str(state))  # fmt: skip
        argv = [str(VENVS["faust"] / "bin" / "python"), str(PEERS / "faust" / "positions_app.py"),
                "worker", "-l", "warn"]  # fmt: skip
    else:
        raise ValueError(c.runtime)
    return Launch(argv, env, state, group, c.instances)


def java() -> str:
    """Return the java executable (JAVA_HOME, else PATH), as the local broker finds it."""
    from tradeflux.broker.jars import find_java

    return find_java()


def build_kafka_streams(log: Path, rebuild: bool = False) -> None:
    """Build the Kafka Streams jar (Maven) if a source is newer than it, or if asked."""
    sources = [KS_DIR / "pom.xml", *(KS_DIR / "src").rglob("*.java")]
    stale = not KS_JAR.exists() or any(p.stat().st_mtime > KS_JAR.stat().st_mtime for p in sources)
    if rebuild or stale:
        _run(["mvn", "-q", "-B", "package"], KS_DIR, log, "Maven build of the Kafka Streams peer")


def build(log: Path, rebuild: bool = False) -> None:
    """Build every peer: the Kafka Streams jar (Maven) and the Quix and Faust venvs (pip)."""
    build_kafka_streams(log, rebuild)
    for name, venv in VENVS.items():
        if not (venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(venv)], PEERS, log, f"venv for {name}")
        pip = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(PEERS / name / "requirements.txt"),
        ]
        _run(pip, PEERS, log, f"pip install of the {name} peer")


def _run(argv: list[str], cwd: Path, log: Path, what: str) -> None:
    with log.open("ab") as out:
        code = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if code.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise SystemExit(
            f"{what} failed (exit {code.returncode}); end of {log}:\n" + "\n".join(tail)
        )


def versions() -> dict[str, str]:
    """Return the versions of every runtime and library in play."""
    import platform

    import confluent_kafka

    out = {"python": platform.python_version(),
           "tradeflux confluent-kafka": f"{confluent_kafka.version()} (librdkafka "
                                        f"{confluent_kafka.libversion()[0]})"}  # fmt: skip
    probe = subprocess.run([java(), "-version"], capture_output=True, text=True, check=False)
    out["java"] = (probe.stderr or probe.stdout).splitlines()[0] if probe.returncode == 0 else "?"
    pom = (KS_DIR / "pom.xml").read_text()
    out["kafka-streams"] = pom.split("<kafka.version>")[1].split("<")[0]
    for name, packages in (("quix", ("quixstreams", "confluent-kafka")),
                           ("faust", ("faust-streaming", "aiokafka"))):  # fmt: skip
        code = ("import importlib.metadata as m; print(' '.join(m.version(p) for p in "
                f"{packages!r}))")  # fmt: skip
        got = subprocess.run([str(VENVS[name] / "bin" / "python"), "-c", code],
                             capture_output=True, text=True, check=False)  # fmt: skip
        vers = got.stdout.split() if got.returncode == 0 else ["?"] * len(packages)
        for package, version in zip(packages, vers, strict=False):
            out[f"{name}: {package}"] = version
    return out
