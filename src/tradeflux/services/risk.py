"""Risk: ``trades.enriched`` + limits, accounts, FX (global tables) → ``risk.alerts``.

State, in the partition of the account (the input's key): the exposure of each trade
(``account|instrument|trade_id``, cancels kept as tombstones holding their version) and
per account the sums per instrument and the limits it is over. Every event that changes
an account's exposure checks it against the account's limits on ``refdata.limits``, in
its base currency (``refdata.accounts``, else the trade's) at the FX rates of the moment;
a limit or FX change takes effect at the account's next trade event.
"""

from __future__ import annotations

from collections.abc import Sequence

from tradeflux import topics
from tradeflux.domain.risk import AccountRisk, TradeExposure, apply_trade, trade_key
from tradeflux.domain.schemas import Account, EnrichedTrade
from tradeflux.services.refdata_tables import checked_table
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec


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
            ctx.emit(topics.ALERTS.name, alert.account, alert)
            ctx.count(f"risk_{alert.status.lower()}")


SERVICE = Service(
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
    process=check_trades,
    dead_letter_topic=topics.REJECTED.name,
)
