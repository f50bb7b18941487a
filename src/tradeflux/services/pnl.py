"""P&L: ``positions`` + prices + FX (global tables) → ``pnl`` per account, throttled.

State: the last position of each ``account|instrument`` and the last P&L emitted per
account. A wall-clock timer (every ``PNL_THROTTLE_MS``, default 250 ms) recomputes the
P&L of every account of the partition from its positions and the latest marks, and
emits those that changed: at most one P&L per account per interval, and the last value
always goes out, including when only prices moved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.domain.pnl import account_pnl
from tradeflux.domain.schemas import Account, AccountPnL, Position
from tradeflux.services.refdata_tables import checked_table
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Punctuator, Service, StoreSpec

THROTTLE_MS = int(os.environ.get("TRADEFLUX_PNL_THROTTLE_MS", "250"))


def record_positions(ctx: Context, records: Sequence[Record]) -> None:
    """Keep the latest position per account and instrument, and each account's instruments."""
    positions = ctx.store("positions")
    accounts = ctx.store("accounts")
    for record in records:
        position: Position = record.value
        positions.put(record.key or "", position)
        held = accounts.get(position.account, ())
        if position.instrument not in held:
            accounts.put(position.account, tuple(sorted((*held, position.instrument))))


def emit_changed_pnl(ctx: Context, now_ms: int) -> None:
    """Recompute every account's P&L from its positions and marks; emit those that changed."""
    positions = ctx.store("positions")
    emitted = ctx.store("emitted")
    account_table = ctx.table("accounts")
    prices = ctx.table("prices")
    fx = ctx.table("fx")
    for account_id, instruments in ctx.store("accounts").items():
        account: Account | None = account_table.get(account_id)
        if account is None:
            continue
        held = [positions.get(f"{account_id}|{i}") for i in instruments]
        pnl = account_pnl(
            account_id, account.base_currency, [p for p in held if p is not None], prices, fx
        )
        if emitted.get(account_id) != pnl:
            emitted.put(account_id, pnl)
            ctx.emit(topics.PNL.name, account_id, pnl, partition=ctx.partition)


SERVICE = Service(
    name="pnl",
    inputs=[topics.POSITIONS.topic()],
    outputs=[topics.PNL.topic()],
    stores=[
        StoreSpec("positions", MsgpackCodec(Position)),
        StoreSpec("accounts", MsgpackCodec(tuple[str, ...])),
        StoreSpec("emitted", MsgpackCodec(AccountPnL)),
    ],
    global_tables=[
        checked_table(topics.ACCOUNTS, "accounts"),
        checked_table(topics.PRICES, "prices"),
        checked_table(topics.FX, "fx"),
    ],
    punctuators=[Punctuator(THROTTLE_MS, emit_changed_pnl, "wall")],
    process=record_positions,
    dead_letter_topic=topics.REJECTED.name,
)
