"""Waiting out a cluster that is briefly unavailable: backoff with jitter, up to a deadline.

One log line when a wait begins (with the error and the deadline) and one when it ends
(with how long it took), never one per retry; ``/readyz`` is false meanwhile. Past the
deadline the instance exits with a one-line :class:`DeadlineExceededError`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tradeflux.stream.errors import DeadlineExceededError, StreamError, TransientKafkaError

log = logging.getLogger("tradeflux.stream")
T = TypeVar("T")


class Stopping(StreamError):
    """The instance was asked to stop while it waited for the cluster."""


class Waits:
    """What an instance is waiting for now (``/readyz`` is false while any)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._what: set[str] = set()

    def set(self, what: str, waiting: bool) -> None:
        """Note that the instance waits (or no longer waits) for ``what``."""
        with self._lock:
            if waiting:
                self._what.add(what)
            else:
                self._what.discard(what)

    def current(self) -> list[str]:
        """Return what it waits for, sorted."""
        with self._lock:
            return sorted(self._what)


class Patience:
    """Retries one kind of operation through transient failures, up to ``deadline_s``."""

    def __init__(
        self,
        what: str,
        deadline_s: float,
        context: str,
        waits: Waits | None = None,
        stopping: Callable[[], bool] = lambda: False,
        base_s: float = 0.05,
        cap_s: float = 2.0,
    ) -> None:
        self.what = what
        self.deadline_s = deadline_s
        self.context = context
        self._waits = waits
        self._stopping = stopping
        self._base_s = base_s
        self._cap_s = cap_s
        self._delay_s = base_s
        self.since: float | None = None
        self.attempts = 0

    @property
    def waiting(self) -> bool:
        """Tell whether the operation is failing now."""
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        """Note a transient failure; sleep before the next try, or raise past the deadline."""
        now = time.monotonic()
        self.attempts += 1
        if self.since is None:
            self.since = now
            self._delay_s = self._base_s
            log.warning(
                "waiting for the cluster %s what=%s error=%s deadline_s=%g",
                self.context,
                self.what,
                _text(exc),
                self.deadline_s,
            )
            if self._waits is not None:
                self._waits.set(self.what, True)
        elif now - self.since > self.deadline_s:
            raise DeadlineExceededError(
                f"{self.context}: {self.what} failed for {now - self.since:.0f} s, past the "
                f"{self.deadline_s:g} s deadline ({_text(exc)}); check the cluster "
                "(`tradeflux broker status`) and restart the instance"
            ) from None
        pause = self._delay_s * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        self._delay_s = min(self._cap_s, self._delay_s * 2)
        end = time.monotonic() + pause
        while time.monotonic() < end:
            if self._stopping():
                raise Stopping(f"{self.context}: stopping while waiting for {self.what}")
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def succeeded(self) -> None:
        """Note that the operation worked (ends a wait, with one line)."""
        if self.since is None:
            return
        log.info(
            "cluster available again %s what=%s waited_s=%.1f attempts=%d",
            self.context,
            self.what,
            time.monotonic() - self.since,
            self.attempts,
        )
        self.since = None
        self.attempts = 0
        if self._waits is not None:
            self._waits.set(self.what, False)

    def run(self, op: Callable[[], T]) -> T:
        """Return ``op()``, retried through TransientKafkaError until the deadline."""
        while True:
            try:
                result = op()
            except TransientKafkaError as exc:
                self.failed(exc)
                continue
            self.succeeded()
            return result


def _text(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:300]
