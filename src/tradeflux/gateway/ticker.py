"""The clock of the post-trade services: a tick into every partition, every few seconds.

The allocations and confirmations services decide by stream time (the largest record
timestamp a partition has seen; ``domain.allocation_clock``), never by the wall clock,
so that a replay decides as the first run did. A partition nobody writes to would never
see time pass (an instruction would wait, a deadline would not pass); ``tradeflux
ticker`` writes a ``ClockTick`` (``{"kind":"tick"}``) into every partition of
``allocations.in`` and ``confirmations.in`` every ``--every`` seconds, timestamped by
Kafka's producer with the wall clock. The ticks are recorded input like any other: a
replay of the topics replays them, and runs no ticker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import msgspec

from tradeflux import topics
from tradeflux.domain.allocation_clock import ClockTick
from tradeflux.gateway.writer import DeliveryError, TradeWriter

log = logging.getLogger("tradeflux.gateway.ticker")

TICKED: tuple[str, ...] = (topics.ALLOCATIONS_IN.name, topics.CONFIRMATIONS_IN.name)
"""The topics the ticker keeps moving (unprefixed)."""

TICK = msgspec.json.encode(ClockTick())


def tick_once(writer: TradeWriter, topic_names: Sequence[str] = TICKED) -> int:
    """Write one tick into every partition of ``topic_names``; return how many were written."""
    written = 0
    for name in topic_names:
        partitions = writer.partition_count(name)
        writer.write_to(name, [(None, TICK, p) for p in range(partitions)])
        written += partitions
    return written


def run_ticker(
    writer: TradeWriter,
    every_s: float,
    stop: threading.Event,
    topic_names: Sequence[str] = TICKED,
) -> int:
    """Tick every ``every_s`` seconds until ``stop``; return the ticks written.

    A round Kafka does not acknowledge is logged and retried at the next one (a late
    tick only delays what it would have decided).
    """
    written = 0
    while not stop.is_set():
        try:
            written += tick_once(writer, topic_names)
        except DeliveryError as exc:
            log.warning("ticks not acknowledged; trying again next round error=%r", str(exc))
        stop.wait(every_s)
    return written
