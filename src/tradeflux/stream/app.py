"""The consume-process-produce loop: exactly-once micro-batches over Kafka transactions.

Per batch: consume up to N records (or wait up to T ms for the first) -> per input
partition, decode and process into the partition's task (stores write to a batch
overlay, emits are buffered) -> begin transaction -> produce outputs, dead letters and
changelog records -> send the consumed offsets with the group metadata -> commit ->
merge the overlays. If the transaction fails: abort, drop the overlays, seek every
partition back to its committed offset, and go on. Fenced or fatal: exit non-zero
(a supervisor restarts the instance, which restores from the changelogs).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tradeflux.stream.changelog import (
    Restore,
    changelog_records,
    changelog_topic,
    restore_partitions,
)
from tradeflux.stream.metrics import HealthServer, StreamMetrics
from tradeflux.stream.records import Emitted
from tradeflux.stream.tables import GlobalTable
from tradeflux.stream.task import Task
from tradeflux.stream.topology import Service, StoreSpec

log = logging.getLogger("tradeflux.stream")


class StreamError(RuntimeError):
    """The runtime cannot go on (misconfiguration, fenced, fatal client error)."""


@dataclass(frozen=True)
class RuntimeConfig:
    """How a service instance runs; the client settings come from the cluster's config."""

    client: dict[str, Any]
    instance_id: str = field(default_factory=socket.gethostname)
    topic_prefix: str = ""
    batch_max_records: int = 5000
    batch_max_wait_ms: int = 100
    session_timeout_ms: int = 10000
    static_membership: bool = False
    transaction_timeout_ms: int = 10000
    commit_timeout_s: float = 30.0
    metrics_port: int | None = None
    changelog_replication: int | None = None
    # Fault injection for tests: called before each commit with the batch number.
    before_commit: Callable[[int], None] | None = None


class StreamApp:
    """Runs one instance of a :class:`Service` until SIGTERM/SIGINT or a fatal error."""

    def __init__(self, service: Service, config: RuntimeConfig) -> None:
        self.service = service
        self.config = config
        prefix = config.topic_prefix
        self.group_id = prefix + service.name
        self.input_topics = [prefix + t.name for t in service.inputs]
        self.changelogs = {
            s.name: changelog_topic(prefix, service.name, s.name) for s in service.stores
        }
        self.metrics = StreamMetrics(service.name, config.instance_id)
        self._stopping = False
        self._tasks: dict[tuple[str, int], Task] = {}
        self._pending: set[tuple[str, int]] = set()  # assigned, not yet restored
        self._tables: dict[str, GlobalTable] = {}
        self._last_turn = time.monotonic()
        self._batches = 0
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._restorer: Consumer | None = None
        self.health_port: int | None = None
        self._rebalanced = False
        self._gauges_at = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and exit."""
        self._stopping = True

    def run(self) -> None:
        """Set up, loop until stopped, and shut down cleanly (leaving the group)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        health = None
        if self.config.metrics_port is not None:
            health = HealthServer(self.metrics, self.config.metrics_port, self._alive, self.ready)
            health.start()
            self.health_port = health.port
            log.info("metrics and health on http://127.0.0.1:%d", health.port)
        try:
            self._setup()
            self._loop()
        finally:
            self._shutdown()
            if health is not None:
                health.stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the batch and leaving", signal.Signals(signum).name)
        self._stopping = True

    def _alive(self) -> bool:
        return time.monotonic() - self._last_turn < 60.0

    def ready(self) -> bool:
        """Tell whether every assigned partition is restored and the tables are loaded."""
        return self._consumer is not None and not self._pending

    def _setup(self) -> None:
        cfg = self.config
        client = {**cfg.client, "logger": logging.getLogger("tradeflux.kafka")}
        self._check_topics_and_create_changelogs(client)
        for spec in self.service.global_tables:
            table = GlobalTable(
                spec,
                cfg.topic_prefix + spec.topic,
                {
                    **client,
                    "group.id": f"{self.group_id}-table",
                    "isolation.level": "read_committed",
                },
            )
            table.load()
            self._tables[spec.name] = table
        self._producer = Producer(
            {
                # The next batch's transaction often finds the previous one still writing
                # its markers (CONCURRENT_TRANSACTIONS) and retries after this backoff: at
                # the default 100 ms it dominated end-to-end latency (p50 84 ms at 2k/s,
                # 20 ms with 5 ms; bench/runtime.py). A cluster's config may override it.
                "retry.backoff.ms": 5,
                **client,
                "transactional.id": f"{self.group_id}-{cfg.instance_id}",
                "transaction.timeout.ms": cfg.transaction_timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "partitioner": "murmur2_random",  # the Java client's, for co-partitioning
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self._producer.init_transactions(cfg.commit_timeout_s)
        self._restorer = Consumer(
            {
                **client,
                "group.id": f"{self.group_id}-restore",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
            }
        )
        # Static membership: a restarted instance (same id) takes its partitions back at
        # once instead of waiting for its old session to time out; but a static member
        # does not leave the group on shutdown, so it is opt-in.
        static = (
            {"group.instance.id": f"{self.group_id}-{cfg.instance_id}"}
            if cfg.static_membership
            else {}
        )
        self._consumer = Consumer(
            {
                **client,
                "group.id": self.group_id,
                **static,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": cfg.session_timeout_ms,
                "heartbeat.interval.ms": max(500, cfg.session_timeout_ms // 10),
                "fetch.wait.max.ms": 10,
                "statistics.interval.ms": 0,
            }
        )
        self._consumer.subscribe(
            self.input_topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info(
            "service started service=%s instance=%s inputs=%s group=%s",
            self.service.name,
            cfg.instance_id,
            ",".join(self.input_topics),
            self.group_id,
        )

    def _check_topics_and_create_changelogs(self, client: dict[str, Any]) -> None:
        admin = AdminClient(client)
        meta = admin.list_topics(timeout=15.0)
        missing = [t for t in self.input_topics if t not in meta.topics]
        outputs = [self.config.topic_prefix + t.name for t in self.service.outputs]
        if self.service.dead_letter_topic:
            outputs.append(self.config.topic_prefix + self.service.dead_letter_topic)
        missing += [t for t in outputs if t not in meta.topics]
        if missing:
            raise StreamError(
                f"service {self.service.name}: topics missing: {', '.join(missing)}; create "
                "them with `tradeflux topics create`"
            )
        partitions = len(meta.topics[self.input_topics[0]].partitions)
        replication = self.config.changelog_replication or min(3, len(meta.brokers))
        new = [
            NewTopic(
                topic,
                num_partitions=partitions,
                replication_factor=replication,
                config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"},
            )
            for topic in self.changelogs.values()
            if topic not in meta.topics
        ]
        for topic, future in admin.create_topics(new).items() if new else ():
            try:
                future.result()
                log.info("changelog created topic=%s partitions=%d", topic, partitions)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise StreamError(f"could not create changelog {topic}: {exc}") from exc
        if new:
            self._wait_for_leaders(admin, [t.topic for t in new])
        for topic in self.changelogs.values():
            existing = meta.topics.get(topic)
            if existing is not None and len(existing.partitions) != partitions:
                raise StreamError(
                    f"changelog {topic} has {len(existing.partitions)} partitions but the "
                    f"input has {partitions}; they must match"
                )

    @staticmethod
    def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout_s: float = 30.0) -> None:
        """Wait until the metadata shows a leader for every partition of ``topics``.

        Created topics reach the metadata a moment after CreateTopics returns; reading
        their offsets before that fails with NOT_LEADER_FOR_PARTITION.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            meta = admin.list_topics(timeout=10.0)
            waiting = [
                t
                for t in topics
                if t not in meta.topics
                or meta.topics[t].error is not None
                or not meta.topics[t].partitions
                or any(p.leader < 0 for p in meta.topics[t].partitions.values())
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise StreamError(f"changelogs without leaders after {timeout_s:g}s: {waiting}")
            time.sleep(0.1)

    def _shutdown(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()  # leaves the group: partitions move at once
            except KafkaException as exc:
                log.warning("closing consumer: %s", exc)
        for table in self._tables.values():
            table.close()
        if self._restorer is not None:
            self._restorer.close()
        if self._producer is not None:
            self._producer.flush(5.0)
        log.info("service stopped service=%s batches=%d", self.service.name, self._batches)

    # -- rebalancing ---------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        if not partitions:
            return  # a cooperative round that gave this instance nothing new
        self._rebalanced = True
        if self.service.stores:
            consumer.pause(partitions)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._tasks[key] = Task(
                self.service, tp.partition, self._tables, self.config.topic_prefix
            )
            if self.service.stores:
                self._pending.add(key)
        log.info(
            "partitions assigned service=%s partitions=%s",
            self.service.name,
            _names(partitions),
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        self._rebalanced = True
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self._tasks.pop(key, None)
            self._pending.discard(key)
            for store in self.service.stores:
                self.metrics.store_keys.labels(
                    **self.metrics.labels(), store=store.name, partition=str(tp.partition)
                ).set(0)
        self.metrics.assigned.labels(**self.metrics.labels()).set(
            len(self._tasks) - len(self._pending)
        )
        log.info(
            "partitions revoked service=%s partitions=%s",
            self.service.name,
            _names(partitions),
        )

    def _restore_pending(self) -> None:
        """Rebuild the stores of newly assigned partitions, then resume them."""
        assert self._consumer is not None and self._restorer is not None  # noqa: S101
        pending = sorted(self._pending)
        tps = [TopicPartition(t, p) for t, p in pending]
        # Committed offsets first: the fetch waits for pending transactions of this group
        # to resolve, so the changelog read after it includes everything they committed.
        self._committed(tps)
        started = time.monotonic()
        restores: list[tuple[tuple[str, int], StoreSpec, Restore]] = []
        for key in pending:
            task = self._tasks.get(key)
            if task is None:
                continue
            for spec in self.service.stores:
                restore = Restore(
                    self.changelogs[spec.name], task.stores[spec.name], spec.codec.decode
                )
                restores.append((key, spec, restore))
        labels = self.metrics.labels()

        def progress(applied: int, expected: int) -> None:
            log.info(
                "restoring service=%s partitions=%d applied=%d of at most %d",
                self.service.name,
                len(pending),
                applied,
                expected,
            )

        restore_partitions(self._restorer, [r for _, _, r in restores], on_progress=progress)
        for key, spec, restore in restores:
            store_labels = {**labels, "store": spec.name, "partition": str(key[1])}
            self.metrics.restore_done.labels(**store_labels).set(restore.applied)
            self.metrics.restore_total.labels(**store_labels).set(restore.high)
            self.metrics.store_keys.labels(**store_labels).set(restore.store.committed_size)
            log.info(
                "store restored service=%s store=%s partition=%d records=%d keys=%d seconds=%.3f",
                self.service.name,
                spec.name,
                key[1],
                restore.applied,
                restore.store.committed_size,
                time.monotonic() - started,
            )
        self._pending.difference_update(pending)
        self._consumer.resume(tps)
        self.metrics.assigned.labels(**self.metrics.labels()).set(len(self._tasks))

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._consumer is not None  # noqa: S101
        consumer = self._consumer
        max_n = self.config.batch_max_records
        wait_s = self.config.batch_max_wait_ms / 1000
        while not self._stopping:
            self._last_turn = time.monotonic()
            if self._pending:
                self._restore_pending()
            for table in self._tables.values():
                table.poll()
            msgs = consumer.consume(max_n, 0)
            if not msgs:
                msgs = consumer.consume(1, wait_s)
                if msgs:
                    msgs += consumer.consume(max_n - 1, 0)
            if self._rebalanced:
                # Partitions moved during this poll: records fetched before the move may
                # belong to an older assignment. Drop them and read on from the committed
                # offsets, which is always safe.
                self._rebalanced = False
                msgs = []
                self._rewind()
            self._run_batch(msgs)
            if time.monotonic() - self._gauges_at >= 1.0:
                self._publish_gauges()

    def _run_batch(self, msgs: list[Message]) -> None:
        by_partition: dict[tuple[str, int], list[Message]] = {}
        tasks = self._tasks
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise StreamError(f"consumer fatal error: {err.str()}")
                log.warning("consumer error: %s", err.str())
                continue
            key = (msg.topic() or "", msg.partition() or 0)
            if key not in tasks:
                continue  # revoked during this poll
            by_partition.setdefault(key, []).append(msg)
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        fired = False
        for key, batch in by_partition.items():
            tasks[key].process(batch)
        if self.service.punctuators:
            for task in tasks.values():
                if task.fire_timers(now_ms) and task.has_output():
                    fired = True
        if not by_partition and not fired:
            return
        processed = time.monotonic()
        self.metrics.process_s.labels(**self.metrics.labels()).observe(processed - started)
        touched = [tasks[k] for k in by_partition]
        if fired:
            touched = list(tasks.values())
        offsets = [
            TopicPartition(t, p, (batch[-1].offset() or 0) + 1)
            for (t, p), batch in by_partition.items()
        ]
        if self._commit(touched, offsets):
            self._after_commit(touched, by_partition, processed)

    def _commit(self, tasks: list[Task], offsets: list[TopicPartition]) -> bool:
        """Produce the tasks' output in one transaction with the offsets; True if committed."""
        assert self._producer is not None and self._consumer is not None  # noqa: S101
        producer = self._producer
        self._batches += 1
        out_counts: dict[str, int] = {}
        try:
            producer.begin_transaction()
            for task in tasks:
                for rec in task.take_emitted():
                    self._produce(rec)
                    out_counts[rec.topic] = out_counts.get(rec.topic, 0) + 1
                for spec in self.service.stores:
                    store = task.stores[spec.name]
                    if store.dirty:
                        for rec in changelog_records(
                            self.changelogs[spec.name], store, spec.codec.encode
                        ):
                            self._produce(rec)
            if offsets:
                producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), self.config.commit_timeout_s
                )
            if self.config.before_commit is not None:
                self.config.before_commit(self._batches)
            self._commit_transaction()
        except KafkaException as exc:
            self._abort(tasks, exc.args[0])
            return False
        except _InjectedAbort as exc:
            self._abort(tasks, exc)
            return False
        for topic, count in out_counts.items():
            self.metrics.records_out.labels(**self.metrics.labels(), topic=topic).inc(count)
        return True

    def _produce(self, rec: Emitted) -> None:
        assert self._producer is not None  # noqa: S101
        while True:
            try:
                if rec.partition is None:
                    self._producer.produce(rec.topic, rec.value, rec.key, headers=rec.headers)
                else:
                    self._producer.produce(
                        rec.topic, rec.value, rec.key, partition=rec.partition, headers=rec.headers
                    )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _commit_transaction(self) -> None:
        assert self._producer is not None  # noqa: S101
        while True:
            try:
                self._producer.commit_transaction(self.config.commit_timeout_s)
                return
            except KafkaException as exc:
                err = exc.args[0]
                if err.retriable() and not err.txn_requires_abort() and not err.fatal():
                    log.warning("commit retry: %s", err.str())
                    continue
                raise

    def _abort(self, tasks: list[Task], err: Any) -> None:
        """Abort the transaction, drop the batch's changes and rewind to committed offsets."""
        assert self._producer is not None and self._consumer is not None  # noqa: S101
        fatal = isinstance(err, KafkaError) and (
            err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED)
        )
        if fatal:
            raise StreamError(
                f"service {self.service.name}: transaction failed fatally ({err.str()}); "
                "this instance was fenced or broke; restart it"
            )
        log.warning(
            "transaction aborted service=%s batch=%d reason=%s",
            self.service.name,
            self._batches,
            err.str() if isinstance(err, KafkaError) else err,
        )
        self.metrics.aborts.labels(**self.metrics.labels()).inc()
        try:
            self._producer.abort_transaction(self.config.commit_timeout_s)
        except KafkaException as exc:
            if exc.args[0].fatal():
                raise StreamError(f"abort failed fatally: {exc.args[0].str()}") from exc
            log.warning("abort: %s", exc.args[0].str())
        for task in self._tasks.values():
            task.rollback()
        self._rewind()

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset."""
        assert self._consumer is not None  # noqa: S101
        tps = [TopicPartition(t, p) for (t, p) in self._tasks if (t, p) not in self._pending]
        if not tps:
            return
        for tp in self._committed(tps):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            try:
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            except KafkaException as exc:
                # Not fetching yet (just assigned): it will start from the committed offset.
                if exc.args[0].code() != KafkaError._STATE:
                    raise

    def _publish_gauges(self) -> None:
        """Set consumer lag (high watermark - position) and store sizes, about once a second."""
        assert self._consumer is not None  # noqa: S101
        self._gauges_at = time.monotonic()
        labels = self.metrics.labels()
        tps = [TopicPartition(t, p) for (t, p) in self._tasks]
        if not tps:
            return
        for tp in self._consumer.position(tps):
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
            if tp.offset >= 0 and high >= 0:
                lag = max(0, high - tp.offset)
                self.metrics.lag.labels(**labels, partition=str(tp.partition)).set(lag)
        for (_topic, partition), task in self._tasks.items():
            for name, store in task.stores.items():
                self.metrics.store_keys.labels(**labels, store=name, partition=str(partition)).set(
                    store.committed_size
                )

    def _committed(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        """Fetch committed offsets, retrying while the group coordinator moves or loads."""
        assert self._consumer is not None  # noqa: S101
        deadline = time.monotonic() + self.config.commit_timeout_s
        while True:
            try:
                return self._consumer.committed(tps, timeout=self.config.commit_timeout_s)
            except KafkaException as exc:
                err = exc.args[0]
                if not err.retriable() and err.code() not in _COORDINATOR_ERRORS:
                    raise
                if time.monotonic() > deadline:
                    raise StreamError(f"could not fetch committed offsets: {err.str()}") from exc
                log.info("committed offsets: %s; retrying", err.str())
                time.sleep(0.2)

    def _after_commit(
        self, tasks: list[Task], by_partition: dict[tuple[str, int], list[Message]], t0: float
    ) -> None:
        for task in tasks:
            task.commit()
        now = time.monotonic()
        labels = self.metrics.labels()
        self.metrics.commit_s.labels(**labels).observe(now - t0)
        count = sum(len(b) for b in by_partition.values())
        if count:
            self.metrics.records_in.labels(**labels).inc(count)
            self.metrics.batch_size.labels(**labels).observe(count)
            wall_ms = time.time() * 1000
            latency = self.metrics.latency_s.labels(**labels)
            for batch in by_partition.values():
                step = max(1, len(batch) // 20)  # a sample keeps this off the hot path
                for msg in batch[::step]:
                    latency.observe(max(0.0, (wall_ms - msg.timestamp()[1]) / 1000))
        for task in tasks:
            for event, n in task.take_counts().items():
                self.metrics.events.labels(**labels, event=event).inc(n)
        dead = sum(t.dead_letters for t in tasks)
        if dead:
            self.metrics.dead_letters.labels(**labels).inc(dead)
            for t in tasks:
                t.dead_letters = 0


_COORDINATOR_ERRORS = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.UNSTABLE_OFFSET_COMMIT,
)


class _InjectedAbort(Exception):  # noqa: N818 - named for what tests raise
    """Raised by a test's ``before_commit`` hook to force an abort."""


InjectedAbort = _InjectedAbort


def _names(partitions: list[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
