"""P&L: ``positions`` + prices + FX (global tables) → ``pnl`` per account, on change.

State: the last position of each ``account|instrument``, each account's instruments and
the last P&L emitted per account (changelogged); when each account's P&L last went out
and when a held-back one may go (``sent``, ``held``: derived, not changelogged).

An account's P&L goes out as soon as one of its positions changes, at most once per
``pnl_throttle_ms`` (default 100 ms): a change inside that interval is held and sent by
a timer when the interval is over, or when the instance stops gracefully, so the last
value always goes out. Every ``pnl_remark_ms`` (default 1 s) every account is re-marked
at the latest prices and FX, and sent if its P&L changed (prices move without any
trade). Nothing is sent when the P&L did not change. Each timer runs per account: one
account whose marks fail is isolated from the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.pnl import account_pnl
from tradeflux.domain.schemas import Account, AccountPnL, Position
from tradeflux.services.refdata_tables import checked_table
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Punctuator, Service, StoreSpec


def _emit_pnl(ctx: Context, account_id: str, cause: Record | None = None) -> None:
    """Recompute one account's P&L from its positions and marks; emit it if it changed."""
    account: Account | None = ctx.table("accounts").get(account_id)
    if account is None:
        return
    positions = ctx.store("positions")
    instruments = ctx.store("accounts").get(account_id, ())
    held = [positions.get(f"{account_id}|{i}") for i in instruments]
    pnl = account_pnl(
        account_id,
        account.base_currency,
        [p for p in held if p is not None],
        ctx.table("prices"),
        ctx.table("fx"),
    )
    emitted = ctx.store("emitted")
    if emitted.get(account_id) != pnl:
        emitted.put(account_id, pnl)
        ctx.emit(topics.PNL.name, account_id, pnl, partition=ctx.partition, cause=cause)


def build(settings: Settings | None = None) -> Service:
    """Return the P&L service with the throttle and re-mark intervals of ``settings``."""
    settings = settings or Settings()
    throttle_ms = settings.pnl_throttle_ms

    def record_positions(ctx: Context, records: Sequence[Record]) -> None:
        """Keep the latest positions; send each changed account's P&L (rate-capped)."""
        positions = ctx.store("positions")
        accounts = ctx.store("accounts")
        changed: dict[str, Record] = {}
        for record in records:
            position: Position = record.value
            positions.put(record.key or "", position)
            held = accounts.get(position.account, ())
            if position.instrument not in held:
                accounts.put(position.account, tuple(sorted((*held, position.instrument))))
            changed[position.account] = record
        now = ctx.wall_time_ms
        sent = ctx.store("sent")
        waiting = ctx.store("held")
        for account_id, cause in changed.items():
            last = sent.get(account_id)
            if last is None or now - last >= throttle_ms:
                _emit_pnl(ctx, account_id, cause)
                sent.put(account_id, now)
                if account_id in waiting:
                    waiting.delete(account_id)
            elif account_id not in waiting:
                waiting.put(account_id, last + throttle_ms)

    def held_accounts(ctx: Context) -> Iterable[str]:
        return [k for k, _ in ctx.store("held").items()]

    def send_held(ctx: Context, now_ms: int, account_id: str) -> None:
        """Send a held-back P&L once its account's interval is over."""
        waiting = ctx.store("held")
        due = waiting.get(account_id)
        if due is None or now_ms < due:
            return
        waiting.delete(account_id)
        _emit_pnl(ctx, account_id)
        ctx.store("sent").put(account_id, now_ms)

    def send_all_held(ctx: Context, now_ms: int) -> None:
        """On a graceful stop, send every held-back P&L now: it would leave with us."""
        waiting = ctx.store("held")
        for account_id in [k for k, _ in waiting.items()]:
            waiting.delete(account_id)
            _emit_pnl(ctx, account_id)

    def all_accounts(ctx: Context) -> Iterable[str]:
        return [k for k, _ in ctx.store("accounts").items()]

    def remark(ctx: Context, now_ms: int, account_id: str) -> None:
        """Re-mark an account at the latest prices and FX."""
        _emit_pnl(ctx, account_id)

    return Service(
        name="pnl",
        inputs=[topics.POSITIONS.topic()],
        outputs=[topics.PNL.topic()],
        stores=[
            StoreSpec("positions", MsgpackCodec(Position)),
            StoreSpec("accounts", MsgpackCodec(tuple[str, ...])),
            StoreSpec("emitted", MsgpackCodec(AccountPnL)),
            StoreSpec("sent", MsgpackCodec(int), logged=False),
            StoreSpec("held", MsgpackCodec(int), logged=False),
        ],
        global_tables=[
            checked_table(topics.ACCOUNTS, "accounts"),
            checked_table(topics.PRICES, "prices"),
            checked_table(topics.FX, "fx"),
        ],
        punctuators=[
            Punctuator(max(10, throttle_ms), send_held, "wall", keys=held_accounts),
            Punctuator(settings.pnl_remark_ms, remark, "wall", keys=all_accounts),
        ],
        process=record_positions,
        dead_letter_topic=topics.REJECTED.name,
        on_stop=send_all_held,
    )


SERVICE = build()
THROTTLE_MS = SERVICE.punctuators[0].every_ms
