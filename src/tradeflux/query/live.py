"""Live updates: read-model changes fanned out to server-sent-event subscribers.

The follower thread hands in changes as they are applied; a flush on the event loop
sends them every ``flush_s`` (250 ms by default). Between two flushes, keyed state
(positions, P&L, bars, obligations, refdata) is coalesced to its last value per key, and
of the log events (alerts, rejects) at most ``max_log_events`` of the newest are kept,
so a burst or a replay cannot flood a browser. A subscriber that falls more than
``queue_flushes`` flushes behind is disconnected; an ``EventSource`` reconnects and
reloads its snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec

from tradeflux.query.readmodel import Change

#: Kinds whose events replace earlier ones of the same key.
_KEYED = frozenset(
    {
        "position",
        "pnl",
        "bar",
        "obligation",
        "instrument",
        "account",
        "counterparty",
        "final",
        "allocation",
        "confirmation",
    }
)
_KEEPALIVE_S = 15.0


class _Subscriber:
    def __init__(self, kinds: frozenset[str] | None, queue_flushes: int) -> None:
        self.kinds = kinds
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_flushes)


class LiveHub:
    """Collects changes from any thread and streams them to async subscribers as SSE text."""

    def __init__(
        self, flush_s: float = 0.25, max_log_events: int = 200, queue_flushes: int = 400
    ) -> None:
        self.flush_s = flush_s
        self.max_log_events = max_log_events
        self.queue_flushes = queue_flushes
        self._lock = threading.Lock()
        self._keyed: dict[tuple[str, str], Change] = {}
        self._logs: list[Change] = []
        self._subscribers: set[_Subscriber] = set()
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        self._closed = False
        self.dropped_subscribers = 0

    def publish(self, changes: Iterable[Change]) -> None:
        """Queue changes for the next flush (thread-safe; called by the follower)."""
        with self._lock:
            for change in changes:
                if change.kind in _KEYED:
                    self._keyed[(change.kind, change.key)] = change
                else:
                    self._logs.append(change)
            if len(self._logs) > 4 * self.max_log_events:
                del self._logs[: -self.max_log_events]

    @property
    def subscribers(self) -> int:
        """How many streams are open."""
        return len(self._subscribers)

    def flush(self) -> None:
        """Send what was published since the last flush to every subscriber (on the loop)."""
        with self._lock:
            keyed, self._keyed = self._keyed, {}
            logs, self._logs = self._logs[-self.max_log_events :], []
        if not (keyed or logs) or not self._subscribers:
            return
        events: list[tuple[str, bytes]] = []
        for change in (*keyed.values(), *logs):
            events.append(self._event(change))
        for sub in list(self._subscribers):
            chosen = [text for kind, text in events if sub.kinds is None or kind in sub.kinds]
            if not chosen:
                continue
            try:
                sub.queue.put_nowait(b"".join(chosen))
            except asyncio.QueueFull:  # too slow: drop it, the browser reconnects
                self.dropped_subscribers += 1
                self._disconnect(sub)

    def _event(self, change: Change) -> tuple[str, bytes]:
        kind, key, value, traceparent = change
        # The trace the change belongs to, as a field of its own: EventSource ignores fields
        # it does not know (HTML's SSE rules), a client that follows traces reads it.
        trace = b"traceparent: " + traceparent + b"\n" if traceparent else b""
        name = kind.encode()
        if value is None:
            name += b"_removed"
            data = self._encoder.encode({"key": key, "removed": True})
        else:
            data = self._encoder.encode(value)
        return kind, b"event: " + name + b"\n" + trace + b"data: " + data + b"\n\n"

    def _disconnect(self, sub: _Subscriber) -> None:
        self._subscribers.discard(sub)
        while True:  # make room for the end marker
            try:
                sub.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        sub.queue.put_nowait(None)

    async def run(self) -> None:
        """Flush every ``flush_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.flush_s)
            self.flush()

    def close(self) -> None:
        """End every stream (on shutdown); new subscribers end at once."""
        self._closed = True
        for sub in list(self._subscribers):
            self._disconnect(sub)

    async def stream(
        self, kinds: frozenset[str] | None = None, hello: bytes = b""
    ) -> AsyncIterator[bytes]:
        """Yield SSE text: ``hello`` first, then batches of events, with keep-alive comments."""
        sub = _Subscriber(kinds, self.queue_flushes)
        if self._closed:
            return
        self._subscribers.add(sub)
        try:
            yield b"retry: 2000\n" + hello
            while True:
                try:
                    chunk = await asyncio.wait_for(sub.queue.get(), _KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if chunk is None:
                    return
                yield chunk
        finally:
            self._subscribers.discard(sub)


async def cancel_quietly(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
