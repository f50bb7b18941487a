"""Trade events posted as JSON (gateway.ingest): every error of every record, exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tradeflux.gateway.ingest import MalformedJson, RecordError, decode_body, parse_trade_events

NOW = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
GOOD = {
    "event_type": "NEW",
    "trade_id": "T-1",
    "version": 1,
    "account": "ACC-1",
    "instrument": "DE0007164600",
    "side": "BUY",
    "quantity": "100",
    "price": 101.25,
    "currency": "EUR",
    "venue": "XETR",
    "counterparty": "CP-1",
    "trade_time": "2026-11-24T09:59:59.5+01:00",
}


def parse(body: bytes):
    return parse_trade_events(decode_body(body), NOW)


def test_one_object_and_numbers_as_exact_decimals():
    events, errors = parse(b'{"event_type":"NEW","trade_id":"T-1","version":1,"account":"A",'
                           b'"instrument":"I","side":"SELL","quantity":0.1,"price":"101.250",'
                           b'"currency":"EUR","venue":"XETR","counterparty":"C",'
                           b'"trade_time":"2026-11-24T09:00:00Z"}')  # fmt: skip
    assert errors == []
    assert events[0].quantity == Decimal("0.1")
    assert str(events[0].price) == "101.250"
    assert (events[0].source, events[0].ingest_time) == ("http", NOW)


def test_given_source_and_ingest_time_are_kept():
    events, errors = parse_trade_events(
        [{**GOOD, "source": "ops-desk", "ingest_time": "2026-11-24T08:00:00Z"}], NOW
    )
    assert errors == []
    assert events[0].source == "ops-desk"
    assert events[0].ingest_time == dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)


def test_every_error_of_every_record_in_order_and_nothing_accepted():
    bad_types = {**GOOD, "version": "1", "quantity": True, "side": "LONG", "trade_time": 5}
    unknown = {**GOOD, "qty": 5, "acount": "A"}
    missing = {k: v for k, v in GOOD.items() if k not in ("price", "trade_id")}
    events, errors = parse_trade_events([GOOD, bad_types, unknown, missing, 7], NOW)
    assert events == []
    ts = 'expected an RFC 3339 timestamp with a time zone, such as "2026-11-24T10:15:00.125Z"'
    number = 'expected a decimal number, as a JSON number or a string such as "100.25"'
    assert errors == [
        RecordError(1, "version", "expected a whole number"),
        RecordError(1, "side", "expected one of BUY, SELL"),
        RecordError(1, "quantity", number),
        RecordError(1, "trade_time", ts),
        RecordError(2, "qty", "unknown field"),
        RecordError(2, "acount", "unknown field"),
        RecordError(3, "trade_id", "required field missing"),
        RecordError(3, "price", "required field missing"),
        RecordError(4, None, "expected a trade event object"),
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"trade_time": "2026-11-24T10:00:00"}, "trade_time", "timestamp without a time zone; "
         'add one, such as "2026-11-24T10:15:00.125Z"'),
        ({"version": 0}, "version", "must be 1 or more"),
        ({"trade_id": ""}, "trade_id", "must not be empty"),
        ({"price": "NaN"}, "price", "expected a finite number"),
        ({"event_type": "NEWS"}, "event_type", "expected one of NEW, AMEND, CANCEL"),
        ({"ingest_time": "yesterday"}, "ingest_time", "expected an RFC 3339 timestamp with a "
         'time zone, such as "2026-11-24T10:15:00.125Z"'),
    ],
)  # fmt: skip
def test_schema_rules_of_the_validator_are_checked_at_the_edge(change, field, message):
    assert parse_trade_events({**GOOD, **change}, NOW) == ([], [RecordError(0, field, message)])


def test_not_an_object_nor_a_list_and_the_empty_list():
    assert parse_trade_events("x", NOW) == (
        [],
        [RecordError(None, None, "expected a trade event object or a list of trade events")],
    )
    assert parse_trade_events([], NOW) == (
        [],
        [RecordError(None, None, "empty list: send at least one trade event")],
    )


def test_malformed_json_says_where():
    with pytest.raises(MalformedJson, match=r"^JSON is malformed: trailing comma in object"):
        decode_body(b'{"a": 1,}')


@pytest.mark.parametrize("allocation", [{"kind": "CHILD", "alloc_id": "A-1"}, "x", {}, 0])
def test_a_sender_cannot_pass_a_trade_off_as_an_allocations_booking(allocation):
    # `allocation` exempts a booking from the tick check: only the allocations service,
    # writing to trades.raw under its own principal, may set it.
    events, errors = parse_trade_events([GOOD, {**GOOD, "allocation": allocation}], NOW)
    assert events == []
    assert [(e.index, e.field) for e in errors] == [(1, "allocation")]
    assert "allocations service" in errors[0].message


def test_allocation_null_as_our_own_encoder_writes_it_is_no_allocation():
    events, errors = parse_trade_events([{**GOOD, "allocation": None}], NOW)
    assert errors == []
    assert events[0].allocation is None


def test_the_gateways_schema_does_not_offer_the_internal_fields():
    from tradeflux.gateway.openapi import trade_event_schema

    schema = trade_event_schema()
    assert "allocation" not in schema["properties"]
    assert schema["additionalProperties"] is False
