"""Analytics: ``trades.by_instrument`` → ``analytics.bars`` and ``analytics.hopping_bars``.

Event-time tumbling windows on ``trade_time`` (``bar_seconds``, default 5) that close
``bar_grace_seconds`` (default 2) after their end, in stream time: the
largest ``trade_time`` seen in the partition, kept in the ``clock`` store so a restart
decides exactly as the crashed instance would have. (The runtime's stream time is the
record timestamp, which on ``trades.by_instrument`` is when repartition wrote the record,
not when the trade happened, so it is not used.) Windows close as each batch moves stream
time on; an event that would change a closed window is counted as ``late`` and dropped.

State, in the partition of the instrument: each open window's running OHLCV
(``bar_windows``), each effective trade and where it is (``bar_trades``), the trade keys
placed in each window, in chunks (``bar_members``), and stream time (``clock``). No record
grows with a window's trades, so a hot instrument's window is never too large for its
changelog, and a batch costs what its events touch. Per batch, each changed window sends
one bar revision (a tombstone when its trades were all cancelled); a closing window sends
its final bar (``final`` true) and its state goes.

Hopping windows (``hop_seconds`` long, default 60, one every ``hop_advance_seconds``,
default 15, the same grace; settings, e.g. ``TRADEFLUX_HOP_SECONDS``) go the same way to
``analytics.hopping_bars``, from stores of their own (``hop_bar_windows``, ``hop_bar_trades``,
``hop_bar_members``): they are ``size / advance`` tumbling series side by side
(domain/windows.py, HoppingSpec).

(Until 2026-12 a window's state held its trades in one record, in stores named
``windows``, ``slots``, ``hop_windows`` and ``hop_slots``; the new stores start empty, so
windows open at an upgrade lose the trades before it.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from tradeflux import topics
from tradeflux.config import Settings, load_settings
from tradeflux.domain.windows import (
    HoppingSpec,
    Outcome,
    TradeSlot,
    WindowBatch,
    WindowSpec,
    WindowState,
)
from tradeflux.errors import ConfigError
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.topology import Service, StoreSpec

BARS = topics.BARS.name
HOPPING_BARS = topics.HOPPING_BARS.name
STREAM_TIME = "stream_time"  # the one key of the clock store
WINDOWS, TRADES, MEMBERS = "bar_windows", "bar_trades", "bar_members"
HOP_WINDOWS, HOP_TRADES, HOP_MEMBERS = "hop_bar_windows", "hop_bar_trades", "hop_bar_members"


def window_spec(settings: Settings) -> WindowSpec:
    """Return the tumbling windows of ``settings`` (``bar_seconds``, ``bar_grace_seconds``)."""
    return WindowSpec(
        size=dt.timedelta(seconds=settings.bar_seconds),
        grace=dt.timedelta(seconds=settings.bar_grace_seconds),
    )


def window_spec_from_env() -> WindowSpec:
    """Return the windows set by ``TRADEFLUX_BAR_SECONDS`` and ``TRADEFLUX_BAR_GRACE_SECONDS``."""
    return window_spec(load_settings())


def hopping_spec(settings: Settings) -> HoppingSpec:
    """Return the hopping windows of ``settings`` (``hop_seconds``, ``hop_advance_seconds``)."""
    size, advance = settings.hop_seconds, settings.hop_advance_seconds
    if size < advance or size % advance:
        raise ConfigError(
            f"hop_seconds={size} must be a whole multiple of hop_advance_seconds={advance}"
        )
    grace = dt.timedelta(seconds=settings.bar_grace_seconds)
    return HoppingSpec(dt.timedelta(seconds=size), dt.timedelta(seconds=advance), grace)


def update_bars(
    ctx: Context, records: Sequence[Record], spec: WindowSpec, phases: Sequence[WindowSpec]
) -> None:
    """Apply each trade event to its windows; close the windows stream time has passed."""
    windows = ctx.store(WINDOWS)
    slots = ctx.store(TRADES)
    members = ctx.store(MEMBERS)
    hop_windows = ctx.store(HOP_WINDOWS)
    hop_slots = ctx.store(HOP_TRADES)
    hop_members = ctx.store(HOP_MEMBERS)
    clock = ctx.store("clock")
    held = clock.get(STREAM_TIME)
    batch = WindowBatch(spec, held, windows, slots, members)
    hops = [
        WindowBatch(phase, held, hop_windows, hop_slots, hop_members, slot_prefix=f"{j}|")
        for j, phase in enumerate(phases)
    ]
    for record in records:
        outcome = batch.apply(record.value)
        if outcome is Outcome.LATE:
            ctx.count("late")
        elif outcome is Outcome.STALE:
            ctx.count("ignored_version")
        for hop in hops:
            if hop.apply(record.value) is Outcome.LATE:
                ctx.count("hopping_late")
    result = batch.finish(windows.items())
    _write(windows, result.windows)
    _write(slots, result.slots)
    _write(members, result.members)
    if result.stream_time is not None and result.stream_time != held:
        clock.put(STREAM_TIME, result.stream_time)
    for key, bar in result.bars:
        ctx.emit(BARS, key, bar)
    if result.closed:
        ctx.count("windows_closed", result.closed)
    for hop in hops:
        hop_result = hop.finish(list(hop_windows.items()))
        _write(hop_windows, hop_result.windows)
        _write(hop_slots, hop_result.slots)
        _write(hop_members, hop_result.members)
        for key, bar in hop_result.bars:
            ctx.emit(HOPPING_BARS, key, bar)
        if hop_result.closed:
            ctx.count("hopping_windows_closed", hop_result.closed)


def _write(store: StorePartition, changed: Mapping[str, Any]) -> None:
    """Put each changed value in ``store``; None deletes its key."""
    for key, value in changed.items():
        if value is None:
            store.delete(key)
        else:
            store.put(key, value)


def build(settings: Settings | None = None) -> Service:
    """Return the analytics service with the windows of ``settings``."""
    settings = settings or Settings()
    spec = window_spec(settings)
    phases = hopping_spec(settings).phases()

    def process(ctx: Context, records: Sequence[Record]) -> None:
        update_bars(ctx, records, spec, phases)

    return Service(
        name="analytics",
        inputs=[topics.BY_INSTRUMENT.topic()],
        outputs=[topics.BARS.topic(), topics.HOPPING_BARS.topic()],
        stores=[
            StoreSpec(WINDOWS, MsgpackCodec(WindowState)),
            StoreSpec(TRADES, MsgpackCodec(TradeSlot)),
            StoreSpec(MEMBERS, MsgpackCodec(tuple[str, ...])),
            StoreSpec("clock", MsgpackCodec(dt.datetime)),
            StoreSpec(HOP_WINDOWS, MsgpackCodec(WindowState)),
            StoreSpec(HOP_TRADES, MsgpackCodec(TradeSlot)),
            StoreSpec(HOP_MEMBERS, MsgpackCodec(tuple[str, ...])),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()  # the default windows; `tradeflux run analytics` builds from Settings
SPEC = window_spec(Settings())
HOPPING = hopping_spec(Settings())
PHASES = HOPPING.phases()
