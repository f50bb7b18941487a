"""The runtime's errors: what ends an instance, with one line that says what to do.

Every error here derives from :class:`tradeflux.errors.TradefluxError`, so the CLI prints
``str(error)`` as one line and exits non-zero (a stack trace only with ``--debug``).
Errors a running instance recovers from on its own (a transient broker error, a dead
transactional producer) are :class:`KafkaClientError` subclasses that the loop catches;
they reach the user only once their deadline has passed.
"""

from __future__ import annotations

from tradeflux.errors import TradefluxError


class StreamError(TradefluxError):
    """The runtime cannot go on: misconfigured, replaced by a live twin, or out of time."""


class ServiceConfigError(StreamError):
    """The service or the cluster is set up wrongly (missing topic, partition counts differ)."""

    exit_code = 2


class TopicMissingError(ServiceConfigError):
    """A topic the service reads or writes does not exist."""


class StoreRestoreError(StreamError):
    """A store's changelog could not be read back within the deadline."""


class KafkaClientError(StreamError):
    """A call to the Kafka client failed.

    ``code`` is librdkafka's error name (``_TRANSPORT``), ``reason`` its own text.
    """

    def __init__(
        self, message: str, code: str = "", retriable: bool = False, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable
        self.reason = reason or message


class TransientKafkaError(KafkaClientError):
    """The cluster is briefly unavailable (leader move, coordinator loading, timeout): retry."""


class AuthorizationError(KafkaClientError):
    """The cluster refused this principal an operation (ACLs) or its credentials (SASL)."""

    exit_code = 3


class TransactionAbortableError(KafkaClientError):
    """The open transaction must be aborted; the producer stays usable."""


class ProducerFatalError(KafkaClientError):
    """The transactional producer cannot be used again (fenced, invalid state, sequence gap).

    ``outcome_known`` is False when the failure came while committing: the broker may or
    may not have committed that transaction, so the instance must rebuild its stores
    from the changelogs rather than trust its in-memory state.
    """

    def __init__(
        self,
        message: str,
        code: str = "",
        outcome_known: bool = True,
        fenced: bool = False,
        reason: str = "",
    ) -> None:
        super().__init__(message, code, reason=reason)
        self.outcome_known = outcome_known
        self.fenced = fenced


class RecordRefusedError(KafkaClientError):
    """The broker or the client refused one record (too large, invalid): the record's fault."""


class DeadlineExceededError(StreamError):
    """A transient condition lasted longer than the configured deadline."""


class ReplacedError(StreamError):
    """Another live instance uses this instance's id: this one must stop."""
