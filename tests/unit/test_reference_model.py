"""The reference model against small cases computed by hand from docs/domain-rules.md."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.support.reference import RawRecord, positions_from, run_reference
from tradeflux.domain.codes import RejectReason
from tradeflux.domain.schemas import (
    Account,
    Counterparty,
    FxRate,
    Instrument,
    Position,
    Price,
)

D = Decimal
UTC = dt.UTC
T0 = dt.datetime(2025, 3, 3, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York

INSTRUMENTS = [
    Instrument(
        instrument_id="AAPL.XNYS", isin="US0378331005", symbol="AAPL", currency="USD",
        mic="XNYS", settlement_days=1,
    ),
    Instrument(
        instrument_id="VOD.XLON", isin="GB00BH4HKS39", symbol="VOD", currency="GBP",
        mic="XLON", tick_size=D("0.05"),
    ),
    Instrument(
        instrument_id="7203.XTKS", isin="JP3633400001", symbol="7203", currency="JPY",
        mic="XTKS", lot_size=D(100), tick_size=D(1),
    ),
    Instrument(
        instrument_id="MINI.XNYS", isin="US0000000001", symbol="MINI", currency="USD",
        mic="XNYS", tick_size=D("0.25"), multiplier=D(10), settlement_days=1,
    ),
    Instrument(
        instrument_id="DEAD.XNYS", isin="US0000000002", symbol="DEAD", currency="USD",
        mic="XNYS", active=False,
    ),
    Instrument(
        instrument_id="ZERO.XNYS", isin="US0000000003", symbol="ZERO", currency="USD",
        mic="XNYS", lot_size=D(0), tick_size=D(0),
    ),
    Instrument(
        instrument_id="NOCAL.XFOO", isin="US0000000004", symbol="NOCAL", currency="USD",
        mic="XFOO",
    ),
    Instrument(
        instrument_id="SPOT.XNYS", isin="US0000000005", symbol="SPOT", currency="USD",
        mic="XNYS", settlement_days=0,
    ),
]  # fmt: skip
ACCOUNTS = [
    Account(account_id="ACC-US", book="EQ-US", legal_entity="TF LLC", base_currency="USD"),
    Account(account_id="ACC-EU", book="EQ-EU", legal_entity="TF SE", base_currency="EUR"),
    Account(
        account_id="ACC-OLD", book="EQ-US", legal_entity="TF LLC", base_currency="USD",
        status="CLOSED",
    ),
]  # fmt: skip
COUNTERPARTIES = [
    Counterparty(counterparty_id="CP-1", lei="5299007W3X0B5CI8IV57", name="Harbourview"),
    Counterparty(counterparty_id="CP-X", lei="969500HAJ4A1V04TDA25", name="Gone", active=False),
]
FX = [
    FxRate(pair="GBPUSD", base="GBP", quote="USD", rate=D("1.25"), time=T0),
    FxRate(pair="EURUSD", base="EUR", quote="USD", rate=D("1.10"), time=T0),
    FxRate(pair="USDJPY", base="USD", quote="JPY", rate=D("150"), time=T0),
]


def ms(t: dt.datetime) -> int:
    return int((t - dt.datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_type": "NEW",
        "trade_id": "T1",
        "version": 1,
        "account": "ACC-US",
        "instrument": "AAPL.XNYS",
        "side": "BUY",
        "quantity": "100",
        "price": "10.00",
        "currency": "USD",
        "venue": "XNYS",
        "counterparty": "CP-1",
        "trade_time": T0.isoformat(),
    }
    base.update(overrides)
    if isinstance(base["trade_time"], dt.datetime):
        base["trade_time"] = base["trade_time"].isoformat()
    return base


def raw(received: dt.datetime | None = None, **overrides: Any) -> RawRecord:
    """A trades.raw record; received (its Kafka timestamp) defaults to trade time + 1 s."""
    body = fields(**overrides)
    if received is None:
        received = dt.datetime.fromisoformat(body["trade_time"]) + dt.timedelta(seconds=1)
    return body["trade_id"].encode(), msgspec.json.encode(body), ms(received)


def price(instrument: str, last: str) -> Price:
    return Price(instrument_id=instrument, bid=D(last), ask=D(last), last=D(last), time=T0)


def run(records: list[RawRecord], prices: list[Price] | None = None) -> Any:
    return run_reference(records, INSTRUMENTS, ACCOUNTS, COUNTERPARTIES, prices or [], FX)


# -- validation and enrichment -------------------------------------------------------------


def test_new_trade_is_enriched_with_refdata_dates_and_notional() -> None:
    result = run([raw(quantity="100", price="10.25")])
    assert result.rejected == [] and result.duplicates == 0
    (e,) = result.enriched
    assert (e.event_type, e.trade_id, e.version) == ("NEW", "T1", 1)
    assert e.notional == D("1025.00")
    assert (e.isin, e.symbol, e.mic, e.multiplier) == ("US0378331005", "AAPL", "XNYS", D(1))
    assert (e.book, e.legal_entity, e.base_currency) == ("EQ-US", "TF LLC", "USD")
    assert e.counterparty_lei == "5299007W3X0B5CI8IV57"
    assert e.trade_date == dt.date(2025, 3, 3)
    assert e.settlement_date == dt.date(2025, 3, 4)  # T+1 on XNYS
    assert e.ingest_time == at(1)  # no ingest_time in the event: the record's timestamp
    assert e.source == "kafka"


def test_ingest_time_of_the_event_is_kept() -> None:
    result = run([raw(ingest_time=at(0.5).isoformat(), source="fix")])
    assert result.enriched[0].ingest_time == at(0.5)
    assert result.enriched[0].source == "fix"


@pytest.mark.parametrize(
    ("instrument", "trade_time", "trade_date", "settlement_date"),
    [
        # Friday, T+1 -> Monday
        ("AAPL.XNYS", dt.datetime(2025, 3, 7, 15, 0, tzinfo=UTC), "2025-03-07", "2025-03-10"),
        # 9 January 2025 NYSE was closed (national day of mourning)
        ("AAPL.XNYS", dt.datetime(2025, 1, 8, 15, 0, tzinfo=UTC), "2025-01-08", "2025-01-10"),
        # 23:30 UTC Sunday is 08:30 Monday in Tokyo: dated Monday, T+2
        ("7203.XTKS", dt.datetime(2025, 3, 2, 23, 30, tzinfo=UTC), "2025-03-03", "2025-03-05"),
        # a Saturday trade in London: the 2nd session strictly after is Tuesday
        ("VOD.XLON", dt.datetime(2025, 3, 8, 10, 0, tzinfo=UTC), "2025-03-08", "2025-03-11"),
        # 21:00 UTC is still the same day in New York (16:00 EST)
        ("AAPL.XNYS", dt.datetime(2025, 3, 3, 21, 0, tzinfo=UTC), "2025-03-03", "2025-03-04"),
        # 03:00 UTC Tuesday is Monday evening in New York
        ("AAPL.XNYS", dt.datetime(2025, 3, 4, 3, 0, tzinfo=UTC), "2025-03-03", "2025-03-04"),
        # settlement_days 0: the trade date if a session, else the next session
        ("SPOT.XNYS", dt.datetime(2025, 3, 3, 15, 0, tzinfo=UTC), "2025-03-03", "2025-03-03"),
        ("SPOT.XNYS", dt.datetime(2025, 3, 8, 15, 0, tzinfo=UTC), "2025-03-08", "2025-03-10"),
        # the first datable day
        ("AAPL.XNYS", dt.datetime(2000, 1, 1, 15, 0, tzinfo=UTC), "2000-01-01", "2000-01-03"),
    ],
)
def test_trade_and_settlement_dates_follow_the_venue_calendar(
    instrument: str, trade_time: dt.datetime, trade_date: str, settlement_date: str
) -> None:
    inst = next(i for i in INSTRUMENTS if i.instrument_id == instrument)
    record = raw(
        instrument=instrument, currency=inst.currency, venue=inst.mic, trade_time=trade_time,
        quantity=str(inst.lot_size), price=str(inst.tick_size * 40),
    )  # fmt: skip
    (e,) = run([record]).enriched
    assert e.trade_date == dt.date.fromisoformat(trade_date)
    assert e.settlement_date == dt.date.fromisoformat(settlement_date)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"version": 0}, RejectReason.SCHEMA_INVALID),
        ({"version": "1"}, RejectReason.SCHEMA_INVALID),
        ({"side": "HOLD"}, RejectReason.SCHEMA_INVALID),
        ({"quantity": [1]}, RejectReason.SCHEMA_INVALID),
        ({"trade_time": "2025-03-03T15:00:00"}, RejectReason.SCHEMA_INVALID),  # naive
        ({"ingest_time": "2025-03-03T15:00:00"}, RejectReason.SCHEMA_INVALID),  # naive
        ({"price": "NaN"}, RejectReason.SCHEMA_INVALID),
        ({"quantity": "Infinity"}, RejectReason.SCHEMA_INVALID),
        # the first failing check decides
        ({"instrument": "NOPE", "account": "NOPE"}, RejectReason.UNKNOWN_INSTRUMENT),
        ({"instrument": "DEAD.XNYS", "account": "NOPE"}, RejectReason.INSTRUMENT_INACTIVE),
        ({"account": "NOPE", "counterparty": "NOPE"}, RejectReason.UNKNOWN_ACCOUNT),
        ({"account": "ACC-OLD", "counterparty": "NOPE"}, RejectReason.ACCOUNT_INACTIVE),
        ({"counterparty": "NOPE", "quantity": "0"}, RejectReason.UNKNOWN_COUNTERPARTY),
        ({"counterparty": "CP-X", "quantity": "0"}, RejectReason.COUNTERPARTY_INACTIVE),
        ({"quantity": "0", "price": "0"}, RejectReason.NON_POSITIVE_QUANTITY),
        ({"quantity": "-5", "price": "10.001"}, RejectReason.NON_POSITIVE_QUANTITY),
        ({"quantity": "100.5", "price": "0"}, RejectReason.ODD_LOT),
        ({"price": "0", "currency": "EUR"}, RejectReason.NON_POSITIVE_PRICE),
        ({"price": "-10.00"}, RejectReason.NON_POSITIVE_PRICE),
        ({"price": "10.001", "currency": "EUR"}, RejectReason.OFF_TICK),
        ({"currency": "EUR", "trade_time": at(60)}, RejectReason.CURRENCY_MISMATCH),
        ({"instrument": "7203.XTKS", "currency": "JPY", "quantity": "150", "price": "2000"},
         RejectReason.ODD_LOT),
        ({"instrument": "VOD.XLON", "currency": "GBP", "price": "2.52"}, RejectReason.OFF_TICK),
        # a remainder Decimal cannot compute fails its check
        ({"instrument": "ZERO.XNYS", "quantity": "1", "price": "1.00"}, RejectReason.ODD_LOT),
        # beyond a bound
        ({"quantity": "1E+40"}, RejectReason.OUT_OF_BOUNDS),
        ({"price": "1E+40"}, RejectReason.OUT_OF_BOUNDS),
        ({"version": 2**63}, RejectReason.OUT_OF_BOUNDS),
        ({"account": "ACC\u00e9"}, RejectReason.OUT_OF_BOUNDS),
        ({"venue": "X"}, RejectReason.OUT_OF_BOUNDS),
        ({"trade_time": "1999-12-31T15:00:00Z"}, RejectReason.OUT_OF_BOUNDS),
        # a trade that cannot be dated
        ({"instrument": "NOCAL.XFOO"}, RejectReason.SCHEMA_INVALID),
        ({"trade_time": "0001-01-01T00:00:00+05:00"}, RejectReason.SCHEMA_INVALID),
    ],
)  # fmt: skip
def test_rejects_take_the_reason_of_the_first_failing_check(
    overrides: dict[str, Any], reason: RejectReason
) -> None:
    result = run([raw(received=T0, **overrides)])
    assert result.rejected == [(b"T1", reason)]
    assert result.enriched == [] and result.duplicates == 0


@pytest.mark.parametrize(
    "value", [b"", b"{", b"not json", b'{"event_type": "NEW"}', b"\xff\xfe", b"[]", None]
)
def test_undecodable_records_are_schema_invalid(value: bytes | None) -> None:
    result = run([(b"K", value, ms(T0))])
    assert result.rejected == [(b"K", RejectReason.SCHEMA_INVALID)]


def test_trade_time_up_to_five_seconds_ahead_of_ingest_is_accepted() -> None:
    result = run(
        [
            raw(trade_id="T1", received=T0, trade_time=at(5)),
            raw(trade_id="T2", received=T0, trade_time=at(5.001)),
        ]
    )
    assert [e.trade_id for e in result.enriched] == ["T1"]
    assert result.rejected == [(b"T2", RejectReason.FUTURE_TRADE_TIME)]


def test_duplicate_is_dropped_and_counted_whatever_its_other_fields() -> None:
    first = raw()
    result = run([first, first, raw(price="99.00", received=at(9))])
    assert len(result.enriched) == 1
    assert result.duplicates == 2
    assert result.rejected == []


def test_stale_version_is_rejected_and_an_old_resend_is_stale_not_duplicate() -> None:
    new = raw()
    result = run(
        [
            new,
            raw(event_type="AMEND", version=3, quantity="200", received=at(2)),
            raw(event_type="AMEND", version=2, quantity="300", received=at(3)),
            new,
        ]
    )
    assert [(e.event_type, e.version) for e in result.enriched] == [("NEW", 1), ("AMEND", 3)]
    assert result.rejected == [(b"T1", RejectReason.STALE_VERSION)] * 2
    assert result.duplicates == 0


def test_version_checks_on_trade_state() -> None:
    result = run(
        [
            raw(trade_id="T9", event_type="AMEND", version=2),  # never booked
            raw(trade_id="T9", event_type="CANCEL", version=2),
            raw(trade_id="T1"),
            raw(trade_id="T1", event_type="NEW", version=2),  # NEW again
            raw(trade_id="T1", event_type="CANCEL", version=2, received=at(2)),
            raw(trade_id="T1", event_type="AMEND", version=3, received=at(3)),  # cancelled
            raw(trade_id="T1", event_type="CANCEL", version=4, received=at(4)),  # cancelled
            raw(trade_id="T1", event_type="CANCEL", version=2, received=at(5)),  # duplicate
        ]
    )
    assert result.rejected == [
        (b"T9", RejectReason.UNKNOWN_TRADE),
        (b"T9", RejectReason.UNKNOWN_TRADE),
        (b"T1", RejectReason.TRADE_EXISTS),
        (b"T1", RejectReason.TRADE_CANCELLED),
        (b"T1", RejectReason.TRADE_CANCELLED),
    ]
    assert result.duplicates == 1
    assert [(e.event_type, e.version) for e in result.enriched] == [("NEW", 1), ("CANCEL", 2)]


def test_rejected_amend_leaves_the_trade_as_it_was() -> None:
    result = run(
        [
            raw(),
            raw(event_type="AMEND", version=2, price="10.005", received=at(2)),  # off tick
            raw(event_type="AMEND", version=2, price="10.50", received=at(3)),
        ]
    )
    assert result.rejected == [(b"T1", RejectReason.OFF_TICK)]
    assert [(e.version, e.price) for e in result.enriched] == [(1, D("10.00")), (2, D("10.50"))]


def test_versions_may_skip_numbers() -> None:
    result = run([raw(), raw(event_type="AMEND", version=7, quantity="50", received=at(2))])
    assert [e.version for e in result.enriched] == [1, 7]


# -- positions -----------------------------------------------------------------------------


def test_buys_average_their_cost() -> None:
    result = run(
        [
            raw(trade_id="T1", quantity="100", price="10.00", trade_time=at(0)),
            raw(trade_id="T2", quantity="300", price="12.00", trade_time=at(1)),
        ],
        [price("AAPL.XNYS", "13.00")],
    )
    assert result.positions == {
        "ACC-US|AAPL.XNYS": Position(
            account="ACC-US", instrument="AAPL.XNYS", currency="USD", quantity=D(400),
            avg_cost=D("11.5"), realized_pnl=D(0), multiplier=D(1), trade_count=2,
            last_trade_id="T2", as_of=at(1),
        )
    }  # fmt: skip
    pnl = result.pnl["ACC-US"]
    assert (pnl.realized, pnl.unrealized, pnl.total) == (D("0.00"), D("600.00"), D("600.00"))
    assert (pnl.base_currency, pnl.positions, pnl.missing_marks) == ("USD", 1, ())


def test_selling_through_zero_realizes_then_reopens_at_the_trade_price() -> None:
    result = run(
        [
            raw(trade_id="T1", side="BUY", quantity="100", price="10.00", trade_time=at(0)),
            raw(trade_id="T2", side="SELL", quantity="150", price="12.00", trade_time=at(1)),
            raw(trade_id="T3", side="BUY", quantity="20", price="11.00", trade_time=at(2)),
        ],
        [price("AAPL.XNYS", "11.50")],
    )
    pos = result.positions["ACC-US|AAPL.XNYS"]
    # T2: closes 100 at +2.00 = 200, leaves -50 at 12.00; T3: covers 20 at +1.00 = 20
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(-30), D("12.00"), D("220.00"))
    pnl = result.pnl["ACC-US"]
    # (11.50 - 12.00) * -30 = 15.00
    assert (pnl.realized, pnl.unrealized, pnl.total) == (D("220.00"), D("15.00"), D("235.00"))


def test_fold_order_is_trade_time_then_trade_id_not_arrival() -> None:
    result = run(
        [
            raw(trade_id="T3", side="SELL", quantity="100", price="12.00", trade_time=at(5)),
            raw(trade_id="T2", side="BUY", quantity="100", price="11.00", trade_time=at(1)),
            raw(trade_id="T1", side="BUY", quantity="100", price="10.00", trade_time=at(1)),
        ]
    )
    pos = result.positions["ACC-US|AAPL.XNYS"]
    # T1, T2 (same time, by id) average 10.50; T3 sells 100 at 12.00: +150
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(100), D("10.50"), D("150.00"))
    assert (pos.last_trade_id, pos.as_of) == ("T3", at(5))


def test_closing_flat_resets_average_cost_and_keeps_realized() -> None:
    result = run(
        [
            raw(trade_id="T1", side="SELL", quantity="10", price="10.00", trade_time=at(0)),
            raw(trade_id="T2", side="BUY", quantity="10", price="9.00", trade_time=at(1)),
        ]
    )
    pos = result.positions["ACC-US|AAPL.XNYS"]
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(0), D(0), D("10.00"))
    assert pos.trade_count == 2


def test_multiplier_scales_realized_and_notional() -> None:
    mini: dict[str, Any] = {"instrument": "MINI.XNYS"}
    result = run(
        [
            raw(trade_id="T1", quantity="2", price="100.00", trade_time=at(0), **mini),
            raw(trade_id="T2", side="SELL", quantity="1", price="101.25", trade_time=at(1), **mini),
        ],
        [price("MINI.XNYS", "99.50")],
    )
    assert result.enriched[0].notional == D("2000.00")
    pos = result.positions["ACC-US|MINI.XNYS"]
    assert (pos.quantity, pos.avg_cost, pos.realized_pnl) == (D(1), D("100.00"), D("12.50"))
    pnl = result.pnl["ACC-US"]
    # (99.50 - 100.00) * 1 * 10 = -5.00
    assert (pnl.realized, pnl.unrealized, pnl.total) == (D("12.50"), D("-5.00"), D("7.50"))


def test_amend_gives_the_position_as_if_the_original_had_been_right() -> None:
    result = run(
        [
            raw(quantity="100", price="10.00"),
            raw(event_type="AMEND", version=2, quantity="200", price="10.50", received=at(2)),
        ]
    )
    assert [(e.event_type, e.quantity) for e in result.enriched] == [
        ("NEW", D(100)),
        ("AMEND", D(200)),
    ]
    pos = result.positions["ACC-US|AAPL.XNYS"]
    assert (pos.quantity, pos.avg_cost, pos.trade_count) == (D(200), D("10.50"), 1)


def test_cancel_restores_position_as_if_never_booked() -> None:
    result = run(
        [
            raw(trade_id="T1", quantity="100", price="10.00", trade_time=at(0)),
            raw(trade_id="T2", quantity="100", price="20.00", trade_time=at(1)),
            # a cancel's other fields do not matter
            raw(trade_id="T2", event_type="CANCEL", version=2, quantity="1", received=at(9)),
        ]
    )
    cancel = result.enriched[-1]
    assert (cancel.event_type, cancel.version, cancel.quantity) == ("CANCEL", 2, D(100))
    assert cancel.price == D("20.00") and cancel.ingest_time == at(9)
    pos = result.positions["ACC-US|AAPL.XNYS"]
    assert (pos.quantity, pos.avg_cost, pos.trade_count, pos.last_trade_id) == (
        D(100),
        D("10.00"),
        1,
        "T1",
    )


def test_positions_ignore_events_not_above_the_version_held() -> None:
    events = run(
        [
            raw(quantity="100"),
            raw(event_type="AMEND", version=2, quantity="200", received=at(2)),
            raw(event_type="CANCEL", version=3, received=at(3)),
        ]
    ).enriched
    new, amend, cancel = events
    # redelivered or overtaken events change nothing, whatever the order
    assert positions_from([new, amend, new]) == positions_from([new, amend])
    assert positions_from([amend, new])["ACC-US|AAPL.XNYS"].quantity == 200
    assert positions_from([new, cancel, amend])["ACC-US|AAPL.XNYS"].trade_count == 0


def test_cancelling_the_last_trade_leaves_a_flat_position() -> None:
    result = run(
        [raw(), raw(event_type="CANCEL", version=2, received=at(2))],
        [price("AAPL.XNYS", "11.00")],
    )
    assert result.positions["ACC-US|AAPL.XNYS"] == Position(
        account="ACC-US", instrument="AAPL.XNYS", currency="USD", quantity=D(0),
        avg_cost=D(0), realized_pnl=D(0), multiplier=D(1), trade_count=0,
        last_trade_id="", as_of=None,
    )  # fmt: skip
    pnl = result.pnl["ACC-US"]
    assert (pnl.realized, pnl.unrealized, pnl.total, pnl.positions) == (
        D("0.00"),
        D("0.00"),
        D("0.00"),
        1,
    )


def test_account_moving_amend_emits_a_cancel_then_a_new() -> None:
    result = run(
        [
            raw(account="ACC-US", quantity="100", price="10.00"),
            raw(event_type="AMEND", version=2, account="ACC-EU", received=at(2)),
        ],
        [price("AAPL.XNYS", "11.00")],
    )
    assert [(e.event_type, e.version, e.account) for e in result.enriched] == [
        ("NEW", 1, "ACC-US"),
        ("CANCEL", 2, "ACC-US"),
        ("NEW", 2, "ACC-EU"),
    ]
    moved = result.enriched[2]
    assert (moved.book, moved.base_currency, moved.legal_entity) == ("EQ-EU", "EUR", "TF SE")
    assert result.positions["ACC-US|AAPL.XNYS"].trade_count == 0
    assert result.positions["ACC-US|AAPL.XNYS"].quantity == 0
    assert result.positions["ACC-EU|AAPL.XNYS"].quantity == 100
    # unrealized 100 USD in EUR: 100 * (1 / 1.10) = 90.909... -> 90.91
    assert result.pnl["ACC-EU"].unrealized == D("90.91")
    assert result.pnl["ACC-US"].total == D("0.00")
    # a record moving an account is counted once: 2 in, 2 accepted, 3 events out
    assert result.rejected == [] and result.duplicates == 0


def test_instrument_moving_amend_is_revalidated_against_the_new_instrument() -> None:
    result = run(
        [
            raw(),
            raw(
                event_type="AMEND", version=2, instrument="VOD.XLON", currency="GBP",
                price="2.55", received=at(2),
            ),
        ]
    )  # fmt: skip
    assert [(e.event_type, e.instrument) for e in result.enriched] == [
        ("NEW", "AAPL.XNYS"),
        ("CANCEL", "AAPL.XNYS"),
        ("NEW", "VOD.XLON"),
    ]
    assert result.enriched[2].settlement_date == dt.date(2025, 3, 5)  # XLON T+2


# -- P&L -----------------------------------------------------------------------------------


def test_fx_conversion_direct_inverse_and_via_usd() -> None:
    result = run(
        [
            # GBP position in a USD account: GBPUSD directly
            raw(trade_id="T1", instrument="VOD.XLON", currency="GBP", quantity="1000",
                price="2.50"),
            # JPY position in a EUR account: JPY -> USD (1 / USDJPY) -> EUR (1 / EURUSD)
            raw(trade_id="T2", account="ACC-EU", instrument="7203.XTKS", currency="JPY",
                quantity="100", price="2000"),
            raw(trade_id="T3", account="ACC-EU", instrument="7203.XTKS", currency="JPY",
                side="SELL", quantity="100", price="2100", trade_time=at(1)),
            raw(trade_id="T4", account="ACC-EU", instrument="7203.XTKS", currency="JPY",
                quantity="100", price="2000", trade_time=at(2)),
        ],
        [price("VOD.XLON", "2.60"), price("7203.XTKS", "2100")],
    )  # fmt: skip
    us = result.pnl["ACC-US"]
    assert (us.realized, us.unrealized, us.total) == (D("0.00"), D("125.00"), D("125.00"))
    eu = result.pnl["ACC-EU"]
    factor = (D(1) / D(150)) * (D(1) / D("1.10"))
    assert factor == D("0.006060606060606060606060606061")
    # realized 10000 JPY and unrealized 10000 JPY: 60.606060... EUR each
    assert D(10000) * factor == D("60.60606060606060606060606061")
    assert (eu.realized, eu.unrealized, eu.total) == (D("60.61"), D("60.61"), D("121.22"))
    assert eu.base_currency == "EUR"


def test_position_without_price_or_rate_is_left_out_and_listed() -> None:
    result = run_reference(
        [
            raw(trade_id="T1", quantity="10", price="10.00"),
            raw(trade_id="T2", instrument="VOD.XLON", currency="GBP", price="2.50"),
            raw(trade_id="T3", instrument="MINI.XNYS", quantity="1", price="100.00"),
        ],
        INSTRUMENTS,
        ACCOUNTS,
        COUNTERPARTIES,
        [price("AAPL.XNYS", "11.00"), price("VOD.XLON", "2.60")],
        [],  # no FX at all: GBP cannot be converted
    )
    pnl = result.pnl["ACC-US"]
    assert pnl.missing_marks == ("MINI.XNYS", "VOD.XLON")  # sorted by instrument id
    assert (pnl.unrealized, pnl.positions) == (D("10.00"), 3)


def test_amounts_are_quantized_half_even_per_account() -> None:
    result = run(
        [
            raw(trade_id="T1", quantity="1", price="10.00", trade_time=at(0)),
            raw(trade_id="T2", quantity="1", price="10.01", trade_time=at(1)),
            raw(trade_id="T3", side="SELL", quantity="1", price="10.01", trade_time=at(2)),
        ],
        [price("AAPL.XNYS", "10.02")],
    )
    pos = result.positions["ACC-US|AAPL.XNYS"]
    assert (pos.avg_cost, pos.realized_pnl) == (D("10.005"), D("0.005"))
    pnl = result.pnl["ACC-US"]
    # 0.005 -> 0.00 and 0.015 -> 0.02 (half-even), total is their sum
    assert (pnl.realized, pnl.unrealized, pnl.total) == (D("0.00"), D("0.02"), D("0.02"))


def test_conservation_every_record_is_enriched_rejected_or_duplicate() -> None:
    records = [
        raw(trade_id="T1"),
        raw(trade_id="T1"),
        raw(trade_id="T1", event_type="AMEND", version=2, account="ACC-EU", received=at(2)),
        raw(trade_id="T2", price="0"),
        (b"T3", b"{", ms(T0)),
        raw(trade_id="T1", event_type="CANCEL", version=3, received=at(3)),
    ]
    result = run(records)
    moves = sum(1 for e in result.enriched if e.event_type == "NEW" and e.version > 1)
    accepted = len(result.enriched) - moves
    assert (accepted, len(result.rejected), result.duplicates) == (3, 2, 1)
    assert accepted + len(result.rejected) + result.duplicates == len(records)
    assert result.enriched[-1].account == "ACC-EU"  # the cancel goes to where the trade is
