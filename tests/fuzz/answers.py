"""What the gateway must answer a fuzzed trade event, written plainly from the rules.

It shares nothing with tradeflux.gateway or domain/bounds.py: the bound checks are the
reference model's (tests/support/reference.py), the JSON types msgspec's decoding of the
schema (TradeEvent), as the reference model decodes a record.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, get_type_hints

import msgspec

from tests.fuzz.cases import ENCODERS, TradeCase
from tests.support.reference import (
    FUTURE_TOLERANCE,
    MAX_TRADE_AGE,
    RULES_CONTEXT,
    is_bounded_decimal,
    is_identifier,
    is_mic_form,
    iso_currencies,
    notional_bound,
)
from tradeflux.domain.schemas import TradeEvent

FIELD_TYPES = get_type_hints(TradeEvent)
REQUIRED = [f.name for f in msgspec.structs.fields(TradeEvent) if f.required]


def _typed(name: str, value: Any, decimals_as: str) -> tuple[bool, Any]:
    """Decode ``value`` as the JSON schema types field ``name`` (msgspec, strict)."""
    try:
        data = ENCODERS[decimals_as].encode(value)
        return True, msgspec.json.decode(data, type=FIELD_TYPES[name])
    except (msgspec.DecodeError, RecursionError):
        return False, None


@dataclass(frozen=True)
class Refusal:
    """What the gateway must answer: the fields it names (none: 202), and whether they are
    bounds (each error then says its bound)."""

    fields: frozenset[str]
    bounds: bool


def gateway_problems(case: TradeCase, written_at: dt.datetime, now: dt.datetime) -> Refusal:
    """Return what the gateway must refuse ``case`` for, written at ``written_at``, at ``now``.

    Three rounds, as a sender is told: a field that is unknown, missing or of the wrong
    type (or a time without a zone, a version below 1, a number that is not finite, an
    allocation, which only the allocations service sets); else every field beyond its
    bound, the times against "now" included; else the notional ``quantity * price``
    (NEW and AMEND; the multiplier is the validator's).
    """
    document = case.document(written_at)
    problems = {name for name in document if name not in FIELD_TYPES}
    problems |= {name for name in REQUIRED if name not in document}
    values: dict[str, Any] = {}
    for name, value in document.items():
        if name not in FIELD_TYPES:
            continue
        ok, typed = _typed(name, value, case.decimals_as)
        if not ok:
            problems.add(name)
        else:
            values[name] = typed
    for name in ("trade_time", "ingest_time"):
        time = values.get(name)
        if time is None:
            continue
        if time.utcoffset() is None:
            problems.add(name)
            continue
        try:
            time.astimezone(dt.UTC)
        except OverflowError:
            problems.add(name)
    if isinstance(values.get("version"), int) and values["version"] < 1:
        problems.add("version")
    for name in ("quantity", "price"):
        if name in values and not values[name].is_finite():
            problems.add(name)
    if values.get("trade_id") == "":
        problems.add("trade_id")
    if values.get("allocation") is not None:
        problems.add("allocation")
    if problems:
        return Refusal(frozenset(problems), bounds=False)
    return Refusal(frozenset(_bound_problems(values, now)), bounds=True)


def _bound_problems(values: dict[str, Any], now: dt.datetime) -> set[str]:
    cancel = values["event_type"] == "CANCEL"
    checks = {
        "trade_id": is_identifier(values["trade_id"]),
        "version": values["version"] <= 2**63 - 1,
        "account": is_identifier(values["account"], may_be_empty=cancel),
        "instrument": is_identifier(values["instrument"], may_be_empty=cancel),
        "quantity": is_bounded_decimal(values["quantity"], Decimal("1E+12")),
        "price": is_bounded_decimal(values["price"], Decimal("1E+9")),
        "currency": values["currency"] in iso_currencies() or (cancel and values["currency"] == ""),
        "venue": values["venue"] == "" or is_mic_form(values["venue"]),
        "counterparty": is_identifier(values["counterparty"], may_be_empty=cancel),
        "source": is_identifier(values.get("source", "http")),
        "trade_time": cancel or _in_window(values["trade_time"], now),
        "ingest_time": values.get("ingest_time") is None or _in_window(values["ingest_time"], now),
    }
    problems = {name for name, ok in checks.items() if not ok}
    if problems or cancel:
        return problems
    with decimal.localcontext(RULES_CONTEXT):
        notional = abs(values["quantity"] * values["price"])
    return {"notional"} if notional > notional_bound(values["currency"]) else set()


def _in_window(time: dt.datetime, now: dt.datetime) -> bool:
    return now - MAX_TRADE_AGE <= time <= now + FUTURE_TOLERANCE
