"""Risk: ``trades.enriched`` + limits, accounts, FX (global tables) → ``risk.alerts``.

State, in the partition of the account (the input's key): the exposure of each trade
(``account|instrument|trade_id``, cancels kept as tombstones holding their version) and
per account the sums per instrument and the limits it is over. Every event that changes
an account's exposure checks it against the account's limits on ``refdata.limits``, in
its base currency (``refdata.accounts``, else the trade's) at the FX rates of the moment.

A change on ``refdata.limits`` is re-evaluated at once: a wall-clock timer (every
``risk_limits_check_ms``, default 200 ms) compares, in each partition, every account's
limits of its last check with the table's, and re-checks those that differ
(domain.risk.apply_limits), in the batch's transaction. The comparison is against the
stored state, so a crash or a restart re-evaluates exactly what was not yet committed.
The timer runs per account: one account whose check fails is isolated from the others.
An FX change takes effect at the account's next event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.risk import AccountRisk, TradeExposure, apply_limits, apply_trade, trade_key
from tradeflux.domain.schemas import Account, EnrichedTrade
from tradeflux.services.refdata_tables import checked_table
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Punctuator, Service, StoreSpec


def check_trades(ctx: Context, records: Sequence[Record]) -> None:
    """Apply each enriched trade event to its account's exposure; emit the alerts it causes."""
    trades = ctx.store("trades")
    accounts = ctx.store("accounts")
    limits = ctx.table("limits")
    account_table = ctx.table("accounts")
    fx = ctx.table("fx")
    for record in records:
        event: EnrichedTrade = record.value
        key = trade_key(event)
        account = accounts.get(event.account) or AccountRisk(account=event.account)
        refdata: Account | None = account_table.get(event.account)
        base_currency = refdata.base_currency if refdata is not None else event.base_currency
        step = apply_trade(
            account, trades.get(key), event, limits.get(event.account), base_currency, fx
        )
        if step.trade is None:
            ctx.count("risk_ignored_version")
            continue
        trades.put(key, step.trade)
        accounts.put(event.account, step.account)
        for alert in step.alerts:
            ctx.emit(topics.ALERTS.name, alert.account, alert, cause=record)
            ctx.count(f"risk_{alert.status.lower()}")


def _accounts(ctx: Context) -> Iterable[str]:
    return [k for k, _ in ctx.store("accounts").items()]


def check_changed_limits(ctx: Context, now_ms: int, account_id: str) -> None:
    """Re-check an account of the partition if its limits changed since its last check."""
    accounts = ctx.store("accounts")
    account: AccountRisk | None = accounts.get(account_id)
    current = ctx.table("limits").get(account_id)
    if account is None or current is None or current == account.limits:
        return
    refdata: Account | None = ctx.table("accounts").get(account_id)
    base = _base_currency(refdata, account)
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    checked, alerts = apply_limits(account, current, base, ctx.table("fx"), now)
    accounts.put(account_id, checked)
    for alert in alerts:
        ctx.emit(topics.ALERTS.name, alert.account, alert)
        ctx.count(f"risk_{alert.status.lower()}")
    ctx.count("risk_limits_reevaluated")


def _base_currency(refdata: Account | None, account: AccountRisk) -> str:
    """Return the account's base currency: refdata's, else the one of its last trade event."""
    if refdata is not None:
        return refdata.base_currency
    return account.base_currency


def build(settings: Settings | None = None) -> Service:
    """Return the risk service; limits changes are looked for every ``risk_limits_check_ms``."""
    settings = settings or Settings()
    return Service(
        name="risk",
        inputs=[topics.ENRICHED.topic()],
        outputs=[topics.ALERTS.topic()],
        stores=[
            StoreSpec("trades", MsgpackCodec(TradeExposure)),
            StoreSpec("accounts", MsgpackCodec(AccountRisk)),
        ],
        global_tables=[
            checked_table(topics.LIMITS, "limits"),
            checked_table(topics.ACCOUNTS, "accounts"),
            checked_table(topics.FX, "fx"),
        ],
        punctuators=[
            Punctuator(settings.risk_limits_check_ms, check_changed_limits, "wall", keys=_accounts)
        ],
        process=check_trades,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()
LIMITS_CHECK_MS = SERVICE.punctuators[0].every_ms
