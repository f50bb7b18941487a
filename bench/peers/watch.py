"""Measuring a contender from outside: its output as a read_committed reader sees it, and its
process tree's memory and CPU from /proc.

The watcher runs in a process of its own (spawned), so that neither the open-loop producer
nor the sampler shares its interpreter lock. Times are ``time.monotonic()``, which is one
clock for every process on Linux.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import msgspec

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


class _Count(msgspec.Struct):
    trade_count: int


class _TradeId(msgspec.Struct):
    trade_id: str


@dataclass
class WatchSpec:
    """What to watch and when it is complete.

    ``kind``: ``positions`` (values are Positions keyed ``account|instrument``; complete when
    every key reached its expected trade count) or ``copy`` (values are the input trades;
    complete when ``total`` records arrived). ``latency``: keep when each output arrived.
    """

    bootstrap: str
    topic: str
    start_offsets: list[int]
    kind: str
    expected: dict[str, int] = field(default_factory=dict)
    total: int = 0
    latency: bool = False


@dataclass
class WatchResult:
    """What the watcher saw."""

    outputs: int = 0
    first_t: float | None = None  # when the first output became visible
    done_t: float | None = None  # when the last needed output became visible
    progress: int = 0
    finals: dict[str, bytes] = field(default_factory=dict)  # last value per key (positions)
    # latency: per key, (trade count, time) in arrival order; or per trade id, the time (copy)
    arrivals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)


def watch(
    spec: WatchSpec, ready: Event, first: Event, done: Event, stop: Event, results: Any
) -> None:
    """Read the output topic read_committed until ``stop``; put a WatchResult on ``results``.

    Sets ``first`` at the first output, ``done`` when the output is complete.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": spec.bootstrap,
            "group.id": f"bench-watch-{os.getpid()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
            "queued.max.messages.kbytes": 262144,
        }
    )
    consumer.assign(
        [TopicPartition(spec.topic, p, off) for p, off in enumerate(spec.start_offsets)]
    )
    out = WatchResult()
    counts: dict[str, int] = {}
    remaining = set(spec.expected) if spec.kind == "positions" else set()
    decode_count = msgspec.json.Decoder(_Count).decode
    decode_id = msgspec.json.Decoder(_TradeId).decode
    positions = spec.kind == "positions"
    finals, arrivals, seen = out.finals, out.arrivals, out.seen
    ready.set()
    while not stop.is_set():
        msgs = consumer.consume(10000, 0) or consumer.consume(1, 0.05)
        now = time.monotonic()
        if not msgs:
            continue
        if out.first_t is None:
            out.first_t = now
            first.set()
        for msg in msgs:
            if msg.error() is not None:
                continue
            out.outputs += 1
            value = msg.value()
            delta = 1
            if positions:
                key = msg.key().decode()
                count = decode_count(value).trade_count
                held = counts.get(key, 0)
                delta = max(0, count - held)
                if delta:
                    counts[key] = count
                    if count >= spec.expected.get(key, 0):
                        remaining.discard(key)
                finals[key] = value
                if spec.latency:
                    arrivals.setdefault(key, []).append((count, now))
            elif spec.latency:
                seen[decode_id(value).trade_id] = now
            out.progress += delta
        complete = not remaining if positions else out.progress >= spec.total
        if complete and out.done_t is None:
            out.done_t = now
            done.set()
    consumer.close()
    results.put(out)


@dataclass
class TreeSample:
    """Peak resident memory and CPU time of a process and its descendants."""

    root: int
    peak_rss_bytes: int = 0
    _cpu: dict[int, float] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        """Return the CPU seconds (user + system) of the tree so far."""
        return sum(self._cpu.values())

    def sample(self) -> None:
        """Add one sample: the tree's summed RSS now, and each process's CPU time."""
        rss = 0
        for pid in self._tree():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                statm = Path(f"/proc/{pid}/statm").read_text().split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            # fields after the command: state=0 ... utime=11 stime=12 cutime=13 cstime=14
            ticks = sum(int(stat[i]) for i in (11, 12, 13, 14))
            self._cpu[pid] = max(self._cpu.get(pid, 0.0), ticks / _TICK)
            rss += int(statm[1]) * _PAGE
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, ()))
        return tree
