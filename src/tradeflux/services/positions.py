"""Positions: ``trades.enriched`` → ``positions``, per account and instrument.

State (domain/positions.py): per position its book (a checkpoint of the fold, the last
few fills, recent trade ids) in ``books``; per trade its latest version in ``fills``
(key ``account|instrument|trade_id``); sealed chunks of each position's trade ids in
``index`` (key ``account|instrument#n``). An AMEND or CANCEL re-folds the position as if
the trade had been booked right first time. Each value stays small whatever the number
of trades, so a batch changelogs what it changed, not every position's history.
Positions go to the partition of their account (the input partition), so that the P&L
service finds all of an account's positions in one partition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tradeflux.domain.positions import (
    ChunkLookup,
    Fill,
    FillLookup,
    PositionBook,
    TailCache,
    apply_event,
)
from tradeflux.domain.schemas import EnrichedTrade, Position, position_key
from tradeflux.stream.codecs import JsonCodec, MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.topology import Service, StoreSpec, Topic

# Derived, per process: each book's tail fills and the states after them. An entry is
# only used with the book object it was made for (see TailCache), so aborts, restores
# and rebalances fall back to reading the fills store.
_TAIL_CACHE = TailCache()


def _lookups(
    fills: StorePartition, index: StorePartition, key: str
) -> tuple[FillLookup, ChunkLookup]:
    """Return readers of a position's fills and index chunks in the stores."""
    prefix = key + "|"

    def fill_of(trade_id: str) -> Fill | None:
        fill: Fill | None = fills.get(prefix + trade_id)
        return fill

    def chunk_of(n: int) -> tuple[str, ...]:
        chunk: tuple[str, ...] = index.get(f"{key}#{n}")
        return chunk

    return fill_of, chunk_of


def _fold_order(record: Record) -> tuple[dt.datetime, str]:
    trade: EnrichedTrade = record.value
    return (trade.trade_time, trade.trade_id)


def apply_trades(ctx: Context, records: Sequence[Record]) -> None:
    """Apply each enriched trade event to its position's book and emit the position.

    The batch is applied in fold order (trade time, trade id), not offset order: a busy
    position gets its trades from the validator's partitions one after another, far out
    of trade-time order, and in fold order almost every NEW folds on incrementally. The
    result is the same in any order (latest version per trade wins; see
    domain/positions.py), and only the batch's last position per key is emitted.
    """
    books = ctx.store("books")
    fills = ctx.store("fills")
    index = ctx.store("index")
    changed: dict[str, Position] = {}
    for record in sorted(records, key=_fold_order):
        trade: EnrichedTrade = record.value
        key = position_key(trade.account, trade.instrument)
        book = books.get(key) or PositionBook.empty(trade)
        change = apply_event(book, trade, *_lookups(fills, index, key), _TAIL_CACHE)
        ctx.count(f"fold_{change.path}")  # how often each path runs: a metric
        if change.fill is not None:
            books.put(key, change.book)
            fills.put(f"{key}|{change.fill.trade_id}", change.fill)
        if change.sealed is not None:
            index.put(f"{key}#{change.sealed[0]}", change.sealed[1])
        changed[key] = change.position
    for key, position in changed.items():
        ctx.emit("positions", key, position, partition=ctx.partition)


SERVICE = Service(
    name="positions",
    inputs=[Topic("trades.enriched", JsonCodec(EnrichedTrade))],
    outputs=[Topic("positions", JsonCodec(Position))],
    stores=[
        StoreSpec("books", MsgpackCodec(PositionBook)),
        StoreSpec("fills", MsgpackCodec(Fill)),
        StoreSpec("index", MsgpackCodec(tuple[str, ...])),
    ],
    process=apply_trades,
    dead_letter_topic="trades.rejected",
)
