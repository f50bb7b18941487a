"""The whole pipeline on a 3-node cluster of hosts of their own, under every kind of fault.

Each service runs at two instances, each a ``tradeflux run`` process in its own
network namespace, kept up by a supervisor (as Kubernetes would). Simulated trades flow
in at a steady rate while the faults of the schedule hit the cluster one after another:
SIGKILLs of service instances and of brokers, a rolling restart of the brokers, and
network partitions (an instance cut off for longer than its session timeout, a broker
cut off from the controller quorum, a partition leader cut off from its followers). The
same input then goes through a fault-free copy of the pipeline under another prefix on
the same cluster, and every output topic of the two runs is compared, read_committed
(tests/support/pipeline_outputs.py says how, topic by topic), and with the independent
models of the rules.

The test fails on any difference AND on any instance that exited on its own: a fault
of the cluster must be waited out by the runtime, not survived by a restart.

The short form (``./dev test``) runs the chain every trade takes (validator, positions,
pnl) with a kill of each kind and one partition; with ``TRADEFLUX_SOAK=1`` the long form
runs the seven services whose every output has a model (validator, positions, pnl, risk,
repartition, analytics, settlement), 20 service kills, 3 broker kills, a rolling restart
and two partitions of each kind over a longer input. ``TRADEFLUX_FAULTS`` (a
comma-separated list of kinds, tests/support/faults.py) runs just those faults,
``TRADEFLUX_FAULT_SERVICES`` just those services (``shipped``: every shipped service).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support import netns
from tests.support.fault_cluster import FaultCluster, fault_cluster
from tests.support.fault_pipeline import (
    CHECKED,
    TRADE_TIME_SPEEDUP,
    Deployment,
    Feeder,
    deploy,
    drain,
    expectations,
    feed_all,
    prepare_prefix,
)
from tests.support.faults import SHORT, FaultDriver, long_schedule
from tests.support.kafka_tools import wait_for
from tests.support.pipeline import simulated_session
from tests.support.pipeline_outputs import differences, dump, read_outputs
from tradeflux.audit.run import AuditOptions, run_audit
from tradeflux.broker import local
from tradeflux.services import SHIPPED
from tradeflux.sim.trades import TradeMix

SOAK = os.environ.get("TRADEFLUX_SOAK", "") not in ("", "0")

pytestmark = [pytest.mark.fault, pytest.mark.slow]
# TRADEFLUX_FAULTS=leader-cut,quorum-cut runs those faults only (to reproduce one kind).
CHOSEN = [k for k in os.environ.get("TRADEFLUX_FAULTS", "").split(",") if k]
# The short form runs the chain of three hops that every trade takes (validator -> positions
# -> pnl: 6 instances, which two cores carry beside three brokers); the soak runs the seven
# services whose every output has a model (14 instances: the six and analytics);
# TRADEFLUX_FAULT_SERVICES=validator,positions,... runs those, "shipped" every shipped one.
_NAMED = [s for s in os.environ.get("TRADEFLUX_FAULT_SERVICES", "").split(",") if s]
SERVICES: tuple[str, ...] = (
    SHIPPED if _NAMED == ["shipped"] else CHECKED if _NAMED == ["checked"]
    else tuple(_NAMED) if _NAMED else CHECKED if SOAK else ("validator", "positions", "pnl")
)  # fmt: skip
assert set(SERVICES) <= set(SHIPPED), f"TRADEFLUX_FAULT_SERVICES: not shipped: {SERVICES}"
FEED_RATE = 100  # raw records per second, steady, while the faults run
# The fault-free copy needs no time for faults. Bars are the one output whose content
# depends on pacing (how far a partition runs ahead decides which events are late), so
# with analytics deployed the copy is fed at a pace its bars can still be compared at.
COPY_RATE = (5 if "analytics" in SERVICES else 20) * FEED_RATE
BUDGET_S = 3600 if SOAK else 420  # of input generated; the feed stops when the faults end
# How long a fault may take to be recovered from. The soak's brokers fetch one batch per
# replica fetch (the workaround below), so a restarted node catches up slower: in soak run 6
# the rolling restart was not back in full ISR within 300 s (the short form took 44 s).
RECOVER_S = 600 if SOAK else 300
TAIL_S = 3.0  # input after the last fault
SEED = 16
MIX = TradeMix(amend_rate=0.06, cancel_rate=0.03, duplicate_rate=0.02, malformed_rate=0.02)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    """A 3-node cluster on a test network of its own; torn down whatever happens."""
    reason = netns.available()
    if reason:  # a developer's machine may lack root; CI runs as root and must run this
        if os.environ.get("CI") == "true":
            pytest.fail(f"the cluster fault suite cannot run: {reason}")
        pytest.skip(reason)
    # The soak's rolling restart makes restarted followers leaders of what they caught up:
    # without the workaround for Kafka 4.4.0's transaction index defect (broker/local.py)
    # consumers read aborted records as committed there. The short form keeps the broker
    # defaults: a follower's catch-up is slower with it (once 215 s with other tests beside
    # it, against 44 s without it alone; not yet measured like for like).
    workaround = local.ONE_BATCH_REPLICA_FETCHES if SOAK else None
    with (
        netns.network() as net,
        fault_cluster(net, tmp_path_factory.mktemp("fault-cluster"), overrides=workaround) as fc,
    ):
        yield fc


class Phases:
    """How long each phase of the run took, for the report."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.done: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.done.append((name, now - self.last))
        self.last = now

    def __str__(self) -> str:
        parts = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in self.done)
        return f"{self.last - self.started:.0f}s: {parts}"


def _run_faulted(
    cluster: FaultCluster, prefix: str, records: list, log_dir: Path, schedule: list[str],
    phases: Phases,
) -> tuple[Deployment, FaultDriver, int]:  # fmt: skip
    deployment = deploy(cluster.client, cluster.net, prefix, 2, log_dir, "f", SERVICES)
    feeder = Feeder(cluster.client, prefix, records, FEED_RATE)
    driver = FaultDriver(cluster, deployment, random.Random(SEED), recover_timeout_s=RECOVER_S)
    try:
        wait_for(lambda: not deployment.unready(), 180, "the deployment to be whole", every_s=1)
        phases.mark(f"start {len(deployment.supervisor.instances)} instances")
        feeder.start()
        driver.run(schedule, keep_going=lambda: not feeder.exhausted)
        time.sleep(TAIL_S)  # the last fault's aftermath with input flowing
        fed = feeder.stop_feeding()
        phases.mark("faults")
    except BaseException:
        deployment.supervisor.kill_all()
        raise
    return deployment, driver, fed


def _report(
    faulted: Deployment, copy: Deployment, driver: FaultDriver, fed: int, diffs: list[str],
    stops: dict[str, int], phases: Phases, behind: list[str],
) -> str:  # fmt: skip
    faults = "\n".join(f"  {a.kind} {a.target}: {a.seconds:.1f}s" for a in driver.applied)
    exits = faulted.supervisor.self_exits + copy.supervisor.self_exits
    return "\n".join(
        [
            f"run time {phases}",
            f"input: {fed} raw records; {len(driver.applied)} faults applied, "
            f"{faulted.supervisor.kills} instance SIGKILLs:",
            faults,
            f"not recovered: {driver.unrecovered}",
            f"not caught up: {behind}",
            f"{len(diffs)} difference line(s):",
            *diffs[:80],
            f"{len(exits)} instance(s) exited on their own:",
            faulted.supervisor.report(),
            copy.supervisor.report(),
            f"exit codes on SIGTERM that were not 0: {stops}",
        ]
    )


def _exit_logs(*deployments: Deployment) -> str:
    """The end of each self-exited instance's log, for the report file."""
    blocks = []
    for deployment in deployments:
        for e in deployment.supervisor.self_exits:
            blocks.append(f"== {e.instance} rc={e.returncode} at {e.after_s:.1f}s")
            blocks += [f"   {line}" for line in e.last_lines]
    return "\n".join(blocks)


@pytest.mark.timeout(7200 if SOAK else 1200)
def test_pipeline_on_three_hosts_survives_kills_restarts_and_partitions_exactly_without_exits(
    cluster: FaultCluster, tmp_path: Path
) -> None:
    phases = Phases()
    schedule = CHOSEN or (long_schedule() if SOAK else SHORT)
    session = simulated_session(
        int(FEED_RATE * BUDGET_S), SEED, MIX, rate_per_s=FEED_RATE * TRADE_TIME_SPEEDUP
    )
    client = cluster.client
    faulted_prefix, copy_prefix = unique("faulted") + ".", unique("copy") + "."
    for prefix in (faulted_prefix, copy_prefix):
        prepare_prefix(client, prefix, session, SERVICES)
    phases.mark("input and topics")

    faulted, driver, fed = _run_faulted(
        cluster, faulted_prefix, session.records, tmp_path / "faulted", schedule, phases
    )
    records = session.records[:fed]
    expect = expectations(session, records)
    # The copy's instances start while the faulted run drains: they see no fault.
    copy = deploy(client, cluster.net, copy_prefix, 1, tmp_path / "copy", "c", SERVICES)
    try:
        try:
            behind = drain(faulted, expect.reference.pnl, timeout_s=600 if SOAK else 240)
        finally:
            stops = faulted.supervisor.stop()
        phases.mark("drain")
        wait_for(lambda: not copy.unready(), 180, "the copy to be whole", every_s=1)
        feed_all(client, copy_prefix, records, COPY_RATE)
        behind += [f"copy: {b}" for b in drain(copy, expect.reference.pnl, timeout_s=300)]
    finally:
        stops |= {f"copy {name}": code for name, code in copy.supervisor.stop().items()}
    phases.mark("fault-free copy")

    runs = (
        read_outputs(client, faulted_prefix, "faulted", SERVICES),
        read_outputs(client, copy_prefix, "copy", SERVICES),
    )
    diffs = differences(*runs, expect)
    # The operator's daily control on the faulted run's topics: it must find nothing either.
    options = AuditOptions(prefix=faulted_prefix, services=SERVICES)
    audit = run_audit(client.client_config(), options)
    diffs += [
        f"tradeflux audit, {r.check}: {d.key}: expected {d.expected}, found {d.found}"
        for r in audit.results
        for d in r.differences
    ]
    checked_by = {"positions": "positions", "pnl": "pnl", "settlement": "obligations",
                  "risk": "alerts"}  # fmt: skip
    wanted = {"conservation"} | {checked_by[s] for s in SERVICES if s in checked_by}
    diffs += [
        f"tradeflux audit did not run {r.check}: {r.skipped}"
        for r in audit.results
        if r.check in wanted and r.skipped is not None
    ]
    phases.mark("compare and audit")
    if diffs:
        for run in runs:
            dump(run, tmp_path / "outputs", diffs)
    report = _report(faulted, copy, driver, fed, diffs, stops, phases, behind)
    (tmp_path / "report.txt").write_text(report + "\n\n" + _exit_logs(faulted, copy) + "\n")
    print(report)
    exits = faulted.supervisor.self_exits + copy.supervisor.self_exits
    assert (diffs, driver.unrecovered, behind, len(exits), stops) == ([], [], [], 0, {}), report
