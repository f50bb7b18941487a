"""A ticker: clock ticks into every partition of a topic, so its readers' time moves on.

Services whose timers follow recorded time (settlement's cut-offs: stream time is the
largest recorded time of the partition's records) would stand still on a quiet
partition. A ticker is a tradeflux service on the topic it ticks: it holds some of its
partitions (as any consumer group member does, so instances share them), reads and
ignores their records, and on a wall-clock timer writes one
:class:`~tradeflux.domain.clock.Tick` (header ``tf.tick: 1``) into each partition it
holds, exactly-once like any output. The wall clock enters the system here, once, as
data: a replay of the topic reads the same ticks in the same places.

The topic must be declared with ``ticks=True`` in the registry (its readers' codec then
decodes ticks too). ``ticker_for`` builds the service; settlement's is
services/ticker_settlement.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from tradeflux.domain.clock import TICK_HEADER, Tick, time_of_ms
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Punctuator, Service
from tradeflux.topics import TopicDef

DEFAULT_EVERY_MS = 1000


def ticker_for(topic: TopicDef, every_ms: int = DEFAULT_EVERY_MS, name: str = "") -> Service:
    """Return the service that ticks each partition it holds of ``topic`` every ``every_ms``."""
    if not topic.ticks:
        raise ValueError(f"topic {topic.name} does not carry ticks; declare it with ticks=True")
    service_name = name or f"ticker-{topic.name.replace('.', '-')}"

    def ignore(ctx: Context, records: Sequence[Record]) -> None:
        """Read the topic's records (the ticks included) and do nothing with them."""

    def tick(ctx: Context, at_ms: int) -> None:
        ctx.emit(
            topic.name,
            None,
            Tick(tick=time_of_ms(at_ms), source=f"{service_name}[{ctx.partition}]"),
            headers=[(TICK_HEADER, b"1")],
            partition=ctx.partition,
        )

    return Service(
        name=service_name,
        inputs=[topic.raw()],
        outputs=[topic.topic()],
        process=ignore,
        punctuators=[Punctuator(every_ms, tick, "wall")],
    )
