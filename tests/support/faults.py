"""The faults a cluster suffers, applied one after another to a running deployment.

Each fault is injected while input flows and lasts as long as its kind needs (a broker
down for a few seconds; a cut held until the cluster has reacted to it: partitions moved,
a broker fenced, an ISR shrunk); then the driver heals it and waits until everything is
whole again (every instance up, every group stable with all its members and partitions,
every partition fully replicated) before the next fault, after a short random pause so
that faults land at random moments of the stream.

Kinds: ``service-kill`` (SIGKILL one instance; the supervisor restarts it),
``broker-kill`` (SIGKILL one node; once the controller has moved its leaderships,
start it again), ``rolling-restart`` (SIGTERM each
node in turn, start it, wait until it is back in every ISR), ``service-cut`` (one
instance cut off the network for longer than its session timeout: its partitions move
to the other instance; healed, its old transactions must be fenced), ``quorum-cut`` (one
node cut off the controller quorum until the controller has fenced it and its leaderships
moved), ``leader-cut`` (the leader of a partition cut off from its followers until its
ISR has shrunk to itself, so writes to its partitions fail for want of replicas).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.fault_cluster import FaultCluster
from tests.support.fault_pipeline import (
    PARTITIONS,
    SESSION_TIMEOUT_S,
    Deployment,
    group_members,
)
from tests.support.kafka_tools import wait_for
from tradeflux.broker.errors import BrokerError

_LOG = logging.getLogger("tests.fault")

BROKER_DOWN_S = 5.0  # how long a killed broker stays down: a pod's restart


@dataclass(frozen=True)
class Applied:
    """One fault as it happened."""

    kind: str
    target: str
    seconds: float  # from injection until everything was whole again


@dataclass
class FaultDriver:
    """Applies faults to ``deployment`` on ``cluster``; records them and what did not recover."""

    cluster: FaultCluster
    deployment: Deployment
    rng: random.Random
    recover_timeout_s: float = 180.0
    applied: list[Applied] = field(default_factory=list)
    unrecovered: list[str] = field(default_factory=list)
    target: str = ""  # of the fault under way
    _next_node: int = 0

    def run(self, schedule: list[str], keep_going: Callable[[], bool]) -> None:
        """Apply the faults of ``schedule`` in order while ``keep_going()``; stop at the first
        one after which the deployment does not become whole within the timeout."""
        kinds: dict[str, Callable[[], str]] = {
            "service-kill": self.service_kill,
            "broker-kill": self.broker_kill,
            "rolling-restart": self.rolling_restart,
            "service-cut": self.service_cut,
            "quorum-cut": self.quorum_cut,
            "leader-cut": self.leader_cut,
        }
        for kind in schedule:
            if not keep_going():
                self.unrecovered.append(f"the input ran out before {kind}: feed longer")
                return
            started = time.monotonic()
            self.target = "?"
            try:
                target = kinds[kind]()
                self.settle()
            except (AssertionError, BrokerError) as exc:  # the cluster did not come back
                self.unrecovered.append(f"{kind} of {self.target}: {exc}")
                return
            done = Applied(kind, target, time.monotonic() - started)
            self.applied.append(done)
            _LOG.info("fault done kind=%s target=%s seconds=%.1f", kind, target, done.seconds)
            _hold(self.rng.uniform(1.0, 3.0))  # steady processing before the next fault

    def settle(self) -> None:
        """Wait until every instance is up, every group whole, every partition replicated."""
        last: list[str] = []

        def whole() -> bool:
            nonlocal last
            last = self.deployment.unready()
            if not last:
                short = self.cluster.under_replicated()
                last = ["cluster metadata unavailable"] if short is None else short[:5]
            return not last

        try:
            wait_for(whole, self.recover_timeout_s, "the deployment to be whole", every_s=2.0)
        except AssertionError:
            raise AssertionError(f"not whole after {self.recover_timeout_s:g}s: {last}") from None

    # -- the faults ----------------------------------------------------------------------

    def service_kill(self) -> str:
        name = self.target = self.rng.choice(sorted(self.deployment.supervisor.instances))
        wait_for(lambda: self.deployment.supervisor.alive(name), 60, f"{name} to be up")
        self.deployment.supervisor.kill(name)
        return name

    def _node(self) -> int:
        nodes = self.cluster.node_ids
        node = nodes[self._next_node % len(nodes)]
        self._next_node += 1
        self.target = f"node {node}"
        return node

    def broker_kill(self) -> str:
        node = self._node()
        self.cluster.kill(node)
        _hold(BROKER_DOWN_S)
        # Down until the controller has noticed (its broker session timed out) and moved the
        # node's leaderships: clients must follow the leaders elsewhere, and back.
        wait_for(
            lambda: self.cluster.leads_nothing(node), self.recover_timeout_s,
            f"node {node}'s leaderships to move",
        )  # fmt: skip
        self.cluster.start(node)
        self.cluster.wait_fully_replicated(self.recover_timeout_s)
        return f"node {node}"

    def rolling_restart(self) -> str:
        self.target = "every node"
        self.cluster.rolling_restart(self.recover_timeout_s)
        return "nodes " + ",".join(str(n) for n in self.cluster.node_ids)

    def service_cut(self) -> str:
        name = self.target = self.rng.choice(sorted(self.deployment.supervisor.instances))
        host = self.deployment.hosts[name]
        group = self.deployment.group(self.deployment.service_of(name))
        brokers = list(self.cluster.hosts.values())
        cut = self.cluster.net.isolate(host, brokers)
        started = time.monotonic()
        try:

            def moved() -> bool:
                members = group_members(self.deployment.settings, group)
                return (
                    time.monotonic() - started > SESSION_TIMEOUT_S
                    and all(address != host.address for address, _ in members)
                    and sum(n for _, n in members) == PARTITIONS
                )

            wait_for(moved, self.recover_timeout_s, f"{group}'s partitions to leave {name}")
        finally:
            cut.heal()
        return name

    def quorum_cut(self) -> str:
        node = self._node()
        cut = self.cluster.cut_from_quorum(node)
        try:
            wait_for(
                lambda: self.cluster.leads_nothing(node), self.recover_timeout_s,
                f"node {node} to be fenced off its leaderships",
            )  # fmt: skip
        finally:
            cut.heal()
        self.cluster.wait_fully_replicated(self.recover_timeout_s)
        return f"node {node}"

    def leader_cut(self) -> str:
        topic = self.deployment.prefix + "trades.enriched"
        leader = self.cluster.leaders(topic)[0]
        self.target = f"node {leader}"
        cut = self.cluster.cut_from_followers(leader)
        try:
            wait_for(
                lambda: self.cluster.isr_shrunk_to(leader), self.recover_timeout_s,
                f"node {leader}'s ISR to shrink to itself",
            )  # fmt: skip
            _hold(3.0)  # writes to its partitions fail for want of replicas meanwhile
        finally:
            cut.heal()
        self.cluster.wait_fully_replicated(self.recover_timeout_s)
        return f"node {leader} (leader of {topic}[0])"


def _hold(seconds: float) -> None:
    """Let a fault last (or the stream run) for ``seconds``: a duration, not a wait for a state."""
    time.sleep(seconds)


SHORT = ["service-kill", "broker-kill", "service-cut", "service-kill"]
"""A kill of each kind and one partition: the form ``./dev test`` runs."""


def long_schedule() -> list[str]:
    """20 service kills, 3 broker kills, a rolling restart and 2 partitions of each kind."""
    others = [
        "broker-kill", "service-cut", "quorum-cut", "leader-cut", "rolling-restart",
        "broker-kill", "service-cut", "quorum-cut", "leader-cut", "broker-kill",
    ]  # fmt: skip
    schedule = []
    for other in others:
        schedule += ["service-kill", "service-kill", other]
    return schedule
