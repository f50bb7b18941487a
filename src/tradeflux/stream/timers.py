"""Timers of one partition: wall-clock and stream-time punctuation, isolated per key.

A keyed punctuator (``Punctuator(..., keys=...)``) is called once per key. All keys are
first run under one savepoint (the fast path); if any call fails, that run is undone
and the keys are run again one at a time, so a key whose timer fails is rolled back,
logged once and dead-lettered once (reason ``timer_error``) while it keeps failing, and
every other key's timer commits. A timer without keys is undone as a whole on failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tradeflux.stream.deadletter import TIMER_ERROR

if TYPE_CHECKING:
    from tradeflux.stream.context import Context
    from tradeflux.stream.topology import Punctuator, Service

log = logging.getLogger("tradeflux.stream.timers")

STOP_TIMER = -1
"""The timer number that logs and failure keys give the service's ``on_stop``."""


class Timers:
    """The punctuators of one partition, with what they last fired at."""

    def __init__(self, service: Service, ctx: Context, check: Callable[[], None]) -> None:
        self._service = service
        self._ctx = ctx
        self._check = check
        count = len(service.punctuators)
        self._next_wall: list[int | None] = [None] * count
        self._last_stream: list[int] = [-1] * count
        self._saved: tuple[list[int | None], list[int]] | None = None
        self.failing: dict[tuple[int, str], str] = {}  # (timer, key) -> error, while failing
        self.failures = 0  # failed calls since the last take (a metric)

    def next_wall_ms(self) -> int | None:
        """Return when the next wall-clock timer is due (None: none is armed)."""
        due = [d for d in self._next_wall if d is not None]
        return min(due) if due else None

    def fire(self, now_ms: int) -> bool:
        """Fire every due punctuator; return whether any call succeeded."""
        fired = False
        ctx = self._ctx
        for i, punctuator in enumerate(self._service.punctuators):
            at = self._due(i, punctuator, now_ms, ctx.stream_time_ms)
            if at is None:
                continue
            if punctuator.keys is None:
                fired |= self._fire_whole(i, punctuator.fn, at)
            else:
                fired |= self._fire_keyed(i, punctuator, at)
        return fired

    def _due(self, i: int, punctuator: Punctuator, now_ms: int, stream_ms: int) -> int | None:
        if self._saved is None:
            self._saved = (list(self._next_wall), list(self._last_stream))
        if punctuator.kind == "wall":
            due = self._next_wall[i]
            self._next_wall[i] = (
                now_ms + punctuator.every_ms if due is None or now_ms >= due else due
            )
            return now_ms if due is not None and now_ms >= due else None
        if stream_ms < 0:
            return None
        boundary = stream_ms - stream_ms % punctuator.every_ms
        if boundary <= self._last_stream[i]:
            return None
        first = self._last_stream[i] < 0
        self._last_stream[i] = boundary
        return None if first else boundary

    def fire_on_stop(self, now_ms: int) -> bool:
        """Call the service's ``on_stop`` (a graceful stop); return whether it succeeded.

        Undone as a whole on failure, logged and dead-lettered as timer ``stop``.
        """
        if self._service.on_stop is None:
            return False
        return self._fire_whole(STOP_TIMER, self._service.on_stop, now_ms)

    def _fire_whole(self, i: int, fn: Any, at: int) -> bool:
        ctx = self._ctx
        ctx.savepoint()
        try:
            fn(ctx, at)
            self._check()
            ctx.release_savepoint()
            return True
        except Exception as exc:  # noqa: BLE001 - a timer failure is reported, not fatal
            ctx.rollback_to_savepoint()
            self._failed(i, "", exc)
            return False

    def _fire_keyed(self, i: int, punctuator: Punctuator, at: int) -> bool:
        ctx = self._ctx
        fn: Any = punctuator.fn
        assert punctuator.keys is not None  # noqa: S101 - checked by the caller
        keys = list(punctuator.keys(ctx))
        if not keys:
            return False
        ctx.savepoint()
        try:
            for key in keys:
                fn(ctx, at, key)
            self._check()
            ctx.release_savepoint()
            self._recovered(i, keys)
            return True
        except Exception:  # noqa: BLE001 - isolated below, key by key
            ctx.rollback_to_savepoint()
        fired = False
        for key in keys:
            ctx.savepoint()
            try:
                fn(ctx, at, key)
                self._check()
                ctx.release_savepoint()
                fired = True
                self._recovered(i, (key,))
            except Exception as exc:  # noqa: BLE001 - this key's failure only
                ctx.rollback_to_savepoint()
                self._failed(i, key, exc)
        return fired

    def _failed(self, i: int, key: str, exc: BaseException) -> None:
        self.failures += 1
        name = type(exc).__name__
        if self.failing.get((i, key)) == name:
            return  # reported when it began failing
        self.failing[(i, key)] = name
        log.warning(
            "timer failed service=%s partition=%d timer=%s key=%s error=%s detail=%s",
            self._service.name,
            self._ctx.partition,
            "stop" if i == STOP_TIMER else i,
            key,
            name,
            str(exc)[:200],
        )
        if self._service.dead_letter_topic is not None:
            self._ctx.dead_letter(
                reason=TIMER_ERROR,
                error=exc,
                detail=str(exc),
                source_topic="",
                source_offset=-1,
                key=key.encode() if key else None,
                value=None,
                headers=None,
            )

    def _recovered(self, i: int, keys: Any) -> None:
        if not self.failing:
            return
        for key in keys:
            if self.failing.pop((i, key), None) is not None:
                log.info(
                    "timer recovered service=%s partition=%d timer=%d key=%s",
                    self._service.name,
                    self._ctx.partition,
                    i,
                    key,
                )

    def commit(self) -> None:
        """Keep what the timers fired at (their batch committed)."""
        self._saved = None

    def rollback(self) -> None:
        """Forget the firings of an aborted batch, so they fire again when it is re-run."""
        if self._saved is not None:
            self._next_wall, self._last_stream = self._saved
            self._saved = None
