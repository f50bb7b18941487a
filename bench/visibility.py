"""When a chain's outputs became visible: a read_committed reader of its topics, an SSE client.

Both run in processes of their own (spawned), so that they share no interpreter lock
with the open-loop producer, and note only what they saw and when (``time.time()``, the
clock of the scheduled send times); bench/inclusion.py works out afterwards which
trades each output includes. The reader also tells when the chain has answered a probe
(its first P&L) and when its output is complete (``Expectation``), so that the run ends
as soon as everything arrived.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

import msgspec
from bench.inclusion import PnlModel

ROLES = ("enriched", "positions", "pnl")

Seen = tuple[int, int, bytes, bytes, Any, float]
"""One record as the reader saw it: partition, offset, key, value, headers, time seen."""


class _Count(msgspec.Struct):
    trade_count: int


@dataclass
class Expectation:
    """What a complete output holds: every trade enriched, every position's last trade
    count, and (``pnl``) the final aggregate of every account, computed from the last
    positions by the chain's model."""

    enriched: int
    position_counts: dict[str, int]
    pnl: PnlModel


@dataclass
class ReaderSpec:
    """The cluster, and the topic of each role (``enriched``, ``positions``, ``pnl``)."""

    bootstrap: str
    topics: dict[str, str]
    partitions: int


@dataclass
class Observed:
    """Every record of each role, in the order read (offset order within a partition)."""

    records: dict[str, list[Seen]] = field(default_factory=lambda: {r: [] for r in ROLES})
    complete_t: float | None = None


def read_outputs(
    spec: ReaderSpec, ready: Event, answered: Event, done: Event, stop: Event,
    control: Any, finals: Any, results: Any,
) -> None:  # fmt: skip
    """Read the chain's topics from offset 0 until ``stop``; put an Observed on ``results``.

    Sets ``answered`` at the first P&L record, and ``done`` once the output is complete by
    the Expectation that ``control`` delivers (none: never); then puts the final P&L of
    every account (``PnlModel`` signatures) on ``finals``.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": spec.bootstrap,
            "group.id": f"bench-latency-{os.getpid()}",  # never joins: partitions by hand
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            "queued.max.messages.kbytes": 262144,
        }
    )
    role_of = {topic: role for role, topic in spec.topics.items()}
    consumer.assign(
        [TopicPartition(t, p, 0) for t in spec.topics.values() for p in range(spec.partitions)]
    )
    out = Observed()
    records = out.records
    expectation: Expectation | None = None
    checker: _Completion | None = None
    next_check = 0.0
    ready.set()
    while not stop.is_set():
        msgs = consumer.consume(10000, 0) or consumer.consume(1, 0.05)
        now = time.time()
        for msg in msgs:
            if msg.error() is not None:
                continue
            role = role_of[msg.topic()]
            records[role].append(
                (msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers(), now)
            )
        if records["pnl"] and not answered.is_set():
            answered.set()
        if expectation is None and not control.empty():
            expectation = control.get()
            checker = _Completion(expectation)
        if checker is not None and not done.is_set() and now >= next_check:
            next_check = now + 0.1
            if checker.complete(records):
                out.complete_t = now
                finals.put(checker.final_pnl)
                done.set()
    consumer.close()
    results.put(out)


class _Completion:
    """Tells, incrementally, whether the records read so far complete the expectation."""

    def __init__(self, expectation: Expectation) -> None:
        self.expectation = expectation
        self.counts: dict[str, int] = {}
        self.last_position: dict[str, bytes] = {}
        self.last_pnl: dict[str, bytes] = {}
        self.read = {role: 0 for role in ROLES}
        self.final_pnl: dict[str, Any] | None = None
        self.decode_count = msgspec.json.Decoder(_Count).decode

    def complete(self, records: dict[str, list[Seen]]) -> bool:
        exp = self.expectation
        if len(records["enriched"]) < exp.enriched:
            return False
        positions = records["positions"]
        for _, _, key, value, _, _ in positions[self.read["positions"] :]:
            k = key.decode()
            self.counts[k] = max(self.counts.get(k, 0), self.decode_count(value).trade_count)
            self.last_position[k] = value
        self.read["positions"] = len(positions)
        if any(self.counts.get(k, 0) < n for k, n in exp.position_counts.items()):
            return False
        if self.final_pnl is None:  # every position is final: so is every account's P&L
            self.final_pnl = exp.pnl.finals(self.last_position)
        pnl = records["pnl"]
        for _, _, key, value, _, _ in pnl[self.read["pnl"] :]:
            self.last_pnl[key.decode()] = value
        self.read["pnl"] = len(pnl)
        last = self.last_pnl
        return all(
            account in last and exp.pnl.record_signature(last[account]) == final
            for account, final in self.final_pnl.items()
        )


def read_sse(url: str, ready: Event, done: Event, stop: Event, control: Any, results: Any) -> None:
    """Follow a server-sent-event stream until ``stop``; put [(time, event, data)] on results.

    ``control`` delivers (model, final P&L by account): ``done`` is set once the last
    ``pnl`` event of every account has its final value. The stream is read by a daemon
    thread, so that a quiet stream cannot hold up the stop.
    """
    import httpx

    events: list[tuple[float, str, bytes]] = []
    failure: list[str] = []

    def follow() -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client,
                client.stream("GET", url) as response,
            ):
                response.raise_for_status()
                name = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        events.append((time.time(), name, line[5:].strip().encode()))
                        if name == "hello":
                            ready.set()
                    elif not line:
                        name = "message"
        except Exception as exc:  # noqa: BLE001 - reported with the results
            failure.append(f"{type(exc).__name__}: {exc}")
            ready.set()

    threading.Thread(target=follow, daemon=True).start()
    model: PnlModel | None = None
    final: dict[str, Any] = {}
    last: dict[str, Any] = {}
    read = 0
    while not stop.wait(0.1):
        if model is None and not control.empty():
            model, final = control.get()
        if model is None or done.is_set():
            continue
        for _, name, data in events[read:]:
            if name == "pnl":
                sig = model.record_signature(data)
                last[getattr(sig, "account", "")] = sig
        read = len(events)
        if all(last.get(account) == value for account, value in final.items()):
            done.set()
    results.put((list(events), failure[0] if failure else None))


SPAWN = mp.get_context("spawn")


class OutputReader:
    """A process running :func:`read_outputs`, and the events it sets."""

    def __init__(self, spec: ReaderSpec) -> None:
        self.ready, self.answered = SPAWN.Event(), SPAWN.Event()
        self.done, self.stop_event = SPAWN.Event(), SPAWN.Event()
        self.control: Any = SPAWN.Queue()
        self.finals: Any = SPAWN.Queue()
        self.results: Any = SPAWN.Queue()
        self.proc = SPAWN.Process(
            target=read_outputs,
            args=(spec, self.ready, self.answered, self.done, self.stop_event, self.control,
                  self.finals, self.results),
            daemon=True,
        )  # fmt: skip
        self.proc.start()
        if not self.ready.wait(60):
            raise SystemExit("the output reader did not start")

    def finish(self) -> Observed:
        self.stop_event.set()
        observed: Observed = self.results.get(timeout=300)
        self.proc.join(30)
        return observed


class SseClient:
    """A process running :func:`read_sse`."""

    def __init__(self, url: str) -> None:
        self.ready, self.done, self.stop_event = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
        self.control: Any = SPAWN.Queue()
        self.results: Any = SPAWN.Queue()
        self.proc = SPAWN.Process(
            target=read_sse,
            args=(url, self.ready, self.done, self.stop_event, self.control, self.results),
            daemon=True,
        )
        self.proc.start()

    def finish(self) -> tuple[list[tuple[float, str, bytes]], str | None]:
        self.stop_event.set()
        result: tuple[list[tuple[float, str, bytes]], str | None] = self.results.get(timeout=120)
        self.proc.join(30)
        return result
