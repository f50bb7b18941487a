"""The runtime against the real broker, in-process: poison records and aborted transactions."""

from __future__ import annotations

import threading
from pathlib import Path

import msgspec
import pytest

from tests.conftest import unique
from tests.support.jobs import HELD_SUM, RUNNING_SUM, Sum
from tests.support.kafka_tools import (
    ServiceProcess,
    caught_up,
    create_topics,
    read_all,
    wait_for,
)
from tests.support.running_sum import check_sum_outputs, make_numbers, produce_numbers
from tradeflux.config import Settings
from tradeflux.stream.app import InjectedAbort, RuntimeConfig, StreamApp
from tradeflux.stream.deadletter import header_map

pytestmark = pytest.mark.integration


def _topics(settings: Settings, prefix: str) -> None:
    create_topics(settings, {f"{prefix}numbers": 6, f"{prefix}sums": 6, f"{prefix}numbers.dlq": 1})


def _run_in_thread(app: StreamApp) -> threading.Thread:
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    return thread


def test_aborted_transactions_leave_no_output_and_no_state(kafka: Settings) -> None:
    prefix = unique("abort") + "-"
    _topics(kafka, prefix)
    numbers = make_numbers(20_000, keys=50, seed=7)
    produce_numbers(kafka, f"{prefix}numbers", numbers)
    aborted: list[int] = []
    producers: list[object] = []  # kept, so that no two can share an id()

    def fail_some_commits(batch: int) -> None:
        producers.append(app._producer)
        if batch in (2, 3, 5):
            aborted.append(batch)
            # Put the batch's records in the log first (abort would otherwise purge what
            # librdkafka had not sent yet), so the test can see them there, uncommitted.
            assert app._producer is not None
            assert app._producer.flush(10) == 0
            raise InjectedAbort(f"injected abort of batch {batch}")

    app = StreamApp(
        RUNNING_SUM,
        RuntimeConfig(
            client=kafka.client_config(),
            instance_id="abort-test",
            topic_prefix=prefix,
            batch_max_records=1000,
            before_commit=fail_some_commits,
        ),
    )
    thread = _run_in_thread(app)
    try:
        wait_for(
            lambda: caught_up(kafka, f"{prefix}running-sum", f"{prefix}numbers"), 90, "catch up"
        )
    finally:
        app.stop()
        thread.join(30)
    assert aborted == [2, 3, 5]
    committed = read_all(kafka, f"{prefix}sums")
    check_sum_outputs(committed, numbers)
    # The aborted batches' outputs did reach the log, and no read_committed reader saw them.
    everything = read_all(kafka, f"{prefix}sums", committed=False)
    assert len(everything) > len(committed) == len(numbers)
    aborts = app.metrics.aborts.labels(**app.metrics.labels())._value.get()
    assert aborts == 3
    # Each aborted batch was re-run on a new producer (a new epoch): two that take turns,
    # and one more per abort.
    assert len({id(p) for p in producers}) == app.config.transaction_producers + 3


def test_a_graceful_stop_commits_what_the_service_sends_on_stop(kafka: Settings) -> None:
    prefix = unique("onstop") + "-"
    _topics(kafka, prefix)
    numbers = make_numbers(3_000, keys=40, seed=11)
    produce_numbers(kafka, f"{prefix}numbers", numbers)
    app = StreamApp(
        HELD_SUM,
        RuntimeConfig(client=kafka.client_config(), instance_id="on-stop", topic_prefix=prefix),
    )
    thread = _run_in_thread(app)
    try:
        wait_for(lambda: caught_up(kafka, f"{prefix}held-sum", f"{prefix}numbers"), 90, "catch up")
        assert read_all(kafka, f"{prefix}sums") == []  # all input committed, all held back
    finally:
        app.stop()
        thread.join(60)
    assert not thread.is_alive()
    decoder = msgspec.json.Decoder(Sum)
    sent = {
        s.key: (s.count, s.total)
        for s in map(decoder.decode, (m.value() for m in read_all(kafka, f"{prefix}sums")))
    }
    expected: dict[str, tuple[int, int]] = {}
    for n in numbers:
        count, total = expected.get(n.key, (0, 0))
        expected[n.key] = (count + 1, total + n.amount)
    assert sent == expected
    assert len(read_all(kafka, f"{prefix}sums")) == len(expected)  # one per key, once


def test_poison_records_go_to_dead_letters_and_the_rest_is_processed(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("poison") + "-"
    _topics(kafka, prefix)
    numbers = make_numbers(5_000, keys=20, seed=11, poison_every=97)
    poison = [n for n in numbers if n.poison]
    produce_numbers(kafka, f"{prefix}numbers", numbers)
    proc = ServiceProcess(kafka, "tests.support.jobs:RUNNING_SUM", prefix, "p1", tmp_path)
    try:
        wait_for(
            lambda: caught_up(kafka, f"{prefix}running-sum", f"{prefix}numbers"), 90, "catch up"
        )
        assert proc.terminate() == 0
    finally:
        if proc.alive():
            proc.kill()
    check_sum_outputs(read_all(kafka, f"{prefix}sums"), numbers)
    dead = read_all(kafka, f"{prefix}numbers.dlq")
    assert len(dead) == len(poison) == 5_000 // 97
    # The original key and bytes, exactly as produced.
    originals = sorted((m.key(), m.value()) for m in dead)
    assert originals == sorted((n.key.encode(), msgspec.json.encode(n)) for n in poison)
    for msg in dead:
        meta = header_map(msg.headers())
        assert meta["tf.stage"] == "running-sum"
        assert meta["tf.reason"] == "processor_error"
        assert meta["tf.error"] == "PoisonError"
        assert meta["tf.source.topic"] == f"{prefix}numbers"
        assert meta["tf.detail"].startswith("poison record")
        assert int(meta["tf.source.offset"]) >= 0
    # Count in = count out + count rejected.
    assert len(read_all(kafka, f"{prefix}sums")) + len(dead) == len(numbers)
