"""Fills the read model from Kafka: every partition of its topics, from the beginning, then follows.

One consumer thread, no consumer group: partitions are assigned by hand, so every query
instance holds everything (the read model is a global table of all outputs). It reads
``read_committed``, so only what the services' transactions committed is ever shown.

Readiness: at start it notes the end offset of every partition; it is ready once it has
read up to all of them. Topics created later are picked up (from their beginning) but do
not hold readiness back.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import msgspec

from tradeflux.query.readmodel import TOPICS, Change, ReadModel, SourceRecord
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import BEGINNING, TP, PartitionReader
from tradeflux.stream.metrics import StreamMetrics
from tradeflux.stream.records import Headers

log = logging.getLogger("tradeflux.query")

_BATCH_RECORDS = 2000
_POLL_S = 0.2
_DISCOVER_EVERY_S = 5.0
_LAG_EVERY_S = 1.0


class FollowerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """How far the read model has read: ``ready`` once it reached the end offsets seen at start."""

    ready: bool
    records: int  # applied since start
    behind_start_records: int  # still to read to reach the end offsets seen at start
    lag_records: int  # high watermarks minus positions, now
    partitions: int  # assigned
    topics: list[str]
    missing_topics: list[str]  # wanted but not (yet) in the cluster
    error: str | None = None


class TopicFollower:
    """Reads the read model's topics whole and follows them, in a daemon thread."""

    def __init__(
        self,
        client_config: Mapping[str, Any],
        topic_prefix: str,
        model: ReadModel,
        on_changes: Callable[[list[Change]], None] = lambda changes: None,
        metrics: StreamMetrics | None = None,
        topics: Sequence[str] = TOPICS,
    ) -> None:
        self._config = dict(client_config)
        self._group_id = f"tradeflux-query-{uuid.uuid4().hex[:12]}"  # never joins or commits
        self._prefix = topic_prefix
        self._names = {topic_prefix + t: t for t in topics}
        self._model = model
        self._on_changes = on_changes
        self._metrics = metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="query-follower", daemon=True)
        self._assigned: set[tuple[str, int]] = set()
        self._targets: dict[tuple[str, int], int] | None = None  # end offsets seen at start
        self._reached: dict[tuple[str, int], int] = {}  # next offset to read
        self._lag = 0
        self._records = 0
        self._ready = threading.Event()
        self._error: str | None = None

    def start(self) -> None:
        """Start reading in the background."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading and close the consumer."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def alive(self) -> bool:
        """Tell whether the reading thread runs (or has not been started yet)."""
        return self._error is None and (self._thread.is_alive() or self._thread.ident is None)

    @property
    def ready(self) -> bool:
        """Tell whether every partition was read up to the end offset it had at start."""
        return self._ready.is_set()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until ready; return whether it is."""
        return self._ready.wait(timeout_s)

    def status(self) -> FollowerStatus:
        """Return how far the read model has read."""
        targets = self._targets or {}
        reached = dict(self._reached)
        behind = sum(max(0, end - reached.get(tp, 0)) for tp, end in targets.items())
        topics = sorted({self._names[t] for t, _ in self._assigned})
        return FollowerStatus(
            ready=self.ready,
            records=self._records,
            behind_start_records=behind,
            lag_records=self._lag,
            partitions=len(self._assigned),
            topics=topics,
            missing_topics=sorted(set(self._names.values()) - set(topics)),
            error=self._error,
        )

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            consumer = PartitionReader(self._config, self._group_id, on_error=self._client_error)
        except KafkaClientError as exc:
            self._error = str(exc)
            log.error("query follower cannot start: %s", exc)
            return
        try:
            self._loop(consumer)
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("query follower stopped: %s", self._error)
        finally:
            consumer.close()

    def _client_error(self, err: KafkaClientError) -> None:
        if err.code not in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION"):
            log.warning("query follower: %s", err)

    def _loop(self, consumer: PartitionReader) -> None:
        next_discover = 0.0
        next_lag = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_discover:
                try:
                    self._discover(consumer)
                    next_discover = now + _DISCOVER_EVERY_S
                except KafkaClientError as exc:
                    log.warning("query follower: cannot list topics (%s); retrying", exc)
                    next_discover = now + 1.0
                    if self._targets is None:
                        self._stop.wait(1.0)
                        continue
            self._consume(consumer)
            if self._targets is not None and not self._ready.is_set() and self._caught_up():
                log.info("query read model caught up records=%d", self._records)
                self._ready.set()
            if now >= next_lag:
                try:
                    self._measure_lag(consumer)
                except KafkaClientError as exc:
                    log.debug("query follower: lag not measured: %s", exc)
                next_lag = now + _LAG_EVERY_S

    def _discover(self, consumer: PartitionReader) -> None:
        """Assign the partitions of wanted topics not assigned yet, from their beginning."""
        listed = consumer.topics(10)
        new: list[TP] = []
        for name in self._names:
            count = listed.get(name)
            if count is None:
                continue
            for p in range(count):
                if (name, p) not in self._assigned:
                    new.append((name, p))
        if self._targets is None:  # the first look: note where "caught up" is
            targets: dict[tuple[str, int], int] = {}
            for tp in new:
                _low, high = consumer.watermarks(tp, 10)
                targets[tp] = max(0, high)
            self._targets = targets
            log.info(
                "query follower start topics=%d partitions=%d records_to_read=%d",
                len({t for t, _ in targets}),
                len(targets),
                sum(targets.values()),
            )
        if new:
            consumer.assign(dict.fromkeys(new, BEGINNING))
            self._assigned.update(new)
            if self._metrics is not None:
                labels = self._metrics.labels()
                self._metrics.assigned.labels(**labels).set(len(self._assigned))

    def _consume(self, consumer: PartitionReader) -> None:
        msgs, at_end = consumer.read(_BATCH_RECORDS, _POLL_S)
        reached = self._reached
        try:
            self._apply(msgs)
        finally:  # after the records: an end offset is past a transaction's last marker
            for tp, end in at_end.items():
                reached[tp] = max(reached.get(tp, 0), end)

    def _apply(self, msgs: list[Any]) -> None:
        if not msgs:
            return
        reached = self._reached
        records: list[SourceRecord] = []
        names = self._names
        for msg in msgs:
            tp = (cast(str, msg.topic()), cast(int, msg.partition()))
            offset = cast(int, msg.offset())
            reached[tp] = offset + 1
            _ts_type, ts = msg.timestamp()
            headers = cast("Headers | None", msg.headers())
            records.append((names[tp[0]], msg.key(), msg.value(), headers, ts, tp[1], offset))
        if not records:
            return
        changes = self._model.apply_many(records)
        self._records += len(records)
        if self._metrics is not None:
            self._metrics.records_in.labels(**self._metrics.labels()).inc(len(records))
        if changes:
            self._on_changes(changes)

    def _caught_up(self) -> bool:
        reached = self._reached
        return all(reached.get(tp, 0) >= end for tp, end in (self._targets or {}).items())

    def _measure_lag(self, consumer: PartitionReader) -> None:
        """Sum high watermark minus position over the partitions (cached watermarks, no I/O).

        The consumer's position steps over transaction markers; the offsets of records
        read do not, so the position is what makes a caught-up partition show 0.
        """
        total = 0
        labels = self._metrics.labels() if self._metrics is not None else {}
        for key, at in consumer.positions(sorted(self._assigned)).items():
            high = consumer.high_watermark(key)
            if high is None:
                continue
            position = max(at or 0, self._reached.get(key, 0))
            lag = max(0, high - position)
            total += lag
            if self._metrics is not None:
                self._metrics.lag.labels(**labels, partition=f"{key[0]}:{key[1]}").set(lag)
        self._lag = total
