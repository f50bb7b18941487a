"""Reporting: ``trades.enriched`` → ``regulatory.reports``, one report per trade version.

Each accepted NEW, AMEND and CANCEL gives one transaction report (a subset of MiFIR RTS
22's fields, domain/reporting.py), keyed by trade id; an AMEND or CANCEL names the report
it replaces. State, in the account's partition: the last report per ``account|trade_id``
and stream time (the largest ``ingest_time`` seen, in the ``clock`` store), which is each
report's ``reported_at``. A report past its deadline is flagged ``late`` and counted
(``late_reports``). A trade whose legal entity has no LEI is a dead letter
(``NO_ENTITY_LEI``): a report without the executing entity cannot go out. Rules:
docs/domain-rules.md, "Regulatory reports".

Settings (``tradeflux.config``, printed at start): ``report_deadline_seconds`` (default 60)
and ``entity_leis`` (``Legal entity=LEI;...`` over the sample entities' LEIs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from tradeflux import topics
from tradeflux.config import Settings, load_settings
from tradeflux.domain.clock import later, time_of_ms
from tradeflux.domain.reporting import (
    ReportState,
    make_report,
    parse_entity_leis,
    report_key,
)
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.errors import ConfigError
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

REPORTS = topics.REPORTS.name
STREAM_TIME = "stream_time"  # the one key of the clock store
NO_LEI_REASON = "NO_ENTITY_LEI"


def deadline(settings: Settings) -> dt.timedelta:
    """Return the report deadline of ``settings`` (``report_deadline_seconds``)."""
    return dt.timedelta(seconds=settings.report_deadline_seconds)


def entity_leis(settings: Settings) -> Mapping[str, str]:
    """Return the LEI of each legal entity: the samples', overridden by ``entity_leis``."""
    try:
        return parse_entity_leis(settings.entity_leis)
    except ValueError as exc:
        raise ConfigError(f"entity_leis: {exc}") from None


def deadline_from_env() -> dt.timedelta:
    """Return the report deadline set by ``TRADEFLUX_REPORT_DEADLINE_SECONDS``."""
    return deadline(load_settings())


def report_trades(
    ctx: Context, records: Sequence[Record], leis: Mapping[str, str], due: dt.timedelta
) -> None:
    """Issue one report per trade event; flag and count the ones past their deadline."""
    reports = ctx.store("reports")
    clock = ctx.store("clock")
    held = clock.get(STREAM_TIME)
    now = held
    for record in records:
        event: EnrichedTrade = record.value
        now = later(now, event.ingest_time or time_of_ms(record.timestamp_ms))
        lei = leis.get(event.legal_entity)
        if lei is None:
            ctx.reject(
                record,
                NO_LEI_REASON,
                f"legal entity {event.legal_entity!r} has no LEI; add it to TRADEFLUX_ENTITY_LEIS",
            )
            continue
        key = report_key(event)
        made = make_report(reports.get(key), event, entity_lei=lei, reported_at=now, deadline=due)
        if made is None:
            ctx.count("reporting_ignored_version")
            continue
        state, report = made
        reports.put(key, state)
        ctx.emit(REPORTS, event.trade_id, report, cause=record)
        if report.late:
            ctx.count("late_reports")
    if now is not None and now != held:
        clock.put(STREAM_TIME, now)


def build(settings: Settings | None = None) -> Service:
    """Return the reporting service with the deadline and LEIs of ``settings``."""
    settings = settings or Settings()
    due, leis = deadline(settings), entity_leis(settings)

    def process(ctx: Context, records: Sequence[Record]) -> None:
        report_trades(ctx, records, leis, due)

    return Service(
        name="reporting",
        inputs=[topics.ENRICHED.topic()],
        outputs=[topics.REPORTS.topic()],
        stores=[
            StoreSpec("reports", MsgpackCodec(ReportState)),
            StoreSpec("clock", MsgpackCodec(dt.datetime)),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()  # the defaults; `tradeflux run reporting` builds from Settings
DEADLINE = deadline(Settings())
ENTITY_LEIS = entity_leis(Settings())
