"""Analytics: ``trades.by_instrument`` → ``analytics.bars``, OHLCV bars per instrument window.

Event-time tumbling windows on ``trade_time`` (``TRADEFLUX_BAR_SECONDS``, default 5) that
close ``TRADEFLUX_BAR_GRACE_SECONDS`` (default 2) after their end, in stream time: the
largest ``trade_time`` seen in the partition, kept in the ``clock`` store so a restart
decides exactly as the crashed instance would have. (The runtime's stream time is the
record timestamp, which on ``trades.by_instrument`` is when repartition wrote the record,
not when the trade happened, so it is not used.) Windows close as each batch moves stream
time on; an event that would change a closed window is counted as ``late`` and dropped.

State, in the partition of the instrument: the open windows' effective trades
(``windows``), where each trade is (``slots``), and stream time (``clock``). Per batch,
each changed window sends one bar revision (a tombstone when its trades were all
cancelled); a closing window sends its final bar (``final`` true) and its state goes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.domain.windows import Outcome, TradeSlot, WindowBatch, WindowSpec, WindowState
from tradeflux.errors import ConfigError
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

BARS = topics.BARS.name
STREAM_TIME = "stream_time"  # the one key of the clock store


def _seconds(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: give a whole number of seconds, at least {minimum}")
    return value


def window_spec_from_env() -> WindowSpec:
    """Return the windows set by ``TRADEFLUX_BAR_SECONDS`` and ``TRADEFLUX_BAR_GRACE_SECONDS``."""
    return WindowSpec(
        size=dt.timedelta(seconds=_seconds("TRADEFLUX_BAR_SECONDS", 5, 1)),
        grace=dt.timedelta(seconds=_seconds("TRADEFLUX_BAR_GRACE_SECONDS", 2, 0)),
    )


SPEC = window_spec_from_env()
logging.getLogger("tradeflux.services.analytics").info(
    "setting bar_seconds=%d bar_grace_seconds=%d",
    SPEC.size // dt.timedelta(seconds=1),
    SPEC.grace // dt.timedelta(seconds=1),
)


def update_bars(ctx: Context, records: Sequence[Record]) -> None:
    """Apply each trade event to its window; close the windows stream time has passed."""
    windows = ctx.store("windows")
    slots = ctx.store("slots")
    clock = ctx.store("clock")
    batch = WindowBatch(SPEC, clock.get(STREAM_TIME), windows, slots)
    for record in records:
        outcome = batch.apply(record.value)
        if outcome is Outcome.LATE:
            ctx.count("late")
        elif outcome is Outcome.STALE:
            ctx.count("ignored_version")
    result = batch.finish(windows.items())
    for key, window in result.windows.items():
        if window is None:
            windows.delete(key)
        else:
            windows.put(key, window)
    for key, slot in result.slots.items():
        if slot is None:
            slots.delete(key)
        else:
            slots.put(key, slot)
    if result.stream_time is not None and result.stream_time != clock.get(STREAM_TIME):
        clock.put(STREAM_TIME, result.stream_time)
    for key, bar in result.bars:
        ctx.emit(BARS, key, bar)
    if result.closed:
        ctx.count("windows_closed", result.closed)


SERVICE = Service(
    name="analytics",
    inputs=[topics.BY_INSTRUMENT.topic()],
    outputs=[topics.BARS.topic()],
    stores=[
        StoreSpec("windows", MsgpackCodec(WindowState)),
        StoreSpec("slots", MsgpackCodec(TradeSlot)),
        StoreSpec("clock", MsgpackCodec(dt.datetime)),
    ],
    process=update_bars,
    dead_letter_topic=topics.REJECTED.name,
)
