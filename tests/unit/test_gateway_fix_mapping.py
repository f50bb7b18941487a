"""FIX 4.4 drop-copy messages to TradeEvents (gateway.fix_mapping), no engine, no broker."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeflux.gateway.fix_mapping import (
    SEQ_BITS,
    FixFields,
    FixMappingError,
    change_version,
    parse_utc_timestamp,
    to_trade_event,
)

RECEIVED = dt.datetime(2026, 11, 24, 10, 0, 1, 500000, tzinfo=dt.UTC)
SENT = dt.datetime(2026, 11, 24, 10, 0, 1, 250000, tzinfo=dt.UTC)
FILL = {
    1: "ACC-1",
    15: "EUR",
    17: "E-1",
    30: "XETR",
    31: "101.25",
    32: "300",
    48: "DE0007164600",
    54: "2",
    55: "SAP",
    60: "20261124-10:00:00.125",
    150: "F",
}
CONTRA = (("BANK-A", 1), ("CP-9", 17))


def er(fields: dict[int, str], seq: int = 7, parties=CONTRA, sent=SENT) -> FixFields:
    return FixFields(msg_type="8", seq_num=seq, sent_at=sent, fields=fields, parties=parties)


def test_fill_becomes_new_version_1_with_every_field():
    event = to_trade_event(er(FILL), RECEIVED)
    assert event is not None
    assert event.event_type == "NEW"
    assert event.trade_id == "E-1"
    assert event.version == 1
    assert event.account == "ACC-1"
    assert event.instrument == "DE0007164600"
    assert event.side == "SELL"
    assert event.quantity == Decimal("300")
    assert event.price == Decimal("101.25")
    assert event.currency == "EUR"
    assert event.venue == "XETR"
    assert event.counterparty == "CP-9"
    assert event.trade_time == dt.datetime(2026, 11, 24, 10, 0, 0, 125000, tzinfo=dt.UTC)
    assert event.source == "fix"
    assert event.ingest_time == RECEIVED


def test_correction_amends_the_trade_of_exec_ref_id_with_a_sending_time_version():
    fields = {**FILL, 150: "G", 17: "E-2", 19: "E-1", 32: "250"}
    event = to_trade_event(er(fields, seq=9), RECEIVED)
    assert event is not None
    assert (event.event_type, event.trade_id, event.quantity) == ("AMEND", "E-1", Decimal(250))
    assert event.version == change_version(SENT, 9)
    assert event.version == (1795514401250 << SEQ_BITS) | 9


def test_cancel_needs_only_the_trade_id():
    event = to_trade_event(er({150: "H", 17: "E-3", 19: "E-1", 54: "1"}, parties=()), RECEIVED)
    assert event is not None
    assert (event.event_type, event.trade_id, event.side) == ("CANCEL", "E-1", "BUY")
    assert (event.account, event.quantity, event.counterparty) == ("", Decimal(0), "")
    assert event.trade_time == SENT


def test_symbol_is_the_instrument_without_a_security_id():
    fields = {k: v for k, v in FILL.items() if k != 48}
    event = to_trade_event(er(fields), RECEIVED)
    assert event is not None and event.instrument == "SAP"


def test_order_acknowledgement_is_no_trade():
    assert to_trade_event(er({**FILL, 150: "0"}), RECEIVED) is None


@pytest.mark.parametrize(
    ("change", "tag", "kind"),
    [
        ({1: ""}, 1, "missing"),
        ({15: ""}, 15, "missing"),
        ({60: ""}, 60, "missing"),
        ({32: "abc"}, 32, "value"),
        ({31: "Infinity"}, 31, "value"),
        ({54: "8"}, 54, "value"),
        ({60: "2026-11-24T10:00:00"}, 60, "value"),
        ({150: "G", 19: ""}, 19, "missing"),
    ],
)
def test_fill_without_what_a_trade_needs_is_refused_naming_the_tag(change, tag, kind):
    fields = {k: v for k, v in {**FILL, **change}.items() if v}
    with pytest.raises(FixMappingError) as caught:
        to_trade_event(er(fields), RECEIVED)
    assert (caught.value.tag, caught.value.kind) == (tag, kind)


def test_fill_without_a_contra_firm_is_refused():
    with pytest.raises(FixMappingError) as caught:
        to_trade_event(er(FILL, parties=(("BANK-A", 1),)), RECEIVED)
    assert (caught.value.tag, caught.value.kind) == (448, "missing")


def test_trade_capture_report_new_replace_cancel():
    report = {
        571: "TR-1",
        487: "0",
        1: "ACC-2",
        15: "USD",
        31: "10.5",
        32: "7",
        54: "1",
        55: "AAPL",
        60: "20261124-09:30:00",
    }
    new = to_trade_event(FixFields("AE", 3, SENT, report, CONTRA), RECEIVED)
    replace = to_trade_event(
        FixFields("AE", 4, SENT, {**report, 571: "TR-2", 572: "TR-1", 487: "2"}, CONTRA), RECEIVED
    )
    cancel = to_trade_event(
        FixFields("AE", 5, SENT, {**report, 571: "TR-3", 572: "TR-1", 487: "1"}, CONTRA), RECEIVED
    )
    assert new is not None and replace is not None and cancel is not None
    assert [(e.event_type, e.trade_id) for e in (new, replace, cancel)] == [
        ("NEW", "TR-1"),
        ("AMEND", "TR-1"),
        ("CANCEL", "TR-1"),
    ]
    assert new.version == 1 < replace.version < cancel.version
    assert (new.instrument, new.venue, new.side) == ("AAPL", "", "BUY")


def test_release_report_is_no_trade():
    assert to_trade_event(FixFields("AE", 3, SENT, {571: "TR-1", 487: "3"}), RECEIVED) is None


def test_other_message_types_are_refused():
    with pytest.raises(FixMappingError):
        to_trade_event(FixFields("D", 3, SENT, {}), RECEIVED)


def test_utc_timestamps_with_and_without_fractions():
    assert parse_utc_timestamp("20261124-10:00:00") == dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC)
    assert parse_utc_timestamp("20261124-10:00:00.123456789") == dt.datetime(
        2026, 11, 24, 10, 0, 0, 123456, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError):
        parse_utc_timestamp("20261124-10:00:00.12x")


@given(
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=1, max_value=(1 << SEQ_BITS) - 2),
    st.integers(min_value=1, max_value=1000),
)
def test_versions_grow_with_sending_time_then_sequence_number(sent, later_ms, seq, more):
    """A later message of the session never gets a lower version, within one ms neither."""
    sent = sent.replace(microsecond=sent.microsecond // 1000 * 1000)
    later = sent + dt.timedelta(milliseconds=later_ms)
    next_seq = min(seq + more, (1 << SEQ_BITS) - 1)
    assert change_version(later, next_seq) > change_version(sent, seq)
    assert change_version(sent, seq) < 1 << 63


@pytest.mark.parametrize(
    ("change", "tag", "reason"),
    [
        ({32: "1E+27"}, 32, "quantity 1E+27 is not below 1E+12 in magnitude"),
        ({31: "101.123456789"}, 31, "price 101.123456789 has 9 decimal places; at most 8"),
        ({1: "ACC|1"}, 1, "account holds the character '|'"),
        ({15: "EURO"}, 15, "currency 'EURO' is no ISO 4217 code"),
        ({60: "20240101-10:00:00"}, 60, "trade_time 2024-01-01T10:00:00+00:00 is more than 400"),
        ({32: "999999999999", 31: "100000"}, 32, "notional 99999999999900000 EUR is over"),
    ],
)
def test_a_field_beyond_its_bound_is_rejected_naming_its_tag(change, tag, reason):
    with pytest.raises(FixMappingError) as rejected:
        to_trade_event(er({**FILL, **change}), RECEIVED)
    assert rejected.value.tag == tag
    assert rejected.value.reason.startswith(reason)
