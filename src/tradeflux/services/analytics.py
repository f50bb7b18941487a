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
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.config import Settings, load_settings
from tradeflux.domain.windows import Outcome, TradeSlot, WindowBatch, WindowSpec, WindowState
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

BARS = topics.BARS.name
STREAM_TIME = "stream_time"  # the one key of the clock store


def window_spec(settings: Settings) -> WindowSpec:
    """Return the windows of ``settings`` (``bar_seconds``, ``bar_grace_seconds``)."""
    return WindowSpec(
        size=dt.timedelta(seconds=settings.bar_seconds),
        grace=dt.timedelta(seconds=settings.bar_grace_seconds),
    )


def window_spec_from_env() -> WindowSpec:
    """Return the windows set by ``TRADEFLUX_BAR_SECONDS`` and ``TRADEFLUX_BAR_GRACE_SECONDS``."""
    return window_spec(load_settings())


def update_bars(ctx: Context, records: Sequence[Record], spec: WindowSpec) -> None:
    """Apply each trade event to its window; close the windows stream time has passed."""
    windows = ctx.store("windows")
    slots = ctx.store("slots")
    clock = ctx.store("clock")
    batch = WindowBatch(spec, clock.get(STREAM_TIME), windows, slots)
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


def build(settings: Settings | None = None) -> Service:
    """Return the analytics service with the windows of ``settings``."""
    spec = window_spec(settings or Settings())

    def process(ctx: Context, records: Sequence[Record]) -> None:
        update_bars(ctx, records, spec)

    return Service(
        name="analytics",
        inputs=[topics.BY_INSTRUMENT.topic()],
        outputs=[topics.BARS.topic()],
        stores=[
            StoreSpec("windows", MsgpackCodec(WindowState)),
            StoreSpec("slots", MsgpackCodec(TradeSlot)),
            StoreSpec("clock", MsgpackCodec(dt.datetime)),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()  # with the default windows; `tradeflux run analytics` builds from Settings
SPEC = window_spec(Settings())
