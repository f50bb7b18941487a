"""Errors of the broker layer: fetching jars, running nodes, reaching a cluster."""

from tradeflux.errors import TradefluxError


class BrokerError(TradefluxError):
    """A local broker could not be fetched, started, stopped or reached."""


class JavaNotFoundError(BrokerError):
    """No ``java`` executable on PATH nor under JAVA_HOME."""


class MavenError(BrokerError):
    """Maven is missing or could not resolve the broker's artifacts."""


class PortInUseError(BrokerError):
    """A port the broker needs is already bound by another process."""


class ClusterUnreachableError(BrokerError):
    """No broker answered a metadata request at the bootstrap address."""


class TopicError(BrokerError):
    """Topics could not be created, or exist with an incompatible layout."""
