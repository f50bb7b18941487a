"""The runtime's entry points, by the names they have always had.

The concepts live in modules of their own (docs/runtime.md): the loop (loop.py),
assignment (assignment.py), restore (restore.py), the checkpoint of a batch
(checkpoint.py), stores and changelogs, global tables, timers, dead letters, metrics,
and the one Kafka boundary (kafka.py).
"""

from tradeflux.stream.checkpoint import InjectedAbort
from tradeflux.stream.config import RuntimeConfig
from tradeflux.stream.errors import StreamError
from tradeflux.stream.loop import StreamApp

__all__ = ["InjectedAbort", "RuntimeConfig", "StreamApp", "StreamError"]
