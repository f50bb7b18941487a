"""Replicas that start together: four instances of a service with stores, at once, on fresh topics.

A deployment's replicas start at the same moment, and each finds the changelogs of its
stores missing and creates them, while the others do the same. None may trip over a
changelog another one is creating (an unknown partition, a missing leader): the test
starts four instances of the positions service (three stores) together against fresh
topics on a 3-node cluster, twenty times, and fails if any instance exits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import ServiceProcess, create_topics
from tests.support.supervisor import SelfExit
from tradeflux import topics
from tradeflux.broker import local
from tradeflux.config import Settings, load_settings

pytestmark = [pytest.mark.fault, pytest.mark.slow]

ROUNDS = 20
REPLICAS = 4
SERVICE = "positions"
TOPICS = (topics.ENRICHED.name, topics.POSITIONS.name, topics.REJECTED.name)
UP_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Client settings of a 3-node cluster of this module's own (loopback, 384m heaps)."""
    runtime = tmp_path_factory.mktemp("startup-cluster")
    settings = load_settings(
        env={}, runtime_dir=runtime, cache_dir=load_settings().cache_dir, broker_heap="384m"
    )
    cluster = local.start_cluster(settings, nodes=3, port=free_port_block(6), timeout_s=180)
    try:
        yield load_settings(env={}, bootstrap=cluster.bootstrap)
    finally:
        local.stop_cluster(settings, grace_s=30)


def _start_together(settings: Settings, log_dir: Path) -> list[SelfExit]:
    """One round: fresh topics, four instances at once; return the instances that exited."""
    prefix = unique("together") + "."
    log_dir.mkdir(parents=True)
    create_topics(settings, {prefix + name: 6 for name in TOPICS})
    procs = {
        f"{SERVICE}-{i}": ServiceProcess(settings, SERVICE, prefix, f"{SERVICE}-{i}", log_dir)
        for i in range(1, REPLICAS + 1)
    }
    started = time.monotonic()
    exits: list[SelfExit] = []
    try:
        # Up: every instance has restored the stores of the partitions it was given.
        while time.monotonic() - started < UP_TIMEOUT_S:
            for name, proc in procs.items():
                if not proc.alive() and name not in {e.instance for e in exits}:
                    lines = tuple(proc.log().splitlines()[-40:])
                    exits.append(
                        SelfExit(name, proc.returncode(), time.monotonic() - started, lines)
                    )
            if exits or all("store restored" in p.log() for p in procs.values()):
                break
            time.sleep(0.2)
        else:
            not_up = [n for n, p in procs.items() if "store restored" not in p.log()]
            raise AssertionError(f"{not_up} restored nothing within {UP_TIMEOUT_S:g}s")
    finally:
        # Stopped together too, as a deployment's replicas are (and four times faster
        # than one after another): SIGTERM to each, then each one's exit code.
        alive = {name: proc for name, proc in procs.items() if proc.alive()}
        for proc in alive.values():
            proc.signal_stop()
        for name, proc in alive.items():
            code = proc.wait(30)
            if code != 0:
                lines = tuple(proc.log().splitlines()[-40:])
                exits.append(SelfExit(name, code, time.monotonic() - started, lines))
    return exits


@pytest.mark.timeout(1800)
def test_four_replicas_started_at_once_on_fresh_topics_never_exit(
    three_nodes: Settings, tmp_path: Path
) -> None:
    exits: list[tuple[int, SelfExit]] = []
    for round_ in range(1, ROUNDS + 1):
        exits += [(round_, e) for e in _start_together(three_nodes, tmp_path / f"round-{round_}")]
    rounds = sorted({r for r, _ in exits})
    detail = "\n".join(f"round {r}:{e.describe()}" for r, e in exits)
    assert exits == [], f"{len(exits)} exit(s) in {len(rounds)} of {ROUNDS} rounds:\n{detail}"
