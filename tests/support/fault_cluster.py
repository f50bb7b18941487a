"""A 3-node KRaft cluster whose nodes are hosts of their own, and the broker faults on it.

Each node runs in a namespace of :mod:`tests.support.netns` (``ip netns exec``), on its
own data-plane address (clients and replication) and controller-plane address (the
quorum), so a test can kill, stop and restart one node, and cut a node off from the
quorum or a partition leader off from its followers while clients still reach it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tests.support.kafka_tools import wait_for
from tests.support.netns import CONTROLLER, DATA, Cut, Host, Network
from tradeflux.broker import local
from tradeflux.config import Settings, load_settings

_LOG = logging.getLogger("tests.fault")
_KAFKA_LOG = logging.getLogger("tests.kafka")

# A follower that cannot fetch leaves the ISR after this long (default 30 s): a leader
# cut off from its followers shrinks its ISR below min.insync.replicas within a test.
OVERRIDES = {"replica.lag.time.max.ms": "10000"}


@dataclass
class FaultCluster:
    """The cluster, its hosts and the network they are on."""

    net: Network
    runtime: Settings  # where the cluster's files are (for broker.local)
    cluster: local.LocalCluster
    hosts: dict[int, Host]  # node id -> host

    @property
    def client(self) -> Settings:
        """Return settings for a client of this cluster (in the root namespace)."""
        return load_settings(env={}, bootstrap=self.cluster.bootstrap)

    @property
    def node_ids(self) -> list[int]:
        """Return the node ids, in order."""
        return sorted(self.hosts)

    # -- process faults ------------------------------------------------------------------

    def kill(self, node_id: int) -> None:
        """SIGKILL one node."""
        local.kill_node(self.cluster, node_id)

    def stop(self, node_id: int, grace_s: float = 60.0) -> None:
        """SIGTERM one node and wait for its controlled shutdown."""
        local.stop_node(self.cluster, node_id, grace_s)

    def start(self, node_id: int) -> None:
        """Start a stopped or killed node again; return once it is registered."""
        local.start_node(self.runtime, node_id, timeout_s=180)

    def running(self, node_id: int) -> bool:
        """Tell whether the node's process is up."""
        node = next(n for n in self.cluster.nodes if n.node_id == node_id)
        return local.node_pid(node) is not None

    def rolling_restart(self, timeout_s: float = 240.0) -> None:
        """Restart every node in turn: SIGTERM, start, wait until back in every ISR, next."""
        for node_id in self.node_ids:
            self.stop(node_id)
            self.start(node_id)
            self.wait_fully_replicated(timeout_s)

    # -- network faults ------------------------------------------------------------------

    def cut_from_quorum(self, node_id: int) -> Cut:
        """Cut one node off the controller quorum; clients and other brokers still reach it."""
        others = [h for n, h in self.hosts.items() if n != node_id]
        return self.net.split(self.hosts[node_id], others, CONTROLLER)

    def cut_from_followers(self, node_id: int) -> Cut:
        """Cut one node's replication links to the others; the quorum and clients keep it."""
        others = [h for n, h in self.hosts.items() if n != node_id]
        return self.net.split(self.hosts[node_id], others, DATA)

    # -- what the cluster says -----------------------------------------------------------

    def metadata(self, timeout_s: float = 10.0, besides: int | None = None) -> object | None:
        """Return cluster metadata from any node that answers (``besides`` one), or None.

        A fresh client each time, bootstrapped without ``besides``: a node cut off from the
        quorum answers with the metadata it had when it was cut.
        """
        nodes = [n for n in self.cluster.nodes if n.node_id != besides]
        bootstrap = ",".join(f"{n.host}:{n.port}" for n in nodes)
        admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _KAFKA_LOG})
        try:
            return admin.list_topics(timeout=timeout_s)
        except KafkaException:
            return None

    def under_replicated(self) -> list[str] | None:
        """Return the partitions whose ISR is short of their replicas (None: no answer)."""
        meta = self.metadata()
        if meta is None or len(meta.brokers) < len(self.hosts):  # type: ignore[attr-defined]
            return None
        short = []
        for name, topic in meta.topics.items():  # type: ignore[attr-defined]
            for p in topic.partitions.values():
                if len(p.isrs) < len(p.replicas) or p.leader < 0:
                    short.append(f"{name}[{p.id}]")
        return short

    def wait_fully_replicated(self, timeout_s: float = 180.0) -> None:
        """Wait until every node is registered and every partition's ISR is complete."""
        wait_for(
            lambda: self.under_replicated() == [], timeout_s, "every partition back in full ISR",
            every_s=0.5,
        )  # fmt: skip

    def leaders(self, topic: str) -> dict[int, int]:
        """Return {partition: leader node} of ``topic`` (-1 where it has none)."""
        meta = self.metadata()
        assert meta is not None, "the cluster does not answer"
        parts = meta.topics[topic].partitions  # type: ignore[attr-defined]
        return {p.id: p.leader for p in parts.values()}

    def leads_nothing(self, node_id: int) -> bool:
        """Tell whether the cluster's metadata shows ``node_id`` leading no partition."""
        meta = self.metadata(besides=node_id)
        if meta is None:
            return False
        return all(
            p.leader != node_id
            for t in meta.topics.values()  # type: ignore[attr-defined]
            for p in t.partitions.values()
        )

    def isr_shrunk_to(self, node_id: int) -> bool:
        """Tell whether some partition led by ``node_id`` has only it left in its ISR."""
        meta = self.metadata()
        if meta is None:
            return False
        return any(
            p.leader == node_id and list(p.isrs) == [node_id]
            for t in meta.topics.values()  # type: ignore[attr-defined]
            for p in t.partitions.values()
        )


@contextlib.contextmanager
def fault_cluster(
    net: Network, folder: Path, heap: str = "512m", overrides: Mapping[str, str] | None = None
) -> Iterator[FaultCluster]:
    """Start a 3-node cluster on three broker hosts of ``net``; always stop it after.

    ``overrides``: broker properties besides :data:`OVERRIDES`.
    """
    hosts = {i: net.add_host(f"b{i}", controller=True) for i in (1, 2, 3)}
    runtime = load_settings(
        env={}, runtime_dir=folder, cache_dir=load_settings().cache_dir, broker_heap=heap
    )
    places = [
        local.NodeHost(h.address, h.controller_address or "", h.launcher) for h in hosts.values()
    ]
    started = time.monotonic()
    cluster = local.start_cluster(
        runtime, nodes=3, port=9092, timeout_s=180, hosts=places,
        overrides={**OVERRIDES, **(overrides or {})},
    )  # fmt: skip
    _LOG.info("3-node cluster up in %.1fs at %s", time.monotonic() - started, cluster.bootstrap)
    try:
        yield FaultCluster(net, runtime, cluster, hosts)
    finally:
        net.heal_all()
        local.stop_cluster(runtime, grace_s=30)
