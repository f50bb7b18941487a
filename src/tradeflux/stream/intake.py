"""What an instance fetched and has not processed yet, and how much the next batch takes.

Fetching: whatever is waiting (``consume(N, 0)``); when nothing is held or waiting, wait
up to ``batch_max_wait_ms`` for a first record (less when a timer is due), so an idle
service answers its first record at once. Taking: the oldest held records, at most
``batch_max_records``, and at most what the time budget allows at the measured cost per
record. What does not fit waits, in order, for the next one.

The time budget is ``max_batch_ms`` or the measured time of one commit (up to 1 s),
whichever is longer. Every batch pays one transaction (produce, offsets, commit: tens
of milliseconds on a busy broker) whatever its size; a batch whose processing is
shorter than that pays more for its commit than for its records, so under load the
queue grows batch by batch until every record waits for several commits
(bench/latency.py showed batches held at 50 records while 800 waited). Processing as
long as a commit keeps the instance at half its processing capacity or more.

The cost per record is weighted by records (decayed sums, not an average of batch
averages): a one-record batch that paid for a first call's imports does not make the
next batches small.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import cast

from tradeflux.stream.kafka import TP, GroupConsumer
from tradeflux.stream.records import KafkaMessage

_MIN_BATCH_RECORDS = 50  # a budget never makes batches smaller than this
_DECAY = 0.8  # weight of the past in the measured costs, per batch
_FIRST_COST_US = 20.0  # the cost per record assumed before one is measured
# A commit's time widens the budget up to this, no further: a commit that took seconds while
# the cluster was failing must not make the next transactions seconds long too.
_COMMIT_BUDGET_CAP_US = 1_000_000.0


class Intake:
    """Fetched records in arrival order, each chunk with the time it was fetched."""

    def __init__(self, max_records: int, max_batch_ms: int, now_us: Callable[[], int]) -> None:
        self.max_records = max_records
        self.max_batch_ms = max_batch_ms
        self._now_us = now_us
        self._held: collections.deque[tuple[int, list[KafkaMessage]]] = collections.deque()
        self._count = 0
        self._spent_us = 0.0  # processing time, decayed per batch
        self._records = 0.0  # records processed, decayed alike
        self.commit_us = 0.0  # one transaction, moving average (0: none measured yet)

    def __len__(self) -> int:
        return self._count

    def fetch(self, consumer: GroupConsumer, wait_s: float) -> int:
        """Fetch what is waiting (waiting up to ``wait_s`` if nothing is); return how many."""
        room = self.max_records - self._count
        if room <= 0:
            return 0
        msgs = consumer.consume(room, 0)
        if not msgs and not self._held:
            msgs = consumer.consume(1, wait_s)
            if msgs:
                msgs += consumer.consume(room - 1, 0)
        if msgs:
            self._held.append((self._now_us(), cast("list[KafkaMessage]", msgs)))
            self._count += len(msgs)
        return len(msgs)

    def clear(self) -> None:
        """Drop everything held (partitions moved, or the batch aborted)."""
        self._held.clear()
        self._count = 0

    @property
    def cost_us(self) -> float:
        """Return the measured processing time per record, microseconds."""
        return self._spent_us / self._records if self._records else _FIRST_COST_US

    def budget_us(self) -> float:
        """Return the processing time the next batch may take (0: no limit)."""
        if self.max_batch_ms <= 0:
            return 0.0
        return max(self.max_batch_ms * 1000.0, min(self.commit_us, _COMMIT_BUDGET_CAP_US))

    def limit(self) -> int:
        """Return how many records the next batch may take."""
        limit = self.max_records
        budget = self.budget_us()
        if budget > 0:
            limit = max(_MIN_BATCH_RECORDS, min(limit, int(budget / max(self.cost_us, 0.1))))
        return limit

    def take(
        self, active: Mapping[TP, object]
    ) -> tuple[dict[TP, list[KafkaMessage]], dict[TP, int]]:
        """Take the next batch: ``({partition: records}, {partition: first fetch time})``.

        Records of partitions not in ``active`` (revoked, or restoring) are dropped.
        """
        limit = self.limit()
        by_tp: dict[TP, list[KafkaMessage]] = {}
        fetched: dict[TP, int] = {}
        taken = 0
        held = self._held
        while held and taken < limit:
            at, msgs = held[0]
            if taken + len(msgs) > limit:
                cut = limit - taken
                held[0] = (at, msgs[cut:])
                msgs = msgs[:cut]
            else:
                held.popleft()
            taken += len(msgs)
            for msg in msgs:
                tp = (msg.topic() or "", msg.partition() or 0)
                if tp not in active:
                    continue
                batch = by_tp.get(tp)
                if batch is None:
                    by_tp[tp] = [msg]
                    fetched[tp] = at
                else:
                    batch.append(msg)
        self._count -= taken
        return by_tp, fetched

    def measured(self, records: int, elapsed_us: float) -> None:
        """Fold one batch's processing time into the cost per record."""
        if records:
            self._spent_us = _DECAY * self._spent_us + max(0.0, elapsed_us)
            self._records = _DECAY * self._records + records

    def committed(self, elapsed_us: float) -> None:
        """Fold one transaction's time (first send to commit returned) into the budget."""
        elapsed_us = max(0.0, elapsed_us)
        if self.commit_us == 0.0:
            self.commit_us = elapsed_us
        else:
            self.commit_us = _DECAY * self.commit_us + (1 - _DECAY) * elapsed_us
