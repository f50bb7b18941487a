"""What "as of" means: one consistent cut per service, from its group's committed offsets.

A service commits its outputs, dead letters and input offsets in one transaction per
batch, so its group's committed offsets say exactly which inputs its committed outputs
account for. The audit takes, per service, a *cut*: the committed offsets, fetched
before and after reading its outputs' tails to their end, with no new record of the
service read in between and the offsets unchanged. Then no batch of that service committed
while the outputs were read, and the outputs up to their ends at that moment are
precisely those of the inputs before the committed offsets. A busy service is tried
again (the tails are short) until such a moment is found, up to a deadline.

Each service has its own cut, at its own moment: each check compares one service's
outputs with its own inputs up to its own cut, never with another service's.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tradeflux import topics
from tradeflux.audit.logs import AuditError, TopicLog
from tradeflux.services import SHIPPED, service_target
from tradeflux.stream.kafka import PartitionReader
from tradeflux.stream.retry import Patience
from tradeflux.stream.runner import load_service


@dataclass(frozen=True)
class Stage:
    """A service as the audit sees it: its name (and group), input, outputs, dead letters."""

    name: str
    input: str
    outputs: tuple[str, ...]
    dead_letters: str | None

    @property
    def written(self) -> tuple[str, ...]:
        """Return every topic the service writes: its outputs and its dead-letter topic."""
        extra = () if self.dead_letters is None else (self.dead_letters,)
        return (*self.outputs, *extra)

    def group(self, prefix: str) -> str:
        """Return the service's consumer group (the runtime's: prefix + name)."""
        return prefix + self.name


def shipped_stages() -> list[Stage]:
    """Return the shipped services in pipeline order, from their Service definitions."""
    out = []
    for name in SHIPPED:
        service = load_service(service_target(name))
        out.append(
            Stage(
                service.name,
                service.inputs[0].name,
                tuple(t.name for t in service.outputs),
                service.dead_letter_topic,
            )
        )
    return out


@dataclass(frozen=True)
class Cut:
    """A service's consistent cut: its committed input offsets and its outputs' ends then.

    ``committed`` is the next input offset per partition (0 where nothing is committed);
    ``ends`` the next offset per partition of every topic it writes, at that moment.
    ``attempts`` says how many reads it took to find a moment with no commit, ``taken_at``
    when that moment was (UTC).
    """

    stage: Stage
    group: str
    committed: dict[int, int]
    ends: dict[str, dict[int, int]]
    attempts: int
    taken_at: dt.datetime


class NoStableCutError(AuditError):
    """The service committed during every read of its outputs until the deadline."""


class GroupOffsets:
    """Fetches a group's committed offsets on one topic (read-only: never joins or commits)."""

    def __init__(self, config: Mapping[str, Any], group: str, topic: str, partitions: int):
        self.group = group
        self._topic = topic
        self._partitions = partitions
        self._reader = PartitionReader(config, group_id=group)
        self._patience = Patience("committed offsets", 60.0, f"audit group={group}")

    def fetch(self) -> dict[int, int | None]:
        """Return the committed offset per partition (None: nothing committed there)."""
        tps = [(self._topic, p) for p in range(self._partitions)]
        got = self._patience.run(lambda: self._reader.committed(tps, 30.0))
        return {p: got[(self._topic, p)] for p in range(self._partitions)}

    def close(self) -> None:
        """Close the client."""
        self._reader.close()


def take_cut(
    stage: Stage,
    offsets: GroupOffsets,
    input_log: TopicLog,
    written: Sequence[TopicLog],
    deadline_s: float,
) -> Cut | None:
    """Return the service's cut, or None if its group has committed nothing yet.

    Reads the tails of ``written`` until a read finds nothing new of the service between
    two fetches of equal committed offsets; then reads ``input_log`` up to the cut. Raises
    NoStableCutError past ``deadline_s``.
    """
    deadline = time.monotonic() + deadline_s
    attempts = 0
    while True:
        attempts += 1
        before = offsets.fetch()
        if attempts == 1 and all(o is None for o in before.values()):
            return None
        # Only a tail with nothing new is worth the second fetch: the window between the
        # two is then a few round trips, short enough to fall between two batches.
        if sum(_read_tail(log, stage) for log in written) == 0:
            after = offsets.fetch()
            if after == before:
                taken_at = dt.datetime.now(dt.UTC)
                break
        if time.monotonic() > deadline:
            raise NoStableCutError(
                f"service {stage.name} (group {offsets.group}) committed during every read of "
                f"its outputs for {deadline_s:g} s ({attempts} tries); audit it when its input "
                "pauses, or give it longer with --cut-wait-s"
            )
    committed = {p: o or 0 for p, o in after.items()}
    input_log.read_to(committed)
    return Cut(
        stage,
        offsets.group,
        committed,
        {log.label: dict(log.next_offsets) for log in written},
        attempts,
        taken_at,
    )


def _read_tail(log: TopicLog, stage: Stage) -> int:
    """Read ``log`` on to its end; return the new records the service wrote.

    The dead-letter topic is shared: only the service's own (``tf.stage``) count, so that
    another service's dead letters do not keep this one's cut from settling.
    """
    before = {p: len(records) for p, records in log.records.items()}
    new = log.read_to_end()
    if not new or log.label != stage.dead_letters:
        return new
    stage_header = ("tf.stage", stage.name.encode())
    return sum(
        1
        for p, records in log.records.items()
        for rec in records[before[p] :]
        if stage_header in (rec.headers or ())
    )


REFERENCE_TOPICS = (topics.ACCOUNTS.name, topics.PRICES.name, topics.FX.name)
"""The tables the P&L check marks with (read to their end)."""
