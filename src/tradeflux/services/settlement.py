"""Settlement: ``trades.by_counterparty`` → obligations, FINAL statements, sese.023 instructions.

The input is ``trades.enriched`` re-keyed by counterparty (services/repartition.py), so
every obligation of a counterparty lives in one partition, plus clock ticks
(services/ticker_settlement.py). State there: each trade's last contribution
(``cpty|account|instrument|trade_id``, cancels kept as tombstones holding their version),
each obligation's running sums (``cpty|CCY|date``), one mark per currency and settlement
date (its cut-off and expiry), a statement counter per FINAL obligation, and stream time.

Per record, in offset order: stream time moves up to its recorded time (a trade's
``ingest_time``, a tick's time); a cut-off it reaches issues the date's FINAL statements
and instructions; an expiry drops the date's state. Then a trade event is netted: a
change to an obligation of a FINAL date also issues an ADJUSTMENT statement; an event of
an expired date is a dead letter (``SETTLEMENT_DATE_EXPIRED``). Every obligation a batch
changed is emitted once on the compacted topic with its last value (a tombstone when it
has no effective trade left or was dropped). Rules: docs/domain-rules.md, "Settlement
(netting)" and "Settlement cut-off".

Settings (``tradeflux.config``, printed at start): ``settlement_cutoffs``
(``CCY=MIC@HH:MM,...`` over the defaults of domain/cutoffs.py) and
``settlement_retention_days`` (default 7).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.config import Settings, load_settings
from tradeflux.domain.clock import Tick, time_of_ms
from tradeflux.domain.cutoffs import CutoffCalendar, parse_cutoffs
from tradeflux.domain.finality import DateMark, Outcome, SettlementBook
from tradeflux.domain.netting import ObligationState, SettlementLeg
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.errors import ConfigError
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

OBLIGATIONS = topics.OBLIGATIONS.name
STATEMENTS = topics.STATEMENTS.name
INSTRUCTIONS = topics.INSTRUCTIONS.name
STREAM_TIME = "stream_time"  # the one key of the clock store
EXPIRED_REASON = "SETTLEMENT_DATE_EXPIRED"

_TOPIC_OF = {"statement": STATEMENTS, "instruction": INSTRUCTIONS}
log = logging.getLogger("tradeflux.services.settlement")


def calendar(settings: Settings) -> CutoffCalendar:
    """Return the cut-offs and retention of ``settings`` (see the module doc)."""
    try:
        cutoffs = parse_cutoffs(settings.settlement_cutoffs)
    except ValueError as exc:
        raise ConfigError(f"settlement_cutoffs: {exc}") from None
    return CutoffCalendar(cutoffs, retention_days=settings.settlement_retention_days)


def calendar_from_env() -> CutoffCalendar:
    """Return the cut-offs and retention set by the environment (``TRADEFLUX_SETTLEMENT_*``)."""
    return calendar(load_settings())


def net_trades(ctx: Context, records: Sequence[Record], cal: CutoffCalendar) -> None:
    """Net each event after moving stream time; emit statements, instructions, obligations."""
    clock = ctx.store("clock")
    held_time = clock.get(STREAM_TIME)
    book = SettlementBook(
        cal,
        legs=ctx.store("legs"),
        obligations=ctx.store("obligations"),
        marks=ctx.store("dates"),
        counts=ctx.store("statement_counts"),
        stream_time=held_time,
    )
    for record in records:
        value = record.value
        if isinstance(value, Tick):
            book.advance(value.tick)
            ctx.count("ticks")
            continue
        event: EnrichedTrade = value
        book.advance(event.ingest_time or time_of_ms(record.timestamp_ms))
        outcome = book.apply(event)
        if outcome is Outcome.STALE:
            ctx.count("settlement_ignored_version")
        elif outcome is Outcome.EXPIRED:
            ctx.reject(
                record,
                EXPIRED_REASON,
                f"settlement date {event.settlement_date.isoformat()} of {event.currency} "
                f"was dropped at {cal.expires_at(event.currency, event.settlement_date)}",
            )
    adjustments = 0
    for kind, key, value in book.issued:
        ctx.emit(_TOPIC_OF[kind], key, value)
        adjustments += kind == "statement" and value.kind == "ADJUSTMENT"
    for ob_key, state in book.changed.items():
        ctx.emit(OBLIGATIONS, ob_key, None if state is None else state.obligation())
    if book.stream_time is not None and book.stream_time != held_time:
        clock.put(STREAM_TIME, book.stream_time)
    for event_name, n in (
        ("obligations_final", book.finalised),
        ("obligations_adjusted", adjustments),
        ("settlement_dates_expired", book.expired),
    ):
        if n:
            ctx.count(event_name, n)


def build(settings: Settings | None = None) -> Service:
    """Return the settlement service with the cut-offs and retention of ``settings``."""
    cal = calendar(settings or Settings())

    def process(ctx: Context, records: Sequence[Record]) -> None:
        net_trades(ctx, records, cal)

    return Service(
        name="settlement",
        inputs=[topics.BY_COUNTERPARTY.topic()],
        outputs=[
            topics.OBLIGATIONS.topic(),
            topics.STATEMENTS.topic(),
            topics.INSTRUCTIONS.topic(),
        ],
        stores=[
            StoreSpec("legs", MsgpackCodec(SettlementLeg)),
            StoreSpec("obligations", MsgpackCodec(ObligationState)),
            StoreSpec("dates", MsgpackCodec(DateMark)),
            StoreSpec("statement_counts", MsgpackCodec(int)),
            StoreSpec("clock", MsgpackCodec(dt.datetime)),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()  # the defaults; `tradeflux run settlement` builds from Settings
CALENDAR = calendar(Settings())
