"""The settlement service's processor, driven without a broker (stream.harness.TestDriver)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from tests.unit.test_netting import D1, D2, amend, cancel, trade
from tradeflux.domain.clock import Tick
from tradeflux.domain.finality import ObligationStatement
from tradeflux.domain.netting import SettlementLeg
from tradeflux.domain.schemas import EnrichedTrade, SettlementObligation
from tradeflux.domain.sese023 import SettlementInstruction
from tradeflux.services import settlement
from tradeflux.stream.harness import Output, TestDriver

KEY_D1 = "CP1|USD|2026-11-26"
KEY_D2 = "CP1|USD|2026-11-27"


def _send(driver: TestDriver, events: list[EnrichedTrade]) -> list[Output]:
    return driver.send([(e.counterparty, e) for e in events], partition=2)


def test_each_changed_obligation_is_emitted_once_per_batch_with_its_last_value() -> None:
    driver = TestDriver(settlement.SERVICE)
    out = _send(
        driver,
        [
            trade("T1", quantity="100", price="10.00"),
            trade("T2", side="SELL", quantity="40", price="10.10"),
            trade("T3", counterparty="CP2"),
        ],
    )
    assert [(o.topic, o.key) for o in out] == [
        ("settlement.obligations", KEY_D1),
        ("settlement.obligations", "CP2|USD|2026-11-26"),
    ]
    ob: SettlementObligation = out[0].value
    assert (ob.net_cash, ob.cash_paid, ob.cash_received, ob.trade_count) == (
        Decimal("-596.00"),
        Decimal("1000.00"),
        Decimal("404.00"),
        2,
    )
    assert [(s.instrument, s.quantity, s.trade_count) for s in ob.securities] == [
        ("AAPL", Decimal(60), 2)
    ]
    assert ob.settlement_date == D1
    assert out[0].partition is None  # partitioned by its own key on the compacted topic


def test_amend_moving_the_settlement_date_tombstones_the_emptied_obligation() -> None:
    driver = TestDriver(settlement.SERVICE)
    new = trade("T1", settlement_date=D1)
    _send(driver, [new])
    moved = amend(new, 2, settlement_date=D2)
    out = _send(driver, [moved])
    assert [(o.key, o.value is None) for o in out] == [(KEY_D1, True), (KEY_D2, False)]
    assert out[1].value.net_cash == Decimal("-1000.00")
    assert set(driver.store("obligations", partition=2)) == {KEY_D2}


def test_cancel_of_the_last_trade_is_a_tombstone_and_its_version_is_kept() -> None:
    driver = TestDriver(settlement.SERVICE)
    new = trade("T1")
    _send(driver, [new])
    out = _send(driver, [cancel(new, 2)])
    assert [(o.key, o.value) for o in out] == [(KEY_D1, None)]
    assert driver.store("obligations", partition=2) == {}
    leg: SettlementLeg = driver.store("legs", partition=2)["CP1|ACC1|AAPL|T1"]
    assert (leg.version, leg.live) == (2, False)
    assert _send(driver, [new]) == []  # a replayed NEW: nothing changes, nothing is emitted


def test_obligation_emptied_and_refilled_in_one_batch_goes_out_with_its_last_value() -> None:
    driver = TestDriver(settlement.SERVICE)
    a = trade("T1")
    out = _send(driver, [a, cancel(a, 2), trade("T2", side="SELL", quantity="1", price="5.00")])
    assert [(o.key, o.value.net_cash) for o in out] == [(KEY_D1, Decimal("5.00"))]


def test_state_survives_batches_and_a_bad_record_is_a_dead_letter() -> None:
    driver = TestDriver(settlement.SERVICE)
    new = trade("T1", quantity="10", price="1.00")
    _send(driver, [new])
    fixed = amend(new, 2, quantity=Decimal(20))
    out = driver.send([("CP1", b"{not json"), ("CP1", fixed)], partition=2)
    dead = [o for o in out if o.topic == "trades.rejected"]
    assert len(dead) == 1 and dead[0].value == b"{not json"
    (ob,) = [o.value for o in out if o.topic == "settlement.obligations"]
    assert (ob.net_cash, ob.trade_count) == (Decimal("-20.00"), 1)  # replaced, not added
    assert driver.store("obligations", partition=2)[KEY_D1].paid == Decimal("20.00")


def test_store_values_round_trip_through_the_changelog_codec() -> None:
    driver = TestDriver(settlement.SERVICE)
    _send(driver, [trade("T1"), trade("T2", instrument="MSFT", side="SELL")])
    codecs = {s.name: s.codec for s in settlement.SERVICE.stores}
    for name in ("legs", "obligations"):
        for value in driver.store(name, partition=2).values():
            assert codecs[name].decode(codecs[name].encode(value)) == value
    assert isinstance(
        driver.store("legs", partition=2)["CP1|ACC1|MSFT|T2"].settlement_date, dt.date
    )


CUTOFF_D1 = dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)  # Wednesday 19:00 New York


def test_a_tick_that_reaches_the_cut_off_issues_the_final_statement_and_instructions() -> None:
    driver = TestDriver(settlement.SERVICE)
    _send(driver, [trade("T1", quantity="100", price="10.00")])
    early = Tick(tick=CUTOFF_D1 - dt.timedelta(seconds=1), source="test")
    assert driver.send([(None, early)], partition=2) == []
    out = driver.send([(None, Tick(tick=CUTOFF_D1, source="test"))], partition=2)
    assert [(o.topic, o.key) for o in out] == [
        ("settlement.statements", KEY_D1),
        ("settlement.instructions", KEY_D1),
    ]
    final: ObligationStatement = out[0].value
    assert (final.kind, final.sequence, final.recorded_at) == ("FINAL", 0, CUTOFF_D1)
    assert final.obligation is not None and final.obligation.net_cash == Decimal("-1000.00")
    instruction: SettlementInstruction = out[1].value
    assert (instruction.movement, instruction.amount, instruction.status) == (
        "RECE",
        Decimal("1000.00"),
        "READY",
    )
    assert driver.store("clock", partition=2) == {"stream_time": CUTOFF_D1}
    # A later amend: an ADJUSTMENT, and the running obligation moves on.
    late = msgspec.structs.replace(
        amend(trade("T1", quantity="100", price="10.00"), 2, quantity=Decimal(50)),
        ingest_time=CUTOFF_D1 + dt.timedelta(minutes=5),
    )
    out = _send(driver, [late])
    assert [(o.topic, o.value.kind if o.topic.endswith("statements") else None) for o in out] == [
        ("settlement.statements", "ADJUSTMENT"),
        ("settlement.obligations", None),
    ]
    assert out[1].value.net_cash == Decimal("-500.00")


def test_an_event_of_an_expired_settlement_date_is_a_dead_letter_with_its_reason() -> None:
    driver = TestDriver(settlement.SERVICE)
    new = trade("T1")
    _send(driver, [new])
    expiry = dt.datetime(2026, 12, 4, 5, 0, tzinfo=dt.UTC)
    driver.send([(None, Tick(tick=expiry))], partition=2)
    assert driver.store("legs", partition=2) == {}
    out = _send(driver, [amend(new, 2, quantity=Decimal(1))])
    (dead,) = out
    assert dead.topic == "trades.rejected"
    assert dead.headers["tf.reason"] == "SETTLEMENT_DATE_EXPIRED"
    assert "2026-11-26 of USD was dropped" in dead.headers["tf.detail"]


def test_a_value_that_is_neither_a_trade_nor_a_tick_is_a_dead_letter() -> None:
    driver = TestDriver(settlement.SERVICE)
    (dead,) = driver.send([("CP1", b'{"tick": "2026-11-24T15:00:00Z", "extra": 1}')], partition=2)
    assert (dead.topic, dead.headers["tf.reason"]) == ("trades.rejected", "decode_error")


def test_every_store_round_trips_through_its_changelog_codec_after_a_cut_off() -> None:
    driver = TestDriver(settlement.SERVICE)
    _send(driver, [trade("T1"), trade("T2", instrument="MSFT", side="SELL")])
    driver.send([(None, Tick(tick=CUTOFF_D1))], partition=2)
    codecs = {s.name: s.codec for s in settlement.SERVICE.stores}
    for name in codecs:
        values = driver.store(name, partition=2)
        assert values, name
        for value in values.values():
            assert codecs[name].decode(codecs[name].encode(value)) == value
