"""Recorded time: clock ticks on a service's input, so timers follow the data, not the wall.

A service whose timers must give the same answer on a replay (settlement cut-offs, report
deadlines, confirmation deadlines) keeps its own *stream time*: the largest recorded time
of the records of its input partition, in offset order, kept in a store. A record's
recorded time is a time the record itself carries (an event's ``ingest_time``, a tick's
``tick``). A quiet partition would leave stream time standing, so a small ticker
(``services/ticker.py``) writes a :class:`Tick` into every partition of the input topic
every few seconds: the wall clock enters the system once, as data, where a replay reads
it again.

A tick is marked by the header :data:`TICK_HEADER` (value ``"1"``), for readers that look
at headers only; its value is the JSON of :class:`Tick`, which no trade event decodes as
(and the reverse: unknown fields are refused). The topic registry says which topics may
carry ticks (``TopicDef.ticks``); their codec decodes either the topic's struct or a Tick.
"""

from __future__ import annotations

import datetime as dt

import msgspec

TICK_HEADER = "tf.tick"
"""The header that marks a tick record; its value is ``"1"``."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Tick(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A clock tick: the ticker's wall-clock time (aware UTC) when it wrote this record.

    ``source`` names the ticker (its service and partition), for the operator.
    """

    tick: dt.datetime
    source: str = ""


def time_of_ms(ms: int) -> dt.datetime:
    """Return the aware UTC instant of ``ms`` milliseconds since the Unix epoch."""
    return _EPOCH + dt.timedelta(milliseconds=ms)


def later(a: dt.datetime | None, b: dt.datetime) -> dt.datetime:
    """Return the later of a stream time ``a`` (None: none yet) and a recorded time ``b``."""
    return b if a is None or b > a else a
