"""The ticker on the real broker: each round ticks every partition of the post-trade inputs."""

from __future__ import annotations

import threading

import msgspec
import pytest

from tests.conftest import unique
from tests.support.kafka_tools import create_topics, read_all, wait_for
from tradeflux.config import Settings
from tradeflux.domain.allocation_clock import ClockTick
from tradeflux.domain.allocation_events import AllocationInput
from tradeflux.domain.confirmation_events import ConfirmationInput
from tradeflux.gateway.ticker import run_ticker, tick_once
from tradeflux.gateway.writer import DeliveryError, TradeWriter

pytestmark = pytest.mark.integration


def test_each_round_ticks_every_partition_of_both_inputs_and_both_decode_the_tick(
    kafka: Settings,
) -> None:
    prefix = unique("tick") + "."
    create_topics(kafka, {prefix + "allocations.in": 3, prefix + "confirmations.in": 2})
    writer = TradeWriter(kafka.client_config(), prefix)
    try:
        assert tick_once(writer) == 5
        stop = threading.Event()
        thread = threading.Thread(target=run_ticker, args=(writer, 0.05, stop), daemon=True)
        thread.start()

        def rounds() -> int:
            return len(read_all(kafka, prefix + "confirmations.in")) // 2

        wait_for(lambda: rounds() >= 3, 30, "three more rounds of ticks")
        stop.set()
        thread.join(10)
    finally:
        writer.close()
    alloc = read_all(kafka, prefix + "allocations.in")
    confirm = read_all(kafka, prefix + "confirmations.in")
    for messages, partitions in ((alloc, 3), (confirm, 2)):
        per_partition = {m.partition() for m in messages}
        assert per_partition == set(range(partitions))
        counts = [sum(1 for m in messages if m.partition() == p) for p in range(partitions)]
        assert max(counts) - min(counts) <= 1  # a round writes every partition
    assert msgspec.json.decode(alloc[0].value(), type=AllocationInput) == ClockTick()
    assert msgspec.json.decode(confirm[0].value(), type=ConfirmationInput) == ClockTick()


def test_a_missing_topic_is_an_error_that_says_how_to_create_it(kafka: Settings) -> None:
    writer = TradeWriter(kafka.client_config(), unique("none") + ".")
    try:
        with pytest.raises(DeliveryError, match="tradeflux topics create"):
            tick_once(writer)
    finally:
        writer.close()
