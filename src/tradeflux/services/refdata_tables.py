"""Global tables of reference data whose values are checked against their bounds on read.

Anyone with write access can produce to ``refdata.*`` and ``marketdata.*``; the loader
checks what it loads, and a service checks again what it reads, so that a price of
``1E+300`` or a limit of ``-1`` cannot break a computation (docs/domain-rules.md,
"Bounds"). A value beyond its bounds reads as no value for its key (``None``, as if
absent) until a valid one replaces it: the latest record of a key decides, the same on
every instance and after a restart (compaction keeps only that record anyway). Each one
is logged with the problems found.
"""

from __future__ import annotations

import logging
from typing import Any

from tradeflux.domain.bounds import refdata_problems
from tradeflux.stream.topology import GlobalTableSpec
from tradeflux.topics import TopicDef

log = logging.getLogger("tradeflux.services.refdata")


class BoundedCodec:
    """Decodes a reference record and returns None for one beyond its bounds.

    ``decode`` still raises on bytes that are not the struct at all (the table counts
    and skips those); encoding is the plain codec's.
    """

    def __init__(self, topic: TopicDef) -> None:
        self.topic = topic
        self._codec = topic.codec()

    def encode(self, value: Any) -> bytes:
        """Return the wire form of ``value``."""
        return self._codec.encode(value)

    def decode(self, data: bytes) -> Any:
        """Return the record of ``data``, or None when it breaks a bound."""
        record = self._codec.decode(data)
        problems = refdata_problems(record)
        if not problems:
            return record
        log.warning(
            "reference record out of bounds ignored topic=%s problems=%r", self.topic.name, problems
        )
        return None


def checked_table(topic: TopicDef, name: str) -> GlobalTableSpec:
    """Return the global table ``name`` over ``topic``, its values checked against their bounds."""
    spec = topic.table(name)
    return GlobalTableSpec(spec.name, spec.topic, BoundedCodec(topic))
