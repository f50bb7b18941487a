"""A transactional call that never returns gives the producer up instead of the loop.

No broker is needed: the client is made against an address nobody listens on, and the
stuck call is a stand-in that sleeps (librdkafka waits for send_offsets, commit and abort
without a bound of its own).
"""

from __future__ import annotations

import threading
import time

import pytest

from tradeflux.stream import kafka
from tradeflux.stream.errors import KafkaClientError, ProducerFatalError


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> kafka.TransactionalProducer:
    monkeypatch.setattr(kafka, "_STUCK_GRACE_S", 0.2)
    return kafka.TransactionalProducer({"bootstrap.servers": "127.0.0.1:9"}, "unit-stuck")


def test_a_call_that_does_not_return_raises_a_fatal_error_and_the_client_is_given_up(
    producer: kafka.TransactionalProducer,
) -> None:
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(ProducerFatalError) as caught:
        producer._bounded(lambda: release.wait(30), 0.1, "commit")
    assert time.monotonic() - started < 5
    assert caught.value.code == "_STUCK"
    assert "commit did not return" in str(caught.value)
    with pytest.raises(ProducerFatalError):  # no second call into a stuck client
        producer._bounded(lambda: None, 0.1, "abort")
    closed = time.monotonic()
    producer.close(5.0)  # no flush into a client that does not answer
    assert time.monotonic() - closed < 1
    release.set()


def test_a_call_that_returns_passes_its_error_through(
    producer: kafka.TransactionalProducer,
) -> None:
    producer._bounded(lambda: None, 0.1, "commit")

    def fails() -> None:
        raise KafkaClientError("refused", "X")

    with pytest.raises(KafkaClientError, match="refused"):
        producer._bounded(fails, 0.1, "commit")
    producer._bounded(lambda: None, 0.1, "commit")  # still usable: nothing was stuck
