"""Broker loss: a 3-node cluster loses a partition leader to SIGKILL in the middle of a load.

With replication 3, min.insync.replicas 2 and an idempotent producer with acks=all, every
record the producer saw acknowledged is in the log exactly once.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import admin_client
from tradeflux.broker import local
from tradeflux.broker.errors import BrokerError
from tradeflux.broker.topics import TopicSet, create_topics, describe_topics
from tradeflux.config import Settings, load_settings

pytestmark = [pytest.mark.fault, pytest.mark.slow]

RECORDS = 50_000
KILL_AFTER_ACKED = 10_000
MAX_IN_FLIGHT = 2_000  # keeps most of the load for after the kill
PARTITIONS = 6
_LOG = logging.getLogger("tests.kafka")


def _wait_for_leaders(settings: Settings, topic: str, deadline_s: float = 30) -> dict[int, int]:
    """Wait until every partition of ``topic`` has a leader; return {partition: leader}."""
    admin = admin_client(settings)
    deadline = time.monotonic() + deadline_s
    while True:
        meta = admin.list_topics(timeout=5).topics.get(topic)
        if meta is not None and len(meta.partitions) == PARTITIONS:
            leaders = {p.id: p.leader for p in meta.partitions.values()}
            if all(leader >= 0 for leader in leaders.values()):
                return leaders
        assert time.monotonic() < deadline, f"{topic} has no leader for some partition"
        time.sleep(0.1)


def _read_all(settings: Settings, topic: str, acked: set[int], deadline_s: float) -> Counter[int]:
    """Read ``topic`` from the beginning until every acked id is seen and each partition ends."""
    consumer = Consumer(
        settings.client_config(
            **{
                "group.id": unique("fault-reader"),
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "logger": _LOG,
            }
        )
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen: Counter[int] = Counter()
    at_end: set[int] = set()
    deadline = time.monotonic() + deadline_s
    try:
        while len(at_end) < PARTITIONS or not acked <= seen.keys():
            if time.monotonic() > deadline:
                break
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is None:
                    seen[int(msg.value())] += 1
                    at_end.discard(msg.partition())
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                else:
                    _LOG.warning("consumer error: %s", msg.error())
    finally:
        consumer.close()
    return seen


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.LocalCluster]:
    """A 3-node local cluster of its own, for this module; its tests may kill nodes."""
    for attempt in (1, 2):
        runtime = tmp_path_factory.mktemp("three-nodes")
        settings = load_settings(env={}, runtime_dir=runtime, cache_dir=load_settings().cache_dir)
        try:
            cluster = local.start_cluster(settings, nodes=3, port=free_port_block(6), timeout_s=180)
            break
        except BrokerError as exc:
            # Once in CI a node died at start before writing a line of log, never seen
            # since; this module tests a running cluster, not the start: try once more,
            # and say so where the run's summary shows it.
            if attempt == 2:
                raise
            warnings.warn(f"3-node cluster did not start, retrying once: {exc}", stacklevel=1)
    try:
        yield cluster
    finally:
        local.stop_cluster(settings, grace_s=30)


def test_topic_set_on_three_brokers_gets_replication_3_and_min_insync_2(
    three_nodes: local.LocalCluster,
) -> None:
    prefix = unique("ha") + "."
    client = load_settings(env={}, bootstrap=three_nodes.bootstrap, topic_prefix=prefix)

    create_topics(client, TopicSet.REFDATA)

    names = [f"{prefix}refdata.limits", f"{prefix}marketdata.fx"]
    states = describe_topics(client, names)
    assert [(s.partitions, s.replication, s.in_sync) for s in states] == [(6, 3, (3,) * 6)] * 2
    resource = ConfigResource(ResourceType.TOPIC, names[0])
    admin = admin_client(client)  # kept referenced: its futures die with it
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["min.insync.replicas"].value == "2"
    assert configs["cleanup.policy"].value == "compact"


def test_acked_records_survive_sigkill_of_a_partition_leader_exactly_once(
    three_nodes: local.LocalCluster,
) -> None:
    client = load_settings(env={}, bootstrap=three_nodes.bootstrap)
    topic = unique("fault")
    admin = admin_client(client)
    new = NewTopic(topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    admin.create_topics([new])[topic].result(timeout=30)
    victim = _wait_for_leaders(client, topic)[0]
    acked: set[int] = set()
    failed: list[tuple[int, str]] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        record_id = int(msg.value())
        if err is None:
            acked.add(record_id)
        else:
            failed.append((record_id, err.str()))

    producer = Producer(
        client.client_config(
            **{
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 60_000,
                "linger.ms": 5,
                "logger": _LOG,
            }
        )
    )
    killed_at: int | None = None
    for record_id in range(RECORDS):
        while record_id - len(acked) - len(failed) >= MAX_IN_FLIGHT:
            producer.poll(0.05)
        value = str(record_id).encode()
        producer.produce(topic, key=value, value=value, on_delivery=on_delivery)
        producer.poll(0)
        if killed_at is None and len(acked) >= KILL_AFTER_ACKED:
            local.kill_node(three_nodes, victim)
            killed_at = len(acked)
    unsent = producer.flush(120)

    assert killed_at is not None
    assert killed_at < RECORDS - MAX_IN_FLIGHT  # most of the load came after the kill
    assert (unsent, failed) == (0, [])
    assert len(acked) == RECORDS
    survivors = {n.node_id for n in three_nodes.nodes} - {victim}
    assert set(_wait_for_leaders(client, topic).values()) <= survivors
    seen = _read_all(client, topic, acked, deadline_s=120)
    assert sorted(acked - seen.keys()) == []
    assert sorted(i for i, n in seen.items() if n > 1) == []
    assert sum(seen.values()) == RECORDS
