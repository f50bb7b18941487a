"""The ``tradeflux`` command as a user runs it: real processes, real exit codes, real output.

Every failure a user can fix prints exactly one line, ``tradeflux: error: ...``, on stderr
and exits non-zero; never a stack trace.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from tests.conftest import free_port_block, unique
from tradeflux.broker import local
from tradeflux.broker.jars import pinned_kafka_version
from tradeflux.config import Settings, load_settings

CACHE_DIR = load_settings().cache_dir
VENV_BIN = Path(sys.executable).parent
_CLUSTER_ID = re.compile(r"cluster id ([A-Za-z0-9_-]{22}),")


def cli_env(env: dict[str, str] | None = None, without: tuple[str, ...] = ()) -> dict[str, str]:
    """Return this process's environment without TRADEFLUX_* settings (nor ``without``)."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("TRADEFLUX_") and k not in without
    }
    clean["TRADEFLUX_CACHE_DIR"] = str(CACHE_DIR)
    clean.update(env or {})
    return clean


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    without: tuple[str, ...] = (),
    timeout_s: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``tradeflux ARGS`` in a fresh interpreter, with ``cli_env(env, without)``."""
    return subprocess.run(
        [sys.executable, "-m", "tradeflux.cli", *args],
        env=cli_env(env, without),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed with exactly one ``tradeflux: error:`` line; return its text."""
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tradeflux: error: "), proc.stderr
    return lines[0].removeprefix("tradeflux: error: ")


def java_processes_of(runtime_dir: Path) -> list[int]:
    """Return the pids of live java processes whose command line mentions ``runtime_dir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"java" in cmdline and str(runtime_dir).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Iterator[Path]:
    """A runtime folder whose local cluster, if a test started one, is stopped afterwards."""
    folder = tmp_path / "runtime"
    try:
        yield folder
    finally:
        local.stop_cluster(load_settings(env={}, runtime_dir=folder), grace_s=30)


def test_start_on_a_port_in_use_fails_with_one_line_naming_the_port(runtime_dir: Path) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]

        proc = run_cli("broker", "start", "--port", str(port), "--runtime-dir", str(runtime_dir))

    assert proc.returncode == 1
    assert one_error_line(proc) == (
        f"port {port} on 127.0.0.1 is already in use by another process; stop it, or start "
        "the broker on other ports with --port N (it needs N..N+1 per node)"
    )
    assert java_processes_of(runtime_dir) == []


@pytest.mark.parametrize("command", [["broker", "start"], ["broker", "fetch"]])
def test_broker_commands_without_java_fail_first_with_one_line_saying_how_to_install_it(
    tmp_path: Path, runtime_dir: Path, command: list[str]
) -> None:
    cache = tmp_path / "empty-cache"
    args = [*command, "--runtime-dir", str(runtime_dir)] if command[1] == "start" else command
    env = {"PATH": str(VENV_BIN), "TRADEFLUX_CACHE_DIR": str(cache)}

    proc = run_cli(*args, env=env, without=("JAVA_HOME",))

    assert proc.returncode == 1
    assert one_error_line(proc) == (
        "java was not found on PATH (nor under JAVA_HOME); install a JDK or JRE 17+, "
        "e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME"
    )
    # Java is checked before anything is fetched or laid out.
    assert not cache.exists()
    assert not runtime_dir.exists()


def test_fetch_of_a_version_maven_cannot_resolve_fails_with_one_line_about_maven(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    env = {"TRADEFLUX_KAFKA_VERSION": "0.0.0-nonexistent", "TRADEFLUX_CACHE_DIR": str(cache)}

    proc = run_cli("broker", "fetch", env=env, timeout_s=300)

    assert proc.returncode == 1
    message = one_error_line(proc)
    assert message.startswith("Maven could not fetch Apache Kafka 0.0.0-nonexistent from Maven ")
    assert message.endswith(
        "; check the version, the network, and any proxy or mirror in ~/.m2/settings.xml"
    )
    # Nothing half-fetched is left to be mistaken for a complete copy.
    assert list((cache / "kafka-0.0.0-nonexistent").iterdir()) == []


def test_start_of_a_version_maven_cannot_resolve_fails_before_laying_out_a_cluster(
    tmp_path: Path, runtime_dir: Path
) -> None:
    env = {
        "TRADEFLUX_KAFKA_VERSION": "0.0.0-nonexistent",
        "TRADEFLUX_CACHE_DIR": str(tmp_path / "cache"),
    }
    port = free_port_block(2)

    proc = run_cli(
        "broker", "start", "--port", str(port), "--runtime-dir", str(runtime_dir), env=env
    )

    assert proc.returncode == 1
    assert one_error_line(proc).startswith("Maven could not fetch Apache Kafka 0.0.0-nonexistent")
    assert not runtime_dir.exists()


def test_unknown_topic_set_fails_with_one_line_listing_the_choices() -> None:
    proc = run_cli("topics", "create", "--set", "bogus")

    assert proc.returncode == 2
    message = one_error_line(proc)
    assert message.startswith("Invalid value for '--set': ")
    assert message.endswith("'bogus' is not one of 'all', 'core', 'refdata'. (see --help)")


def test_unknown_command_fails_with_one_line() -> None:
    proc = run_cli("broker", "launch")

    assert proc.returncode == 2
    assert one_error_line(proc) == "No such command 'launch'. (see --help)"


def test_invalid_setting_in_environment_fails_with_one_line_naming_the_variable() -> None:
    proc = run_cli("topics", "list", env={"TRADEFLUX_PARTITIONS": "abc"})

    assert proc.returncode == 2
    assert one_error_line(proc) == (
        "TRADEFLUX_PARTITIONS: partitions must be a whole number, got 'abc'; "
        "for example partitions=6"
    )


@pytest.mark.slow
def test_commands_fail_within_25_s_when_no_broker_answers_at_the_bootstrap(
    runtime_dir: Path,
) -> None:
    bootstrap = f"127.0.0.1:{free_port_block(1)}"
    commands = {
        "topics list": ["--bootstrap", bootstrap, "topics", "list"],
        "broker status": ["--bootstrap", bootstrap, "broker", "status"],
    }
    env = cli_env({"TRADEFLUX_RUNTIME_DIR": str(runtime_dir)})
    started = time.monotonic()
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "tradeflux.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, popen in running.items():
        stdout, stderr = popen.communicate(timeout=30)
        results[name] = subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)
    elapsed_s = time.monotonic() - started

    # librdkafka gives up after 10 s; the rest is two interpreters starting side by side,
    # which a loaded machine slows down. 25 s still tells a bounded failure from a hang.
    assert elapsed_s < 25
    for proc in results.values():
        assert proc.returncode == 1
        assert one_error_line(proc) == (
            f"no Kafka broker answered at {bootstrap} within 10s (Failed to get metadata: "
            "Local: Broker transport failure); start a local one with `tradeflux broker start`, "
            "or point TRADEFLUX_BOOTSTRAP (or --bootstrap) at a running cluster"
        )


def test_status_without_a_running_local_broker_fails_with_one_line(runtime_dir: Path) -> None:
    proc = run_cli("broker", "status", "--runtime-dir", str(runtime_dir))

    assert proc.returncode == 1
    assert one_error_line(proc) == (
        "no local broker is running; start one with `tradeflux broker start` "
        "(or pass --bootstrap to ask another cluster)"
    )


def test_stop_without_a_local_broker_says_so_and_succeeds(runtime_dir: Path) -> None:
    proc = run_cli("broker", "stop", "--runtime-dir", str(runtime_dir))

    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        "no local Kafka node was running\n",
        "",
    )


@pytest.mark.integration
def test_topics_create_then_describe_prints_full_names_and_layout(kafka: Settings) -> None:
    prefix = unique("cli") + "."
    base = ["--bootstrap", kafka.bootstrap, "topics"]

    created = run_cli(*base, "create", "--set", "refdata", "--prefix", prefix, "--partitions", "2")
    described = run_cli(*base, "describe", f"{prefix}refdata.accounts", f"{prefix}marketdata.fx")

    assert (created.returncode, created.stderr) == (0, "")
    rows = _table_rows(created.stdout)
    assert rows[0] == ["topic", "outcome"]
    assert rows[1:] == [
        [f"{prefix}{name}", "created"]
        for name in (
            "refdata.instruments",
            "refdata.accounts",
            "refdata.counterparties",
            "refdata.limits",
            "marketdata.prices",
            "marketdata.fx",
        )
    ]
    assert (described.returncode, described.stderr) == (0, "")
    rows = _table_rows(described.stdout)
    assert rows[0] == ["topic", "partitions", "replication", "cleanup.policy", "leaders", "min ISR"]
    assert [row[:4] for row in rows[1:]] == [
        [f"{prefix}refdata.accounts", "2", "1", "compact"],
        [f"{prefix}marketdata.fx", "2", "1", "compact"],
    ]


def _table_rows(text: str) -> list[list[str]]:
    """Return the cells of a rich table's header and body rows."""
    rows = []
    for line in text.splitlines():
        if line.startswith(("┃", "│")):
            rows.append([cell.strip() for cell in re.split(r"[┃│]", line)[1:-1]])
    return rows


@pytest.mark.slow
def test_start_status_stop_round_trip_leaves_no_java_process(runtime_dir: Path) -> None:
    port = free_port_block(2)
    version = pinned_kafka_version()

    started = run_cli("broker", "start", "--port", str(port), "--runtime-dir", str(runtime_dir))
    status = run_cli("broker", "status", "--runtime-dir", str(runtime_dir))
    again = run_cli("broker", "start", "--port", str(port), "--runtime-dir", str(runtime_dir))
    stopped = run_cli("broker", "stop", "--runtime-dir", str(runtime_dir))

    assert (started.returncode, started.stderr) == (0, ""), started
    assert started.stdout.startswith(f"Kafka {version} is up at 127.0.0.1:{port} (1 node(s), ")
    assert started.stdout.endswith(f"use it: export TRADEFLUX_BOOTSTRAP=127.0.0.1:{port}\n")
    match = _CLUSTER_ID.search(started.stdout)
    assert match is not None, started.stdout
    cluster_id = match.group(1)

    assert (status.returncode, status.stderr) == (0, ""), status
    assert status.stdout.startswith(f"cluster id: {cluster_id}\ncontroller: 1\n")
    rows = _table_rows(status.stdout)
    assert rows[0] == ["node", "address", "broker version", "commit"]
    assert rows[1][:3] == ["1", f"127.0.0.1:{port}", version]
    assert re.fullmatch(r"[0-9a-f]{16}", rows[1][3])
    assert len(rows) == 2

    assert again.returncode == 1
    assert one_error_line(again) == (
        f"a local tradeflux broker is already running at 127.0.0.1:{port} "
        f"(runtime folder {runtime_dir}); stop it with `tradeflux broker stop`"
    )

    assert (stopped.returncode, stopped.stderr) == (0, "")
    assert re.fullmatch(r"stopped 1 Kafka node\(s\) \(pids \d+\)\n", stopped.stdout)
    assert java_processes_of(runtime_dir) == []


@pytest.mark.slow
def test_broker_restarts_on_its_ports_right_after_a_stop_that_closed_client_connections(
    runtime_dir: Path,
) -> None:
    port = free_port_block(2)
    args = ["--port", str(port), "--runtime-dir", str(runtime_dir)]
    first = run_cli("broker", "start", *args)
    assert first.returncode == 0, first
    client = Producer(
        {"bootstrap.servers": f"127.0.0.1:{port}", "logger": logging.getLogger("tests.kafka")}
    )
    client.list_topics(timeout=10)  # an open connection the broker closes when it stops

    stopped = run_cli("broker", "stop", "--runtime-dir", str(runtime_dir))
    restarted = run_cli("broker", "start", *args)

    assert stopped.returncode == 0, stopped
    assert (restarted.returncode, restarted.stderr) == (0, ""), restarted
    # The same cluster came back: its id survived the stop.
    assert _CLUSTER_ID.findall(restarted.stdout) == _CLUSTER_ID.findall(first.stdout)
    del client
