"""Sessions: ``trades.enriched`` → ``analytics.sessions``, activity bursts per account.

The input is keyed by account, so an account's trades and sessions live in its partition
(the same partitions positions reads). Sessions are runs of an account's effective trades
separated by more than ``TRADEFLUX_SESSION_GAP_SECONDS`` (default 30) of trade time; a
session closes ``TRADEFLUX_SESSION_GRACE_SECONDS`` (default 5) after it can no longer grow,
in stream time (the largest ``trade_time`` of the partition, kept in the ``clock`` store),
and sends its final revision. Late events are counted (``late``) and not applied. Rules:
docs/domain-rules.md, "Analytics (sessions)"; the pure code is domain/sessions.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence

from tradeflux import topics
from tradeflux.domain.sessions import (
    AccountSessions,
    Member,
    Outcome,
    SessionBatch,
    SessionSpec,
    SessionTrade,
)
from tradeflux.errors import ConfigError
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec

SESSIONS = topics.SESSIONS.name
STREAM_TIME = "stream_time"  # the one key of the clock store


def _seconds(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: give a whole number of seconds, at least {minimum}")
    return value


def session_spec_from_env() -> SessionSpec:
    """Return the sessions set by ``TRADEFLUX_SESSION_GAP_SECONDS`` and ``..._GRACE_SECONDS``."""
    return SessionSpec(
        gap=dt.timedelta(seconds=_seconds("TRADEFLUX_SESSION_GAP_SECONDS", 30, 1)),
        grace=dt.timedelta(seconds=_seconds("TRADEFLUX_SESSION_GRACE_SECONDS", 5, 0)),
    )


SPEC = session_spec_from_env()
logging.getLogger("tradeflux.services.sessions").info(
    "setting session_gap_seconds=%d session_grace_seconds=%d",
    SPEC.gap // dt.timedelta(seconds=1),
    SPEC.grace // dt.timedelta(seconds=1),
)


def update_sessions(ctx: Context, records: Sequence[Record]) -> None:
    """Apply each trade event to its account's sessions; close those stream time has passed."""
    accounts = ctx.store("sessions")
    clock = ctx.store("clock")
    held = clock.get(STREAM_TIME)
    batch = SessionBatch(SPEC, held, accounts, ctx.store("trades"), ctx.store("buckets"))
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


SERVICE = Service(
    name="sessions",
    inputs=[topics.ENRICHED.topic()],
    outputs=[topics.SESSIONS.topic()],
    stores=[
        StoreSpec("sessions", MsgpackCodec(AccountSessions)),
        StoreSpec("trades", MsgpackCodec(SessionTrade)),
        StoreSpec("buckets", MsgpackCodec(tuple[Member, ...])),
        StoreSpec("clock", MsgpackCodec(dt.datetime)),
    ],
    process=update_sessions,
    dead_letter_topic=topics.REJECTED.name,
)
