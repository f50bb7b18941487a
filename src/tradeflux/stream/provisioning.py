"""What a service instance checks and creates before it starts: its topics and changelogs.

Input, output and dead-letter topics must exist (``tradeflux topics create`` makes them);
the stores' changelogs are created here with the input's partition count, and the
instance waits until every broker lists them with leaders, so instances that start
together never read a changelog another one has only just created. The topics' record
size limits (``max.message.bytes``) are read so that an oversized output is pinned on the
record that made it, before the producer would refuse it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tradeflux.stream.errors import (
    AuthorizationError,
    ServiceConfigError,
    TopicMissingError,
    TransientKafkaError,
)
from tradeflux.stream.kafka import Admin, NewTopicSpec
from tradeflux.stream.retry import Patience
from tradeflux.stream.topology import Service

log = logging.getLogger("tradeflux.stream")

_PRODUCER_MAX_BYTES = 1_000_000  # librdkafka's message.max.bytes default


def _listing(admin: Admin, named: list[str], wanted: list[str]) -> Any:
    """Return the metadata of ``named`` once it lists every topic of ``wanted``.

    The broker that answers may not have the topics another instance created a moment ago
    in its metadata cache yet, even after every broker listed them once: that is a wait,
    not an error (instances of a deployment start together).
    """
    meta = admin.metadata(10.0, topics=named)
    late = [t for t in wanted if t not in meta.topics]
    if late:
        raise TransientKafkaError(
            f"changelogs not yet in the metadata: {', '.join(late)}", "_UNKNOWN_TOPIC", True
        )
    return meta


@dataclass(frozen=True)
class Layout:
    """The partition counts and record size limits of a service's topics (prefixed names)."""

    input_partitions: int
    partitions: Mapping[str, int] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)


def provision(
    service: Service,
    admin: Admin,
    prefix: str,
    changelogs: Mapping[str, str],
    patience: Patience,
    client: Mapping[str, Any],
    replication: int | None = None,
) -> Layout:
    """Check the service's topics, create its missing changelogs, and return their layout."""
    inputs = [prefix + t.name for t in service.inputs]
    outputs = [prefix + t.name for t in service.outputs]
    if service.dead_letter_topic:
        outputs.append(prefix + service.dead_letter_topic)
    wanted = list(changelogs.values())
    named = list(dict.fromkeys([*inputs, *outputs, *wanted]))
    meta = patience.run(lambda: admin.metadata(10.0, topics=named))
    missing = [t for t in [*inputs, *outputs] if t not in meta.topics]
    if missing:
        raise TopicMissingError(
            f"service {service.name}: topics missing: {', '.join(missing)}; create them with "
            "`tradeflux topics create` (same --prefix)"
        )
    counts = {len(meta.topics[t].partitions) for t in inputs}
    if len(counts) > 1:
        detail = ", ".join(f"{t}={len(meta.topics[t].partitions)}" for t in inputs)
        raise ServiceConfigError(
            f"service {service.name}: its inputs must have the same partition count ({detail})"
        )
    partitions = len(meta.topics[inputs[0]].partitions)
    new = [
        NewTopicSpec(
            topic,
            partitions,
            replication or min(3, len(meta.brokers)),
            {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"},
        )
        for topic in wanted
        if topic not in meta.topics
    ]
    if new:
        created = patience.run(lambda: admin.create_topics(new))
        for topic, made in created.items():
            if made:
                log.info("changelog created topic=%s partitions=%d", topic, partitions)
    if wanted:
        # Also when they existed: another instance may have created them a moment ago.
        admin.await_topics(wanted, timeout_s=max(30.0, patience.deadline_s))
        meta = patience.run(lambda: _listing(admin, named, wanted))
    for topic in wanted:
        have = len(meta.topics[topic].partitions)
        if have != partitions:
            raise ServiceConfigError(
                f"changelog {topic} has {have} partitions but the input has {partitions}; "
                "they must match: delete the changelog (its state is rebuilt from the inputs "
                "only by a replay) or recreate the input"
            )
    producer_max = int(client.get("message.max.bytes", _PRODUCER_MAX_BYTES))
    sized = [*outputs, *wanted]
    try:
        configs = patience.run(lambda: admin.topic_configs(sized))
    except AuthorizationError as exc:  # a cluster may not let a service read topic configs
        log.warning(
            "topic configs not readable service=%s error=%s; outputs are checked against the "
            "producer's message.max.bytes=%d only (grant DESCRIBE_CONFIGS on its topics)",
            service.name,
            exc.code,
            producer_max,
        )
        configs = {}
    limits = {
        t: min(producer_max, int(configs.get(t, {}).get("max.message.bytes", producer_max)))
        for t in sized
    }
    return Layout(
        input_partitions=partitions,
        partitions={t: len(meta.topics[t].partitions) for t in [*inputs, *outputs, *wanted]},
        limits=limits,
    )
