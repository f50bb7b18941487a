"""The one Kafka boundary: the only module of ``src/`` that imports confluent-kafka.

Everything else talks to Kafka through the small typed clients here:

- :class:`GroupConsumer`: the consumer-group member of a service instance (subscribe,
  rebalance callbacks, consume, pause/resume/seek, committed offsets, group metadata).
- :class:`PartitionReader`: reads partitions it assigns itself, read_committed, up to their
  end and on (global tables, changelog restore, the query follower, audits).
- :class:`TransactionalProducer`: one transaction per batch (begin, send, offsets with the
  group metadata, commit, abort); failures come out as our exception types.
- :class:`IdempotentWriter`: acks=all idempotent producer, thread-safe, for edges that are
  not stream processors (gateway, refdata loader, simulator).
- :class:`Admin`: cluster metadata, topic creation that waits until every broker lists the
  topics with leaders, topic configs.

Errors are classified once (:func:`classify`) into :mod:`tradeflux.stream.errors`:
transient (wait it out), authorization, abortable, producer-fatal, record-refused.
Partitions are ``(topic, partition)`` tuples; offsets plain ints (-2 = the beginning).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from tradeflux.stream.errors import (
    AuthorizationError,
    KafkaClientError,
    ProducerFatalError,
    RecordRefusedError,
    ServiceConfigError,
    TopicMissingError,
    TransactionAbortableError,
    TransientKafkaError,
)

TP = tuple[str, int]
BEGINNING = OFFSET_BEGINNING
KAFKA_LOG = logging.getLogger("tradeflux.kafka")
log = logging.getLogger("tradeflux.stream.kafka")

_E = KafkaError
TRANSIENT_CODES = frozenset(
    {
        _E._TRANSPORT, _E._ALL_BROKERS_DOWN, _E._TIMED_OUT, _E._TIMED_OUT_QUEUE,
        _E._DESTROY_BROKER, _E._UNKNOWN_PARTITION, _E._UNKNOWN_TOPIC, _E._WAIT_COORD,
        _E._NODE_UPDATE, _E._RETRY, _E._IN_PROGRESS, _E._PREV_IN_PROGRESS, _E._RESOLVE,
        _E._MSG_TIMED_OUT, _E._NO_OFFSET, _E._OUTDATED, _E._WAIT_CACHE,
        _E.UNKNOWN_TOPIC_OR_PART, _E.NOT_LEADER_FOR_PARTITION, _E.LEADER_NOT_AVAILABLE,
        _E.NOT_COORDINATOR, _E.COORDINATOR_LOAD_IN_PROGRESS, _E.COORDINATOR_NOT_AVAILABLE,
        _E.REQUEST_TIMED_OUT, _E.NETWORK_EXCEPTION, _E.NOT_ENOUGH_REPLICAS,
        _E.NOT_ENOUGH_REPLICAS_AFTER_APPEND, _E.REBALANCE_IN_PROGRESS,
        _E.UNSTABLE_OFFSET_COMMIT, _E.CONCURRENT_TRANSACTIONS, _E.BROKER_NOT_AVAILABLE,
        _E.REPLICA_NOT_AVAILABLE, _E.KAFKA_STORAGE_ERROR, _E.FENCED_LEADER_EPOCH,
        _E.UNKNOWN_LEADER_EPOCH, _E.OFFSET_NOT_AVAILABLE, _E.THROTTLING_QUOTA_EXCEEDED,
    }
)  # fmt: skip
AUTH_CODES = frozenset(
    {
        _E.TOPIC_AUTHORIZATION_FAILED, _E.GROUP_AUTHORIZATION_FAILED,
        _E.CLUSTER_AUTHORIZATION_FAILED, _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        _E.SASL_AUTHENTICATION_FAILED, _E._AUTHENTICATION, _E._SSL,
        _E.UNSUPPORTED_SASL_MECHANISM, _E.ILLEGAL_SASL_STATE,
    }
)  # fmt: skip
RECORD_CODES = frozenset(
    {
        _E.MSG_SIZE_TOO_LARGE, _E.INVALID_MSG_SIZE, _E.RECORD_LIST_TOO_LARGE, _E.INVALID_RECORD,
        _E.INVALID_MSG, _E.INVALID_TIMESTAMP, _E.POLICY_VIOLATION, _E._INVALID_ARG, _E._BAD_MSG,
        _E._KEY_SERIALIZATION, _E._VALUE_SERIALIZATION,
    }
)  # fmt: skip
PRODUCER_FATAL_CODES = frozenset(
    {
        _E._FENCED, _E.PRODUCER_FENCED, _E.INVALID_PRODUCER_EPOCH, _E.INVALID_TXN_STATE,
        _E.OUT_OF_ORDER_SEQUENCE_NUMBER, _E.UNKNOWN_PRODUCER_ID, _E.INVALID_PRODUCER_ID_MAPPING,
        _E.TRANSACTION_COORDINATOR_FENCED, _E._FATAL, _E._GAPLESS_GUARANTEE, _E._STATE,
    }
)  # fmt: skip
FENCED_CODES = frozenset({_E._FENCED, _E.PRODUCER_FENCED, _E.INVALID_PRODUCER_EPOCH})


def error_name(err: Any) -> str:
    """Return librdkafka's name of an error (``NOT_COORDINATOR``), else the exception's class."""
    if isinstance(err, KafkaError):
        return str(err.name())
    return type(err).__name__


def classify(err: KafkaError, op: str) -> KafkaClientError:
    """Return our exception for librdkafka error ``err`` met during ``op`` (a few words)."""
    code = err.code()
    name = str(err.name())
    reason = str(err.str())
    text = f"{op}: {name}: {reason}"
    if code in AUTH_CODES:
        return AuthorizationError(
            f"{text}; the cluster refused this principal: check its credentials and ACLs "
            "(`tradeflux acls plan` lists what each service needs)",
            name,
            reason=reason,
        )
    if err.fatal() or code in PRODUCER_FATAL_CODES:
        return ProducerFatalError(text, name, fenced=code in FENCED_CODES, reason=reason)
    if err.txn_requires_abort():
        return TransactionAbortableError(text, name, reason=reason)
    if code in RECORD_CODES:
        return RecordRefusedError(text, name, reason=reason)
    if err.retriable() or code in TRANSIENT_CODES:
        return TransientKafkaError(text, name, retriable=True, reason=reason)
    return KafkaClientError(text, name, reason=reason)


def _raise(exc: KafkaException, op: str) -> NoReturn:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        raise classify(err, op) from None
    raise KafkaClientError(f"{op}: {exc}") from None


def _tps(tps: Iterable[TP], offsets: Mapping[TP, int] | None = None) -> list[TopicPartition]:
    if offsets is None:
        return [TopicPartition(t, p) for t, p in tps]
    return [TopicPartition(t, p, offsets[(t, p)]) for t, p in tps]


def _client_config(config: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"logger": KAFKA_LOG, **config, **overrides}


def _make(kind: Any, config: dict[str, Any]) -> Any:
    """Build a client; a setting librdkafka refuses becomes one line that names it."""
    try:
        return kind(config)
    except (KafkaException, ValueError, TypeError) as exc:
        detail = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        raise ServiceConfigError(
            f"the Kafka client settings were refused ({detail}); fix the TRADEFLUX_KAFKA_* "
            "variables or the config file's [kafka] table"
        ) from None


class GroupConsumer:
    """A service instance's member of its consumer group (read_committed, manual commits).

    ``on_assign``/``on_revoke``/``on_lost`` are called from inside :meth:`consume` with
    the partitions that changed. ``on_error`` is told about client-wide errors (brokers
    down, authentication failures) as they happen.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        group_id: str,
        on_error: Callable[[KafkaClientError], None] | None = None,
        **settings: Any,
    ) -> None:
        self._on_error = on_error
        self._consumer = _make(
            Consumer,
            _client_config(
                config,
                **{
                    "group.id": group_id,
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "error_cb": self._error,
                    **settings,
                },
            ),
        )

    def _error(self, err: KafkaError) -> None:
        if self._on_error is not None:
            self._on_error(classify(err, "kafka client"))

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: Callable[[list[TP]], None],
        on_revoke: Callable[[list[TP]], None],
        on_lost: Callable[[list[TP]], None],
    ) -> None:
        """Join the group for ``topics``; partitions move cooperatively (incremental)."""

        def assigned(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            consumer.incremental_assign(partitions)
            on_assign([(tp.topic, tp.partition) for tp in partitions])

        def revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_revoke([(tp.topic, tp.partition) for tp in partitions])

        def lost(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_lost([(tp.topic, tp.partition) for tp in partitions])

        self._consumer.subscribe(list(topics), on_assign=assigned, on_revoke=revoked, on_lost=lost)

    def consume(self, max_records: int, timeout_s: float) -> list[Message]:
        """Return up to ``max_records`` data messages, waiting up to ``timeout_s`` for the first.

        Error events are passed to ``on_error`` (a fatal one raises) and left out.
        """
        try:
            msgs: list[Message] = self._consumer.consume(max_records, timeout_s)
        except KafkaException as exc:
            _raise(exc, "consume")
        if not msgs:
            return msgs
        if any(m.error() is not None for m in msgs):
            good = []
            for m in msgs:
                err = m.error()
                if err is None:
                    good.append(m)
                elif err.fatal():
                    raise classify(err, "consume")
                elif self._on_error is not None:
                    self._on_error(classify(err, f"consume {m.topic()}[{m.partition()}]"))
            return good
        return msgs

    def pause(self, tps: Sequence[TP]) -> None:
        """Stop fetching ``tps`` (they stay assigned)."""
        if tps:
            self._consumer.pause(_tps(tps))

    def resume(self, tps: Sequence[TP]) -> None:
        """Fetch ``tps`` again."""
        if tps:
            self._consumer.resume(_tps(tps))

    def seek(self, tp: TP, offset: int) -> bool:
        """Move the fetch position of ``tp``; False if it is not fetching yet.

        A partition not fetching yet starts from its committed offset anyway.
        """
        try:
            self._consumer.seek(TopicPartition(tp[0], tp[1], offset))
            return True
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._STATE:
                return False
            _raise(exc, f"seek {tp[0]}[{tp[1]}]")

    def committed(self, tps: Sequence[TP], timeout_s: float) -> dict[TP, int | None]:
        """Return the group's committed offsets (None: nothing committed yet).

        The fetch waits for open transactions of the group on these partitions to end.
        """
        try:
            got = self._consumer.committed(_tps(tps), timeout=timeout_s)
        except KafkaException as exc:
            _raise(exc, "fetch committed offsets")
        return _offsets(got)

    def positions(self, tps: Sequence[TP]) -> dict[TP, int | None]:
        """Return the next offset to fetch of each partition (None: not known yet)."""
        return _offsets(self._consumer.position(_tps(tps))) if tps else {}

    def high_watermark(self, tp: TP) -> int | None:
        """Return the cached high watermark of ``tp`` (no request), or None."""
        try:
            got = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except KafkaException:
            return None
        return None if not got or got[1] < 0 else int(got[1])

    def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit ``offsets`` (the next offset to read) for the group, synchronously.

        For consumers outside transactions (at-least-once followers); a service's offsets
        go with its transaction instead.
        """
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=_tps(offsets, offsets), asynchronous=False)
        except KafkaException as exc:
            _raise(exc, "commit offsets")

    def group_metadata(self) -> Any:
        """Return the group metadata to send with a transaction's offsets."""
        return self._consumer.consumer_group_metadata()

    def partitions_of(self, topic: str, timeout_s: float) -> int | None:
        """Return the partition count of ``topic``, or None if the cluster has no such topic."""
        return _partition_count(self._consumer, topic, timeout_s)

    def close(self) -> None:
        """Leave the group (partitions move at once) and close."""
        try:
            self._consumer.close()
        except KafkaException as exc:
            log.warning("closing consumer error=%s", error_name(exc.args[0]))


def _offsets(tps: list[TopicPartition]) -> dict[TP, int | None]:
    out: dict[TP, int | None] = {}
    for tp in tps:
        if tp.error is not None:
            raise classify(tp.error, f"offsets of {tp.topic}[{tp.partition}]")
        out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
    return out


def _partition_count(client: Any, topic: str, timeout_s: float) -> int | None:
    try:
        meta = client.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        _raise(exc, f"metadata of {topic}")
    found = meta.topics.get(topic)
    if found is None or found.error is not None:
        if found is not None and found.error.code() not in (
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError._UNKNOWN_TOPIC,
        ):
            raise classify(found.error, f"metadata of {topic}")
        return None
    return len(found.partitions)


# Errors of a watermark query that fresh metadata may cure (PartitionReader.watermarks).
_STALE_METADATA = frozenset(
    {
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._TIMED_OUT,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
    }
)


class PartitionReader:
    """Reads partitions it assigns itself (no group membership), read_committed.

    :meth:`read` returns data messages and the partitions that reached their end in that
    call (their last offset read, or the log end when nothing was left to read); errors the
    client retries by itself (broker down, partition not yet known) go to ``on_error``.
    ``group_id``, if given, is only used to fetch that group's committed offsets.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        group_id: str | None = None,
        on_error: Callable[[KafkaClientError], None] | None = None,
        **settings: Any,
    ) -> None:
        self._on_error = on_error
        self._config = dict(config)
        self._isolation = str(settings.get("isolation.level", "read_committed"))
        self._consumer = _make(
            Consumer,
            _client_config(
                config,
                **{
                    "group.id": group_id or f"tradeflux-reader-{uuid.uuid4().hex[:12]}",
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 10,
                    **settings,
                },
            ),
        )
        self.assigned: set[TP] = set()

    def assign(self, offsets: Mapping[TP, int]) -> None:
        """Start reading each partition at its offset (``BEGINNING`` for the first record)."""
        new = {tp: o for tp, o in offsets.items() if tp not in self.assigned}
        if new:
            self._consumer.incremental_assign(_tps(new, new))
            self.assigned.update(new)

    def unassign(self, tps: Iterable[TP]) -> None:
        """Stop reading ``tps``."""
        gone = [tp for tp in tps if tp in self.assigned]
        if gone:
            self._consumer.incremental_unassign(_tps(gone))
            self.assigned.difference_update(gone)

    def read(self, max_records: int, timeout_s: float) -> tuple[list[Message], dict[TP, int]]:
        """Return ``(records, {partition at its end: end offset})``, waiting up to ``timeout_s``."""
        try:
            msgs: list[Message] = self._consumer.consume(max_records, timeout_s)
        except KafkaException as exc:
            _raise(exc, "read")
        at_end: dict[TP, int] = {}
        if not any(m.error() is not None for m in msgs):
            return msgs, at_end
        good = []
        for m in msgs:
            err = m.error()
            if err is None:
                good.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                at_end[(m.topic() or "", m.partition() or 0)] = m.offset() or 0
            elif err.fatal():
                raise classify(err, f"reading {m.topic()}[{m.partition()}]")
            elif self._on_error is not None:  # the client retries on its own
                self._on_error(classify(err, f"reading {m.topic()}[{m.partition()}]"))
        return good, at_end

    def watermarks(self, tp: TP, timeout_s: float = 10.0) -> tuple[int, int]:
        """Return ``(low, high)`` offsets of ``tp`` from its leader.

        ``high`` follows the reader's isolation: read_committed (the default) gets the last
        stable offset, which stops before the first transaction still open on ``tp``; a
        reader made with ``isolation.level=read_uncommitted`` gets the log's end.

        A long-lived client can answer ``_UNKNOWN_PARTITION`` for minutes after a broker
        restart (the cluster-fault suite waited 126 s and 269 s on a changelog whose every
        partition had a leader), until its next periodic metadata refresh, or keep asking a
        killed leader (``_TIMED_OUT`` for 56 s). Then a client of its own, with fresh
        metadata, asks once.
        """
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(*tp), timeout=timeout_s, cached=False
            )
        except KafkaException as exc:
            if exc.args[0].code() not in _STALE_METADATA:
                _raise(exc, f"offsets of {tp[0]}[{tp[1]}]")
            return self._fresh_watermarks(tp, timeout_s)
        return int(low), int(high)

    def _fresh_watermarks(self, tp: TP, timeout_s: float) -> tuple[int, int]:
        client = _make(
            Consumer,
            _client_config(
                self._config,
                **{
                    "group.id": f"tradeflux-offsets-{uuid.uuid4().hex[:12]}",
                    "isolation.level": self._isolation,
                },
            ),
        )
        try:
            low, high = client.get_watermark_offsets(
                TopicPartition(*tp), timeout=timeout_s, cached=False
            )
        except KafkaException as exc:
            _raise(exc, f"offsets of {tp[0]}[{tp[1]}] (fresh metadata)")
        finally:
            client.close()
        return int(low), int(high)

    def high_watermark(self, tp: TP) -> int | None:
        """Return the cached high watermark of ``tp`` (no request), or None."""
        try:
            got = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except KafkaException:
            return None
        return None if not got or got[1] < 0 else int(got[1])

    def positions(self, tps: Sequence[TP]) -> dict[TP, int | None]:
        """Return the next offset to read of each partition (None: not known yet)."""
        return _offsets(self._consumer.position(_tps(tps))) if tps else {}

    def committed(self, tps: Sequence[TP], timeout_s: float) -> dict[TP, int | None]:
        """Return the committed offsets of the reader's ``group_id`` (waits for open txns)."""
        try:
            got = self._consumer.committed(_tps(tps), timeout=timeout_s)
        except KafkaException as exc:
            _raise(exc, "fetch committed offsets")
        return _offsets(got)

    def partitions_of(self, topic: str, timeout_s: float = 10.0) -> int | None:
        """Return the partition count of ``topic``, or None if the cluster has no such topic."""
        return _partition_count(self._consumer, topic, timeout_s)

    def topics(self, timeout_s: float = 10.0) -> dict[str, int]:
        """Return every topic of the cluster with its partition count."""
        try:
            meta = self._consumer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            _raise(exc, "metadata")
        return {n: len(t.partitions) for n, t in meta.topics.items() if t.error is None}

    def offsets_for_times(
        self, times_ms: Mapping[TP, int], timeout_s: float = 10.0
    ) -> dict[TP, int | None]:
        """Return, per partition, the first offset whose timestamp is at or after the time."""
        try:
            got = self._consumer.offsets_for_times(_tps(times_ms, times_ms), timeout=timeout_s)
        except KafkaException as exc:
            _raise(exc, "offsets for times")
        return _offsets(got)

    def close(self) -> None:
        """Close the reader."""
        self._consumer.close()


@dataclass
class Refusal:
    """One record a transaction's producer could not deliver."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    error: KafkaClientError


# How long past its own timeout a transactional call may take before the client is given up.
_STUCK_GRACE_S = 5.0
_OFFSETS_TIMEOUT_S = 10.0  # send_offsets_to_transaction, at most


class TransactionalProducer:
    """The transactional producer of a service instance: one transaction per batch.

    ``refused`` lists the records of the open transaction whose delivery failed (the
    commit then fails too); it is cleared by :meth:`begin`.

    librdkafka waits for the end of send_offsets, commit and abort without a bound of its
    own (RD_POLL_INFINITE; the timeout given is enforced by the request's retries), and
    the cluster-fault suite saw a send_offsets never return after the group coordinator's
    broker was killed: the loop stood still for minutes and ignored SIGTERM. Those calls
    run on a worker thread; one that has not returned ``_STUCK_GRACE_S`` after its timeout
    raises :class:`ProducerFatalError` (code ``_STUCK``), and the loop replaces the
    producer as after a fence: the new one's init_transactions fences this one.
    """

    def __init__(self, config: Mapping[str, Any], transactional_id: str, **settings: Any) -> None:
        self.transactional_id = transactional_id
        self.opened_at: float | None = None  # monotonic time the open transaction began
        self.refused: list[Refusal] = []
        self._stuck = ""  # the call that never returned: the client is given up
        self._producer = _make(
            Producer,
            _client_config(
                {
                    # The next batch's transaction often finds the previous one still writing
                    # its markers (CONCURRENT_TRANSACTIONS) and retries after this backoff: at
                    # the default 100 ms it dominated end-to-end latency (p50 84 ms at 2k/s,
                    # 20 ms with 5 ms; bench/runtime.py). A cluster's config may override it.
                    "retry.backoff.ms": 5,
                    **config,
                },
                **{
                    "transactional.id": transactional_id,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 1,
                    "partitioner": "murmur2_random",  # the Java client's, for co-partitioning
                    "queue.buffering.max.messages": 1_000_000,
                    **settings,
                },
            ),
        )

    def init(self, timeout_s: float) -> None:
        """Register the transactional id, fencing any older producer with it."""
        try:
            self._producer.init_transactions(timeout_s)
        except KafkaException as exc:
            _raise(exc, "init transactions")

    def begin(self) -> None:
        """Start a transaction."""
        self.refused = []
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            _raise(exc, "begin transaction")
        self.opened_at = time.monotonic()

    def open_s(self) -> float | None:
        """Return how long the current transaction has been open (None: none is open)."""
        return None if self.opened_at is None else time.monotonic() - self.opened_at

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.refused.append(
                Refusal(
                    msg.topic() or "",
                    msg.partition(),
                    msg.key(),
                    msg.value(),
                    classify(err, f"delivery to {msg.topic()}"),
                )
            )

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Any = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record in the open transaction; waits while the local queue is full.

        Raises :class:`RecordRefusedError` if the client refuses the record itself.
        """
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    partition=-1 if partition is None else partition,
                    on_delivery=self._delivered,
                    headers=headers,
                )
                return
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                _raise(exc, f"produce to {topic}")

    def _bounded(self, call: Callable[[], object], timeout_s: float, what: str) -> None:
        """Run ``call`` on a thread of its own; give the client up if it does not return.

        A daemon thread, so that one stuck in the C client never holds the process at exit.
        """
        if self._stuck:
            raise ProducerFatalError(f"{what}: the client is given up ({self._stuck})", "_STUCK")
        raised: list[BaseException] = []

        def run() -> None:
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                raised.append(exc)

        worker = threading.Thread(target=run, name=f"txn-call {what}", daemon=True)
        worker.start()
        worker.join(timeout_s + _STUCK_GRACE_S)
        if worker.is_alive():
            self._stuck = f"{what} did not return in {timeout_s + _STUCK_GRACE_S:g} s"
            raise ProducerFatalError(f"{self._stuck}; the producer is replaced", "_STUCK")
        if raised:
            raise raised[0]

    def send_offsets(
        self, offsets: Mapping[TP, int], consumer: GroupConsumer, timeout_s: float
    ) -> None:
        """Add the consumed offsets (next offset to read) to the open transaction.

        Two small requests (AddOffsetsToTxn, TxnOffsetCommit), so at most
        ``_OFFSETS_TIMEOUT_S`` whatever ``timeout_s``: while this call waits the instance
        serves no rebalance, and its whole consumer group waits with it.
        """
        tps, metadata = _tps(offsets, offsets), consumer.group_metadata()
        timeout_s = min(timeout_s, _OFFSETS_TIMEOUT_S)
        try:
            self._bounded(
                lambda: self._producer.send_offsets_to_transaction(tps, metadata, timeout_s),
                timeout_s,
                "send offsets to the transaction",
            )
        except KafkaException as exc:
            _raise(exc, "send offsets to the transaction")

    def commit(self, timeout_s: float) -> None:
        """Commit the open transaction (flushes first).

        A fatal error here leaves the outcome unknown (``outcome_known`` False).
        """
        try:
            self._bounded(lambda: self._producer.commit_transaction(timeout_s), timeout_s, "commit")
            self.opened_at = None
        except KafkaException as exc:
            err = classify(exc.args[0], "commit transaction")
            if isinstance(err, ProducerFatalError):
                err.outcome_known = False
            raise err from None
        except ProducerFatalError as exc:
            exc.outcome_known = False  # stuck in commit: it may have committed
            raise

    def abort(self, timeout_s: float) -> None:
        """Abort the open transaction (its records are never visible read_committed)."""
        try:
            self._bounded(lambda: self._producer.abort_transaction(timeout_s), timeout_s, "abort")
            self.opened_at = None
        except KafkaException as exc:
            _raise(exc, "abort transaction")

    def flush(self, timeout_s: float) -> int:
        """Wait for queued records to be sent; return how many are left."""
        return int(self._producer.flush(timeout_s))

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports."""
        self._producer.poll(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is left (of an aborted or committed transaction) and drop the client.

        A producer that failed fatally (fenced, INVALID_TXN_STATE) can deliver nothing: its
        flush raises the fatal error again, or, from inside a delivery report, the C client
        reports it as a SystemError. Either way the client is dropped without its flush, so
        that the instance can go on with a new producer.
        """
        if self._stuck:  # a call of this client never returned: its flush would not either
            log.info("transactional producer dropped without a flush: %s", self._stuck)
            return
        try:
            self._producer.flush(timeout_s)
        except (KafkaException, KafkaClientError, SystemError) as exc:
            log.info("transactional producer dropped without a flush: %s", str(exc)[:200])


class IdempotentWriter:
    """An acks=all idempotent producer (murmur2, the Java client's partitioner), thread-safe.

    ``fatal_error`` is set when the client can never deliver again.
    """

    def __init__(self, config: Mapping[str, Any], **settings: Any) -> None:
        self.fatal_error: str | None = None
        self._producer = _make(
            Producer,
            _client_config(
                config,
                **{
                    "acks": "all",
                    "enable.idempotence": True,
                    "partitioner": "murmur2_random",
                    "linger.ms": 5,
                    "queue.buffering.max.messages": 1_000_000,
                    "error_cb": self._error,
                    **settings,
                },
            ),
        )

    def _error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal_error = f"{err.name()}: {err.str()}"
            log.error("kafka producer failed fatally code=%s reason=%s", err.name(), err.str())
        else:
            log.debug("kafka client error code=%s reason=%s", err.name(), err.str())

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        on_delivery: Callable[[str | None], None] | None = None,
        timestamp_ms: int | None = None,
        headers: Any = None,
        give_up: Callable[[], bool] | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record; while the queue is full, serve deliveries and retry.

        ``on_delivery(error)`` is called with None once Kafka has the record, else with the
        reason. ``give_up()`` True ends the wait for queue space (raises KafkaClientError).
        """
        callback = None
        if on_delivery is not None:
            report = on_delivery

            def callback(err: KafkaError | None, _msg: Message) -> None:
                report(None if err is None else f"{err.name()}: {err.str()}")

        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    partition=-1 if partition is None else partition,
                    on_delivery=callback,
                    timestamp=timestamp_ms or 0,
                    headers=headers,
                )
                return
            except BufferError:
                if give_up is not None and give_up():
                    raise KafkaClientError(
                        f"gave up producing to {topic}: the writer is stopping"
                    ) from None
                self._producer.poll(0.05)
            except KafkaException as exc:
                _raise(exc, f"produce to {topic}")

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports for up to ``timeout_s``; return how many were served."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every queued record; return how many are left."""
        return int(self._producer.flush(timeout_s))

    def partitions_of(self, topic: str, timeout_s: float = 10.0) -> int | None:
        """Return the partition count of ``topic``, or None if the cluster has no such topic."""
        return _partition_count(self._producer, topic, timeout_s)

    def topics(self, timeout_s: float = 10.0) -> set[str]:
        """Return the names of the cluster's topics (raises if nobody answers)."""
        try:
            return set(self._producer.list_topics(timeout=timeout_s).topics)
        except KafkaException as exc:
            _raise(exc, "metadata")


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as the cluster's metadata describes it."""

    id: int
    leader: int
    replicas: tuple[int, ...]
    isrs: tuple[int, ...]


@dataclass(frozen=True)
class TopicInfo:
    """One topic as the cluster's metadata describes it."""

    name: str
    partitions: dict[int, PartitionInfo]


@dataclass(frozen=True)
class ClusterMetadata:
    """The brokers ``(id, host, port)`` and topics of a metadata response."""

    brokers: tuple[tuple[int, str, int], ...]
    topics: dict[str, TopicInfo]


@dataclass(frozen=True)
class NewTopicSpec:
    """A topic to create."""

    name: str
    partitions: int
    replication: int
    config: Mapping[str, str]


class Acl(NamedTuple):
    """One ALLOW ACL: ``principal`` may ``operation`` on a resource (kafka-acls.sh's names).

    ``resource_type``: topic, group, transactional_id or cluster; ``pattern``: literal or
    prefixed; ``operation``: read, write, create, describe, ...
    """

    principal: str
    resource_type: str
    resource_name: str
    pattern: str
    operation: str
    host: str = "*"


def _binding(acl: Acl) -> AclBinding:
    return AclBinding(
        ResourceType[acl.resource_type.upper()],
        acl.resource_name,
        ResourcePatternType[acl.pattern.upper()],
        acl.principal,
        acl.host,
        AclOperation[acl.operation.upper()],
        AclPermissionType.ALLOW,
    )


def _enum_name(value: object) -> str:
    """Return the lower-case name of a confluent-kafka enum member (typed as str or int too)."""
    return str(getattr(value, "name", value)).lower()


def _acl(binding: AclBinding) -> Acl:
    return Acl(
        binding.principal,
        _enum_name(binding.restype),
        binding.name,
        _enum_name(binding.resource_pattern_type),
        _enum_name(binding.operation),
        binding.host,
    )


def _failure(exc: BaseException, op: str) -> KafkaClientError:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return classify(exc.args[0], op)
    return KafkaClientError(f"{op}: {exc}", reason=str(exc))


class Admin:
    """Cluster metadata, topic administration, ACLs and SCRAM credentials."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._admin = _make(AdminClient, _client_config(config))

    def metadata(
        self, timeout_s: float = 10.0, topics: Sequence[str] | None = None
    ) -> ClusterMetadata:
        """Return the brokers and the (healthy) topics the cluster lists.

        ``topics``: only these are described (``()``: the brokers alone); None: every topic.
        """
        if topics is None:
            return _metadata(self._admin, timeout_s)
        brokers = _metadata_brokers(self._admin, timeout_s)
        described = _describe(self._admin, topics, timeout_s) if topics else {}
        return ClusterMetadata(brokers, {n: t for n, t in described.items() if t is not None})

    def describe_cluster(self, timeout_s: float = 10.0) -> tuple[str, int | None, list[TP]]:
        """Return the cluster id, the controller's node id and the nodes ``(host:port, id)``."""
        try:
            got = self._admin.describe_cluster(request_timeout=timeout_s).result(timeout=timeout_s)
        except KafkaException as exc:
            _raise(exc, "describe cluster")
        nodes = [(f"{n.host}:{n.port}", n.id) for n in got.nodes]
        controller = got.controller.id if got.controller is not None else None
        return str(got.cluster_id), controller, nodes

    def describe_topics(
        self, names: Sequence[str], timeout_s: float = 10.0
    ) -> dict[str, TopicInfo | None]:
        """Return ``names`` as the cluster describes them (None: no such topic).

        Asks for these topics only, not the whole cluster's metadata (a bank's cluster may
        hold thousands of topics).
        """
        return _describe(self._admin, names, timeout_s)

    def create_topics(
        self, specs: Sequence[NewTopicSpec], timeout_s: float = 15.0
    ) -> dict[str, bool]:
        """Create ``specs``; return ``{name: created}`` (False: it existed already)."""
        if not specs:
            return {}
        new = [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication,
                     config=dict(s.config))
            for s in specs
        ]  # fmt: skip
        out: dict[str, bool] = {}
        for name, future in self._admin.create_topics(new, request_timeout=timeout_s).items():
            try:
                future.result()
                out[name] = True
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    _raise(exc, f"create topic {name}")
                out[name] = False
        return out

    def await_topics(self, names: Sequence[str], timeout_s: float = 30.0) -> None:
        """Wait until EVERY broker describes ``names`` with a leader per partition.

        CreateTopics answers once the controller committed the topics; each broker learns
        of them a moment later, and a client asking another broker in between would be
        told they do not exist. Raises TopicMissingError at the deadline.
        """
        if not names:
            return
        deadline = time.monotonic() + timeout_s
        brokers = self.metadata(timeout_s, topics=()).brokers
        clients = {
            f"{host}:{port}": _make(
                AdminClient, _client_config(self._config, **{"bootstrap.servers": f"{host}:{port}"})
            )
            for _node, host, port in brokers
        }
        pending: list[str] = list(names)
        while True:
            pending = []
            for address, single in clients.items():
                try:
                    described = _describe(single, names, 5.0)
                except KafkaClientError:
                    pending.append(f"(broker {address} not answering)")
                    continue
                pending += [n for n in names if not _has_leaders(described.get(n))]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TopicMissingError(
                    f"the cluster did not list topic(s) {', '.join(sorted(set(pending)))} with a "
                    f"leader for every partition on every broker within {timeout_s:g}s of "
                    "creating them; check the brokers with `tradeflux broker status` and retry"
                )
            time.sleep(0.05)

    def topic_configs(
        self, names: Sequence[str], timeout_s: float = 10.0
    ) -> dict[str, dict[str, str]]:
        """Return every config value of each topic of ``names``."""
        if not names:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in names]
        out: dict[str, dict[str, str]] = {}
        try:
            for res, future in self._admin.describe_configs(
                resources, request_timeout=timeout_s
            ).items():
                out[res.name] = {k: str(v.value) for k, v in future.result().items()}
        except KafkaException as exc:
            _raise(exc, "describe topic configs")
        return out

    def upsert_scram_users(
        self, users: Mapping[str, str], iterations: int = 8192, timeout_s: float = 30.0
    ) -> None:
        """Create or update the SCRAM-SHA-512 credential of each ``user -> password``."""
        if not users:
            return
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, iterations)
        changes: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(u, info, p.encode()) for u, p in users.items()
        ]
        futures = self._admin.alter_user_scram_credentials(changes, request_timeout=timeout_s)
        for user, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - KafkaException or a timeout
                raise _failure(exc, f"creating SCRAM user {user}") from None

    def create_acls(self, acls: Sequence[Acl], timeout_s: float = 30.0) -> int:
        """Create every ACL (an existing one is no error); return how many were sent."""
        if not acls:
            return 0
        futures = self._admin.create_acls([_binding(a) for a in acls], request_timeout=timeout_s)
        for binding, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except Exception as exc:  # noqa: BLE001 - KafkaException or a timeout
                raise _failure(exc, f"creating the ACL {_acl(binding)}") from None
        return len(acls)

    def describe_acls(self, principal: str | None = None, timeout_s: float = 30.0) -> list[Acl]:
        """Return the cluster's ALLOW ACLs (of ``principal`` only, if given), sorted."""
        anything: Any = None  # None matches any name, principal and host
        flt = AclBindingFilter(
            ResourceType.ANY,
            anything,
            ResourcePatternType.ANY,
            principal if principal is not None else anything,
            anything,
            AclOperation.ANY,
            AclPermissionType.ALLOW,
        )
        try:
            bindings = self._admin.describe_acls(flt, request_timeout=timeout_s).result(
                timeout=timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - KafkaException or a timeout
            raise _failure(exc, "describing ACLs") from None
        return sorted(_acl(b) for b in bindings)


def _has_leaders(topic: TopicInfo | None) -> bool:
    return (
        topic is not None
        and bool(topic.partitions)
        and all(p.leader >= 0 for p in topic.partitions.values())
    )


def _metadata_brokers(admin: AdminClient, timeout_s: float) -> tuple[tuple[int, str, int], ...]:
    """Return the cluster's brokers ``(id, host, port)`` (DescribeCluster: no topic listed)."""
    try:
        got = admin.describe_cluster(request_timeout=timeout_s).result(timeout=timeout_s)
    except KafkaException as exc:
        _raise(exc, "describe cluster")
    except Exception as exc:  # noqa: BLE001 - a timeout of the future
        raise TransientKafkaError(f"describe cluster: {exc}", "_TIMED_OUT") from None
    return tuple(sorted((n.id, str(n.host), n.port) for n in got.nodes))


def _describe(
    admin: AdminClient, names: Sequence[str], timeout_s: float
) -> dict[str, TopicInfo | None]:
    """Describe ``names``; None for a topic the cluster does not have."""
    if not names:
        return {}
    try:
        futures = admin.describe_topics(TopicCollection(list(names)), request_timeout=timeout_s)
    except KafkaException as exc:
        _raise(exc, "describe topics")
    out: dict[str, TopicInfo | None] = {}
    for name, future in futures.items():
        try:
            got = future.result(timeout=timeout_s)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                out[name] = None
                continue
            raise classify(err, f"describe topic {name}") from None
        except Exception as exc:  # noqa: BLE001 - a timeout of the future
            raise TransientKafkaError(f"describe topic {name}: {exc}", "_TIMED_OUT") from None
        out[name] = TopicInfo(
            name,
            {
                p.id: PartitionInfo(
                    p.id,
                    p.leader.id if p.leader is not None else -1,
                    tuple(n.id for n in p.replicas),
                    tuple(n.id for n in p.isr),
                )
                for p in got.partitions
            },
        )
    return out


def _metadata(admin: AdminClient, timeout_s: float) -> ClusterMetadata:
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        _raise(exc, "metadata")
    brokers = tuple(sorted((b.id, str(b.host), b.port) for b in meta.brokers.values()))
    topics = {
        name: TopicInfo(
            name,
            {
                p.id: PartitionInfo(p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
                for p in t.partitions.values()
            },
        )
        for name, t in meta.topics.items()
        if t.error is None
    }
    return ClusterMetadata(brokers, topics)
