"""A reader whose metadata is stale asks for a partition's offsets with fresh metadata."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from tests.conftest import unique
from tests.support.kafka_tools import create_topics, producer
from tradeflux.config import Settings
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import PartitionReader

pytestmark = pytest.mark.integration


class _Stale:
    """Stands in for the reader's own client: every watermark query fails with ``code``."""

    def __init__(self, real: Any, code: int) -> None:
        self.real = real
        self.code = code
        self.asked = 0

    def get_watermark_offsets(self, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        raise KafkaException(KafkaError(self.code))

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("code", [KafkaError._UNKNOWN_PARTITION, KafkaError._TIMED_OUT])
def test_a_stale_client_answers_from_a_fresh_one(kafka: Settings, code: int) -> None:
    topic = unique("stale-offsets")
    create_topics(kafka, {topic: 2})
    p = producer(kafka)
    for _ in range(5):
        p.produce(topic, b"v", b"k", partition=1)
    assert p.flush(30) == 0
    reader = PartitionReader(kafka.client_config())
    stale = _Stale(reader._consumer, code)
    reader._consumer = stale  # type: ignore[assignment]
    try:
        assert reader.watermarks((topic, 1)) == (0, 5)
        assert stale.asked == 1
    finally:
        reader.close()


def test_other_errors_are_not_retried_with_a_fresh_client(kafka: Settings) -> None:
    reader = PartitionReader(kafka.client_config())
    stale = _Stale(reader._consumer, KafkaError.TOPIC_AUTHORIZATION_FAILED)
    reader._consumer = stale  # type: ignore[assignment]
    try:
        with pytest.raises(KafkaClientError):
            reader.watermarks(("any", 0))
    finally:
        reader.close()
