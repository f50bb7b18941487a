"""Positions: ``trades.enriched`` → ``positions``, per account and instrument.

State (domain/position_book.py): per position its book (a checkpoint of the fold, the last
few fills, recent trade ids) in ``books``; per trade its latest version in ``fills``
(key ``account|instrument|trade_id``); sealed chunks of each position's trade ids in
``index`` (key ``account|instrument#n``); fills and chunks are held as the MessagePack
bytes of their changelog records. An AMEND or CANCEL re-folds the position as if
the trade had been booked right first time. Each value stays small whatever the number
of trades, so a batch changelogs what it changed, not every position's history.
Positions go to the partition of their account (the input partition), so that the P&L
service finds all of an account's positions in one partition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.domain.position_book import (
    ChunkLookup,
    FillLookup,
    PositionBook,
    TailCache,
    apply_event,
)
from tradeflux.domain.positions import Fill, PositionEvent
from tradeflux.domain.schemas import position_key
from tradeflux.stream.codecs import MsgpackCodec, RawCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.topology import Service, StoreSpec

# Derived, per process: each book's tail fills and the states after them. An entry is
# only used with the book object it was made for (see TailCache), so aborts, restores
# and rebalances fall back to reading the fills store.
_TAIL_CACHE = TailCache()

# The fills store holds each fill as its MessagePack bytes, the very bytes of its
# changelog record: one per trade, read back only for an AMEND or CANCEL or a re-fold,
# so a held fill costs ~80 bytes of memory instead of ~500 as objects, and is invisible
# to the garbage collector. A NEW's lookup finds nothing and decodes nothing.
_FILL_CODEC: MsgpackCodec[Fill] = MsgpackCodec(Fill)
# Index chunks likewise: read back by full re-folds only.
_CHUNK_CODEC: MsgpackCodec[tuple[str, ...]] = MsgpackCodec(tuple[str, ...])


def _lookups(
    fills: StorePartition, index: StorePartition, key: str
) -> tuple[FillLookup, ChunkLookup]:
    """Return readers of a position's fills and index chunks in the stores."""
    prefix = key + "|"

    def fill_of(trade_id: str) -> Fill | None:
        raw: bytes | None = fills.get(prefix + trade_id)
        return None if raw is None else _FILL_CODEC.decode(raw)

    def chunk_of(n: int) -> tuple[str, ...]:
        raw: bytes | None = index.get(f"{key}#{n}")
        if raw is None:  # every sealed chunk is stored in the batch that seals it
            raise LookupError(f"no index chunk {n} held for position {key}")
        return _CHUNK_CODEC.decode(raw)

    return fill_of, chunk_of


def _fold_order(record: Record) -> tuple[dt.datetime, str]:
    trade: PositionEvent = record.value
    return (trade.trade_time, trade.trade_id)


def apply_trades(ctx: Context, records: Sequence[Record]) -> None:
    """Apply each enriched trade event to its position's book and emit the position.

    The batch is applied in fold order (trade time, trade id), not offset order: a busy
    position gets its trades from the validator's partitions one after another, far out
    of trade-time order, and in fold order almost every NEW folds on incrementally. The
    result is the same in any order (latest version per trade wins; see
    domain/position_book.py), and only the batch's last position per key is emitted.
    """
    books = ctx.store("books")
    fills = ctx.store("fills")
    index = ctx.store("index")
    changed: dict[str, tuple[PositionBook, Record]] = {}  # with the last record of each
    paths: dict[str, int] = {}  # how often each fold path ran: a metric
    for record in sorted(records, key=_fold_order):
        trade: PositionEvent = record.value
        key = position_key(trade.account, trade.instrument)
        book = books.get(key) or PositionBook.empty(trade)
        change = apply_event(book, trade, *_lookups(fills, index, key), _TAIL_CACHE)
        paths[change.path] = paths.get(change.path, 0) + 1
        if change.fill is not None:
            books.put(key, change.book)
            fills.put(f"{key}|{change.fill.trade_id}", _FILL_CODEC.encode(change.fill))
        if change.sealed is not None:
            index.put(f"{key}#{change.sealed[0]}", _CHUNK_CODEC.encode(change.sealed[1]))
        changed[key] = (change.book, record)
    for path, n in paths.items():
        ctx.count(f"fold_{path}", n)
    for key, (changed_book, last) in changed.items():
        ctx.emit(
            topics.POSITIONS.name, key, changed_book.position, partition=ctx.partition, cause=last
        )


SERVICE = Service(
    name="positions",
    inputs=[topics.ENRICHED.topic(PositionEvent)],  # the fields it reads
    outputs=[topics.POSITIONS.topic()],
    stores=[
        StoreSpec("books", MsgpackCodec(PositionBook)),
        StoreSpec("fills", RawCodec()),  # MessagePack of Fill, encoded by apply_trades
        StoreSpec("index", RawCodec()),  # MessagePack of tuple[str, ...], likewise
    ],
    process=apply_trades,
    dead_letter_topic=topics.REJECTED.name,
)
