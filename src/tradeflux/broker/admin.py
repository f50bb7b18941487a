"""Reaching a Kafka cluster: an admin client that fails with one clear line, and cluster facts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tradeflux.broker.errors import ClusterUnreachableError
from tradeflux.config import Settings

_KAFKA_LOG = logging.getLogger("tradeflux.kafka")


@dataclass(frozen=True)
class ClusterInfo:
    """What the cluster says about itself in a DescribeCluster response."""

    cluster_id: str
    controller_id: int | None
    nodes: tuple[tuple[int, str, int], ...]  # (node id, host, port), sorted by id


def admin_client(settings: Settings, **overrides: Any) -> AdminClient:
    """Return an admin client for the configured cluster; librdkafka logs go to Python logging."""
    conf = settings.client_config(logger=_KAFKA_LOG, **overrides)
    return AdminClient(conf)


def describe_cluster(settings: Settings, timeout_s: float = 10.0) -> ClusterInfo:
    """Ask the cluster for its id, controller and nodes, or raise ClusterUnreachableError."""
    admin = admin_client(settings)
    try:
        # A metadata request first: it fails fast and clearly when nobody answers.
        admin.list_topics(timeout=timeout_s)
        described = admin.describe_cluster(request_timeout=timeout_s).result(timeout=timeout_s)
    except KafkaException as exc:
        raise unreachable(settings, timeout_s, exc) from None
    nodes = tuple(sorted((n.id, n.host, n.port) for n in described.nodes))
    controller = described.controller.id if described.controller is not None else None
    return ClusterInfo(str(described.cluster_id), controller, nodes)


def unreachable(settings: Settings, timeout_s: float, cause: object) -> ClusterUnreachableError:
    """Build the one-line error for a cluster that did not answer."""
    detail = cause.args[0].str() if isinstance(cause, KafkaException) and cause.args else cause
    return ClusterUnreachableError(
        f"no Kafka broker answered at {settings.bootstrap} within {timeout_s:g}s ({detail}); "
        "start a local one with `tradeflux broker start`, or point TRADEFLUX_BOOTSTRAP "
        "(or --bootstrap) at a running cluster"
    )
