"""Validator/enricher: ``trades.raw`` → ``trades.enriched``, ``trades.rejected`` or dropped.

State: the last accepted version of every trade id (``trades.raw`` is keyed by trade id,
so a trade's events all reach the same partition). "Now" is the raw record's Kafka
timestamp, so a replay decides the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import msgspec

from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.bounds import BoundsConfigError, NotionalBounds, parse_notional_bounds
from tradeflux.domain.refdata import RefData
from tradeflux.domain.validation import Accepted, Duplicate, Rejected, TradeState, validate
from tradeflux.errors import ConfigError
from tradeflux.services.refdata_tables import checked_table
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Service, StoreSpec


def notional_bounds(settings: Settings) -> NotionalBounds:
    """Return the per-currency notional bounds of ``settings``.

    domain/bounds.py's defaults, overridden by the ``max_notional`` setting
    (``TRADEFLUX_MAX_NOTIONAL=JPY=1E+16,*=1E+14``); the gateway reads the same setting.
    """
    try:
        return parse_notional_bounds(settings.max_notional)
    except BoundsConfigError as exc:
        raise ConfigError(f"max_notional: {exc}") from None


class _TradeId(msgspec.Struct):
    """Just the trade id of a raw event, to find its state before the full decode."""

    trade_id: str


_peek = msgspec.json.Decoder(_TradeId)


def _state_key(record: Record) -> str:
    """Return the trade id the record is about: its own field, else the record key."""
    try:
        return _peek.decode(record.value or b"").trade_id
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return record.key or ""


def validate_trades(ctx: Context, records: Sequence[Record], bounds: NotionalBounds) -> None:
    """Validate and enrich each raw trade event against its trade's state and refdata."""
    trades = ctx.store("trades")
    refdata = RefData(
        instruments=ctx.table("instruments"),
        accounts=ctx.table("accounts"),
        counterparties=ctx.table("counterparties"),
    )
    for record in records:
        trade_id = _state_key(record)
        now = dt.datetime.fromtimestamp(record.timestamp_ms / 1000, dt.UTC)
        outcome = validate(record.value or b"", now, trades.get(trade_id), refdata, bounds)
        if isinstance(outcome, Accepted):
            trades.put(trade_id, outcome.new_state)
            for event in outcome.events:
                ctx.emit(topics.ENRICHED.name, event.account, event, cause=record)
            ctx.count("enriched")
        elif isinstance(outcome, Duplicate):
            ctx.count("duplicates")
        elif isinstance(outcome, Rejected):
            ctx.reject(record, outcome.reason, outcome.detail)


def build(settings: Settings | None = None) -> Service:
    """Return the validator with the notional bounds of ``settings``."""
    bounds = notional_bounds(settings or Settings())

    def process(ctx: Context, records: Sequence[Record]) -> None:
        validate_trades(ctx, records, bounds)

    return Service(
        name="validator",
        inputs=[topics.RAW.raw()],  # decoded by validate(), so a bad record is a reject
        outputs=[topics.ENRICHED.topic()],
        stores=[StoreSpec("trades", MsgpackCodec(TradeState))],
        global_tables=[
            checked_table(topics.INSTRUMENTS, "instruments"),
            checked_table(topics.ACCOUNTS, "accounts"),
            checked_table(topics.COUNTERPARTIES, "counterparties"),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()
