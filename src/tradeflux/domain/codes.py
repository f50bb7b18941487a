"""Stable reason codes of rejected trades (the ``tf.reason`` header on ``trades.rejected``).

Codes are part of the contract with downstream readers: never rename one, only add.
The order of checks, first failing wins, is in docs/domain-rules.md.
"""

from __future__ import annotations

import enum


class RejectReason(enum.StrEnum):
    """Why the validator rejected a trade event."""

    SCHEMA_INVALID = "SCHEMA_INVALID"  # not a TradeEvent: bad JSON, wrong types, naive time
    OUT_OF_BOUNDS = "OUT_OF_BOUNDS"  # a field beyond its bound (domain/bounds.py); detail says
    TRADE_EXISTS = "TRADE_EXISTS"  # NEW for a trade id already booked
    UNKNOWN_TRADE = "UNKNOWN_TRADE"  # AMEND/CANCEL of a trade id never booked
    TRADE_CANCELLED = "TRADE_CANCELLED"  # AMEND/CANCEL of a cancelled trade
    STALE_VERSION = "STALE_VERSION"  # version below the last accepted one
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INSTRUMENT_INACTIVE = "INSTRUMENT_INACTIVE"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    ACCOUNT_INACTIVE = "ACCOUNT_INACTIVE"
    UNKNOWN_COUNTERPARTY = "UNKNOWN_COUNTERPARTY"
    COUNTERPARTY_INACTIVE = "COUNTERPARTY_INACTIVE"
    NON_POSITIVE_QUANTITY = "NON_POSITIVE_QUANTITY"
    ODD_LOT = "ODD_LOT"  # quantity not a whole number of lots
    NON_POSITIVE_PRICE = "NON_POSITIVE_PRICE"
    OFF_TICK = "OFF_TICK"  # price not a multiple of the tick size
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # trade currency is not the instrument's
    FUTURE_TRADE_TIME = "FUTURE_TRADE_TIME"  # later than ingest time + tolerance
