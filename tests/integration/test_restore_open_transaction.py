"""A restore reads a changelog to its log end, not to its last stable offset.

A transaction the coordinator has committed is readable on a changelog partition only once
its marker is written there, and that can come after the marker on the group's offsets (the
cluster-fault soak lost two batches of the P&L's stores so). To a reader a transaction whose
marker is late looks like an open one, so this test holds one open on the changelog while
the restore starts, and commits it once the restore has taken the changelog's end.
"""

from __future__ import annotations

import pytest

from tests.conftest import unique
from tests.support.jobs import RUNNING_SUM
from tests.support.kafka_tools import create_topics, wait_for
from tradeflux.config import Settings
from tradeflux.stream.changelog import changelog_topic
from tradeflux.stream.kafka import TransactionalProducer
from tradeflux.stream.metrics import StreamMetrics
from tradeflux.stream.restore import RestoreJob, Restorer
from tradeflux.stream.retry import Patience
from tradeflux.stream.task import Task

pytestmark = pytest.mark.integration


def _write(producer: TransactionalProducer, topic: str, key: str, value: tuple[int, int]) -> None:
    codec = RUNNING_SUM.stores[0].codec
    producer.send(topic, key.encode(), codec.encode(value), None, 0)


def _restore_around_an_open_transaction(
    kafka: Settings, tag: str, open_value: tuple[int, int], commit: bool
) -> tuple[list[RestoreJob], dict[str, tuple[int, int]]]:
    """Commit k1=(1, 5); open a transaction writing ``open_value`` (k2 if it commits, else
    k1); start a restore; once it has read all that is readable, commit or abort the open
    transaction; return the finished jobs and the restored store."""
    prefix = unique(tag) + "-"
    changelog = changelog_topic(prefix, RUNNING_SUM.name, "sums")
    create_topics(kafka, {f"{prefix}numbers": 1, changelog: 1}, compacted=[changelog])
    client = kafka.client_config()
    before = TransactionalProducer(client, f"{prefix}before")
    before.init(30)
    before.begin()
    _write(before, changelog, "k1", (1, 5))
    before.commit(30)
    pending = TransactionalProducer(client, f"{prefix}pending")
    pending.init(30)
    pending.begin()
    _write(pending, changelog, "k2" if commit else "k1", open_value)
    assert pending.flush(30) == 0  # in the log (offset 2), its transaction still open

    restorer = Restorer(
        client, prefix + RUNNING_SUM.name, {"sums": changelog},
        StreamMetrics(RUNNING_SUM.name, tag), lambda what: Patience(what, 60.0, "test"), 30.0,
    )  # fmt: skip
    restorer.start()
    task = Task(RUNNING_SUM, 0, {}, prefix)
    job = RestoreJob((f"{prefix}numbers", 0), task)
    done: list[RestoreJob] = []

    def finished() -> bool:
        done.extend(restorer.finished())
        return bool(done)

    try:
        restorer.submit(job)
        wait_for(lambda: bool(job.parts), 60, "the restore to take the changelog's end")
        (part,) = job.parts.values()
        # It has read all that is readable (to the open transaction at 2), or it has ended.
        wait_for(lambda: finished() or getattr(part, "stable_end", -1) >= 2, 60, "the readable end")
        if commit:
            pending.commit(30)
        else:
            pending.abort(30)
        wait_for(finished, 60, "the restore to finish")
    finally:
        restorer.stop()
        before.close()
        pending.close()
    return done, dict(task.stores["sums"].items())


def test_a_restore_keeps_a_transaction_that_commits_after_it_began(kafka: Settings) -> None:
    done, restored = _restore_around_an_open_transaction(kafka, "openrestore", (1, 7), True)
    assert [j.error for j in done] == [None]
    assert restored == {"k1": (1, 5), "k2": (1, 7)}


def test_a_restore_waits_out_a_transaction_that_aborts(kafka: Settings) -> None:
    done, restored = _restore_around_an_open_transaction(kafka, "abortrestore", (2, 99), False)
    assert [j.error for j in done] == [None]
    assert restored == {"k1": (1, 5)}  # the aborted write is not kept
