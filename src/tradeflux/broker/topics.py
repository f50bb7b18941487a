"""Provisioning the topic registry's topics: creation (idempotent), listing, description.

The topics themselves are declared in :mod:`tradeflux.topics`.

Topics that are joined by key must have the same partition count (co-partitioning);
``create_topics`` checks that after creating, including for topics that existed before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from tradeflux.broker.admin import admin_client, unreachable
from tradeflux.broker.errors import TopicError
from tradeflux.config import Settings
from tradeflux.topics import TOPICS, TopicDef, TopicSet, topic_specs

__all__ = [
    "TOPICS",
    "TopicSet",
    "TopicSpec",
    "TopicState",
    "create_topics",
    "describe_topics",
    "list_topics",
    "topic_specs",
]


TopicSpec = TopicDef  # the name this module used before the registry
"""One topic of the contract (see :mod:`tradeflux.topics`)."""


@dataclass(frozen=True)
class TopicState:
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    replication: int
    cleanup_policy: str
    leaders: tuple[int, ...]
    in_sync: tuple[int, ...]  # smallest ISR size over the partitions, per partition order


def _broker_count(settings: Settings, timeout_s: float) -> int:
    admin = admin_client(settings)
    try:
        return len(admin.list_topics(timeout=timeout_s).brokers)
    except KafkaException as exc:
        raise unreachable(settings, timeout_s, exc) from None


def create_topics(
    settings: Settings,
    topic_set: TopicSet = TopicSet.ALL,
    timeout_s: float = 15.0,
) -> dict[str, str]:
    """Create the missing topics of ``topic_set``; return ``{name: "created" | "exists"}``.

    Idempotent. Raises TopicError when an existing topic has a different cleanup policy
    or breaks co-partitioning with the rest of its group.
    """
    brokers = _broker_count(settings, timeout_s)
    replication = settings.replication or min(3, brokers)
    if replication > brokers:
        raise TopicError(
            f"replication {replication} needs at least {replication} brokers, the cluster has "
            f"{brokers}; lower --replication"
        )
    specs = topic_specs(topic_set)
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [s for s in specs if settings.topic_prefix + s.name not in existing]
    outcome = {settings.topic_prefix + s.name: "exists" for s in specs}
    if wanted:
        new = [
            NewTopic(
                settings.topic_prefix + s.name,
                num_partitions=settings.partitions,
                replication_factor=replication,
                config=_topic_config(s, replication),
            )
            for s in wanted
        ]
        for name, future in admin.create_topics(new, request_timeout=timeout_s).items():
            try:
                future.result()
                outcome[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(
                        f"could not create topic {name}: {exc.args[0].str()}"
                    ) from None
    _await_metadata(settings, list(outcome), timeout_s)
    states = {t.name: t for t in describe_topics(settings, list(outcome), timeout_s)}
    _check_layout(settings, specs, states)
    return outcome


def _await_metadata(settings: Settings, names: list[str], timeout_s: float) -> None:
    """Wait until the cluster's metadata lists every topic of ``names`` with a leader per partition.

    CreateTopics answers once the controller has committed the topics; the brokers learn of
    them a moment later, and a describe in between would report them missing.
    """
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            topics = admin.list_topics(timeout=timeout_s).topics
        except KafkaException as exc:
            raise unreachable(settings, timeout_s, exc) from None
        pending = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or not topics[name].partitions
            or any(p.leader < 0 for p in topics[name].partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicError(
                f"the cluster did not report topic(s) {', '.join(pending)} with a leader for "
                f"every partition within {timeout_s:g}s of creating them; check the brokers "
                "with `tradeflux broker status` and retry"
            )
        time.sleep(0.05)


def _topic_config(spec: TopicSpec, replication: int) -> dict[str, str]:
    config = {"cleanup.policy": "compact" if spec.compacted else "delete"}
    if replication >= 3:
        config["min.insync.replicas"] = "2"
    if spec.compacted:
        # Compact promptly so that restores and global tables read little.
        config["min.cleanable.dirty.ratio"] = "0.1"
        config["segment.ms"] = str(60 * 60 * 1000)
    return config


def _check_layout(
    settings: Settings, specs: list[TopicSpec], states: dict[str, TopicState]
) -> None:
    groups: dict[str, dict[str, int]] = {}
    for spec in specs:
        name = settings.topic_prefix + spec.name
        state = states[name]
        want = "compact" if spec.compacted else "delete"
        if want not in state.cleanup_policy.split(","):
            raise TopicError(
                f"topic {name} exists with cleanup.policy={state.cleanup_policy}, the design "
                f"needs {want}; alter or delete it"
            )
        if spec.copartition_group:
            groups.setdefault(spec.copartition_group, {})[name] = state.partitions
    for group, counts in groups.items():
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{n}={p}" for n, p in sorted(counts.items()))
            raise TopicError(
                f"topics joined by {group} must have the same partition count, but {detail}; "
                "recreate the odd one out with the same count"
            )


def list_topics(settings: Settings, timeout_s: float = 10.0) -> list[str]:
    """Return the names of the cluster's topics, internal ones left out."""
    admin = admin_client(settings)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise unreachable(settings, timeout_s, exc) from None
    return sorted(name for name in meta.topics if not name.startswith("__"))


def describe_topics(
    settings: Settings, names: list[str] | None = None, timeout_s: float = 10.0
) -> list[TopicState]:
    """Describe ``names`` (default: every non-internal topic) from metadata and configs."""
    admin = admin_client(settings)
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise unreachable(settings, timeout_s, exc) from None
    if names is None:
        names = sorted(n for n in meta.topics if not n.startswith("__"))
    missing = [n for n in names if n not in meta.topics]
    if missing:
        raise TopicError(
            f"no such topic: {', '.join(missing)}; create the set with `tradeflux topics create`"
        )
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
    policies: dict[str, str] = {}
    if resources:
        for res, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
            policies[res.name] = future.result()["cleanup.policy"].value
    states = []
    for name in names:
        parts = sorted(meta.topics[name].partitions.values(), key=lambda p: p.id)
        states.append(
            TopicState(
                name=name,
                partitions=len(parts),
                replication=len(parts[0].replicas) if parts else 0,
                cleanup_policy=policies.get(name, "?"),
                leaders=tuple(p.leader for p in parts),
                in_sync=tuple(len(p.isrs) for p in parts),
            )
        )
    return states
