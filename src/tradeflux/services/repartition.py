"""Repartition: ``trades.enriched`` (by account) re-keyed by instrument and by counterparty.

Analytics keeps its windows per instrument and settlement its obligations per
counterparty, but ``trades.enriched`` is partitioned by account. This service re-keys
every enriched event, bytes unchanged, to ``trades.by_instrument`` and
``trades.by_counterparty``, as Kafka Streams does with an internal repartition topic,
exactly-once like every service.

A trade's events must not change key on an output topic, or they would land in
another partition than the events they amend. The validator already turns an AMEND
that moves account or instrument into a CANCEL and a NEW. The counterparty is a key
only here, so here an AMEND that changes it becomes, on ``trades.by_counterparty``
only, a CANCEL of the previous state under the old counterparty and a NEW under the
new one (both with the amend's version, as the validator does for its moves). State:
the last event of every live trade (``account|trade_id``, in the account's partition).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tradeflux import topics
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.stream.codecs import JsonCodec, MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

BY_INSTRUMENT = topics.BY_INSTRUMENT.name
BY_COUNTERPARTY = topics.BY_COUNTERPARTY.name

_CODEC: JsonCodec[EnrichedTrade] = JsonCodec(EnrichedTrade)


def counterparty_events(
    previous: EnrichedTrade | None, event: EnrichedTrade
) -> list[EnrichedTrade] | None:
    """Return the events for ``trades.by_counterparty``, or None to pass ``event`` as is.

    An AMEND whose counterparty differs from the previous state's becomes the CANCEL of
    that state (with the amend's version, source and ingest time) and the NEW of the
    amended trade.
    """
    if event.event_type != "AMEND" or previous is None:
        return None
    if previous.counterparty == event.counterparty:
        return None
    cancel = msgspec.structs.replace(
        previous,
        event_type="CANCEL",
        version=event.version,
        source=event.source,
        ingest_time=event.ingest_time,
    )
    return [cancel, msgspec.structs.replace(event, event_type="NEW")]


def rekey(ctx: Context, records: Sequence[Record]) -> None:
    """Send each event to both topics; split counterparty moves on the counterparty topic."""
    live = ctx.store("live")
    for record in records:
        event: EnrichedTrade = record.value
        key = f"{event.account}|{event.trade_id}"
        ctx.emit(BY_INSTRUMENT, event.instrument, record.raw, headers=record.headers)
        split = counterparty_events(live.get(key), event)
        if split is None:
            ctx.emit(BY_COUNTERPARTY, event.counterparty, record.raw, headers=record.headers)
        else:
            for part in split:
                ctx.emit(
                    BY_COUNTERPARTY, part.counterparty, _CODEC.encode(part), headers=record.headers
                )
            ctx.count("counterparty_moves")
        if event.event_type == "CANCEL":
            live.delete(key)
        else:
            live.put(key, event)


SERVICE = Service(
    name="repartition",
    inputs=[topics.ENRICHED.topic()],
    outputs=[topics.BY_INSTRUMENT.raw(), topics.BY_COUNTERPARTY.raw()],  # bytes re-keyed as is
    stores=[StoreSpec("live", MsgpackCodec(EnrichedTrade))],
    process=rekey,
    dead_letter_topic=topics.REJECTED.name,
)
