"""Replaying the post-trade services' input into fresh groups gives byte-identical outputs.

A run of the plan (tests/support/allocation_run.py) records what the allocations and
confirmations services read (``allocations.in``, ``confirmations.in``: instructions,
executions, children, bookings, affirmations and the clock ticks, with their
timestamps). Each input is copied as recorded into a fresh prefix, where a fresh
instance of the service reads it in batches of 7 records (the first run's batches were
whatever had arrived); every output key must carry exactly the same bytes, in the same
order: allocations of record, acks, the children on ``trades.raw`` and
``confirmations.in``, confirmations and affirmation exceptions. Time is the records'
own (stream time), so the replay's wall clock changes nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support import allocation_e2e as e2e
from tests.support import allocation_run as runs
from tests.support.kafka_tools import ServiceProcess, wait_assigned
from tradeflux.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_replaying_the_recorded_input_into_fresh_groups_gives_the_same_bytes(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("alloc-run") + "-"
    e2e.prepare(kafka, prefix)
    plan = e2e.build_plan(16, dt.datetime.now(dt.UTC).replace(microsecond=0), "RP")
    run = runs.Run(kafka, prefix, e2e.log_dir(tmp_path))
    try:
        for name in runs.SERVICES:
            run.start(name)
        thread, _pacer = runs.run_and_hold(run, runs.plan_records(plan), None)
        thread.join(120)

        def answer(records: list[tuple[str, bytes]]) -> None:
            e2e.produce(kafka, prefix, "confirmations.in", records)

        runs.finish(run, plan, answer)
        runs.caught_up_all(run, ("allocations", "confirmations"))
        run.stop()
    finally:
        run.kill_all()

    logs = e2e.log_dir(tmp_path)
    for name, inputs, outputs in (
        ("allocations", "allocations.in",
         (("allocations.status", None), ("allocations.acks", None),
          ("trades.raw", runs.is_booking), ("confirmations.in", runs.is_allocated))),
        ("confirmations", "confirmations.in",
         (("confirmations", None), ("confirmations.exceptions", None))),
    ):  # fmt: skip
        again = unique(f"replay-{name}") + "-"
        e2e.prepare(kafka, again)
        copied = runs.copy_topic(kafka, prefix + inputs, again + inputs)
        replay = ServiceProcess(kafka, name, again, f"{name}-replay", logs,
                                "--batch-max-records", "7", env=e2e.SERVICE_ENV)  # fmt: skip
        try:
            wait_assigned(replay)
            runs.wait_caught_up(kafka, again, name, replay)
            assert replay.terminate() == 0
        finally:
            if replay.alive():
                replay.kill()
        for topic, keep in outputs:
            first = runs.by_key(kafka, prefix + topic, keep or (lambda v: True))
            second = runs.by_key(kafka, again + topic, keep or (lambda v: True))
            assert first, topic
            assert second == first, f"{name}: {topic} differs after replaying {copied} records"
