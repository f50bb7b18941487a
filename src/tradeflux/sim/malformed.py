"""Malformed ``trades.raw`` records: one kind per way a trade event can be wrong.

Each kind is built from a valid event so that exactly one thing is wrong with it, and
nothing the validator checks earlier fails first; :data:`EXPECTED_REJECT` gives the
reason code docs/domain-rules.md assigns it. Kinds in :data:`NEEDS_HISTORY` reuse an
earlier trade (:func:`corrupt_booked`); the others corrupt a fresh NEW
(:func:`corrupt_new`).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from tradeflux.domain.codes import RejectReason
from tradeflux.domain.schemas import Instrument, TradeEvent

_ENCODER = msgspec.json.Encoder(decimal_format="string")


class Malformed(enum.StrEnum):
    """The kinds of malformed record; :data:`EXPECTED_REJECT` gives each one's reason."""

    BAD_JSON = "bad_json"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    NAIVE_TIME = "naive_time"
    ZERO_VERSION = "zero_version"
    NOT_A_NUMBER = "not_a_number"
    STALE_VERSION = "stale_version"
    TRADE_EXISTS = "trade_exists"
    UNKNOWN_TRADE = "unknown_trade"
    AMEND_CANCELLED = "amend_cancelled"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    INACTIVE_INSTRUMENT = "inactive_instrument"
    UNKNOWN_ACCOUNT = "unknown_account"
    INACTIVE_ACCOUNT = "inactive_account"
    UNKNOWN_COUNTERPARTY = "unknown_counterparty"
    INACTIVE_COUNTERPARTY = "inactive_counterparty"
    NON_POSITIVE_QUANTITY = "non_positive_quantity"
    ODD_LOT = "odd_lot"
    NON_POSITIVE_PRICE = "non_positive_price"
    OFF_TICK = "off_tick"
    CURRENCY_MISMATCH = "currency_mismatch"
    FUTURE_TIME = "future_time"


EXPECTED_REJECT: dict[Malformed, RejectReason] = {
    Malformed.BAD_JSON: RejectReason.SCHEMA_INVALID,
    Malformed.WRONG_TYPE: RejectReason.SCHEMA_INVALID,
    Malformed.MISSING_FIELD: RejectReason.SCHEMA_INVALID,
    Malformed.NAIVE_TIME: RejectReason.SCHEMA_INVALID,
    Malformed.ZERO_VERSION: RejectReason.SCHEMA_INVALID,
    Malformed.NOT_A_NUMBER: RejectReason.SCHEMA_INVALID,
    Malformed.STALE_VERSION: RejectReason.STALE_VERSION,
    Malformed.TRADE_EXISTS: RejectReason.TRADE_EXISTS,
    Malformed.UNKNOWN_TRADE: RejectReason.UNKNOWN_TRADE,
    Malformed.AMEND_CANCELLED: RejectReason.TRADE_CANCELLED,
    Malformed.UNKNOWN_INSTRUMENT: RejectReason.UNKNOWN_INSTRUMENT,
    Malformed.INACTIVE_INSTRUMENT: RejectReason.INSTRUMENT_INACTIVE,
    Malformed.UNKNOWN_ACCOUNT: RejectReason.UNKNOWN_ACCOUNT,
    Malformed.INACTIVE_ACCOUNT: RejectReason.ACCOUNT_INACTIVE,
    Malformed.UNKNOWN_COUNTERPARTY: RejectReason.UNKNOWN_COUNTERPARTY,
    Malformed.INACTIVE_COUNTERPARTY: RejectReason.COUNTERPARTY_INACTIVE,
    Malformed.NON_POSITIVE_QUANTITY: RejectReason.NON_POSITIVE_QUANTITY,
    Malformed.ODD_LOT: RejectReason.ODD_LOT,
    Malformed.NON_POSITIVE_PRICE: RejectReason.NON_POSITIVE_PRICE,
    Malformed.OFF_TICK: RejectReason.OFF_TICK,
    Malformed.CURRENCY_MISMATCH: RejectReason.CURRENCY_MISMATCH,
    Malformed.FUTURE_TIME: RejectReason.FUTURE_TRADE_TIME,
}
"""The reason the validator gives each malformed kind (docs/domain-rules.md)."""

NEEDS_HISTORY = frozenset(
    {Malformed.STALE_VERSION, Malformed.TRADE_EXISTS, Malformed.AMEND_CANCELLED}
)
"""Kinds made from an earlier trade (:func:`corrupt_booked`); the rest from a fresh NEW."""
_REQUIRED_FIELDS = tuple(
    f for f in msgspec.structs.fields(TradeEvent) if f.required
)  # fields a MISSING_FIELD record may lack


@dataclass(frozen=True)
class Inactive:
    """The inactive reference data a malformed record may name (possibly none of each)."""

    instruments: Sequence[Instrument] = ()
    accounts: Sequence[str] = ()
    counterparties: Sequence[str] = ()

    def allows(self, kind: Malformed) -> bool:
        """Tell whether ``kind`` can be made (an INACTIVE_* kind needs an inactive entry)."""
        if kind is Malformed.INACTIVE_INSTRUMENT:
            return bool(self.instruments)
        if kind is Malformed.INACTIVE_ACCOUNT:
            return bool(self.accounts)
        if kind is Malformed.INACTIVE_COUNTERPARTY:
            return bool(self.counterparties)
        return True


def corrupt_booked(kind: Malformed, old: TradeEvent, inst: Instrument, rng: random.Random) -> bytes:
    """Return a STALE_VERSION, TRADE_EXISTS or AMEND_CANCELLED record of the trade ``old``.

    ``old`` is the trade's latest accepted event (its version at least 2 for
    STALE_VERSION; a CANCEL for AMEND_CANCELLED); ``inst`` its instrument.
    """
    replace = msgspec.structs.replace
    if kind is Malformed.STALE_VERSION:  # a late, superseded amend
        event = replace(
            old,
            event_type="AMEND",
            version=rng.randint(1, old.version - 1),
            quantity=old.quantity + inst.lot_size,
        )
    elif kind is Malformed.TRADE_EXISTS:  # a trade id reused for another trade
        event = replace(old, event_type="NEW", version=old.version + 1)
    elif kind is Malformed.AMEND_CANCELLED:  # an amend after the cancel
        event = replace(
            old, event_type="AMEND", version=old.version + 1, price=old.price + inst.tick_size
        )
    else:
        raise ValueError(f"{kind} is not made from an earlier trade")
    return _ENCODER.encode(event)


def corrupt_new(
    kind: Malformed,
    base: TradeEvent,
    inst: Instrument,
    now: dt.datetime,
    rng: random.Random,
    inactive: Inactive,
) -> bytes:
    """Return the bytes of a ``kind`` record built from ``base``, a valid NEW of ``inst``.

    ``now`` is the record's Kafka timestamp (a FUTURE_TIME trade lies a minute to an
    hour after it).
    """
    replace = msgspec.structs.replace
    if kind is Malformed.BAD_JSON:
        raw = _ENCODER.encode(base)
        return rng.choice(
            [
                raw[: rng.randrange(1, len(raw) - 1)],  # truncated
                raw + b"}",  # trailing garbage
                b"\xff\xfe" + raw[2:],  # not UTF-8
                b"TRADE " + base.trade_id.encode(),  # not JSON at all
            ]
        )
    if kind in (Malformed.WRONG_TYPE, Malformed.MISSING_FIELD, Malformed.NAIVE_TIME):
        return msgspec.json.encode(_broken_fields(kind, base, rng))
    bad: TradeEvent
    if kind is Malformed.ZERO_VERSION:
        bad = replace(base, version=rng.choice([0, -1]))
    elif kind is Malformed.NOT_A_NUMBER:
        number = Decimal(rng.choice(["NaN", "Infinity", "-Infinity", "sNaN"]))
        field = rng.choice(["price", "quantity"])
        bad = replace(base, **{field: number})
    elif kind is Malformed.UNKNOWN_TRADE:
        bad = replace(base, event_type=rng.choice(["AMEND", "CANCEL"]), version=2)
    elif kind is Malformed.UNKNOWN_INSTRUMENT:
        bad = replace(base, instrument=f"UNKNOWN-{base.trade_id}")
    elif kind is Malformed.INACTIVE_INSTRUMENT:
        other = rng.choice(inactive.instruments)
        bad = replace(base, instrument=other.instrument_id, currency=other.currency)
    elif kind is Malformed.UNKNOWN_ACCOUNT:
        bad = replace(base, account=f"UNKNOWN-{base.trade_id}")
    elif kind is Malformed.INACTIVE_ACCOUNT:
        bad = replace(base, account=rng.choice(inactive.accounts))
    elif kind is Malformed.UNKNOWN_COUNTERPARTY:
        bad = replace(base, counterparty=f"UNKNOWN-{base.trade_id}")
    elif kind is Malformed.INACTIVE_COUNTERPARTY:
        bad = replace(base, counterparty=rng.choice(inactive.counterparties))
    elif kind is Malformed.NON_POSITIVE_QUANTITY:
        bad = replace(base, quantity=rng.choice([Decimal(0), -base.quantity]))
    elif kind is Malformed.ODD_LOT:
        bad = replace(base, quantity=base.quantity + inst.lot_size / 2)
    elif kind is Malformed.NON_POSITIVE_PRICE:
        bad = replace(base, price=rng.choice([Decimal(0), -base.price]))
    elif kind is Malformed.OFF_TICK:
        bad = replace(base, price=base.price + inst.tick_size / 2)
    elif kind is Malformed.CURRENCY_MISMATCH:
        bad = replace(base, currency="EUR" if base.currency == "USD" else "USD")
    elif kind is Malformed.FUTURE_TIME:
        ahead_s = rng.uniform(60.0, 3600.0)
        bad = replace(base, trade_time=now + dt.timedelta(seconds=ahead_s))
    else:
        raise ValueError(f"{kind} is made from an earlier trade, not a fresh one")
    return _ENCODER.encode(bad)


def _broken_fields(kind: Malformed, base: TradeEvent, rng: random.Random) -> dict[str, Any]:
    """Return ``base`` as JSON-ready fields with one field missing, wrongly typed or naive."""
    fields: dict[str, Any] = msgspec.to_builtins(base)
    if kind is Malformed.MISSING_FIELD:
        del fields[rng.choice(_REQUIRED_FIELDS).encode_name]
    elif kind is Malformed.NAIVE_TIME:
        fields["trade_time"] = base.trade_time.replace(tzinfo=None).isoformat()
    else:
        name, wrong = rng.choice(
            [
                ("version", str(base.version)),
                ("quantity", [str(base.quantity)]),
                ("price", True),
                ("side", "HOLD"),
                ("event_type", "FILL"),
                ("trade_time", math.floor(base.trade_time.timestamp())),
                ("account", 12345),
            ]
        )
        fields[name] = wrong
    return fields
