"""What an upstream system may send by mistake: hypothesis strategies of trade events at and
beyond every documented bound (domain/bounds.py, docs/domain-rules.md "Bounds"), and of
bytes that are no trade event at all; and what the gateway must answer to each.

A :class:`TradeCase` is a JSON object field by field. Times are kept as offsets from "now"
(:class:`TimeSpec`) and written out when the case is sent, so a case means the same
whenever it runs: straight into ``trades.raw`` "now" is the record timestamp the sender
sets (exactly, so the 400-day and 5-second edges are hit to the millisecond); through the
gateway it is the moment of the request. Trade ids come mostly from a small pool, so that
NEWs, AMENDs, CANCELs, duplicates and stale versions of the same trades meet.

What the gateway must answer each is in tests/fuzz/answers.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import string
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import msgspec
from hypothesis import strategies as st

from tests.fuzz.refdata import (
    ACCOUNTS,
    CONTROL_ACCOUNT,
    COUNTERPARTIES,
    INSTRUMENTS,
    SAMPLE_ACCOUNTS,
    SAMPLE_COUNTERPARTIES,
    SAMPLE_INSTRUMENTS,
)
from tests.support.pipeline import REFDATA_DIR
from tests.support.reference import (
    FUTURE_TOLERANCE,
    MAX_TRADE_AGE,
    RULES_CONTEXT,
)
from tradeflux.domain.schemas import Instrument
from tradeflux.sim.refdata import load_refdata

ID_CHARS = string.ascii_letters + string.digits + "._:/#@+=-"
POOL = [f"FZ-T{i}" for i in range(24)]
"""Trade ids most cases use, so that their events meet in the validator's state."""

Route = Literal["http", "raw", "both"]
KeyKind = Literal["trade_id", "none", "other", "not_utf8"]


@dataclass(frozen=True)
class TimeSpec:
    """A time ``offset`` from "now", written in the time zone ``utc_offset`` ("Z", "+14:00")."""

    offset: dt.timedelta
    utc_offset: str

    def at(self, now: dt.datetime) -> str:
        """Return the RFC 3339 text of ``now + offset`` in this spec's time zone."""
        instant = now + self.offset
        if self.utc_offset == "Z":
            return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        sign = -1 if self.utc_offset[0] == "-" else 1
        hours, minutes = self.utc_offset[1:].split(":")
        zone = dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes)))
        return instant.astimezone(zone).isoformat()


@dataclass(frozen=True)
class TradeCase:
    """One trade event field by field (a missing field is absent), and how it is sent."""

    fields: dict[str, Any]
    decimals_as: Literal["string", "number"]
    route: Route
    key: KeyKind
    as_list: bool  # through the gateway: ``[event]`` rather than ``event``

    def document(self, now: dt.datetime) -> dict[str, Any]:
        """Return the JSON object with its times written out from ``now``.

        JSON has no number for NaN or Infinity: as numbers, those go as strings.
        """
        return {k: self._written(v, now) for k, v in self.fields.items()}

    def _written(self, value: Any, now: dt.datetime) -> Any:
        if isinstance(value, TimeSpec):
            return value.at(now)
        if isinstance(value, Decimal) and not value.is_finite() and self.decimals_as == "number":
            return str(value)
        return value

    def encode(self, now: dt.datetime) -> bytes:
        """Return the record value (the JSON object) as of ``now``."""
        return ENCODERS[self.decimals_as].encode(self.document(now))


@dataclass(frozen=True)
class BytesCase:
    """Bytes that are (almost certainly) no trade event, and how they are sent."""

    body: bytes
    route: Route
    key: KeyKind


ENCODERS = {
    "string": msgspec.json.Encoder(decimal_format="string"),
    "number": msgspec.json.Encoder(decimal_format="number"),
}


# -- reference data the trades name --------------------------------------------------


def _instruments() -> dict[str, Instrument]:
    sample = {i.instrument_id: i for i in load_refdata(REFDATA_DIR).instruments}
    chosen = {name: sample[name] for name in SAMPLE_INSTRUMENTS}
    return chosen | {e.record.instrument_id: e.record for e in INSTRUMENTS}


KNOWN_INSTRUMENTS = _instruments()
ACCOUNT_IDS = SAMPLE_ACCOUNTS + [
    e.record.account_id for e in ACCOUNTS if e.record.account_id != CONTROL_ACCOUNT
]
COUNTERPARTY_IDS = SAMPLE_COUNTERPARTIES + [e.record.counterparty_id for e in COUNTERPARTIES]


# -- field strategies ---------------------------------------------------------------

_ODD_CHARACTERS = [
    "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\u200b", " ", "\t", "\n", "|", "é", "😀", '"', "\\",
]  # fmt: skip
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=70)  # no lone surrogates
valid_ids = st.text(ID_CHARS, min_size=1, max_size=64)
bad_ids = st.one_of(
    st.just(""),
    st.text(ID_CHARS, min_size=65, max_size=80),
    st.builds(
        lambda head, odd, tail: head + odd + tail,
        st.text(ID_CHARS, max_size=8),
        st.sampled_from(_ODD_CHARACTERS),
        st.text(ID_CHARS, max_size=8),
    ),
    _text,
)
not_text = st.sampled_from([7, None, True, ["FZ-T1"], {"id": 1}, 1.5])


def _weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """one_of with integer weights (one_of would treat the same strategy twice as once)."""
    strategies = [strategy for _, strategy in options]
    picks = [i for i, (weight, _) in enumerate(options) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda i: strategies[i])


trade_ids = _weighted((6, st.sampled_from(POOL)), (1, valid_ids), (1, bad_ids), (1, not_text))
event_types = _weighted(
    (5, st.sampled_from(["NEW", "NEW", "NEW", "AMEND", "AMEND", "CANCEL"])),
    (1, st.sampled_from(["new", "", "DELETE", "NEW ", None, 1])),
)
# fmt: off
versions = _weighted(
    (8, st.integers(1, 4)),
    (2, st.sampled_from([2**63 - 1, 2**63, 2**63 + 1, 2**64, 2**70, 10**40, 0, -1, -(2**63),
                         -(2**63) - 1, -(2**70)])),
    (1, st.integers()),
    (1, st.sampled_from(["1", 1.5, 2.0, True, None, [1]])),
)
# fmt: on
sides = _weighted(
    (8, st.sampled_from(["BUY", "SELL"])), (1, st.sampled_from(["buy", "", "HOLD", 1]))
)
accounts = _weighted(
    (8, st.sampled_from(ACCOUNT_IDS)),
    (1, st.sampled_from(["ACC-9999", ""])),
    (1, bad_ids),
    (1, not_text),
)
instrument_ids = _weighted(
    (8, st.sampled_from(sorted(KNOWN_INSTRUMENTS))),
    (1, st.just("NOPE.XNYS")),
    (1, bad_ids),
    (1, not_text),
)
counterparties = _weighted(
    (8, st.sampled_from(COUNTERPARTY_IDS)), (1, st.just("CP-999")), (1, bad_ids), (1, not_text)
)
# fmt: off
currencies = st.sampled_from([
    "USD", "JPY", "KRW", "BHD", "GBP", "INR", "XAU", "XDR", "ZWL", "VES", "SLE", "XXX", "XTS",
    "usd", "US", "USDX", "", "€", 840, None,
])
# fmt: on

# fmt: off
EXTREME_DECIMALS = [
    "999999999999", "9999999999.99999999", "999999999999.999999", "999999999999.9999999",
    "1000000000000", "1E+12", "-1E+12", "1E+27", "999999999.99999999", "999999999.99",
    "1000000000", "1E+9", "0.00000001", "1E-8", "0.000000009", "1E-9", "-0.00000001",
    "123456789012345678", "1234567890.12345678", "1234567890.123456789",
    "1.000000000000000000000000", "100.2500000000", "0", "-0", "-1", "-999999999999",
    "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "1E+999999999", "1E-999999999",
    "1e5", " 12 ", "1_000", "\u0661\u0662", "0x10", "1,5", "", "abc", "1E+", ".", "+5",
]
# fmt: on
"""Texts of quantities and prices at and beyond their bounds, and some that are no number."""


def _decimal_or_text(text: str) -> Decimal | str:
    try:
        return Decimal(text)
    except decimal.InvalidOperation:
        return text


_extreme_decimals = st.sampled_from(EXTREME_DECIMALS).flatmap(
    lambda text: st.sampled_from([text, _decimal_or_text(text)])
)  # the text as a JSON string either way, or the Decimal (a number if decimals_as="number")


def _multiples(step: Decimal, most: int) -> st.SearchStrategy[Decimal]:
    def times(k: int) -> Decimal:
        with decimal.localcontext(RULES_CONTEXT):
            return step * k

    return st.integers(1, most).map(times)


def quantities(lot: Decimal) -> st.SearchStrategy[Any]:
    """Quantities for an instrument of lot ``lot``: whole lots, small to beyond the bound."""
    return _weighted(
        (5, _multiples(lot, 1000)),
        (2, _multiples(lot, 10**13)),
        (3, _extreme_decimals),
        (1, st.decimals(allow_nan=True, allow_infinity=True)),
        (1, not_text),
    )


def prices(tick: Decimal) -> st.SearchStrategy[Any]:
    """Prices for an instrument of tick ``tick``: on the tick, small to beyond the bound."""
    return _weighted(
        (5, _multiples(tick, 100_000)),
        (2, _multiples(tick, 10**10)),
        (3, _extreme_decimals),
        (1, st.decimals(allow_nan=True, allow_infinity=True)),
        (1, not_text),
    )


_DAY = dt.timedelta(days=1)
_MS = dt.timedelta(milliseconds=1)
# fmt: off
EDGE_OFFSETS = [
    dt.timedelta(0), -dt.timedelta(seconds=1), -dt.timedelta(hours=1), -_DAY, -30 * _DAY,
    -399 * _DAY, -MAX_TRADE_AGE, -MAX_TRADE_AGE - _MS, -MAX_TRADE_AGE + _MS, -401 * _DAY,
    -10_000 * _DAY, dt.timedelta(seconds=4), FUTURE_TOLERANCE, FUTURE_TOLERANCE + _MS,
    dt.timedelta(seconds=6), dt.timedelta(hours=1), 3650 * _DAY,
]
# fmt: on
"""Offsets from "now": inside, on and just beyond the 400-day and 5-second edges."""
# fmt: off
LITERAL_TIMES = [
    "2026-01-01T10:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
    "2026-02-30T00:00:00Z", "", "yesterday", "2026-01-01", "2026-01-01T10:00:00.123456789Z",
    1700000000, None,
]
# fmt: on
"""Times that are no time, naive, or not expressible in UTC."""

time_specs = st.builds(
    TimeSpec,
    _weighted(
        (3, st.sampled_from(EDGE_OFFSETS)),
        (1, st.timedeltas(min_value=-500 * _DAY, max_value=2 * _DAY)),
    ),
    st.sampled_from(["Z", "+00:00", "+14:00", "-12:00", "+05:45", "-00:30"]),
)
trade_times = _weighted((6, time_specs), (1, st.sampled_from(LITERAL_TIMES)))
_recent = st.builds(TimeSpec, st.just(-dt.timedelta(seconds=1)), st.just("Z"))

VALID_EXTREME_DECIMALS = [
    "999999999999", "9999999999.99999999", "999999999999.999999", "999999999.99999999",
    "0.00000001", "1234567890.12345678", "1.000000000000000000000000", "100.2500000000",
]  # fmt: skip
"""Quantities and prices on the inside of their bounds (not all on an instrument's lot)."""

_in_window = st.builds(
    TimeSpec,
    st.one_of(
        st.sampled_from([-dt.timedelta(seconds=1), -_DAY, -399 * _DAY, dt.timedelta(seconds=4)]),
        st.timedeltas(min_value=-399 * _DAY, max_value=dt.timedelta(0)),
    ),
    st.sampled_from(["Z", "+00:00", "+14:00", "-12:00", "+05:45"]),
)
_OPTIONAL = {
    "source": _weighted((1, valid_ids), (1, bad_ids), (1, not_text)),
    "ingest_time": trade_times,
    "order_id": st.sampled_from(["", "ORD-1", "a|b", "x" * 300, "\x00", 7]),
    "allocation": st.sampled_from([None, {"block_id": "B-1", "alloc_id": "A-1", "role": "CHILD"}]),
}
_UNKNOWN_FIELDS = st.sampled_from(["qty", "Price", "extra", "trade id"])


@st.composite
def trade_cases(draw: st.DrawFn) -> TradeCase:
    """Return a trade event and a route: a valid event with a few fields made wild.

    The valid event already reaches for its bounds (the largest lot, an 8-place price, a
    trade time 399 days old, versions to 2**63-1); then none (half the cases), one, two or
    every field is drawn from everything a sender might put there, at, inside or beyond
    its bound; an optional field may come, a field may go, or one the schema lacks appear.
    """
    wild_instrument = draw(st.integers(0, 9)) == 0
    instrument = draw(
        instrument_ids if wild_instrument else st.sampled_from(sorted(KNOWN_INSTRUMENTS))
    )
    known = KNOWN_INSTRUMENTS.get(instrument) if isinstance(instrument, str) else None
    lot = known.lot_size if known else Decimal(1)
    tick = known.tick_size if known else Decimal("0.01")
    venues = ["", known.mic if known else "XNYS", "XNYS", "ABCD", "1234", "xnys", "XNY", "XNYSE",
              "X NY", 1234]  # fmt: skip
    inside = st.sampled_from(VALID_EXTREME_DECIMALS).map(Decimal)
    valid: dict[str, st.SearchStrategy[Any]] = {
        "event_type": st.sampled_from(["NEW", "NEW", "NEW", "AMEND", "AMEND", "CANCEL"]),
        "trade_id": _weighted((6, st.sampled_from(POOL)), (1, valid_ids)),
        "version": _weighted((8, st.integers(1, 4)), (1, st.sampled_from([2**63 - 2, 2**63 - 1]))),
        "account": st.sampled_from(ACCOUNT_IDS),
        "side": st.sampled_from(["BUY", "SELL"]),
        "quantity": _weighted(
            (6, _multiples(lot, 1000)), (2, _multiples(lot, 10**13)), (1, inside)
        ),
        "price": _weighted(
            (6, _multiples(tick, 100_000)), (2, _multiples(tick, 10**10)), (1, inside)
        ),
        "currency": st.just(known.currency if known else "USD"),
        "venue": st.sampled_from(venues[:3]),
        "counterparty": st.sampled_from(COUNTERPARTY_IDS),
        "trade_time": _weighted((3, _recent), (1, _in_window)),
    }  # fmt: skip
    wild: dict[str, st.SearchStrategy[Any]] = {
        "event_type": event_types, "trade_id": trade_ids, "version": versions,
        "account": accounts, "side": sides, "quantity": quantities(lot), "price": prices(tick),
        "currency": currencies, "venue": st.sampled_from(venues), "counterparty": counterparties,
        "trade_time": trade_times, **_OPTIONAL,
    }  # fmt: skip
    how_many = draw(_weighted((5, st.just(0)), (3, st.just(1)), (1, st.just(2)), (1, st.just(99))))
    names = sorted(wild)
    made_wild = set(names) if how_many == 99 else {
        draw(st.sampled_from(names)) for _ in range(how_many)
    }  # fmt: skip
    fields: dict[str, Any] = {"instrument": instrument}
    for name in names:
        if name in made_wild:
            fields[name] = draw(wild[name])
        elif name in valid:
            fields[name] = draw(valid[name])
    if draw(st.integers(0, 19)) == 0:  # a field left out (any field may go)
        fields.pop(draw(st.sampled_from(sorted(fields))))
    if draw(st.integers(0, 19)) == 0:  # a field the schema does not have
        fields[draw(_UNKNOWN_FIELDS)] = draw(st.sampled_from([1, "x", None, [[[[1]]]]]))
    key_kinds = _weighted(
        (12, st.just("trade_id")), (1, st.sampled_from(["none", "other", "not_utf8"]))
    )
    return TradeCase(
        fields=fields,
        decimals_as=draw(st.sampled_from(["string", "number"])),
        route=draw(st.sampled_from(["http", "raw", "raw", "both"])),
        key=draw(key_kinds),
        as_list=draw(st.booleans()),
    )


def _nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    _json_values.map(msgspec.json.encode),
    st.sampled_from([64, 3_000, 200_000]).map(lambda n: _nested(n, b"[", b"]")),
    st.sampled_from([64, 3_000, 100_000]).map(lambda n: _nested(n, b'{"a":', b"}")[:-1] + b"1}"),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"{}",
            b'"x"',
            b"[null]",
            b"[{}]",
            b"\xef\xbb\xbf{}",
            b'{"trade_id": "\xff\xfe"}',
            b"[" + b"1," * 20_000 + b"1]",
        ]
    ),
)


@st.composite
def bytes_cases(draw: st.DrawFn) -> BytesCase:
    """Return bytes that are no trade event, and a route."""
    body = draw(bodies)
    if draw(st.booleans()):  # a trade event cut short, or with nesting in an unknown field
        event = msgspec.json.encode(
            {"event_type": "NEW", "trade_id": draw(st.sampled_from(POOL)), "version": 1}
        )
        body = draw(
            st.sampled_from(
                [
                    event[: len(event) // 2],
                    event[:-1] + b',"x":' + _nested(3_000, b"[", b"]") + b"}",
                ]
            )
        )
    return BytesCase(
        body=body,
        route=draw(st.sampled_from(["http", "raw", "both"])),
        key=draw(st.sampled_from(["trade_id", "none", "not_utf8"])),
    )


cases = _weighted((5, trade_cases()), (1, bytes_cases()))
