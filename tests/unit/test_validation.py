from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tradeflux.domain.bounds import parse_notional_bounds
from tradeflux.domain.codes import RejectReason
from tradeflux.domain.refdata import RefData
from tradeflux.domain.schemas import Account, Counterparty, EnrichedTrade, Instrument
from tradeflux.domain.validation import (
    Accepted,
    Duplicate,
    Outcome,
    Rejected,
    TradeState,
    validate,
)

UTC = dt.UTC
NOW = dt.datetime(2025, 11, 26, 15, 0, tzinfo=UTC)  # Wednesday before Thanksgiving
TRADE_TIME = "2025-11-26T14:30:00Z"

REFDATA = RefData(
    instruments={
        i.instrument_id: i
        for i in [
            Instrument(instrument_id="ACME.XNYS", isin="US0378331005", symbol="ACME",
                       currency="USD", mic="XNYS", settlement_days=1),
            Instrument(instrument_id="FUT.XNYS", isin="US5949181045", symbol="FUT",
                       currency="USD", mic="XNYS", tick_size=Decimal("0.25"),
                       multiplier=Decimal(50), settlement_days=1),
            Instrument(instrument_id="7203.XTKS", isin="JP3633400001", symbol="7203",
                       currency="JPY", mic="XTKS", lot_size=Decimal(100), tick_size=Decimal(1)),
            Instrument(instrument_id="OLD.XNYS", isin="US0378331005", symbol="OLD",
                       currency="USD", mic="XNYS", active=False),
        ]
    },
    accounts={
        a.account_id: a
        for a in [
            Account(account_id="ACC-1", book="EQ-US", legal_entity="TFX LLC", base_currency="USD"),
            Account(account_id="ACC-2", book="EQ-EU", legal_entity="TFX SE", base_currency="EUR"),
            Account(account_id="ACC-S", book="EQ-US", legal_entity="TFX LLC",
                    base_currency="USD", status="SUSPENDED"),
        ]
    },
    counterparties={
        c.counterparty_id: c
        for c in [
            Counterparty(counterparty_id="CP-1", lei="HWUPKR0MPOU8FGXBT394", name="Harbour"),
            Counterparty(counterparty_id="CP-X", lei="7LTWFZYICNSX8D621K86", name="Gone",
                         active=False),
        ]
    },
)  # fmt: skip


def raw(**changes: Any) -> bytes:
    """A raw NEW of 100 ACME at 10.25, changed by ``changes`` (None removes a field)."""
    event: dict[str, Any] = {
        "event_type": "NEW",
        "trade_id": "T-1",
        "version": 1,
        "account": "ACC-1",
        "instrument": "ACME.XNYS",
        "side": "BUY",
        "quantity": "100",
        "price": "10.25",
        "currency": "USD",
        "venue": "XNYS",
        "counterparty": "CP-1",
        "trade_time": TRADE_TIME,
        "source": "fix",
    }
    event.update(changes)
    return msgspec.json.encode({k: v for k, v in event.items() if v is not None})


def accepted(outcome: Outcome) -> Accepted:
    assert isinstance(outcome, Accepted), outcome
    return outcome


def booked(**changes: Any) -> TradeState:
    """The state after the NEW of ``raw(**changes)`` was accepted."""
    return accepted(validate(raw(**changes), NOW, None, REFDATA)).new_state


def test_a_valid_new_is_enriched_with_refdata_dates_and_notional() -> None:
    outcome = accepted(validate(raw(), NOW, None, REFDATA))
    (event,) = outcome.events
    assert event == EnrichedTrade(
        event_type="NEW",
        trade_id="T-1",
        version=1,
        account="ACC-1",
        instrument="ACME.XNYS",
        side="BUY",
        quantity=Decimal(100),
        price=Decimal("10.25"),
        currency="USD",
        venue="XNYS",
        counterparty="CP-1",
        trade_time=dt.datetime(2025, 11, 26, 14, 30, tzinfo=UTC),
        source="fix",
        ingest_time=NOW,
        isin="US0378331005",
        symbol="ACME",
        mic="XNYS",
        multiplier=Decimal(1),
        book="EQ-US",
        legal_entity="TFX LLC",
        base_currency="USD",
        counterparty_lei="HWUPKR0MPOU8FGXBT394",
        notional=Decimal("1025.00"),
        trade_date=dt.date(2025, 11, 26),
        settlement_date=dt.date(2025, 11, 28),  # T+1 over Thanksgiving
    )
    assert outcome.new_state == TradeState(version=1, cancelled=False, effective=event)


def test_notional_includes_the_multiplier() -> None:
    outcome = accepted(
        validate(raw(instrument="FUT.XNYS", quantity="3", price="4500.25"), NOW, None, REFDATA)
    )
    assert outcome.events[0].notional == Decimal("675037.50")


def test_trade_date_is_in_the_venue_time_zone_and_times_are_kept_in_utc() -> None:
    # 03:00 UTC on the 27th is 22:00 on the 26th in New York
    late = raw(trade_time="2025-11-26T22:00:00-05:00")
    outcome = accepted(
        validate(late, dt.datetime(2025, 11, 27, 3, 0, 1, tzinfo=UTC), None, REFDATA)
    )
    (event,) = outcome.events
    assert event.trade_time == dt.datetime(2025, 11, 27, 3, 0, tzinfo=UTC)
    assert event.trade_time.utcoffset() == dt.timedelta(0)
    assert (event.trade_date, event.settlement_date) == (
        dt.date(2025, 11, 26),
        dt.date(2025, 11, 28),
    )


def test_settlement_uses_the_instrument_calendar_and_cycle() -> None:
    tokyo = raw(
        instrument="7203.XTKS",
        currency="JPY",
        quantity="200",
        price="2891",
        trade_time="2025-05-02T01:00:00Z",
    )
    (event,) = accepted(validate(tokyo, NOW, None, REFDATA)).events
    assert (event.trade_date, event.settlement_date) == (dt.date(2025, 5, 2), dt.date(2025, 5, 8))


def test_the_ingest_time_of_the_event_is_kept_when_it_has_one() -> None:
    (event,) = accepted(
        validate(raw(ingest_time="2025-11-26T14:30:01Z"), NOW, None, REFDATA)
    ).events
    assert event.ingest_time == dt.datetime(2025, 11, 26, 14, 30, 1, tzinfo=UTC)


# ---- every reason, and the order of checks ------------------------------------------

STATE_V2 = TradeState(version=2, cancelled=False, effective=booked().effective)
CANCELLED_V2 = TradeState(version=2, cancelled=True, effective=booked().effective)

REJECTS: list[tuple[RejectReason, bytes, TradeState | None]] = [
    (RejectReason.SCHEMA_INVALID, b"{not json", None),
    (RejectReason.SCHEMA_INVALID, b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
    (RejectReason.SCHEMA_INVALID, b"[" * 100_000 + b"]" * 100_000, None),
    (RejectReason.SCHEMA_INVALID, raw(quantity=None), None),
    (RejectReason.SCHEMA_INVALID, raw(version="1"), None),
    (RejectReason.SCHEMA_INVALID, raw(event_type="FILL"), None),
    (RejectReason.SCHEMA_INVALID, raw(side="SHORT"), None),
    (RejectReason.SCHEMA_INVALID, raw(trade_time="2025-11-26T14:30:00"), None),
    (RejectReason.SCHEMA_INVALID, raw(ingest_time="2025-11-26T14:30:00"), None),
    (RejectReason.SCHEMA_INVALID, raw(version=0), None),
    (RejectReason.SCHEMA_INVALID, raw(quantity="NaN"), None),
    (RejectReason.SCHEMA_INVALID, raw(price="Infinity"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(version=2**70), STATE_V2),
    (RejectReason.OUT_OF_BOUNDS, raw(event_type="CANCEL", version=2**63), STATE_V2),
    (RejectReason.OUT_OF_BOUNDS, raw(quantity="1E+27"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(quantity="1000000000000"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(price="10.123456789"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(price="1234567890.12345678901"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(trade_id="T\x00-1"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(trade_id="T" * 65), None),
    (RejectReason.OUT_OF_BOUNDS, raw(account="ACC|1", instrument="NOPE"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(currency="XYZ"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(venue="xnys"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(ingest_time="2020-01-01T00:00:00Z"), None),
    (RejectReason.STALE_VERSION, raw(event_type="AMEND", version=1), STATE_V2),
    (RejectReason.TRADE_EXISTS, raw(version=3), STATE_V2),
    (RejectReason.TRADE_EXISTS, raw(version=3), CANCELLED_V2),
    (RejectReason.UNKNOWN_TRADE, raw(event_type="AMEND", version=2), None),
    (RejectReason.UNKNOWN_TRADE, raw(event_type="CANCEL", version=2), None),
    (RejectReason.TRADE_CANCELLED, raw(event_type="AMEND", version=3), CANCELLED_V2),
    (RejectReason.TRADE_CANCELLED, raw(event_type="CANCEL", version=3), CANCELLED_V2),
    (RejectReason.UNKNOWN_INSTRUMENT, raw(instrument="NOPE", quantity="-1"), None),
    (RejectReason.INSTRUMENT_INACTIVE, raw(instrument="OLD.XNYS", account="NOPE"), None),
    (RejectReason.UNKNOWN_ACCOUNT, raw(account="NOPE", counterparty="NOPE"), None),
    (RejectReason.ACCOUNT_INACTIVE, raw(account="ACC-S", counterparty="CP-X"), None),
    (RejectReason.UNKNOWN_COUNTERPARTY, raw(counterparty="NOPE", quantity="0"), None),
    (RejectReason.COUNTERPARTY_INACTIVE, raw(counterparty="CP-X", quantity="0"), None),
    (RejectReason.NON_POSITIVE_QUANTITY, raw(quantity="0", price="-1"), None),
    (RejectReason.NON_POSITIVE_QUANTITY, raw(quantity="-100"), None),
    (RejectReason.ODD_LOT, raw(instrument="7203.XTKS", quantity="150", price="0"), None),
    (RejectReason.ODD_LOT, raw(quantity="0.5"), None),
    (RejectReason.NON_POSITIVE_PRICE, raw(price="0", currency="EUR"), None),
    (RejectReason.OFF_TICK, raw(price="10.255", currency="EUR"), None),
    (RejectReason.OFF_TICK, raw(instrument="FUT.XNYS", price="4500.10"), None),
    (RejectReason.CURRENCY_MISMATCH, raw(currency="EUR", trade_time="2030-01-01T00:00:00Z"), None),
    (RejectReason.FUTURE_TRADE_TIME, raw(trade_time="2025-11-26T15:00:05.001Z"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(trade_time="1999-12-31T12:00:00Z"), None),  # 400 days
    (RejectReason.OUT_OF_BOUNDS, raw(trade_time="2024-10-22T14:59:59Z"), None),
    (RejectReason.OUT_OF_BOUNDS, raw(quantity="999999999999", price="10000.00"), None),
]  # fmt: skip


@pytest.mark.parametrize(
    "reason,record,state", REJECTS, ids=[f"{i}-{case[0].value}" for i, case in enumerate(REJECTS)]
)
def test_the_first_failing_check_decides_the_reason(
    reason: RejectReason, record: bytes, state: TradeState | None
) -> None:
    outcome = validate(record, NOW, state, REFDATA)
    assert isinstance(outcome, Rejected), outcome
    assert outcome.reason == reason, outcome.detail


def test_every_reject_reason_is_triggered_by_a_case() -> None:
    assert {case[0] for case in REJECTS} == set(RejectReason)


def test_a_reject_names_the_trade_id_even_when_the_schema_is_invalid() -> None:
    outcome = validate(raw(quantity=None), NOW, None, REFDATA)
    assert isinstance(outcome, Rejected) and outcome.trade_id == "T-1"
    unreadable = validate(b"\xff\x00", NOW, None, REFDATA)
    assert isinstance(unreadable, Rejected) and unreadable.trade_id is None
    assert unreadable.reason == RejectReason.SCHEMA_INVALID


def test_a_trade_time_within_the_tolerance_is_accepted() -> None:
    accepted(validate(raw(trade_time="2025-11-26T15:00:05Z"), NOW, None, REFDATA))


def test_the_notional_bounds_are_a_parameter() -> None:
    record = raw(quantity="100000", price="10.25")  # 1,025,000 USD
    accepted(validate(record, NOW, None, REFDATA))
    outcome = validate(record, NOW, None, REFDATA, parse_notional_bounds("USD=1E+6"))
    assert isinstance(outcome, Rejected) and outcome.reason == RejectReason.OUT_OF_BOUNDS
    assert outcome.detail == (
        "notional 1025000.00 USD is over the bound 1E+6 USD (bound: |notional| <= 1E+6 USD)"
    )


def test_quantity_and_price_may_come_as_json_numbers() -> None:
    record = raw(quantity=200, price=10.5)
    (event,) = accepted(validate(record, NOW, None, REFDATA)).events
    assert (event.quantity, event.price) == (Decimal(200), Decimal("10.5"))


# ---- versions, duplicates -----------------------------------------------------------


def test_the_same_version_again_is_a_duplicate_whatever_its_fields_say() -> None:
    state = booked()
    assert validate(raw(), NOW, state, REFDATA) == Duplicate("T-1")
    odd = raw(event_type="CANCEL", quantity="999", account="NOPE")
    assert validate(odd, NOW, state, REFDATA) == Duplicate("T-1")


def test_a_redelivered_cancel_is_a_duplicate() -> None:
    cancelled = accepted(
        validate(raw(event_type="CANCEL", version=2), NOW, booked(), REFDATA)
    ).new_state
    assert validate(raw(event_type="CANCEL", version=2), NOW, cancelled, REFDATA) == Duplicate(
        "T-1"
    )


def test_a_schema_error_is_rejected_before_a_duplicate_is_seen() -> None:
    outcome = validate(raw(version=1, trade_time="2025-11-26T14:30:00"), NOW, booked(), REFDATA)
    assert isinstance(outcome, Rejected) and outcome.reason == RejectReason.SCHEMA_INVALID


# ---- cancel and amend ---------------------------------------------------------------


def test_a_cancel_emits_the_effective_trade_with_the_cancel_version_and_origin() -> None:
    state = booked()
    cancel = raw(event_type="CANCEL", version=2, source="http", ingest_time="2025-11-26T14:59:00Z")
    outcome = accepted(validate(cancel, NOW, state, REFDATA))
    expected = msgspec.structs.replace(
        state.effective,
        event_type="CANCEL",
        version=2,
        source="http",
        ingest_time=dt.datetime(2025, 11, 26, 14, 59, tzinfo=UTC),
    )
    assert outcome.events == [expected]
    assert outcome.new_state == TradeState(version=2, cancelled=True, effective=expected)


def test_a_cancel_is_not_checked_against_refdata_or_values() -> None:
    cancel = raw(
        event_type="CANCEL",
        version=2,
        instrument="NOPE",
        quantity="0",
        trade_time="2031-01-01T00:00:00Z",
    )
    (event,) = accepted(validate(cancel, NOW, booked(), REFDATA)).events
    assert (event.instrument, event.quantity) == ("ACME.XNYS", Decimal(100))


def test_an_amend_in_place_is_emitted_as_an_amend_with_the_new_values() -> None:
    amend = raw(event_type="AMEND", version=2, quantity="150", price="10.30")
    outcome = accepted(validate(amend, NOW, booked(), REFDATA))
    (event,) = outcome.events
    assert (event.event_type, event.version, event.quantity, event.price) == (
        "AMEND",
        2,
        Decimal(150),
        Decimal("10.30"),
    )
    assert event.notional == Decimal("1545.00")
    assert outcome.new_state == TradeState(version=2, cancelled=False, effective=event)


def test_an_amend_may_skip_versions() -> None:
    accepted(validate(raw(event_type="AMEND", version=7), NOW, booked(), REFDATA))


def test_an_amend_that_moves_the_account_is_a_cancel_of_the_old_then_a_new() -> None:
    state = booked()
    amend = raw(event_type="AMEND", version=2, account="ACC-2", quantity="300", source="http")
    outcome = accepted(validate(amend, NOW, state, REFDATA))
    cancel, new = outcome.events
    assert cancel == msgspec.structs.replace(
        state.effective, event_type="CANCEL", version=2, source="http", ingest_time=NOW
    )
    assert (new.event_type, new.version, new.account, new.quantity) == (
        "NEW",
        2,
        "ACC-2",
        Decimal(300),
    )
    assert (new.book, new.base_currency) == ("EQ-EU", "EUR")
    assert outcome.new_state == TradeState(version=2, cancelled=False, effective=new)


def test_an_amend_that_moves_the_instrument_is_a_cancel_then_a_new() -> None:
    amend = raw(event_type="AMEND", version=2, instrument="FUT.XNYS", quantity="2", price="4500.25")
    cancel, new = accepted(validate(amend, NOW, booked(), REFDATA)).events
    assert (cancel.event_type, cancel.instrument) == ("CANCEL", "ACME.XNYS")
    assert (new.event_type, new.instrument, new.notional) == (
        "NEW",
        "FUT.XNYS",
        Decimal("450025.00"),
    )


def test_an_amend_is_checked_like_a_new() -> None:
    outcome = validate(raw(event_type="AMEND", version=2, price="10.001"), NOW, booked(), REFDATA)
    assert isinstance(outcome, Rejected) and outcome.reason == RejectReason.OFF_TICK


def test_a_moved_trade_amended_again_compares_with_its_new_account() -> None:
    moved = accepted(
        validate(raw(event_type="AMEND", version=2, account="ACC-2"), NOW, booked(), REFDATA)
    )
    amend_again = raw(event_type="AMEND", version=3, account="ACC-2", quantity="50")
    again = accepted(validate(amend_again, NOW, moved.new_state, REFDATA))
    assert [e.event_type for e in again.events] == ["AMEND"]


def test_trade_state_round_trips_through_messagepack() -> None:
    state = booked(trade_time="2025-11-26T09:30:00-05:00")
    data = msgspec.msgpack.encode(state)
    assert msgspec.msgpack.decode(data, type=TradeState) == state


def test_the_validator_service_rejects_deep_nesting_and_a_huge_version_with_a_reason() -> None:
    from tradeflux.services import validator
    from tradeflux.stream.harness import TestDriver

    driver = TestDriver(validator.SERVICE, tables={"instruments": {}, "accounts": {},
                                                   "counterparties": {}})  # fmt: skip
    deep = b'{"trade_id":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    out = driver.send([("T-1", deep), ("T-2", raw(trade_id="T-2", version=2**70))])
    assert [o.headers["tf.reason"] for o in out] == ["SCHEMA_INVALID", "OUT_OF_BOUNDS"]
    assert driver.store("trades") == {}
