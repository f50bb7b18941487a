"""Settlement: ``trades.by_counterparty`` → ``settlement.obligations``, netted.

The input is ``trades.enriched`` re-keyed by counterparty (services/repartition.py), so
every obligation of a counterparty lives in one partition. State there: each trade's
last contribution (``cpty|account|instrument|trade_id``, cancels kept as tombstones
holding their version) and each obligation's running sums (``cpty|CCY|date``). Every
obligation a batch changed is emitted once, with its last value; one left without
effective trades is a tombstone on the compacted topic. Rules: docs/domain-rules.md,
"Settlement (netting)".
"""

from __future__ import annotations

from collections.abc import Sequence

from tradeflux import topics
from tradeflux.domain.netting import ObligationState, SettlementLeg, leg_key, net_trade
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

OBLIGATIONS = topics.OBLIGATIONS.name


def net_trades(ctx: Context, records: Sequence[Record]) -> None:
    """Net each enriched trade event into its obligations; emit each changed obligation once."""
    legs = ctx.store("legs")
    obligations = ctx.store("obligations")
    changed: dict[str, ObligationState | None] = {}
    for record in records:
        event: EnrichedTrade = record.value
        key = leg_key(event)
        step = net_trade(legs.get(key), event, obligations.get)
        if step.leg is None:
            ctx.count("settlement_ignored_version")
            continue
        legs.put(key, step.leg)
        for ob_key, state in step.obligations.items():
            if state is None:
                obligations.delete(ob_key)
            else:
                obligations.put(ob_key, state)
            changed[ob_key] = state
    for ob_key, state in changed.items():
        ctx.emit(OBLIGATIONS, ob_key, None if state is None else state.obligation())


SERVICE = Service(
    name="settlement",
    inputs=[topics.BY_COUNTERPARTY.topic()],
    outputs=[topics.OBLIGATIONS.topic()],
    stores=[
        StoreSpec("legs", MsgpackCodec(SettlementLeg)),
        StoreSpec("obligations", MsgpackCodec(ObligationState)),
    ],
    process=net_trades,
    dead_letter_topic=topics.REJECTED.name,
)
