"""A broker run of the post-trade services fed from Python, for the crash and replay tests.

The plan of tests/support/allocation_e2e.py is produced straight to the input topics
(fills to ``trades.raw``, instructions to ``allocations.in``, affirmations to
``confirmations.in``), paced by a :class:`~tests.support.kafka_tools.Pacer` that a crash
test holds while a killed service restarts. The run ends as the FIX run does: the
order without executions timed out, every confirmation out, answers on time, the
deadline passed, late affirmations; then the outcome is checked against the reference.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from tests.support import allocation_e2e as e2e
from tests.support import allocation_reference as ref
from tests.support.kafka_tools import (
    Pacer,
    ServiceProcess,
    assert_running,
    caught_up,
    committed_progress,
    producer,
    read_all,
    wait_assigned,
    wait_for,
)
from tradeflux.config import Settings
from tradeflux.domain.allocation_clock import to_ms

SERVICES = ("validator", "positions", "allocation-feed", "allocations", "confirmations")
INPUTS = {
    "validator": "trades.raw",
    "positions": "trades.enriched",
    "allocation-feed": "trades.enriched",
    "allocations": "allocations.in",
    "confirmations": "confirmations.in",
}


def plan_records(plan: e2e.Plan) -> list[tuple[str, str, bytes]]:
    """Return ``(topic, key, value)`` of the plan: each block's fills, then its instructions."""
    by_order: dict[str, list[tuple[str, str, bytes]]] = defaultdict(list)
    for f in plan.fills:
        event = e2e.fill_event(f)
        by_order[f.order_id].append(("trades.raw", f.exec_id, msgspec.json.encode(event)))
    for i in plan.instructions:
        value = msgspec.json.encode(e2e.instruction_struct(i))
        by_order[i.order_id].append(("allocations.in", i.order_id, value))
    return [r for records in by_order.values() for r in records]


def feed(
    settings: Settings, prefix: str, records: list[tuple[str, str, bytes]], pacer: Pacer
) -> None:
    """Produce ``records`` at the pacer's rate; raise if Kafka did not take every one."""
    p = producer(settings)
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for n, (topic, key, value) in enumerate(records):
        pacer.wait(n)
        p.produce(prefix + topic, value, key.encode(), on_delivery=delivered)
        p.poll(0)
    assert p.flush(60) == 0 and not errors, errors


@dataclass
class Run:
    """The processes of one run and how to start (again) each of them."""

    settings: Settings
    prefix: str
    logs: Path
    procs: dict[str, ServiceProcess] = field(default_factory=dict)
    extra: tuple[str, ...] = ()

    def start(self, name: str) -> ServiceProcess:
        proc = ServiceProcess(
            self.settings, name, self.prefix, f"{name}-1", self.logs, *self.extra,
            env=e2e.SERVICE_ENV,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def alive(self) -> None:
        assert_running(*self.procs.values())

    def progress(self, name: str) -> int:
        return committed_progress(self.settings, self.prefix + name, self.prefix + INPUTS[name])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.alive():
                assert proc.terminate() == 0, proc.log()[-3000:]

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.alive():
                proc.kill()


def finish(
    run: Run, plan: e2e.Plan, pace: Callable[[list[tuple[str, bytes]]], None]
) -> ref.AllocationModel:
    """Drive the run from "every instruction sent" to the end, and check it all.

    ``pace`` produces a list of ``(key, value)`` affirmations to ``confirmations.in`` (a
    crash test paces and kills around it).
    """
    kafka, prefix = run.settings, run.prefix
    e2e.wait_all_decided(kafka, prefix, plan, 300, run.alive)
    e2e.inject_tick(kafka, prefix, "allocations.in", int(time.time() * 1000) + 61_000)
    wait_for(lambda: plan.unknown_block in e2e.decided_acks(kafka, prefix), 120, "the ghost")
    model = e2e.check_outcome(kafka, prefix, plan)
    confirmations = e2e.wait_confirmed(kafka, prefix, model, 300, run.alive)
    on_time, late, never = e2e.affirmation_plan(model)
    pace([e2e.ack_record(e2e.confirm_id(model, t), s) for t, s in sorted(on_time.items())])
    e2e.wait_statuses(kafka, prefix, on_time, 300, run.alive)
    last_deadline = max(c.deadline for c in confirmations.values())
    e2e.inject_tick(kafka, prefix, "confirmations.in", to_ms(last_deadline) + 1000)
    open_now = [*late, *never, *(t for t, s in on_time.items() if s == "REJECTED")]
    e2e.wait_exceptions(kafka, prefix, dict.fromkeys(open_now, 1), 300, run.alive)
    pace([e2e.ack_record(e2e.confirm_id(model, t), "AFFIRMED") for t in sorted(late)])
    e2e.wait_exceptions(kafka, prefix, dict.fromkeys(late, 2), 300, run.alive)
    e2e.check_confirmations(kafka, prefix, model, on_time, late)
    want = e2e.expected_positions(plan, model)
    wait_for(
        lambda: not e2e.same_positions(e2e.position_view(kafka, prefix), want),
        300, "positions equal to the reference",
    )  # fmt: skip
    return model


def caught_up_all(run: Run, names: tuple[str, ...]) -> None:
    for name in names:
        wait_for(
            lambda n=name: (
                run.alive() or caught_up(run.settings, run.prefix + n, run.prefix + INPUTS[n])
            ),
            180, f"{name} to catch up",
        )  # fmt: skip


# -- replay ----------------------------------------------------------------------------------


def copy_topic(settings: Settings, source: str, target: str) -> int:
    """Copy every committed record of ``source`` to ``target``: same partition, key, value, time."""
    p = producer(settings)
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    messages = read_all(settings, source)
    for m in messages:
        p.produce(target, m.value(), m.key(), partition=m.partition(),
                  timestamp=m.timestamp()[1], on_delivery=delivered)  # fmt: skip
        p.poll(0)
    assert p.flush(60) == 0 and not errors, errors
    return len(messages)


def by_key(
    settings: Settings, topic: str, keep: Callable[[bytes], bool] = lambda v: True
) -> dict[str, list[bytes]]:
    """Every value of ``topic`` per key, in offset order (read_committed), those ``keep`` keeps."""
    out: dict[str, list[bytes]] = defaultdict(list)
    for m in read_all(settings, topic):
        value = m.value() or b""
        if keep(value):
            out[m.key().decode()].append(value)
    return dict(out)


def is_booking(value: bytes) -> bool:
    return b'"allocation":{' in value


def is_allocated(value: bytes) -> bool:
    return value.startswith(b'{"kind":"allocated"')


def wait_caught_up(settings: Settings, prefix: str, name: str, proc: ServiceProcess) -> None:
    wait_for(
        lambda: assert_running(proc) or caught_up(settings, prefix + name, prefix + INPUTS[name]),
        180, f"the replayed {name} to catch up",
    )  # fmt: skip


def now_tag() -> str:
    return dt.datetime.now(dt.UTC).strftime("%H%M%S")


def run_and_hold(
    run: Run, records: list[tuple[str, str, bytes]], rate: float | None
) -> tuple[threading.Thread, Pacer]:
    """Feed ``records`` from a thread at ``rate``, held until the services have partitions."""
    pacer = Pacer(rate)
    pacer.hold()
    thread = threading.Thread(
        target=feed, args=(run.settings, run.prefix, records, pacer), daemon=True
    )
    thread.start()
    wait_assigned(*run.procs.values())
    pacer.release()
    return thread, pacer
