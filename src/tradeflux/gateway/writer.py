"""Writing captured trade events to ``trades.raw`` and waiting until Kafka has them.

Both ways in (FIX and HTTP) acknowledge a trade to its sender only after this writer
returned: every record was acknowledged by all in-sync replicas (``acks=all``) of an
idempotent producer, so a broker retry never writes a record twice. Records are keyed
by trade id, partitioned like the Java client (murmur2), so every event of a trade
lands in one partition in the order it was written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tradeflux import topics
from tradeflux.domain.schemas import TradeEvent
from tradeflux.errors import TradefluxError

RAW_TOPIC = topics.RAW.name

log = logging.getLogger("tradeflux.gateway")


class DeliveryError(TradefluxError):
    """Kafka did not acknowledge every record of a write; the caller must not acknowledge."""


class _PendingWrite:
    """The delivery reports one write is waiting for."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.errors: list[str] = []
        self.done = threading.Event()
        self._lock = threading.Lock()
        if count == 0:
            self.done.set()

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(err.str())
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
    ) -> None:
        self.prefix = topic_prefix
        # How long Kafka may take to acknowledge: 30 s unless the cluster settings say
        # (TRADEFLUX_KAFKA_DELIVERY_TIMEOUT_MS or the config file's kafka table).
        delivery_timeout_ms = int(client_config.get("delivery.timeout.ms", 30_000))
        self.topic = topic_prefix + RAW_TOPIC
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        self._producer = Producer(
            {
                **client_config,
                "acks": "all",
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
                "linger.ms": 1,  # a FIX message waits for its own ack: do not hold it back
                "delivery.timeout.ms": delivery_timeout_ms,
                "error_cb": self._on_client_error,
                "logger": logging.getLogger("tradeflux.kafka"),
            }
        )
        self._delivery_timeout_s = delivery_timeout_ms / 1000
        self.fatal_error: str | None = None  # set when the producer can never deliver again
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="trades-raw-poller", daemon=True)
        self._poller.start()

    def _on_client_error(self, err: KafkaError) -> None:
        """Remember a fatal error; librdkafka's own log already reports the transient ones."""
        if err.fatal():
            self.fatal_error = f"{err.name()}: {err.str()}"
            log.error("kafka producer failed fatally code=%s reason=%s", err.name(), err.str())
        else:
            log.debug("kafka client error code=%s reason=%s", err.name(), err.str())

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
        self._write(self.topic, records, cancel)

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
            meta = self._producer.list_topics(name, timeout=timeout_s)
        except KafkaException as exc:
            raise DeliveryError(f"cannot read the metadata of {name}: {exc}") from None
        found = meta.topics.get(name)
        if found is None or found.error is not None or not found.partitions:
            raise DeliveryError(
                f"topic {name} does not exist; create it with `tradeflux topics create`"
            )
        return len(found.partitions)

    def _write(
        self,
        topic: str,
        records: Sequence[tuple[str | None, bytes, int | None]],
        cancel: threading.Event | None,
    ) -> None:
        events = records
        pending = _PendingWrite(len(records))
        for key, value, partition in records:
            extra: dict[str, Any] = {} if partition is None else {"partition": partition}
            while True:
                try:
                    self._producer.produce(
                        topic,
                        value,
                        None if key is None else key.encode(),
                        on_delivery=pending.on_delivery,
                        **extra,
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    if self._stop.wait(0.01):
                        raise DeliveryError("the trade writer is closed") from None
                except KafkaException as exc:  # a fatal producer error, say
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
