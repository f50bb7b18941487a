"""Recorded time for the allocation and confirmation services: clock ticks and stream time.

Both services decide by time (an instruction waits for its block so long; a
confirmation is due by its deadline), and a replay of their input must decide exactly
as the first run did. So time is never the wall clock: it is the partition's **stream
time**, the largest record timestamp the partition has seen, kept in a store, moved on
record by record in offset order (not once per batch, so the cut of a batch changes
nothing). A quiet partition would never move on; the ticker writes a
:class:`ClockTick` into every partition every few seconds, whose only content is its
record timestamp.
"""

from __future__ import annotations

import datetime as dt

import msgspec

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ClockTick(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="tick"):
    """A record that only moves its partition's stream time (to its record timestamp)."""


def to_datetime(ms: int) -> dt.datetime:
    """Return the UTC instant ``ms`` milliseconds after the Unix epoch."""
    return EPOCH + dt.timedelta(milliseconds=ms)


def to_ms(t: dt.datetime) -> int:
    """Return an aware instant as whole milliseconds since the Unix epoch (floored)."""
    return (t - EPOCH) // dt.timedelta(milliseconds=1)
