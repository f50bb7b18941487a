"""Positions: ``trades.enriched`` → ``positions``, per account and instrument.

State: per position, its book of effective trades (latest version per trade id), so an
AMEND or CANCEL re-folds the position as if the trade had been booked right first time.
Positions go to the partition of their account (the input partition), so that the P&L
service finds all of an account's positions in one partition.
"""

from __future__ import annotations

from collections.abc import Sequence

from tradeflux.domain.positions import PositionBook
from tradeflux.domain.schemas import EnrichedTrade, Position, position_key
from tradeflux.stream.codecs import JsonCodec, MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec, Topic


def apply_trades(ctx: Context, records: Sequence[Record]) -> None:
    """Apply each enriched trade event to its position's book and emit the position."""
    books = ctx.store("books")
    changed: dict[str, Position] = {}
    for record in records:
        trade: EnrichedTrade = record.value
        key = position_key(trade.account, trade.instrument)
        book = books.get(key) or PositionBook.empty(trade)
        book, position = book.apply(trade)
        books.put(key, book)
        changed[key] = position
    for key, position in changed.items():
        ctx.emit("positions", key, position, partition=ctx.partition)


SERVICE = Service(
    name="positions",
    inputs=[Topic("trades.enriched", JsonCodec(EnrichedTrade))],
    outputs=[Topic("positions", JsonCodec(Position))],
    stores=[StoreSpec("books", MsgpackCodec(PositionBook))],
    process=apply_trades,
    dead_letter_topic="trades.rejected",
)
