"""The stall watch: one log line with the stacks when the loop stops turning, none for a wait."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tradeflux.stream.retry import Waits
from tradeflux.stream.runner import StallWatch, thread_stacks


class _Loop:
    """What StallWatch reads of a StreamApp: when the loop last turned, what it waits for."""

    def __init__(self) -> None:
        self.waits = Waits()
        self.turned = time.monotonic()

    def seconds_since_turn(self) -> float:
        return time.monotonic() - self.turned


def _wait(cond, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_loop_that_stops_turning_is_logged_once_with_stacks_then_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tradeflux.stream")
    loop = _Loop()
    watch = StallWatch(loop, "service=s instance=i", after_s=0.3)  # type: ignore[arg-type]
    watch.start()
    try:
        _wait(lambda: any("thread=MainThread" in r.message for r in caplog.records))
        stalled = [r for r in caplog.records if "loop stalled" in r.message]
        stacks = [r for r in caplog.records if r.message.startswith("stack ")]
        assert len(stalled) == 1
        assert all("service=s instance=i thread=" in r.message for r in stacks)
        time.sleep(0.5)
        assert len([r for r in caplog.records if "loop stalled" in r.message]) == 1
        loop.turned = time.monotonic() + 3600  # turning again
        _wait(lambda: any("loop turns again" in r.message for r in caplog.records))
    finally:
        watch.stop()
        watch.join(5)


def test_a_wait_the_loop_knows_of_is_not_a_stall(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tradeflux.stream")
    loop = _Loop()
    loop.turned -= 3600  # an hour in one turn, but waiting out the cluster all along
    loop.waits.set("commit", True)
    watch = StallWatch(loop, "service=s instance=i", after_s=0.3)  # type: ignore[arg-type]
    watch.start()
    try:
        time.sleep(1.0)
        assert not [r for r in caplog.records if "loop stalled" in r.message]
        loop.waits.set("commit", False)  # the wait ended; the turn goes on as long again: a stall
        _wait(lambda: any("loop stalled" in r.message for r in caplog.records))
    finally:
        watch.stop()
        watch.join(5)


def test_thread_stacks_name_every_thread() -> None:
    started = threading.Event()
    done = threading.Event()

    def park() -> None:
        started.set()
        done.wait(10)

    t = threading.Thread(target=park, name="parked-one")
    t.start()
    started.wait(5)
    try:
        lines = thread_stacks()
        parked = [line for line in lines if line.startswith("thread=parked-one ")]
        assert parked and " park" in parked[0]
    finally:
        done.set()
        t.join(5)
