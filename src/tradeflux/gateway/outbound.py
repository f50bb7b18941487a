"""The gateway's outbound side: decided allocation acks (35=P) and confirmations (35=AK).

The allocations and confirmations services write their answers to Kafka
(``allocations.acks``, ``confirmations``); this thread follows both topics
(read_committed) in a consumer group of the gateway's own and hands every record
addressed to one of its FIX sessions to the engine as a message: a decided ack as an
AllocationInstructionAck, a confirmation revision that issues something as a
Confirmation. Records of HTTP instructions (no session) are for the query API and
skipped.

At least once: offsets are committed after the batch's messages were handed to the
engine, which stores each with its sequence number before it returns (a session logged
out delivers them in the resend after its next Logon). A gateway that dies between the
two sends those messages again when it restarts; a receiver tells them by their
AllocID / ConfirmID.

The Kafka consumer is the runtime's :class:`~tradeflux.stream.kafka.GroupConsumer`
(:func:`follow_committed`), committing offsets itself after each batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from tradeflux import topics
from tradeflux.domain.allocation_events import AllocationAck
from tradeflux.domain.confirmation_events import Confirmation
from tradeflux.gateway.fix_allocation import (
    OutboundMessage,
    allocation_ack_message,
    confirmation_message,
)
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import GroupConsumer

log = logging.getLogger("tradeflux.gateway.outbound")

ACKS = topics.ALLOCATION_ACKS.name
CONFIRMATIONS = topics.CONFIRMATIONS.name
_ACK = msgspec.json.Decoder(AllocationAck)
_CONFIRMATION = msgspec.json.Decoder(Confirmation)

Send = Callable[[str, OutboundMessage], bool]
"""Hands a message to the FIX session named by the string; False if there is none here."""


def outbound_message(topic: str, value: bytes) -> tuple[str, OutboundMessage] | None:
    """Return ``(session, message)`` for a record of ``allocations.acks`` or ``confirmations``.

    None when the record sends nothing over FIX: it came over HTTP, it is a PENDING ack,
    or a confirmation revision that issues nothing.
    """
    if topic == ACKS:
        ack = _ACK.decode(value)
        message = allocation_ack_message(ack)
        session = ack.session
    else:
        confirmation = _CONFIRMATION.decode(value)
        message = confirmation_message(confirmation)
        session = confirmation.session
    if not session or message is None:
        return None
    return session, message


def follow_committed(
    client_config: Mapping[str, Any],
    group: str,
    topic_names: Sequence[str],
    handle: Callable[[str, bytes], None],
    stop: threading.Event,
) -> None:
    """Consume ``topic_names`` in ``group`` (read_committed) until ``stop``, committing per batch.

    ``handle(topic, value)`` is called per record in offset order; a record it raises on
    is logged and skipped (a bad record must not stop the session's messages).
    """

    def note(err: KafkaClientError) -> None:
        log.warning("outbound consumer error=%s", err)

    consumer = GroupConsumer(
        client_config,
        group,
        on_error=note,
        **{"partition.assignment.strategy": "cooperative-sticky"},
    )
    try:
        consumer.subscribe(list(topic_names), _ignore, _ignore, _ignore)
        while not stop.is_set():
            messages = consumer.consume(500, 0.2)
            if not messages:
                continue
            offsets: dict[tuple[str, int], int] = {}
            for message in messages:
                topic = str(message.topic())
                offsets[(topic, message.partition() or 0)] = (message.offset() or 0) + 1
                value = message.value()
                if value is None:
                    continue
                try:
                    handle(topic, value)
                except Exception:  # noqa: BLE001 - isolate one bad record
                    log.exception(
                        "outbound record not sent topic=%s partition=%s offset=%s",
                        topic,
                        message.partition(),
                        message.offset(),
                    )
            try:
                consumer.commit(offsets)
            except KafkaClientError as exc:  # a rebalance, say: those records come again
                log.info("outbound commit skipped reason=%s", exc)
    finally:
        consumer.close()


def _ignore(_tps: list[tuple[str, int]]) -> None:
    """Rebalances need nothing here: offsets are committed per batch."""


class OutboundFollower:
    """A daemon thread that sends the services' answers to the FIX sessions of this gateway."""

    def __init__(
        self, client_config: Mapping[str, Any], topic_prefix: str, group: str, send: Send
    ) -> None:
        self._config = dict(client_config)
        self._prefix = topic_prefix
        self._group = group
        self._send = send
        self._stop = threading.Event()
        self.sent = 0
        self.unsent = 0  # addressed to a session this gateway does not have
        self._thread = threading.Thread(target=self._run, name="fix-outbound", daemon=True)

    def start(self) -> None:
        """Start following in the background."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop following (the batch in hand is sent and committed first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def alive(self) -> bool:
        """Tell whether the following thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        names = [self._prefix + ACKS, self._prefix + CONFIRMATIONS]
        try:
            follow_committed(self._config, self._group, names, self._handle, self._stop)
        except Exception:
            log.exception("outbound follower stopped group=%s", self._group)

    def _handle(self, topic: str, value: bytes) -> None:
        found = outbound_message(topic.removeprefix(self._prefix), value)
        if found is None:
            return
        session, message = found
        if self._send(session, message):
            self.sent += 1
        else:
            self.unsent += 1
            log.warning(
                "outbound message for an unknown session session=%s msg_type=%s",
                session,
                message.msg_type,
            )
