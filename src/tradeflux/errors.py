"""The root of every tradeflux exception hierarchy.

Each layer (broker, stream, domain, edges) subclasses :class:`TradefluxError`;
the CLI prints ``str(error)`` as one line and exits with ``error.exit_code``.
Messages say what is wrong *and* what to do about it.
"""


class TradefluxError(Exception):
    """An error a user can act on; its message is one line with the fix."""

    exit_code: int = 1


class ConfigError(TradefluxError):
    """A setting (flag, environment variable or config file entry) is invalid."""

    exit_code = 2
