"""Trade events posted as JSON: parse, check every record, say exactly what is wrong.

The checks are the schema rules of the validator (docs/domain-rules.md, rule 1: a JSON
TradeEvent, known ``event_type``/``side``, times with a time zone, ``version >= 1``),
the bounds of every field (domain/bounds.py, the same the validator applies: digits and
magnitude of quantity and price, identifier forms, ISO 4217, MIC form, the trade time
window, the notional ``quantity * price`` per currency; each error names the bound it
broke) plus what the HTTP edge owes its callers: no unknown fields (a typo must not
vanish), and none of the fields only tradeflux's own services set (``allocation``).
Business rules (reference data, positive quantities, lots and ticks, the multiplier's
share of the notional) stay with the validator, which dead-letters with a reason code.

Numbers are decoded straight into Decimal (never float): ``"quantity": 100.25`` and
``"quantity": "100.25"`` are the same.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, get_args, get_type_hints

import msgspec

from tradeflux.domain.bounds import (
    BoundProblem,
    NotionalBounds,
    event_form_problems,
    notional_problem,
    time_problem,
)
from tradeflux.domain.schemas import TradeEvent

FIELD_TYPES: dict[str, Any] = get_type_hints(TradeEvent)
_DEFAULTS = dict(
    zip(
        TradeEvent.__struct_fields__[-len(TradeEvent.__struct_defaults__) :],
        TradeEvent.__struct_defaults__,
        strict=True,
    )
)
REQUIRED_FIELDS = tuple(f for f in TradeEvent.__struct_fields__ if f not in _DEFAULTS)
INTERNAL_FIELDS = frozenset({"allocation"})
"""Fields only tradeflux's own services set: ``allocation`` marks the allocations service's
bookings (which the validator does not hold to the tick grid), so a sender must not."""
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_TIME_EXAMPLE = '"2026-11-24T10:15:00.125Z"'
_DEFAULT_NOTIONAL_BOUNDS = NotionalBounds()


class RecordError(msgspec.Struct, frozen=True, omit_defaults=True):
    """What is wrong with one record: its position in the request, the field, the reason.

    ``index`` is None for a problem of the request as a whole, ``field`` None for a
    problem of the record as a whole; ``bound`` is the bound a value broke (left out of
    the JSON when the problem is not one of bounds).
    """

    index: int | None
    field: str | None
    message: str
    bound: str | None = None


class MalformedJson(ValueError):  # noqa: N818 - named for what the caller sent
    """The body is not JSON at all."""


def decode_body(body: bytes) -> Any:
    """Decode a JSON body, numbers as Decimal; raise MalformedJson with msgspec's reason.

    Arrays and objects nested too deeply for the decoder (thousands of levels; a trade
    event needs two) are malformed too, as is an integer of thousands of digits.
    """
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise MalformedJson(str(exc)) from None
    except RecursionError:
        raise MalformedJson("JSON is nested too deeply (a trade event needs 2 levels)") from None


def parse_trade_events(
    document: Any,
    received_at: dt.datetime,
    source: str = "http",
    notional_bounds: NotionalBounds = _DEFAULT_NOTIONAL_BOUNDS,
) -> tuple[list[TradeEvent], list[RecordError]]:
    """Turn a decoded body (one object or a list of them) into TradeEvents, or list the errors.

    Either every record is valid (the events, no errors) or the errors of every record
    are returned, in record order. A record without ``source`` gets ``source``, one
    without ``ingest_time`` gets ``received_at``. Time bounds are taken from
    ``received_at`` ("now").
    """
    if isinstance(document, dict):
        records: list[Any] = [document]
    elif isinstance(document, list):
        records = document
        if not records:
            return [], [RecordError(None, None, "empty list: send at least one trade event")]
    else:
        return [], [
            RecordError(None, None, "expected a trade event object or a list of trade events")
        ]
    events: list[TradeEvent] = []
    errors: list[RecordError] = []
    for index, record in enumerate(records):
        event, record_errors = _parse_record(index, record, received_at, source, notional_bounds)
        if event is not None:
            events.append(event)
        errors.extend(record_errors)
    return (events, []) if not errors else ([], errors)


def _parse_record(
    index: int, record: Any, received_at: dt.datetime, source: str, notional_bounds: NotionalBounds
) -> tuple[TradeEvent | None, list[RecordError]]:
    if not isinstance(record, dict):
        return None, [RecordError(index, None, "expected a trade event object")]
    errors = [
        RecordError(index, name, "unknown field") for name in record if name not in FIELD_TYPES
    ]
    errors += [  # null (what our own encoder writes for "none") is as good as absent
        RecordError(index, name, "set by the allocations service only; send a block allocation")
        for name in INTERNAL_FIELDS
        if record.get(name) is not None
    ]
    values: dict[str, Any] = {}
    for name, kind in FIELD_TYPES.items():
        if name in INTERNAL_FIELDS:
            continue
        if name not in record:
            if name not in _DEFAULTS:
                errors.append(RecordError(index, name, "required field missing"))
            continue
        try:
            values[name] = msgspec.convert(record[name], kind)
        except msgspec.ValidationError:
            errors.append(RecordError(index, name, _expected(name, kind)))
            continue
        problem = _check_value(name, values[name])
        if problem:
            errors.append(RecordError(index, name, problem))
    if errors:
        return None, errors
    values.setdefault("source", source)
    if values.get("ingest_time") is None:
        values["ingest_time"] = received_at
    event = TradeEvent(**values)
    errors = [
        RecordError(index, p.field, p.message, p.bound)
        for p in _bound_problems(event, received_at, notional_bounds)
    ]
    return (event, []) if not errors else (None, errors)


def _bound_problems(
    event: TradeEvent, now: dt.datetime, notional_bounds: NotionalBounds
) -> list[BoundProblem]:
    """Return the bounds ``event`` breaks: the fields' forms, its times, its notional."""
    problems = event_form_problems(event)
    if event.event_type != "CANCEL":
        problems += filter(None, [time_problem("trade_time", event.trade_time, now)])
    if event.ingest_time is not None and event.ingest_time != now:
        problems += filter(None, [time_problem("ingest_time", event.ingest_time, now)])
    if not problems and event.event_type != "CANCEL":
        # the multiplier is the validator's to apply: here quantity * price alone
        one = Decimal(1)
        size = notional_problem(event.currency, event.quantity, event.price, one, notional_bounds)
        problems += filter(None, [size])
    return problems


def _expected(name: str, kind: Any) -> str:
    """Say what a field takes, for a value of the wrong type."""
    if kind is str:
        return "expected a string"
    if kind is int:
        return "expected a whole number"
    if kind is Decimal:
        return 'expected a decimal number, as a JSON number or a string such as "100.25"'
    if name in ("trade_time", "ingest_time"):
        return f"expected an RFC 3339 timestamp with a time zone, such as {_TIME_EXAMPLE}"
    choices = get_args(kind)
    if choices and all(isinstance(c, str) for c in choices):
        return "expected one of " + ", ".join(choices)
    return f"expected {kind}"  # pragma: no cover - every TradeEvent field is handled above


def _check_value(name: str, value: Any) -> str | None:
    """Return what is wrong with a well-typed value, or None."""
    if isinstance(value, dt.datetime) and value.utcoffset() is None:
        return f"timestamp without a time zone; add one, such as {_TIME_EXAMPLE}"
    if isinstance(value, dt.datetime):
        try:
            value.astimezone(dt.UTC)
        except OverflowError:
            return "timestamp out of the range of UTC times (year 1 to 9999)"
    if isinstance(value, Decimal) and not value.is_finite():
        return "expected a finite number"
    if name == "version" and value < 1:
        return "must be 1 or more"
    if name == "trade_id" and not value:
        return "must not be empty"
    return None
