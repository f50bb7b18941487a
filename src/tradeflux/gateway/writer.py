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

from tradeflux import topics
from tradeflux.domain.schemas import TradeEvent
from tradeflux.errors import TradefluxError
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import IdempotentWriter

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

    def on_delivery(self, err: str | None) -> None:
        with self._lock:
            if err is not None:
                self.errors.append(err)
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()


class TradeWriter:
    """A thread-safe producer of TradeEvents to ``<prefix>trades.raw``, acknowledged per write.

    ``write`` blocks until every record of the call is acknowledged or failed; many threads
    may write at once (their records share batches). A background thread serves the
    delivery reports. ``close`` flushes and stops it.
    """

    def __init__(
        self,
        client_config: dict[str, Any],
        topic_prefix: str = "",
    ) -> None:
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
        pending = _PendingWrite(len(events))
        for event in events:
            value = self.encode(event)
            try:
                self._producer.produce(
                    self.topic,
                    event.trade_id.encode(),
                    value,
                    on_delivery=pending.on_delivery,
                    give_up=self._stop.is_set,
                )
            except KafkaClientError as exc:  # a fatal producer error, say
                raise DeliveryError(f"Kafka refused a record to {self.topic}: {exc}") from None
        # Delivery reports come within delivery.timeout.ms; the margin covers a slow poll.
        deadline = time.monotonic() + self._delivery_timeout_s + 5
        while not pending.done.wait(0.1 if cancel else self._delivery_timeout_s + 5):
            if cancel is not None and cancel.is_set():
                raise DeliveryError("gave up waiting for Kafka: the gateway is stopping")
            if time.monotonic() < deadline:
                continue
            raise DeliveryError(
                f"Kafka did not acknowledge {pending.remaining} of {len(events)} record(s) to "
                f"{self.topic} in {self._delivery_timeout_s:.0f} s"
            )
        if pending.errors:
            raise DeliveryError(
                f"Kafka refused {len(pending.errors)} of {len(events)} record(s) to "
                f"{self.topic}: {pending.errors[0]}"
            )

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is in flight, stop the delivery thread; return records not delivered."""
        remaining: int = self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=5)
        return remaining
