"""Sessions: ``trades.enriched`` → ``analytics.sessions``, activity bursts per account.

The input is keyed by account, so an account's trades and sessions live in its partition
(the same partitions positions reads). Sessions are runs of an account's effective trades
separated by more than ``session_gap_seconds`` (default 30) of trade time; a session
closes ``session_grace_seconds`` (default 5) after it can no longer grow,
in stream time (the largest ``trade_time`` of the partition, kept in the ``clock`` store),
and sends its final revision. Late events are counted (``late``) and not applied. Rules:
docs/domain-rules.md, "Analytics (sessions)"; the pure code is domain/sessions.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.config import Settings, load_settings
from tradeflux.domain.sessions import (
    AccountSessions,
    Member,
    Outcome,
    SessionBatch,
    SessionSpec,
    SessionTrade,
)
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

SESSIONS = topics.SESSIONS.name
STREAM_TIME = "stream_time"  # the one key of the clock store


def session_spec(settings: Settings) -> SessionSpec:
    """Return the sessions of ``settings`` (``session_gap_seconds``, ``session_grace_seconds``)."""
    return SessionSpec(
        gap=dt.timedelta(seconds=settings.session_gap_seconds),
        grace=dt.timedelta(seconds=settings.session_grace_seconds),
    )


def session_spec_from_env() -> SessionSpec:
    """Return the sessions set by ``TRADEFLUX_SESSION_GAP_SECONDS`` and ``..._GRACE_SECONDS``."""
    return session_spec(load_settings())


def update_sessions(ctx: Context, records: Sequence[Record], spec: SessionSpec) -> None:
    """Apply each trade event to its account's sessions; close those stream time has passed."""
    accounts = ctx.store("sessions")
    clock = ctx.store("clock")
    held = clock.get(STREAM_TIME)
    batch = SessionBatch(spec, held, accounts, ctx.store("trades"), ctx.store("buckets"))
    for record in records:
        outcome = batch.apply(record.value)
        if outcome is Outcome.LATE:
            ctx.count("late")
        elif outcome is Outcome.STALE:
            ctx.count("ignored_version")
    result = batch.finish([key for key, _ in accounts.items()])
    for key, session in result.emitted:
        ctx.emit(SESSIONS, key, session)
    if result.stream_time is not None and result.stream_time != held:
        clock.put(STREAM_TIME, result.stream_time)
    if result.closed:
        ctx.count("sessions_closed", result.closed)


def build(settings: Settings | None = None) -> Service:
    """Return the sessions service with the gap and grace of ``settings``."""
    spec = session_spec(settings or Settings())

    def process(ctx: Context, records: Sequence[Record]) -> None:
        update_sessions(ctx, records, spec)

    return Service(
        name="sessions",
        inputs=[topics.ENRICHED.topic()],
        outputs=[topics.SESSIONS.topic()],
        stores=[
            StoreSpec("sessions", MsgpackCodec(AccountSessions)),
            StoreSpec("trades", MsgpackCodec(SessionTrade)),
            StoreSpec("buckets", MsgpackCodec(tuple[Member, ...])),
            StoreSpec("clock", MsgpackCodec(dt.datetime)),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()  # the defaults; `tradeflux run sessions` builds from Settings
SPEC = session_spec(Settings())
