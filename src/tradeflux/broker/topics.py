"""Provisioning the topic registry's topics: creation (idempotent), listing, description.

The topics themselves are declared in :mod:`tradeflux.topics`.

Topics that are joined by key must have the same partition count (co-partitioning);
``create_topics`` checks that after creating, including for topics that existed before.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from tradeflux.broker.admin import admin, unreachable
from tradeflux.broker.errors import TopicError
from tradeflux.config import Settings
from tradeflux.stream.errors import KafkaClientError, TopicMissingError
from tradeflux.stream.kafka import ClusterMetadata, NewTopicSpec
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


def _metadata(
    settings: Settings, timeout_s: float, topics: list[str] | None = None
) -> ClusterMetadata:
    try:
        return admin(settings).metadata(timeout_s, topics=topics)
    except KafkaClientError as exc:
        raise unreachable(settings, timeout_s, exc) from None


def create_topics(
    settings: Settings,
    topic_set: TopicSet = TopicSet.ALL,
    timeout_s: float = 15.0,
    only: Collection[str] | None = None,
) -> dict[str, str]:
    """Create the missing topics of ``topic_set``; return ``{name: "created" | "exists"}``.

    ``only``: just those (unprefixed) names of the set, for a deployment of a few services.

    Idempotent. Waits until every broker lists every topic of the set with a leader per
    partition before it describes them (a broker learns of a new topic a moment after the
    controller committed it). Raises TopicError when an existing topic has a different
    cleanup policy or breaks co-partitioning with the rest of its group.
    """
    specs = [s for s in topic_specs(topic_set) if only is None or s.name in only]
    meta = _metadata(settings, timeout_s, [settings.topic_prefix + s.name for s in specs])
    brokers = len(meta.brokers)
    replication = settings.replication or min(3, brokers)
    if replication > brokers:
        raise TopicError(
            f"replication {replication} needs at least {replication} brokers, the cluster has "
            f"{brokers}; lower --replication"
        )
    wanted = [s for s in specs if settings.topic_prefix + s.name not in meta.topics]
    outcome = {settings.topic_prefix + s.name: "exists" for s in specs}
    client = admin(settings)
    if wanted:
        new = [
            NewTopicSpec(
                settings.topic_prefix + s.name,
                settings.partitions,
                replication,
                _topic_config(s, replication),
            )
            for s in wanted
        ]
        try:
            created = client.create_topics(new, timeout_s)
        except KafkaClientError as exc:
            raise TopicError(f"could not create the topics: {exc}") from None
        outcome.update({name: "created" for name, made in created.items() if made})
    try:
        client.await_topics(list(outcome), timeout_s=max(timeout_s, 30.0))
    except TopicMissingError as exc:
        raise TopicError(str(exc)) from None
    except KafkaClientError as exc:
        raise unreachable(settings, timeout_s, exc) from None
    states = {t.name: t for t in describe_topics(settings, list(outcome), timeout_s)}
    _check_layout(settings, specs, states)
    return outcome


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
    meta = _metadata(settings, timeout_s)
    return sorted(name for name in meta.topics if not name.startswith("__"))


def describe_topics(
    settings: Settings, names: list[str] | None = None, timeout_s: float = 10.0
) -> list[TopicState]:
    """Describe ``names`` (default: every non-internal topic) from metadata and configs."""
    meta = _metadata(settings, timeout_s, names)
    if names is None:
        names = sorted(n for n in meta.topics if not n.startswith("__"))
    missing = [n for n in names if n not in meta.topics]
    if missing:
        raise TopicError(
            f"no such topic: {', '.join(missing)}; create the set with `tradeflux topics create`"
        )
    try:
        configs = admin(settings).topic_configs(names, timeout_s)
    except KafkaClientError as exc:
        raise unreachable(settings, timeout_s, exc) from None
    states = []
    for name in names:
        parts = sorted(meta.topics[name].partitions.values(), key=lambda p: p.id)
        states.append(
            TopicState(
                name=name,
                partitions=len(parts),
                replication=len(parts[0].replicas) if parts else 0,
                cleanup_policy=configs.get(name, {}).get("cleanup.policy", "?"),
                leaders=tuple(p.leader for p in parts),
                in_sync=tuple(len(p.isrs) for p in parts),
            )
        )
    return states
