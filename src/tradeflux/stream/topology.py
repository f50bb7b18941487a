"""What a service is made of: its topics, stores, global tables, timers and processor.

A service module builds one :class:`Service` and nothing else touches Kafka::

    SERVICE = Service(
        name="positions",
        inputs=[Topic("trades.enriched", JsonCodec(EnrichedTrade))],
        outputs=[Topic("positions", JsonCodec(Position))],
        stores=[StoreSpec("positions", MsgpackCodec(Position))],
        process=apply_trades,
    )
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tradeflux.stream.codecs import Codec, JsonCodec

if TYPE_CHECKING:
    from tradeflux.stream.context import Context
    from tradeflux.stream.records import Record

Processor = Callable[["Context", "Sequence[Record]"], None]
"""Called once per input partition per batch, with that partition's records in offset order."""

PunctuateFn = Callable[["Context", int], None]
"""Called with the partition's context and the time (ms) the timer fired at."""

KeyedPunctuateFn = Callable[["Context", int, str], None]
"""Called with the partition's context, the time (ms) the timer fired at, and one key."""


@dataclass(frozen=True)
class Topic:
    """A topic and the codec of its values; keys are UTF-8 strings."""

    name: str
    codec: Codec[Any] = field(default_factory=JsonCodec)


@dataclass(frozen=True)
class StoreSpec:
    """An in-memory key/value store, one per input partition, with a compacted changelog.

    ``logged=False``: a store of derived, disposable state (a cache, a rate limiter's
    clock) that has no changelog and starts empty after a restore or a move.
    """

    name: str
    codec: Codec[Any] = field(default_factory=JsonCodec)
    logged: bool = True


@dataclass(frozen=True)
class GlobalTableSpec:
    """A compacted topic every instance reads whole before processing, then follows."""

    name: str
    topic: str
    codec: Codec[Any] = field(default_factory=JsonCodec)


@dataclass(frozen=True)
class Punctuator:
    """A timer per assigned partition.

    ``wall``: every ``every_ms`` of wall-clock time. ``stream``: each time the partition's
    stream time (the largest record timestamp seen) crosses a multiple of ``every_ms``.
    ``fn(ctx, at_ms)`` is called once per firing; with ``keys`` (a function of the context
    returning the keys to visit, e.g. a store's keys) ``fn(ctx, at_ms, key)`` is called
    once per key instead, and a key whose call fails is isolated from the others.
    """

    every_ms: int
    fn: PunctuateFn | KeyedPunctuateFn
    kind: Literal["wall", "stream"] = "wall"
    keys: Callable[[Context], Iterable[str]] | None = None


@dataclass(frozen=True)
class Service:
    """A microservice: topics in, a processor, stores, global tables, timers, topics out."""

    name: str
    inputs: Sequence[Topic]
    process: Processor
    outputs: Sequence[Topic] = ()
    stores: Sequence[StoreSpec] = ()
    global_tables: Sequence[GlobalTableSpec] = ()
    punctuators: Sequence[Punctuator] = ()
    dead_letter_topic: str | None = None
    # Called once per active partition, ``on_stop(ctx, now_ms)``, when the instance stops
    # gracefully (SIGTERM, Ctrl-C), in a last batch of its own: what the service holds back
    # for a timer (a rate-capped P&L) goes out before the partition leaves with it. Not
    # called on a crash or when a partition moves in a rebalance.
    on_stop: PunctuateFn | None = None

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError(f"service {self.name} needs at least one input topic")
        if self.stores and len(self.inputs) != 1:
            # A store partition belongs to one input partition; co-partitioned multi-topic
            # tasks need an assignor that keeps partition p of every topic together.
            raise ValueError(f"service {self.name}: a service with stores reads one input topic")
