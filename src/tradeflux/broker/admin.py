"""Reaching a Kafka cluster: an admin client that fails with one clear line, and cluster facts."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tradeflux.broker.errors import ClusterUnreachableError
from tradeflux.config import Settings
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import Admin

_KAFKA_LOG = logging.getLogger("tradeflux.kafka")


@dataclass(frozen=True)
class ClusterInfo:
    """What the cluster says about itself in a DescribeCluster response."""

    cluster_id: str
    controller_id: int | None
    nodes: tuple[tuple[int, str, int], ...]  # (node id, host, port), sorted by id


def admin(settings: Settings) -> Admin:
    """Return an admin client for the configured cluster (the runtime's Kafka boundary)."""
    return Admin(settings.client_config())


def describe_cluster(settings: Settings, timeout_s: float = 10.0) -> ClusterInfo:
    """Ask the cluster for its id, controller and nodes, or raise ClusterUnreachableError."""
    client = admin(settings)
    try:
        # A metadata request first: it fails fast and clearly when nobody answers.
        client.metadata(timeout_s)
        cluster_id, controller, nodes = client.describe_cluster(timeout_s)
    except KafkaClientError as exc:
        raise unreachable(settings, timeout_s, exc) from None
    parsed = []
    for address, node_id in nodes:
        host, _, port = address.rpartition(":")
        parsed.append((node_id, host, int(port)))
    return ClusterInfo(cluster_id, controller, tuple(sorted(parsed)))


def unreachable(settings: Settings, timeout_s: float, cause: object) -> ClusterUnreachableError:
    """Build the one-line error for a cluster that did not answer."""
    detail = cause.reason if isinstance(cause, KafkaClientError) else cause
    return ClusterUnreachableError(
        f"no Kafka broker answered at {settings.bootstrap} within {timeout_s:g}s ({detail}); "
        "start a local one with `tradeflux broker start`, or point TRADEFLUX_BOOTSTRAP "
        "(or --bootstrap) at a running cluster"
    )
