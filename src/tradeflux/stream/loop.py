"""The consume-process-produce loop: exactly-once micro-batches over Kafka transactions.

One turn: hand restored partitions back to processing (assignment.py) -> follow the
global tables -> fetch what has arrived (waiting at most ``batch_max_wait_ms`` for a
first record, or less when a timer is due) -> take a batch of at most what the time budget
``max_batch_ms`` allows at the measured cost per record -> process it per partition
(task.py) and fire due timers -> commit it as one transaction (checkpoint.py).

Failures: an aborted transaction drops the batch's changes and rewinds every partition to
its committed offset; a dead transactional producer (fenced by the coordinator, invalid
state) is replaced inside the instance, and when the commit's outcome is unknown the stores
are rebuilt from their changelogs; transient broker errors are waited out up to
``cluster_wait_s`` (retry.py). The process exits only when misconfigured, refused by the
cluster's ACLs, replaced by a live instance with its id, or past the deadline.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any, TextIO

from tradeflux.stream.assignment import Assignment
from tradeflux.stream.changelog import changelog_topic
from tradeflux.stream.checkpoint import Checkpoint, InjectedAbort, now_us
from tradeflux.stream.config import RuntimeConfig
from tradeflux.stream.errors import (
    AuthorizationError,
    KafkaClientError,
    ProducerFatalError,
    ReplacedError,
    TransactionAbortableError,
)
from tradeflux.stream.intake import Intake
from tradeflux.stream.kafka import TP, Admin, GroupConsumer, TransactionalProducer
from tradeflux.stream.metrics import HealthServer, StreamMetrics, publish_gauges, record_batch
from tradeflux.stream.provisioning import Layout, provision
from tradeflux.stream.records import KafkaMessage
from tradeflux.stream.restore import Restorer
from tradeflux.stream.retry import Patience, Stopping, Waits
from tradeflux.stream.tables import GlobalTable
from tradeflux.stream.topology import Service
from tradeflux.tracing import OFF_BATCH

log = logging.getLogger("tradeflux.stream")


class TwinWatch:
    """Tells a live twin (another instance with this one's id) from the coordinator's aborts.

    Both fence the transactional producer. The coordinator fences one whose transaction was
    open past the transaction timeout (it aborts it and bumps the epoch): under cluster faults
    an instance was fenced so three times in two minutes. A twin's new producer fences at any
    age, every few seconds, as the two keep replacing their producers. So a fence counts only
    if the transaction was younger than the timeout; ``limit`` counted fences within
    ``window_s`` mean a twin.
    """

    def __init__(self, timeout_s: float, limit: int = 5, window_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        self.limit = limit
        self.window_s = window_s
        self._counted: collections.deque[float] = collections.deque()

    def fenced(self, open_s: float | None, now: float) -> bool | None:
        """Note a fence; True: a twin; False: counted, not yet a twin; None: not counted."""
        if open_s is not None and open_s >= self.timeout_s:
            return None
        self._counted.append(now)
        while self._counted and now - self._counted[0] > self.window_s:
            self._counted.popleft()
        return len(self._counted) >= self.limit

    @property
    def count(self) -> int:
        """Return the fences counted within the window (as of the last one)."""
        return len(self._counted)


class StreamApp:
    """Runs one instance of a :class:`Service` until SIGTERM/SIGINT or a fatal error."""

    def __init__(self, service: Service, config: RuntimeConfig) -> None:
        self.service = service
        self.config = config
        prefix = config.topic_prefix
        self.group_id = prefix + service.name
        self.input_topics = [prefix + t.name for t in service.inputs]
        self.changelogs = {
            s.name: changelog_topic(prefix, service.name, s.name)
            for s in service.stores
            if s.logged
        }
        self.metrics = StreamMetrics(service.name, config.instance_id)
        self.waits = Waits()
        self.health_port: int | None = None
        self._context = f"service={service.name} instance={config.instance_id}"
        self._stopping = False
        self._started = False
        self._tables: dict[str, GlobalTable] = {}
        self._consumer: GroupConsumer | None = None
        # Transactions take turns on these producers (config.transaction_producers): one is
        # open at a time, but the next batch does not wait for the coordinator to finish the
        # previous one's markers (see _new_producer).
        self._producers: list[TransactionalProducer] = []
        self._turn_of = 0
        self._restorer: Restorer | None = None
        self._assignment: Assignment | None = None
        self._layout = Layout(0)
        self._intake = Intake(config.batch_max_records, config.max_batch_ms, now_us)
        self._batches = 0
        self._twins = TwinWatch(config.transaction_timeout_ms / 1000)
        self._fatal: KafkaClientError | None = None
        self._client_errors: dict[str, float] = {}
        self._last_turn = time.monotonic()
        self._gauges_at = 0.0
        self._trace: TextIO | None = None

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
            health = HealthServer(
                self.metrics, self.config.metrics_port, self._alive, self.ready,
                host=self.config.metrics_host, authorize=self.config.metrics_authorize,
            )  # fmt: skip
            health.start()
            self.health_port = health.port
            log.info("metrics and health on http://%s:%d", self.config.metrics_host, health.port)
        try:
            self._setup()
            self._loop()
        except Stopping:
            pass
        finally:
            self._shutdown()
            if health is not None:
                health.stop()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing the batch and leaving", signal.Signals(signum).name)
        self._stopping = True

    def _alive(self) -> bool:
        return time.monotonic() - self._last_turn < 60.0

    def seconds_since_turn(self) -> float:
        """Return how long ago the loop last began a turn (0 before it started)."""
        return time.monotonic() - self._last_turn if self._started else 0.0

    def ready(self) -> bool:
        """Tell whether every partition is restored, tables loaded, and nothing is waited for."""
        a = self._assignment
        return self._started and a is not None and not a.restoring and not self.waits.current()

    def _patience(self, what: str) -> Patience:
        return Patience(
            what, self.config.cluster_wait_s, self._context, self.waits, lambda: self._stopping
        )

    def _client(self) -> dict[str, Any]:
        return dict(self.config.client)

    def _setup(self) -> None:
        cfg = self.config
        self._layout = provision(
            self.service, Admin(self._client()), cfg.topic_prefix, self.changelogs,
            self._patience("topic metadata"), self._client(), cfg.changelog_replication,
        )  # fmt: skip
        for spec in self.service.global_tables:
            table = GlobalTable(
                spec, cfg.topic_prefix + spec.topic, self._client(), f"{self.group_id}-table"
            )
            self._tables[spec.name] = table
            table.load(self._patience(f"global table {spec.name}"))
        self._producers = [self._new_producer(n) for n in range(cfg.transaction_producers)]
        self._consumer = self._new_consumer()
        if self.changelogs:
            self._restorer = Restorer(
                self._client(), self.group_id, self.changelogs, self.metrics, self._patience,
                cfg.commit_timeout_s,
            )  # fmt: skip
            self._restorer.start()
        self._assignment = Assignment(
            self.service, cfg.topic_prefix, self._tables, self._layout, self._group,
            self._restorer, self.metrics,
        )  # fmt: skip
        a = self._assignment
        self._consumer.subscribe(self.input_topics, a.assigned, a.revoked, a.revoked)
        if cfg.batch_trace:
            self._trace = open(cfg.batch_trace, "a", buffering=1)  # noqa: SIM115 - kept open
        self._started = True
        log.info(
            "service started %s inputs=%s group=%s max_batch_ms=%d",
            self._context,
            ",".join(self.input_topics),
            self.group_id,
            cfg.max_batch_ms,
        )

    def _group(self) -> GroupConsumer:
        assert self._consumer is not None  # noqa: S101 - set up before any rebalance
        return self._consumer

    @property
    def _producer(self) -> TransactionalProducer | None:
        """Return the producer whose turn it is (None before set-up)."""
        return self._producers[self._turn_of] if self._producers else None

    def _new_producer(self, slot: int) -> TransactionalProducer:
        """Make (and register) the producer of ``slot``, fencing any zombie with its id.

        Why more than one: a transaction coordinator answers the commit before it has
        written the commit markers, and refuses the same producer's next transaction
        (CONCURRENT_TRANSACTIONS) until it has; librdkafka then retries after a fixed 20 ms.
        On a loaded broker that wait was most of a batch's commit time. The next producer
        has no transaction in flight, so it starts at once. Exactly-once is unchanged: one
        transaction is open at a time, in batch order (a batch begins only after the
        previous one's commit returned, so its records and offsets follow that one's), and
        every id is stable per instance, so a restarted instance fences all of them.
        """
        cfg = self.config
        base = f"{self.group_id}-{cfg.instance_id}"
        producer = TransactionalProducer(
            self._client(),
            base if slot == 0 else f"{base}#{slot + 1}",
            **{"transaction.timeout.ms": cfg.transaction_timeout_ms},
        )
        self._patience("init transactions").run(lambda: producer.init(cfg.commit_timeout_s))
        return producer

    def _new_consumer(self) -> GroupConsumer:
        cfg = self.config
        settings: dict[str, Any] = {"fetch.wait.max.ms": cfg.fetch_wait_ms}
        if cfg.group_protocol == "consumer":  # KIP-848: the broker assigns, incrementally
            settings["group.protocol"] = "consumer"
        else:
            settings.update(
                {
                    "partition.assignment.strategy": "cooperative-sticky",
                    "session.timeout.ms": cfg.session_timeout_ms,
                    "heartbeat.interval.ms": max(500, cfg.session_timeout_ms // 10),
                }
            )
        if cfg.static_membership:
            # A restarted instance (same id) takes its partitions back at once instead of
            # waiting for its old session to time out; but a static member does not leave
            # the group on shutdown, so it is opt-in.
            settings["group.instance.id"] = f"{self.group_id}-{cfg.instance_id}"
        return GroupConsumer(self._client(), self.group_id, on_error=self._client_error, **settings)

    def _client_error(self, err: KafkaClientError) -> None:
        """Hear about a client-wide error; authorization ends the instance, others are logged."""
        if isinstance(err, AuthorizationError):
            self._fatal = err
            return
        now = time.monotonic()
        if now - self._client_errors.get(err.code, -1e9) >= 30.0:  # a line per code per 30 s
            self._client_errors[err.code] = now
            log.warning("kafka client %s error=%s (the client retries)", self._context, err)

    def _shutdown(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # leaves the group: partitions move at once
        for table in self._tables.values():
            table.close()
        if self._restorer is not None:
            self._restorer.stop()
        for producer in self._producers:
            producer.close(5.0)
        if self._trace is not None:
            self._trace.close()
        self.config.tracing.shutdown()
        log.info("service stopped %s batches=%d", self._context, self._batches)

    # -- the loop ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            self._last_turn = time.monotonic()
            if self._fatal is not None:
                raise self._fatal
            try:
                self._turn()
            except ProducerFatalError as exc:
                self._replace_producer(exc)
            if time.monotonic() - self._gauges_at >= 1.0:
                self._publish_gauges()
        self._last_batch()

    def _last_batch(self) -> None:
        """On a graceful stop, commit what the service's ``on_stop`` sends (no new input).

        Without it a P&L held back by its rate cap would leave with the instance: the next
        owner of the partition starts with nothing held, so the last value waited for a
        re-mark, and ``tradeflux replay`` (which stops its services once their outputs are
        quiet) could stop a P&L instance before it had sent its last value.
        """
        if self.service.on_stop is None or self._assignment is None:
            return
        try:
            self._run_batch(({}, {}), final=True)
        except ProducerFatalError as exc:
            log.warning("last batch not committed %s: %s", self._context, str(exc)[:200])

    def _turn(self) -> None:
        assert self._assignment is not None  # noqa: S101 - set up
        assignment = self._assignment
        assignment.take_restored()
        for table in self._tables.values():
            table.poll()
        self._intake.fetch(self._group(), self._wait_s())
        if assignment.take_moved():
            # Partitions moved during this poll: records fetched before the move may belong
            # to an older assignment. Drop them and read on from the committed offsets.
            self._intake.clear()
            self._rewind()
            return
        self._run_batch(self._intake.take(assignment.active))

    def _wait_s(self) -> float:
        """Wait for a first record at most ``batch_max_wait_ms``, or until a timer is due."""
        wait_s = self.config.batch_max_wait_ms / 1000
        if self.service.punctuators and self._assignment is not None:
            due = [t.next_timer_ms() for t in self._assignment.active.values()]
            soonest = min((d for d in due if d is not None), default=None)
            if soonest is not None:
                wait_s = min(wait_s, max(0.0, (soonest - time.time() * 1000) / 1000))
        return wait_s

    def _run_batch(
        self, batch: tuple[dict[TP, list[KafkaMessage]], dict[TP, int]], final: bool = False
    ) -> None:
        """Process, fire due timers (and ``on_stop`` if ``final``), commit as one transaction."""
        by_tp, fetched = batch
        assert self._assignment is not None and self._producer is not None  # noqa: S101
        active = self._assignment.active
        started = now_us()
        for tp, msgs in by_tp.items():
            active[tp].process(msgs, fetched[tp], started // 1000)
        count = sum(len(m) for m in by_tp.values())
        # The cost per record that sizes the next batches: records only, not the timers
        # (a timer over every key would make records look dear and batches needlessly small).
        self._intake.measured(count, now_us() - started)
        timed = []
        if self.service.punctuators or final:
            now_ms = int(time.time() * 1000)
            for task in active.values():
                fired = task.fire_timers(now_ms)
                fired = (final and task.fire_on_stop(now_ms)) or fired
                if fired and task.has_output():
                    timed.append(task)
        if not by_tp and not timed:
            return
        processed = now_us()
        self.metrics.process_s.labels(**self.metrics.labels()).observe((processed - started) / 1e6)
        touched = [active[tp] for tp in by_tp]
        touched += [t for t in timed if t not in touched]
        offsets = {tp: (msgs[-1].offset() or 0) + 1 for tp, msgs in by_tp.items()}
        self._batches += 1
        tracing = self.config.tracing
        trace = (
            tracing.batch(self.service.name, (m.headers() for ms in by_tp.values() for m in ms))
            if tracing.enabled
            else OFF_BATCH
        )
        checkpoint = Checkpoint(
            self._batches, touched, offsets,
            f"{self.service.name};{self.config.instance_id};{self._batches}",
            min(fetched.values(), default=started), started, processed, trace,
        )  # fmt: skip
        try:
            checkpoint.run(
                self._producer, self._group(), self._patience, self.config.commit_timeout_s,
                self.config.before_commit,
            )  # fmt: skip
        except (TransactionAbortableError, InjectedAbort) as exc:
            checkpoint.pin_refusals(self._producer.refused)
            trace.end(committed=False)
            self._abort(exc)
            return
        except KafkaClientError as exc:
            trace.end(committed=False)
            if isinstance(exc, ProducerFatalError | AuthorizationError):
                raise
            checkpoint.pin_refusals(self._producer.refused)
            self._abort(exc)
            return
        trace.end()
        checkpoint.committed()
        self._turn_of = (self._turn_of + 1) % len(self._producers)
        self._intake.committed(checkpoint.committed_us - checkpoint.produced_us)
        self._after_commit(checkpoint, by_tp, count)

    def _abort(self, reason: BaseException) -> None:
        """Abort the transaction, drop the batch's changes and rewind to committed offsets."""
        assert self._producer is not None and self._assignment is not None  # noqa: S101
        log.warning(
            "transaction aborted %s batch=%d reason=%s",
            self._context,
            self._batches,
            str(reason).replace("\n", " ")[:300],
        )
        self.metrics.aborts.labels(**self.metrics.labels()).inc()
        producer = self._producer
        self._patience("abort").run(lambda: producer.abort(self.config.commit_timeout_s))
        # The batch is re-run on a new producer (a new epoch), never on the one that aborted.
        # In soak run 7 a transaction aborted on a TxnOffsetCommit timeout while its records
        # to one partition were in the log; librdkafka did not bump the epoch, the re-run on
        # the same producer sent those records with the same sequence numbers, the broker took
        # them for duplicates of the aborted batch, and the commit that followed had none of
        # them there: 72 records lost. A new producer's init_transactions bumps the epoch.
        self._renew_producer()
        for task in self._assignment.tasks.values():
            task.rollback()
        self._intake.clear()
        self._rewind()

    def _replace_producer(self, exc: ProducerFatalError) -> None:
        """Make a new transactional producer after a fatal error, and resync the state."""
        assert self._assignment is not None  # noqa: S101 - set up
        open_s = self._producer.open_s() if self._producer is not None else None
        twin = self._twins.fenced(open_s, time.monotonic()) if exc.fenced else False
        if twin is None:
            log.info(
                "fenced %s after its transaction was open %.1f s, past the transaction timeout "
                "(%.0f s): the coordinator aborted it (not a twin)",
                self._context,
                open_s or 0.0,
                self._twins.timeout_s,
            )
        elif twin:
            raise ReplacedError(
                f"{self._context}: fenced {self._twins.count} times in "
                f"{self._twins.window_s:g} s, each in a transaction younger than its timeout: "
                "another live instance uses the transactional id "
                f"{self.group_id}-{self.config.instance_id}; give every instance its own "
                "--instance-id"
            )
        log.warning(
            "transactional producer failed %s code=%s outcome_known=%s; replacing it: %s",
            self._context,
            exc.code,
            exc.outcome_known,
            str(exc)[:200],
        )
        self.metrics.producer_restarts.labels(**self.metrics.labels(), reason=exc.code).inc()
        for task in self._assignment.tasks.values():
            task.rollback()
        self._intake.clear()
        self._renew_producer()
        if exc.outcome_known:
            self._rewind()
        else:
            self._assignment.rebuild_all()
            self._rewind()

    def _renew_producer(self) -> None:
        """Drop the producer whose turn it is and put a new one (a new epoch) in its slot."""
        if self._producer is not None:
            self._producer.close(1.0)
        self._producers[self._turn_of] = self._new_producer(self._turn_of)

    def _rewind(self) -> None:
        """Seek every active partition back to its committed offset."""
        assert self._assignment is not None  # noqa: S101 - set up
        tps = list(self._assignment.active)
        if not tps:
            return
        consumer = self._group()
        committed = self._patience("committed offsets").run(
            lambda: consumer.committed(tps, self.config.commit_timeout_s)
        )
        for tp, offset in committed.items():
            consumer.seek(tp, -2 if offset is None else offset)

    def _after_commit(
        self, checkpoint: Checkpoint, by_tp: Mapping[TP, list[KafkaMessage]], count: int
    ) -> None:
        record_batch(self.metrics, checkpoint, by_tp, count)
        if self._trace is not None:
            self._trace.write(
                f"batch committed service={self.service.name} "
                f"instance={self.config.instance_id} batch={checkpoint.seq} records={count} "
                f"produced_us={checkpoint.produced_us} "
                f"commit_started_us={checkpoint.commit_started_us} "
                f"commit_ended_us={checkpoint.committed_us}\n"
            )

    def _publish_gauges(self) -> None:
        """Set consumer lag, store sizes, readiness and what the instance waits for."""
        self._gauges_at = time.monotonic()
        if self._assignment is None or self._consumer is None:
            return
        try:
            publish_gauges(
                self.metrics, self._consumer, self._assignment.active, self.ready(),
                self.waits.current(),
            )  # fmt: skip
        except KafkaClientError as exc:
            log.debug("gauges not published: %s", exc)
