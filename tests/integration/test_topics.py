"""Topic provisioning against the session's real broker: idempotent, checked, described."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from confluent_kafka.admin import NewTopic

from tests.conftest import unique
from tests.support.kafka_tools import admin_client
from tradeflux.broker.admin import describe_cluster
from tradeflux.broker.errors import TopicError
from tradeflux.broker.topics import (
    TOPICS,
    TopicSet,
    create_topics,
    describe_topics,
    list_topics,
    topic_specs,
)
from tradeflux.config import Settings

pytestmark = pytest.mark.integration


def _prefixed(kafka: Settings, partitions: int = 6) -> Settings:
    return replace(kafka, topic_prefix=unique("tp") + ".", partitions=partitions)


def _cluster_facts(settings: Settings) -> tuple[int, set[int]]:
    """Return the replication create_topics picks by default, and the broker ids."""
    node_ids = {node_id for node_id, _, _ in describe_cluster(settings).nodes}
    return min(3, len(node_ids)), node_ids


def _precreate(settings: Settings, name: str, partitions: int, cleanup_policy: str) -> None:
    """Create one topic behind create_topics' back and wait until metadata shows it."""
    admin = admin_client(settings)
    new = NewTopic(name, num_partitions=partitions, config={"cleanup.policy": cleanup_policy})
    admin.create_topics([new])[name].result(timeout=15)
    deadline = time.monotonic() + 15
    while name not in admin.list_topics(timeout=5).topics:
        assert time.monotonic() < deadline, f"{name} never showed up in metadata"
        time.sleep(0.05)


def test_create_topics_creates_every_topic_with_configured_partitions_and_cleanup_policy(
    kafka: Settings,
) -> None:
    settings = _prefixed(kafka, partitions=3)
    replication, node_ids = _cluster_facts(settings)
    names = [settings.topic_prefix + t.name for t in TOPICS]

    outcome = create_topics(settings, TopicSet.ALL)

    assert outcome == {name: "created" for name in names}
    states = describe_topics(settings, names)
    assert [s.name for s in states] == names
    for spec, state in zip(TOPICS, states, strict=True):
        assert state.partitions == 3
        assert state.replication == replication
        assert state.cleanup_policy == ("compact" if spec.compacted else "delete")
        assert len(state.leaders) == 3
        assert set(state.leaders) <= node_ids
        assert state.in_sync == (replication,) * 3


def test_create_topics_second_call_reports_every_topic_as_existing(kafka: Settings) -> None:
    settings = _prefixed(kafka)
    first = create_topics(settings, TopicSet.CORE)

    second = create_topics(settings, TopicSet.CORE)

    names = [settings.topic_prefix + t.name for t in topic_specs(TopicSet.CORE)]
    assert first == {name: "created" for name in names}
    assert second == {name: "exists" for name in names}


def test_create_topics_of_a_subset_creates_only_that_subset(kafka: Settings) -> None:
    settings = _prefixed(kafka)

    outcome = create_topics(settings, TopicSet.REFDATA)

    refdata = [settings.topic_prefix + t.name for t in topic_specs(TopicSet.REFDATA)]
    assert outcome == {name: "created" for name in refdata}
    ours = [n for n in list_topics(settings) if n.startswith(settings.topic_prefix)]
    assert ours == sorted(refdata)


def test_create_topics_creates_the_missing_topics_next_to_existing_ones(kafka: Settings) -> None:
    settings = _prefixed(kafka)
    _precreate(settings, settings.topic_prefix + "marketdata.fx", 6, "compact")

    outcome = create_topics(settings, TopicSet.REFDATA)

    expected = {settings.topic_prefix + t.name: "created" for t in topic_specs(TopicSet.REFDATA)}
    expected[settings.topic_prefix + "marketdata.fx"] = "exists"
    assert outcome == expected


def test_copartitioning_violation_raises_topic_error_naming_the_topics(kafka: Settings) -> None:
    settings = _prefixed(kafka, partitions=6)
    prefix = settings.topic_prefix
    _precreate(settings, prefix + "positions", 4, "compact")

    with pytest.raises(TopicError) as excinfo:
        create_topics(settings, TopicSet.CORE)

    assert str(excinfo.value) == (
        f"topics joined by account must have the same partition count, but "
        f"{prefix}pnl=6, {prefix}positions=4, {prefix}trades.enriched=6; "
        "recreate the odd one out with the same count"
    )


def test_existing_topic_with_wrong_cleanup_policy_raises_topic_error(kafka: Settings) -> None:
    settings = _prefixed(kafka)
    prefix = settings.topic_prefix
    _precreate(settings, prefix + "refdata.limits", 6, "delete")

    with pytest.raises(TopicError) as excinfo:
        create_topics(settings, TopicSet.REFDATA)

    assert str(excinfo.value) == (
        f"topic {prefix}refdata.limits exists with cleanup.policy=delete, the design needs "
        "compact; alter or delete it"
    )


def test_replication_above_the_broker_count_raises_topic_error(kafka: Settings) -> None:
    brokers = len(describe_cluster(kafka).nodes)
    settings = replace(_prefixed(kafka), replication=brokers + 1)

    with pytest.raises(TopicError) as excinfo:
        create_topics(settings, TopicSet.REFDATA)

    assert str(excinfo.value) == (
        f"replication {brokers + 1} needs at least {brokers + 1} brokers, the cluster has "
        f"{brokers}; lower --replication"
    )
    assert not [n for n in list_topics(settings) if n.startswith(settings.topic_prefix)]


def test_describe_topics_without_names_describes_every_non_internal_topic(
    kafka: Settings,
) -> None:
    settings = _prefixed(kafka, partitions=2)
    create_topics(settings, TopicSet.REFDATA)

    states = {s.name: s for s in describe_topics(settings)}

    refdata = {settings.topic_prefix + t.name for t in topic_specs(TopicSet.REFDATA)}
    assert refdata <= set(states)
    assert not [name for name in states if name.startswith("__")]
    assert {states[n].partitions for n in refdata} == {2}
    assert {states[n].cleanup_policy for n in refdata} == {"compact"}


def test_describe_topics_of_an_unknown_topic_raises_topic_error(kafka: Settings) -> None:
    name = unique("absent")

    with pytest.raises(TopicError) as excinfo:
        describe_topics(kafka, [name])

    assert str(excinfo.value) == (
        f"no such topic: {name}; create the set with `tradeflux topics create`"
    )


def test_list_topics_leaves_out_internal_topics(kafka: Settings) -> None:
    settings = _prefixed(kafka)
    create_topics(settings, TopicSet.REFDATA)

    names = list_topics(settings)

    assert names == sorted(names)
    assert settings.topic_prefix + "refdata.accounts" in names
    assert not [n for n in names if n.startswith("__")]
