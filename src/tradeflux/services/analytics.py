"""Analytics: ``trades.by_instrument`` → ``analytics.bars`` and ``analytics.hopping_bars``.

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

Hopping windows (``TRADEFLUX_HOP_SECONDS`` long, default 60, one every
``TRADEFLUX_HOP_ADVANCE_SECONDS``, default 15, the same grace) go the same way to
``analytics.hopping_bars``, from stores of their own (``hop_windows``, ``hop_slots``): they
are ``size / advance`` tumbling series side by side (domain/windows.py, HoppingSpec).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence

from tradeflux import topics
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


def hopping_spec_from_env(grace: dt.timedelta) -> HoppingSpec:
    """Return the hopping windows set by ``TRADEFLUX_HOP_SECONDS`` and ``..._ADVANCE_SECONDS``."""
    size = _seconds("TRADEFLUX_HOP_SECONDS", 60, 1)
    advance = _seconds("TRADEFLUX_HOP_ADVANCE_SECONDS", 15, 1)
    if size < advance or size % advance:
        raise ConfigError(
            f"TRADEFLUX_HOP_SECONDS={size} must be a whole multiple of "
            f"TRADEFLUX_HOP_ADVANCE_SECONDS={advance}"
        )
    return HoppingSpec(dt.timedelta(seconds=size), dt.timedelta(seconds=advance), grace)


SPEC = window_spec_from_env()
HOPPING = hopping_spec_from_env(SPEC.grace)
PHASES = HOPPING.phases()
logging.getLogger("tradeflux.services.analytics").info(
    "setting bar_seconds=%d bar_grace_seconds=%d hop_seconds=%d hop_advance_seconds=%d",
    SPEC.size // dt.timedelta(seconds=1),
    SPEC.grace // dt.timedelta(seconds=1),
    HOPPING.size // dt.timedelta(seconds=1),
    HOPPING.advance // dt.timedelta(seconds=1),
)


def update_bars(ctx: Context, records: Sequence[Record]) -> None:
    """Apply each trade event to its windows; close the windows stream time has passed."""
    windows = ctx.store("windows")
    slots = ctx.store("slots")
    hop_windows = ctx.store("hop_windows")
    hop_slots = ctx.store("hop_slots")
    clock = ctx.store("clock")
    held = clock.get(STREAM_TIME)
    batch = WindowBatch(SPEC, held, windows, slots)
    hops = [
        WindowBatch(phase, held, hop_windows, hop_slots, slot_prefix=f"{j}|")
        for j, phase in enumerate(PHASES)
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
    _write(windows, slots, result.windows, result.slots)
    if result.stream_time is not None and result.stream_time != held:
        clock.put(STREAM_TIME, result.stream_time)
    for key, bar in result.bars:
        ctx.emit(BARS, key, bar)
    if result.closed:
        ctx.count("windows_closed", result.closed)
    for hop in hops:
        hop_result = hop.finish(list(hop_windows.items()))
        _write(hop_windows, hop_slots, hop_result.windows, hop_result.slots)
        for key, bar in hop_result.bars:
            ctx.emit(HOPPING_BARS, key, bar)
        if hop_result.closed:
            ctx.count("hopping_windows_closed", hop_result.closed)


def _write(
    windows: StorePartition,
    slots: StorePartition,
    changed_windows: Mapping[str, WindowState | None],
    changed_slots: Mapping[str, TradeSlot | None],
) -> None:
    for key, window in changed_windows.items():
        if window is None:
            windows.delete(key)
        else:
            windows.put(key, window)
    for key, slot in changed_slots.items():
        if slot is None:
            slots.delete(key)
        else:
            slots.put(key, slot)


SERVICE = Service(
    name="analytics",
    inputs=[topics.BY_INSTRUMENT.topic()],
    outputs=[topics.BARS.topic(), topics.HOPPING_BARS.topic()],
    stores=[
        StoreSpec("windows", MsgpackCodec(WindowState)),
        StoreSpec("slots", MsgpackCodec(TradeSlot)),
        StoreSpec("clock", MsgpackCodec(dt.datetime)),
        StoreSpec("hop_windows", MsgpackCodec(WindowState)),
        StoreSpec("hop_slots", MsgpackCodec(TradeSlot)),
    ],
    process=update_bars,
    dead_letter_topic=topics.REJECTED.name,
)
