"""Jobs the runtime tests and benchmarks run as real processes (``tradeflux run``)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tradeflux.stream.codecs import JsonCodec, MsgpackCodec, RawCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import GlobalTableSpec, Service, StoreSpec, Topic


class Number(msgspec.Struct, frozen=True):
    """An input of the running sum: a keyed amount with a per-key sequence number."""

    key: str
    seq: int
    amount: int
    poison: bool = False


class Sum(msgspec.Struct, frozen=True):
    """An output of the running sum: the state after applying input ``seq``."""

    key: str
    seq: int
    count: int
    total: int


class PoisonError(ValueError):
    """Raised for records flagged as poison, to exercise dead letters."""


def add_numbers(ctx: Context, records: Sequence[Record]) -> None:
    """Add each amount to its key's running (count, total) and emit the new sum."""
    sums = ctx.store("sums")
    for record in records:
        number: Number = record.value
        if number.poison:
            raise PoisonError(f"poison record seq={number.seq}")
        count, total = sums.get(number.key, (0, 0))
        count, total = count + 1, total + number.amount
        sums.put(number.key, (count, total))
        ctx.emit("sums", number.key, Sum(number.key, number.seq, count, total))


RUNNING_SUM = Service(
    name="running-sum",
    inputs=[Topic("numbers", JsonCodec(Number))],
    outputs=[Topic("sums", JsonCodec(Sum))],
    stores=[StoreSpec("sums", MsgpackCodec(tuple[int, int]))],
    process=add_numbers,
    dead_letter_topic="numbers.dlq",
)


def hold_sums(ctx: Context, records: Sequence[Record]) -> None:
    """Add each amount to its key's (count, total), and hold it back: nothing is emitted."""
    held = ctx.store("held")
    for record in records:
        number: Number = record.value
        count, total = held.get(number.key, (0, 0))
        held.put(number.key, (count + 1, total + number.amount))


def send_held_sums(ctx: Context, now_ms: int) -> None:
    """Emit every held sum (a graceful stop): the only way the held sums go out."""
    held = ctx.store("held")
    for key, (count, total) in list(held.items()):
        held.delete(key)
        ctx.emit("sums", key, Sum(key, -1, count, total))


HELD_SUM = Service(
    name="held-sum",
    inputs=[Topic("numbers", JsonCodec(Number))],
    outputs=[Topic("sums", JsonCodec(Sum))],
    stores=[StoreSpec("held", MsgpackCodec(tuple[int, int]), logged=False)],
    process=hold_sums,
    on_stop=send_held_sums,
)
"""Sums held back until the instance stops gracefully (its ``on_stop``): tests the last batch."""


def pass_through(ctx: Context, records: Sequence[Record]) -> None:
    """Copy every record to the output unchanged."""
    for record in records:
        ctx.emit("copies", record.key, record.value)


PASSTHROUGH = Service(
    name="passthrough",
    inputs=[Topic("numbers", RawCodec())],
    outputs=[Topic("copies", RawCodec())],
    process=pass_through,
)


def convert_amounts(ctx: Context, records: Sequence[Record]) -> None:
    """Convert each amount with the rate of its key from the global table ``rates``."""
    rates = ctx.table("rates")
    for record in records:
        number: Number = record.value
        rate = rates.get(number.key)
        if rate is None:
            ctx.reject(record, "NO_RATE", f"no rate for {number.key}")
            continue
        ctx.emit("converted", number.key, {"seq": number.seq, "value": number.amount * rate})


CONVERTER = Service(
    name="converter",
    inputs=[Topic("numbers", JsonCodec(Number))],
    outputs=[Topic("converted")],
    global_tables=[GlobalTableSpec("rates", "rates", JsonCodec(int))],
    process=convert_amounts,
    dead_letter_topic="numbers.dlq",
)
