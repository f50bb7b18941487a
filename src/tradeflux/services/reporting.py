"""Reporting: ``trades.enriched`` → ``regulatory.reports``, one report per trade version.

Each accepted NEW, AMEND and CANCEL gives one transaction report (a subset of MiFIR RTS
22's fields, domain/reporting.py), keyed by trade id; an AMEND or CANCEL names the report
it replaces. State, in the account's partition: the last report per ``account|trade_id``
and stream time (the largest ``ingest_time`` seen, in the ``clock`` store), which is each
report's ``reported_at``. A report past its deadline is flagged ``late`` and counted
(``late_reports``). A trade whose legal entity has no LEI is a dead letter
(``NO_ENTITY_LEI``): a report without the executing entity cannot go out. Rules:
docs/domain-rules.md, "Regulatory reports".

Settings (environment, read at start, logged): ``TRADEFLUX_REPORT_DEADLINE_SECONDS``
(default 60) and ``TRADEFLUX_ENTITY_LEIS`` (``Legal entity=LEI;...`` over the sample
entities' LEIs).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.domain.clock import later, time_of_ms
from tradeflux.domain.reporting import (
    DEFAULT_DEADLINE,
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


def deadline_from_env() -> dt.timedelta:
    """Return the report deadline set by ``TRADEFLUX_REPORT_DEADLINE_SECONDS``."""
    default = str(int(DEFAULT_DEADLINE.total_seconds()))
    raw = os.environ.get("TRADEFLUX_REPORT_DEADLINE_SECONDS", default)
    try:
        seconds = int(raw)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise ConfigError(
            f"TRADEFLUX_REPORT_DEADLINE_SECONDS={raw!r}: give a whole number of seconds, 0 or more"
        )
    return dt.timedelta(seconds=seconds)


DEADLINE = deadline_from_env()
ENTITY_LEIS = parse_entity_leis(os.environ.get("TRADEFLUX_ENTITY_LEIS", ""))
logging.getLogger("tradeflux.services.reporting").info(
    "setting report_deadline_seconds=%d entity_leis=%d",
    DEADLINE // dt.timedelta(seconds=1),
    len(ENTITY_LEIS),
)


def report_trades(ctx: Context, records: Sequence[Record]) -> None:
    """Issue one report per trade event; flag and count the ones past their deadline."""
    reports = ctx.store("reports")
    clock = ctx.store("clock")
    held = clock.get(STREAM_TIME)
    now = held
    for record in records:
        event: EnrichedTrade = record.value
        now = later(now, event.ingest_time or time_of_ms(record.timestamp_ms))
        lei = ENTITY_LEIS.get(event.legal_entity)
        if lei is None:
            ctx.reject(
                record,
                NO_LEI_REASON,
                f"legal entity {event.legal_entity!r} has no LEI; add it to TRADEFLUX_ENTITY_LEIS",
            )
            continue
        key = report_key(event)
        made = make_report(
            reports.get(key), event, entity_lei=lei, reported_at=now, deadline=DEADLINE
        )
        if made is None:
            ctx.count("reporting_ignored_version")
            continue
        state, report = made
        reports.put(key, state)
        ctx.emit(REPORTS, event.trade_id, report)
        if report.late:
            ctx.count("late_reports")
    if now is not None and now != held:
        clock.put(STREAM_TIME, now)


SERVICE = Service(
    name="reporting",
    inputs=[topics.ENRICHED.topic()],
    outputs=[topics.REPORTS.topic()],
    stores=[
        StoreSpec("reports", MsgpackCodec(ReportState)),
        StoreSpec("clock", MsgpackCodec(dt.datetime)),
    ],
    process=report_trades,
    dead_letter_topic=topics.REJECTED.name,
)
