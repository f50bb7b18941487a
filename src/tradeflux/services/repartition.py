"""Repartition: ``trades.enriched`` (by account) re-keyed by instrument and by counterparty.

Analytics keeps its windows per instrument and settlement its obligations per
counterparty, but ``trades.enriched`` is partitioned by account. This stateless service
re-keys every enriched event, bytes unchanged, to the two topics, as Kafka Streams does
with an internal repartition topic, exactly-once like every service. Order per trade is
kept: the validator turns an AMEND that changes account, instrument or counterparty into
a CANCEL where the trade was and a NEW where it goes, so a trade's events never change
key on either topic.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tradeflux.stream.codecs import JsonCodec, RawCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, Topic

BY_INSTRUMENT = "trades.by_instrument"
BY_COUNTERPARTY = "trades.by_counterparty"


class TradeKeys(msgspec.Struct, frozen=True):
    """The fields of an ``EnrichedTrade`` that key it; the rest is not decoded."""

    instrument: str
    counterparty: str


def rekey(ctx: Context, records: Sequence[Record]) -> None:
    """Send each event's original bytes to both topics, keyed by instrument and counterparty."""
    for record in records:
        keys: TradeKeys = record.value
        ctx.emit(BY_INSTRUMENT, keys.instrument, record.raw, headers=record.headers)
        ctx.emit(BY_COUNTERPARTY, keys.counterparty, record.raw, headers=record.headers)


SERVICE = Service(
    name="repartition",
    inputs=[Topic("trades.enriched", JsonCodec(TradeKeys))],
    outputs=[Topic(BY_INSTRUMENT, RawCodec()), Topic(BY_COUNTERPARTY, RawCodec())],
    process=rekey,
    dead_letter_topic="trades.rejected",
)
