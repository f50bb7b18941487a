"""Kafka transactions as the runtime relies on them, against the session's real broker.

Committed records are read exactly once and in order by a read_committed consumer; aborted
ones never; consumed offsets sent with a transaction commit and abort with it.
"""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic

from tests.conftest import unique
from tests.support.kafka_tools import admin_client
from tradeflux.config import Settings

pytestmark = pytest.mark.integration

PARTITIONS = 3
_LOG = logging.getLogger("tests.kafka")


def _create_topic(kafka: Settings, partitions: int = PARTITIONS) -> str:
    name = unique("txn")
    admin = admin_client(kafka)
    admin.create_topics([NewTopic(name, num_partitions=partitions)])[name].result(timeout=15)
    deadline = time.monotonic() + 15
    while True:
        topic = admin.list_topics(timeout=5).topics.get(name)
        if (
            topic is not None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return name
        assert time.monotonic() < deadline, f"topic {name} has no leaders after 15 s"
        time.sleep(0.05)


def _transactional_producer(kafka: Settings) -> Producer:
    producer = Producer(
        kafka.client_config(
            **{
                "transactional.id": unique("txn-producer"),
                "enable.idempotence": True,
                "linger.ms": 1,
                "logger": _LOG,
            }
        )
    )
    producer.init_transactions(30)
    return producer


def _consumer(kafka: Settings, isolation: str, group: str | None = None) -> Consumer:
    return Consumer(
        kafka.client_config(
            **{
                "group.id": group or unique("txn-reader"),
                "isolation.level": isolation,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "logger": _LOG,
            }
        )
    )


def _read_to_end(
    kafka: Settings, topic: str, isolation: str, partitions: int = PARTITIONS
) -> dict[int, list[str]]:
    """Read every partition from the beginning up to its end; return values per partition."""
    consumer = _consumer(kafka, isolation)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    values: dict[int, list[str]] = {p: [] for p in range(partitions)}
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"partitions at end {at_end} after 30 s"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                at_end.add(msg.partition())
                continue
            values[msg.partition()].append(msg.value().decode())
    finally:
        consumer.close()
    return values


def _produce(producer: Producer, topic: str, values: list[str]) -> None:
    for i, value in enumerate(values):
        producer.produce(topic, value=value.encode(), key=value.encode(), partition=i % PARTITIONS)


def _by_partition(values: list[str]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for i, value in enumerate(values):
        out[i % PARTITIONS].append(value)
    return out


def test_read_committed_consumer_reads_committed_records_once_in_order_and_no_aborted_ones(
    kafka: Settings,
) -> None:
    topic = _create_topic(kafka)
    producer = _transactional_producer(kafka)
    first = [f"first-{i:02d}" for i in range(30)]
    aborted = [f"aborted-{i:02d}" for i in range(15)]
    second = [f"second-{i:02d}" for i in range(30)]

    producer.begin_transaction()
    _produce(producer, topic, first)
    producer.commit_transaction(30)
    producer.begin_transaction()
    _produce(producer, topic, aborted)
    producer.flush(30)  # the aborted records really reach the log before the abort
    producer.abort_transaction(30)
    producer.begin_transaction()
    _produce(producer, topic, second)
    producer.commit_transaction(30)

    committed = _read_to_end(kafka, topic, "read_committed")
    uncommitted = _read_to_end(kafka, topic, "read_uncommitted")

    expected = {p: _by_partition(first)[p] + _by_partition(second)[p] for p in range(PARTITIONS)}
    assert committed == expected
    assert uncommitted == {
        p: _by_partition(first)[p] + _by_partition(aborted)[p] + _by_partition(second)[p]
        for p in range(PARTITIONS)
    }


def _next_batch(consumer: Consumer, deadline: float) -> list[Message]:
    """Return the next non-empty batch of data records (at most 7), or fail at ``deadline``."""
    while True:
        assert time.monotonic() < deadline, "no records to consume before the deadline"
        batch = [m for m in consumer.consume(num_messages=7, timeout=0.5) if m.error() is None]
        if batch:
            return batch


def _next_offsets(batch: list[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for m in batch:
        last[(m.topic(), m.partition())] = m.offset()
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]


def test_consume_transform_produce_commits_offsets_with_outputs_and_abort_rewinds_both(
    kafka: Settings,
) -> None:
    source, sink = _create_topic(kafka), _create_topic(kafka)
    inputs = [f"trade-{i:02d}" for i in range(30)]
    plain = Producer(kafka.client_config(**{"enable.idempotence": True, "logger": _LOG}))
    _produce(plain, source, inputs)
    assert plain.flush(30) == 0
    group = unique("txn-group")
    consumer = _consumer(kafka, "read_committed", group)
    consumer.subscribe([source])
    producer = _transactional_producer(kafka)
    source_partitions = [TopicPartition(source, p) for p in range(PARTITIONS)]
    committed_records = 0
    aborted_once = False
    deadline = time.monotonic() + 60
    try:
        while committed_records < len(inputs):
            batch = _next_batch(consumer, deadline)
            producer.begin_transaction()
            for m in batch:
                value = "enriched-" + m.value().decode()
                producer.produce(sink, value=value.encode(), key=m.key(), partition=m.partition())
            producer.send_offsets_to_transaction(
                _next_offsets(batch), consumer.consumer_group_metadata(), 30
            )
            if aborted_once:
                producer.commit_transaction(30)
                committed_records += len(batch)
                continue
            # A failed batch: its outputs and its offsets are dropped together ...
            producer.abort_transaction(30)
            aborted_once = True
            after_abort = consumer.committed(source_partitions, timeout=10)
            assert [tp.offset for tp in after_abort] == [OFFSET_INVALID] * PARTITIONS
            # ... and the batch is consumed again from its first offsets.
            firsts: dict[int, int] = {}
            for m in batch:
                firsts.setdefault(m.partition(), m.offset())
            for partition, offset in firsts.items():
                consumer.seek(TopicPartition(source, partition, offset))

        committed = consumer.committed(source_partitions, timeout=10)
    finally:
        consumer.close()

    per_partition = len(inputs) // PARTITIONS
    assert [(tp.partition, tp.offset) for tp in committed] == [
        (p, per_partition) for p in range(PARTITIONS)
    ]
    assert _read_to_end(kafka, sink, "read_committed") == {
        p: ["enriched-" + v for v in values] for p, values in _by_partition(inputs).items()
    }
