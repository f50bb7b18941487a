"""Writing captured trade events to ``trades.raw`` and waiting until Kafka has them.

Both ways in (FIX and HTTP) acknowledge a trade to its sender only after a writer
returned: every record was acknowledged by all in-sync replicas (``acks=all``) of an
idempotent producer, so a broker retry never writes a record twice. Records are keyed
by trade id, partitioned like the Java client (murmur2), so every event of a trade
lands in one partition in the order it was written.

FIX writes one message's event with :class:`TradeWriter`. HTTP writes a request's events
with :class:`TransactionalTradeWriter`, in one Kafka transaction: after a failure
nothing of the request is visible to a ``read_committed`` reader (the validator). Both
talk to Kafka through the runtime's one boundary, ``stream/kafka.py``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from tradeflux import topics
from tradeflux.domain.schemas import TradeEvent
from tradeflux.errors import TradefluxError
from tradeflux.stream.errors import KafkaClientError, TransientKafkaError
from tradeflux.stream.kafka import Admin, IdempotentWriter, TransactionalProducer
from tradeflux.tracing import OFF, Tracing

RAW_TOPIC = topics.RAW.name

log = logging.getLogger("tradeflux.gateway")


class DeliveryError(TradefluxError):
    """Kafka did not acknowledge every record of a write; the caller must not acknowledge.

    ``outcome_known`` False: some records of the write may be in Kafka after all.
    """

    def __init__(self, message: str, outcome_known: bool = True) -> None:
        super().__init__(message)
        self.outcome_known = outcome_known


class _PendingWrite:
    """The delivery reports one write is waiting for."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.errors: list[str] = []
        self.done = threading.Event()
        self._lock = threading.Lock()
        if count == 0:
            self.done.set()

    def on_delivery(self, err: str | None) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(err)
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()


class TradeWriter:
    """A thread-safe producer of TradeEvents to ``<prefix>trades.raw``, acknowledged per write.

    ``write_to`` writes the other records the gateway takes in (allocation instructions,
    confirmation acks, clock ticks) to their topics, acknowledged the same way.

    ``write`` blocks until every record of the call is acknowledged or failed; many threads
    may write at once (their records share batches). A background thread serves the
    delivery reports. ``close`` flushes and stops it.
    """

    def __init__(
        self,
        client_config: dict[str, Any],
        topic_prefix: str = "",
        tracing: Tracing = OFF,
    ) -> None:
        self.prefix = topic_prefix
        self._tracing = tracing
        # How long Kafka may take to acknowledge: 30 s unless the cluster settings say
        # (TRADEFLUX_KAFKA_DELIVERY_TIMEOUT_MS or the config file's kafka table).
        delivery_timeout_ms = int(client_config.get("delivery.timeout.ms", 30_000))
        self.topic = topic_prefix + RAW_TOPIC
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        self._producer = IdempotentWriter(
            client_config,
            **{
                "linger.ms": 1,  # a FIX message waits for its own ack: do not hold it back
                "delivery.timeout.ms": delivery_timeout_ms,
            },
        )
        self._delivery_timeout_s = delivery_timeout_ms / 1000
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="trades-raw-poller", daemon=True)
        self._poller.start()

    @property
    def fatal_error(self) -> str | None:
        """Return why the producer can never deliver again, or None."""
        return self._producer.fatal_error

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def encode(self, event: TradeEvent) -> bytes:
        """Return the record value of ``event``: JSON, Decimals as strings."""
        return self._encoder.encode(event)

    def write(self, events: Sequence[TradeEvent], cancel: threading.Event | None = None) -> None:
        """Produce ``events`` in order and return once Kafka acknowledged all of them.

        Raises DeliveryError if any record failed or was not acknowledged in the delivery
        timeout, or ``cancel`` was set while waiting; then some records of the call may be
        in Kafka and some not: writing the same events again is safe, the validator drops
        a (trade id, version) it has.
        """
        records = [(event.trade_id, self.encode(event), None) for event in events]
        self._write(self.topic, records, cancel, "gateway fix")

    def write_to(
        self,
        topic: str,
        records: Sequence[tuple[str | None, bytes, int | None]],
        cancel: threading.Event | None = None,
    ) -> None:
        """Produce ``(key, value, partition)`` records to ``<prefix><topic>``; wait as ``write``.

        ``partition`` None partitions by key (murmur2); a number writes to that partition.
        """
        self._write(self.prefix + topic, records, cancel)

    def partition_count(self, topic: str, timeout_s: float = 10.0) -> int:
        """Return how many partitions ``<prefix><topic>`` has; raise DeliveryError if unknown."""
        name = self.prefix + topic
        try:
            count = self._producer.partitions_of(name, timeout_s)
        except KafkaClientError as exc:
            raise DeliveryError(f"cannot read the metadata of {name}: {exc}") from None
        if not count:
            raise DeliveryError(
                f"topic {name} does not exist; create it with `tradeflux topics create`"
            )
        return count

    def _write(
        self,
        topic: str,
        records: Sequence[tuple[str | None, bytes, int | None]],
        cancel: threading.Event | None,
        edge: str | None = None,
    ) -> None:
        events = records
        tracing = self._tracing if edge is not None and self._tracing.enabled else None
        pending = _PendingWrite(len(records))
        for key, value, partition in records:
            try:
                self._producer.produce(
                    topic,
                    None if key is None else key.encode(),
                    value,
                    on_delivery=pending.on_delivery,
                    give_up=self._stop.is_set,
                    partition=partition,
                    headers=tracing.start(edge) if tracing is not None and edge else None,
                )
            except KafkaClientError as exc:  # a fatal producer error, say
                raise DeliveryError(f"Kafka refused a record to {topic}: {exc}") from None
        # Delivery reports come within delivery.timeout.ms; the margin covers a slow poll.
        deadline = time.monotonic() + self._delivery_timeout_s + 5
        while not pending.done.wait(0.1 if cancel else self._delivery_timeout_s + 5):
            if cancel is not None and cancel.is_set():
                raise DeliveryError("gave up waiting for Kafka: the gateway is stopping")
            if time.monotonic() < deadline:
                continue
            raise DeliveryError(
                f"Kafka did not acknowledge {pending.remaining} of {len(events)} record(s) to "
                f"{topic} in {self._delivery_timeout_s:.0f} s"
            )
        if pending.errors:
            raise DeliveryError(
                f"Kafka refused {len(pending.errors)} of {len(events)} record(s) to "
                f"{topic}: {pending.errors[0]}"
            )

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is in flight, stop the delivery thread; return records not delivered."""
        remaining: int = self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=5)
        return remaining


RECORD_OVERHEAD_BYTES = 512
"""What a record needs beyond its key and value inside a batch of one (batch header 61
bytes, record header about 20, headers none), with room to spare."""


def topic_max_message_bytes(
    client_config: dict[str, Any], topic: str, timeout_s: float = 15
) -> int:
    """Return the ``max.message.bytes`` of ``topic`` (the largest record batch it accepts).

    A topic just created may be unknown to the broker asked for a moment: asked again
    until ``timeout_s``. Raises DeliveryError when the topic or its config cannot be read.
    """
    admin = Admin({k: v for k, v in client_config.items() if k != "logger"})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            configs = admin.topic_configs([topic], timeout_s)
            return int(configs[topic]["max.message.bytes"])
        except TransientKafkaError as exc:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            reason = exc.reason
        except KafkaClientError as exc:
            if exc.code == "UNKNOWN_TOPIC_OR_PART" and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            reason = exc.reason
        except (KeyError, ValueError) as exc:
            reason = repr(exc)
        raise DeliveryError(
            f"cannot read max.message.bytes of {topic} ({reason}); create the topics with "
            "`tradeflux topics create`"
        )


class TransactionalTradeWriter:
    """Writes the events of one call in one Kafka transaction: all of them, or none.

    A pool of ``producers`` transactional producers (``transactional.id``
    ``<id_prefix>-<n>``, stable across restarts so a restarted gateway aborts what its
    crashed self left open at once) serves that many calls at a time; more wait for a
    free one. ``write`` returns once the transaction is committed (every record
    acknowledged by all in-sync replicas); on any failure it aborts the transaction and
    raises DeliveryError: then no record of the call is visible to a ``read_committed``
    reader, except when even the abort failed (``outcome_known`` False on the error).

    Nothing talks to Kafka before the first write: a gateway started while Kafka is away
    answers 503 until it is back. :attr:`max_record_bytes` is what one record may take:
    the topic's ``max.message.bytes`` (read once) less :data:`RECORD_OVERHEAD_BYTES`; the
    producers' batches are capped at the topic's size too, so Kafka never refuses a batch
    the gateway accepted.
    """

    def __init__(
        self,
        client_config: dict[str, Any],
        id_prefix: str,
        topic_prefix: str = "",
        producers: int = 4,
        max_message_bytes: int | None = None,
        tracing: Tracing = OFF,
    ) -> None:
        self.topic = topic_prefix + RAW_TOPIC
        self._tracing = tracing
        self._client_config = client_config
        # How long Kafka may take: 30 s unless the cluster settings say (as TradeWriter)
        self._timeout_s = int(client_config.get("delivery.timeout.ms", 30_000)) / 1000
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        self._batch_bytes: int | None = None
        if max_message_bytes is not None:
            self._batch_bytes = min(1_000_000, max_message_bytes)
        self._limit_lock = threading.Lock()
        self._idle: queue.SimpleQueue[tuple[str, TransactionalProducer | None]] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self._pool = producers
        for n in range(producers):
            self._idle.put((f"{id_prefix}-{n}", None))

    @property
    def max_record_bytes(self) -> int:
        """Return the largest record value Kafka takes; raise DeliveryError if unknown yet."""
        return self._batch_size() - RECORD_OVERHEAD_BYTES

    def _batch_size(self) -> int:
        with self._limit_lock:
            if self._batch_bytes is None:
                timeout_s = min(self._timeout_s, 15.0)
                topic_bytes = topic_max_message_bytes(self._client_config, self.topic, timeout_s)
                self._batch_bytes = min(1_000_000, topic_bytes)
            return self._batch_bytes

    def _start_producer(self, transactional_id: str) -> TransactionalProducer:
        batch_bytes = self._batch_size()
        try:
            producer = TransactionalProducer(
                self._client_config,
                transactional_id,
                **{
                    "batch.size": batch_bytes,
                    "message.max.bytes": batch_bytes,
                    # a gateway that dies mid-request holds back read_committed readers of
                    # the partitions it wrote to until this passes (or it restarts, same id)
                    "transaction.timeout.ms": 10_000,
                },
            )
            producer.init(self._timeout_s)
        except KafkaClientError as exc:
            raise DeliveryError(
                f"cannot start transactional producer {transactional_id}: {exc.reason}; "
                "none was written"
            ) from None
        return producer

    def encode(self, event: TradeEvent) -> bytes:
        """Return the record value of ``event``: JSON, Decimals as strings."""
        return self._encoder.encode(event)

    def write(self, events: Sequence[TradeEvent]) -> None:
        """Write ``events`` in order in one transaction; return once it is committed.

        Raises DeliveryError when the transaction was not committed; nothing of it is
        then visible read_committed unless the error says the outcome is unknown.
        """
        if self._closed:
            raise DeliveryError("the trade writer is closed")
        transactional_id, slot = self._idle.get()
        try:
            producer = slot if slot is not None else self._start_producer(transactional_id)
        except DeliveryError:
            self._idle.put((transactional_id, None))
            raise
        try:
            self._write_in_transaction(producer, events)
        except KafkaClientError as exc:
            known = self._abort(producer)
            # a new producer of the same id even after a clean abort: librdkafka may still
            # fail the next transaction (OUT_OF_ORDER_SEQUENCE_NUMBER after a refused batch)
            slot = self._replace(transactional_id, producer)
            raise DeliveryError(
                f"Kafka refused the write of {len(events)} record(s) to {self.topic}: "
                f"{exc.reason}; "
                + ("none was written" if known else "some may be written; send them again"),
                outcome_known=known,
            ) from None
        else:
            slot = producer
        finally:
            self._idle.put((transactional_id, slot))

    def _write_in_transaction(
        self, producer: TransactionalProducer, events: Sequence[TradeEvent]
    ) -> None:
        producer.begin()
        tracing = self._tracing if self._tracing.enabled else None
        for event in events:
            headers = tracing.start("gateway http") if tracing is not None else None
            producer.send(self.topic, event.trade_id.encode(), self.encode(event), headers)
        producer.commit(self._timeout_s)  # flushes; raises if a record failed

    def _abort(self, producer: TransactionalProducer) -> bool:
        """Abort the open transaction; tell whether that worked (the outcome is known)."""
        try:
            producer.abort(self._timeout_s)
        except KafkaClientError as exc:
            log.error("kafka transaction abort failed reason=%s", exc.reason)
            return False
        return True

    def _replace(
        self, transactional_id: str, producer: TransactionalProducer
    ) -> TransactionalProducer | None:
        """Drop ``producer``; the next write of its slot starts one of the same id.

        The new one fences this one and aborts what it left open.
        """
        producer.close(0)
        log.warning("kafka transactional producer replaced id=%s", transactional_id)
        return None

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait for the calls in flight (up to ``timeout_s``) and close every producer."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        closed = 0
        while closed < self._pool:
            try:
                _, slot = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if slot is not None:
                slot.close(0)
            closed += 1
