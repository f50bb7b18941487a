"""A Kafka broker defect that breaks read_committed: aborted records served as committed.

Found in the cluster fault soak (tests/fault/test_cluster_pipeline.py, TRADEFLUX_SOAK=1):
after the rolling restart, 252 records of an aborted transaction of the validator were
read, read_committed, by the test's reader and by the services downstream (positions,
P&L), while all three replicas' logs end that transaction with an ABORT marker.

The cause is in the broker, not in a client (librdkafka and the Java consumer alike get
no word of the abort):

- A follower appends what one replica fetch brought as one batch of batches. The last
  stable offset (LSO) it writes into the transaction index for each transaction that
  batch completes is computed after the whole fetch updated its producer state, so a
  transaction another producer opened later in the same fetch makes that LSO too high.
- ``TransactionIndex.collectAbortedTxns`` stops at the first entry whose LSO is at or
  beyond the fetch's upper bound. Once that follower leads, a fetch whose upper bound
  falls between a later aborted transaction's first offset and that (too high) LSO stops
  before the later entry: the fetch response does not list that aborted transaction,
  and its records are delivered as committed.

In the soak, node 3 (restarted) fetched offsets 15142..15722 in one fetch: ABORT of
producer 2004, its next transaction 15146..15397, its ABORT at 15398, and the first
batch of producer 1012's transaction at 15722. Its index said LSO 15722 for both of
2004's aborted transactions (the other two nodes said 15143 and 15399); a fetch from
14115 that ended at 15398 was answered without (2004, 15146).

This test makes the same shape on purpose: a follower stopped while producer A aborts
two transactions and producer B opens one, started again (one catch-up fetch), made the
leader (preferred election), then a read_committed consumer fetching one batch at a time.
On the brokers' defaults it asserts the defect exactly: the consumer reads the three
records of A's second aborted transaction before B's committed one (when a Kafka upgrade
fixes it, that assertion fails, and the workaround can go). With
``replica.fetch.max.bytes=1`` (each replica fetch brings one batch, so one append
completes at most one transaction) it must pass: that is
``tradeflux.broker.local.ONE_BATCH_REPLICA_FETCHES``, which the fault soak sets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ElectionType,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import admin_client, wait_for
from tradeflux.broker import local
from tradeflux.config import Settings, load_settings

pytestmark = [pytest.mark.fault, pytest.mark.slow]

_LOG = logging.getLogger("tests.kafka")
LEADER, OTHERS = 3, (1, 2)
# Larger than the offset index's interval (4096 bytes): every batch gets an index entry, so
# a fetch's upper bound is the next batch, as in a partition with real traffic.
PAD = b" " * 8192


# The broker's own default (1 MiB), which local clusters keep unless asked.
KAFKA_DEFAULTS = {"replica.fetch.max.bytes": "1048576"}


@pytest.fixture(scope="module", params=["defaults", "one-batch-replica-fetches"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Settings, str]]:
    """(runtime settings, client settings, variant) of a 3-node loopback cluster."""
    runtime = load_settings(
        env={},
        runtime_dir=tmp_path_factory.mktemp("txn-index-cluster"),
        cache_dir=load_settings().cache_dir,
        broker_heap="384m",
    )
    workaround = request.param == "one-batch-replica-fetches"
    overrides = local.ONE_BATCH_REPLICA_FETCHES if workaround else KAFKA_DEFAULTS
    started = local.start_cluster(
        runtime, nodes=3, port=free_port_block(6), timeout_s=180, overrides=overrides
    )
    try:
        yield runtime, load_settings(env={}, bootstrap=started.bootstrap), request.param
    finally:
        local.stop_cluster(runtime, grace_s=30)


def _partition(client: Settings, topic: str) -> tuple[int, list[int]]:
    """Return (leader, isr) of ``topic``'s one partition."""
    meta = admin_client(client).list_topics(topic, timeout=10)
    part = meta.topics[topic].partitions.get(0)  # none yet while a new topic propagates
    return (-1, []) if part is None else (part.leader, sorted(part.isrs))


def _transactional(client: Settings, txn_id: str) -> Producer:
    producer = Producer(
        client.client_config(**{"transactional.id": txn_id, "linger.ms": 0, "logger": _LOG})
    )
    producer.init_transactions(30)
    return producer


def _read_committed_one_batch_at_a_time(client: Settings, topic: str) -> list[bytes]:
    """Read ``topic`` read_committed up to its committed record (the last one written).

    Up to that record, not to the end: a leader elected a moment ago may still hold its
    high watermark (and so the end a consumer sees) short of it.
    """
    consumer = Consumer(
        client.client_config(
            **{
                "group.id": unique("txn-index-reader"),
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "max.partition.fetch.bytes": 1,  # the broker answers one batch per fetch
                "logger": _LOG,
            }
        )
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            values.append((msg.value() or b"").rstrip(b" "))
            if values[-1] == b"committed":
                return values
    finally:
        consumer.close()
    raise AssertionError(f"the committed record of {topic} not read within 60 s: {values}")


def test_a_follower_that_leads_serves_a_second_aborted_transaction_unless_it_fetched_one_batch(
    cluster: tuple[Settings, Settings, str],
) -> None:
    runtime, client, variant = cluster
    topic = unique("txn-index")
    admin = admin_client(client)
    new = NewTopic(
        topic, 1, -1, replica_assignment=[[LEADER, *OTHERS]], config={"min.insync.replicas": "2"}
    )
    admin.create_topics([new])[topic].result(timeout=30)
    wait_for(
        lambda: _partition(client, topic)[0] == LEADER,
        90,
        "the preferred leader leads",
        every_s=0.2,
    )

    recorded = local.load_cluster(runtime)
    assert recorded is not None
    local.stop_node(recorded, LEADER)
    wait_for(lambda: _partition(client, topic)[0] in OTHERS, 90, "another node leads", every_s=0.2)

    aborting = _transactional(client, unique("txn-a"))
    for _ in range(2):
        aborting.begin_transaction()
        for i in range(3):
            aborting.produce(topic, key=b"a", value=f"aborted-{i}".encode() + PAD)
            aborting.flush(30)  # a batch each
        aborting.abort_transaction(30)
    committing = _transactional(client, unique("txn-b"))
    committing.begin_transaction()
    committing.produce(topic, key=b"b", value=b"committed" + PAD)
    committing.flush(30)  # its transaction stays open while the follower catches up

    local.start_node(runtime, LEADER, timeout_s=180)
    wait_for(
        lambda: LEADER in _partition(client, topic)[1],
        90,
        "the restarted node back in the ISR",
        every_s=0.2,
    )
    committing.commit_transaction(30)

    elected = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(topic, 0)])
    elected.result(timeout=30)
    wait_for(
        lambda: _partition(client, topic)[0] == LEADER,
        90,
        "the restarted node leads again",
        every_s=0.2,
    )

    read = _read_committed_one_batch_at_a_time(client, topic)
    if variant == "defaults":
        # The defect, exactly: the second aborted transaction is served as committed. When
        # a Kafka upgrade fixes it this fails; then drop this branch, and the workaround.
        assert read == [b"aborted-0", b"aborted-1", b"aborted-2", b"committed"]
    else:
        assert read == [b"committed"]
