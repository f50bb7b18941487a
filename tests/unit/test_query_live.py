"""Live updates: coalescing per key between flushes, kinds per subscriber, slow subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tradeflux.query.live import LiveHub
from tradeflux.query.readmodel import Change


async def take(stream: AsyncIterator[bytes], n: int) -> list[bytes]:
    return [await anext(stream) for _ in range(n)]


def test_keyed_changes_coalesce_to_the_last_value_and_log_events_all_go() -> None:
    async def run() -> list[bytes]:
        hub = LiveHub()
        stream = hub.stream(frozenset({"position", "alert"}), b"event: hello\ndata: {}\n\n")
        first = await take(stream, 1)
        hub.publish([Change("position", "A|X", {"q": "1"}), Change("position", "A|X", {"q": "2"})])
        hub.publish([Change("alert", "A", {"n": 1}), Change("alert", "A", {"n": 2})])
        hub.publish([Change("pnl", "A", {"t": "1"}), Change("position", "B|X", None)])
        hub.flush()
        return first + await take(stream, 1)

    hello, batch = asyncio.run(run())
    assert hello.endswith(b"event: hello\ndata: {}\n\n")
    assert batch == (
        b'event: position\ndata: {"q":"2"}\n\n'
        b'event: position_removed\ndata: {"key":"B|X","removed":true}\n\n'
        b'event: alert\ndata: {"n":1}\n\n'
        b'event: alert\ndata: {"n":2}\n\n'
    )  # no pnl: not asked for


def test_a_subscriber_that_falls_behind_is_disconnected_not_waited_for() -> None:
    async def run() -> tuple[list[bytes], int]:
        hub = LiveHub(queue_flushes=2)
        stream = hub.stream()
        await take(stream, 1)
        for i in range(3):
            hub.publish([Change("reject", f"T{i}", {"i": i})])
            hub.flush()
        rest = [chunk async for chunk in stream]
        return rest, hub.dropped_subscribers

    rest, dropped = asyncio.run(run())
    assert (rest, dropped) == ([], 1)
