"""Regulatory reports (domain/reporting.py and services/reporting.py): exact fields, deadlines."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import msgspec
import pytest

from tests.unit.test_netting import LEI, T0, amend, cancel, trade
from tradeflux.domain.reporting import (
    DEFAULT_ENTITY_LEIS,
    ReportState,
    TradeReport,
    make_report,
    parse_entity_leis,
    report_id,
    utc_micros,
)
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.errors import ConfigError
from tradeflux.services import reporting
from tradeflux.stream.harness import TestDriver

OUR_LEI = DEFAULT_ENTITY_LEIS["Tradeflux Securities LLC"]
MINUTE = dt.timedelta(minutes=1)


def ours(event: EnrichedTrade, **changes: object) -> EnrichedTrade:
    """``event`` booked by our sample legal entity (it has an LEI), with ``changes``."""
    return msgspec.structs.replace(event, legal_entity="Tradeflux Securities LLC", **changes)


def test_a_new_trade_gives_a_report_with_the_rts22_fields_exactly() -> None:
    event = ours(trade("T1", quantity="100", price="10.25"), trade_time=T0 + dt.timedelta(
        microseconds=250
    ))  # fmt: skip
    made = make_report(
        None, event, entity_lei=OUR_LEI, reported_at=T0 + dt.timedelta(seconds=2), deadline=MINUTE
    )
    assert made is not None
    state, report = made
    assert state == ReportState(1, "T1-1-N", True)
    assert report == TradeReport(
        report_id="T1-1-N",
        ref_report_id=None,
        action="NEW",
        transaction_ref="T1",
        version=1,
        account="ACC1",
        executing_entity_lei=OUR_LEI,
        buyer_lei=OUR_LEI,
        seller_lei=LEI["CP1"],
        side="BUY",
        execution_time="2026-11-24T15:00:00.000250Z",
        isin="US0378331005",
        quantity=Decimal(100),
        price=Decimal("10.25"),
        price_currency="USD",
        net_amount=Decimal("1025.00"),
        venue="XNAS",
        reported_at=T0 + dt.timedelta(seconds=2),
        deadline_at=T0 + dt.timedelta(microseconds=250) + MINUTE,
        late=False,
    )


def test_a_sell_makes_the_counterparty_the_buyer() -> None:
    made = make_report(
        None, ours(trade("T1", side="SELL")), entity_lei=OUR_LEI, reported_at=T0, deadline=MINUTE
    )
    assert made is not None
    assert (made[1].buyer_lei, made[1].seller_lei) == (LEI["CP1"], OUR_LEI)


def test_an_amend_and_a_cancel_name_the_report_they_replace() -> None:
    new = ours(trade("T1"))
    state, _ = make_report(None, new, entity_lei=OUR_LEI, reported_at=T0, deadline=MINUTE) or ()
    amended = amend(new, 2, quantity=Decimal(50))
    state, report = (
        make_report(state, amended, entity_lei=OUR_LEI, reported_at=T0, deadline=MINUTE) or ()
    )
    assert (report.report_id, report.ref_report_id, report.action) == ("T1-2-A", "T1-1-N", "AMEND")
    state, report = (
        make_report(state, cancel(amended, 3), entity_lei=OUR_LEI, reported_at=T0, deadline=MINUTE)
        or ()
    )
    assert (report.report_id, report.ref_report_id, report.action) == ("T1-3-C", "T1-2-A", "CANCEL")
    assert state == ReportState(3, "T1-3-C", False)


def test_a_version_not_above_the_held_one_gives_no_report() -> None:
    held = ReportState(2, "T1-2-A", True)
    assert make_report(held, ours(trade("T1")), entity_lei=OUR_LEI, reported_at=T0,
                       deadline=MINUTE) is None  # fmt: skip


def test_a_report_past_its_deadline_is_flagged_late() -> None:
    event = ours(trade("T1"))
    on_time = make_report(None, event, entity_lei=OUR_LEI, reported_at=T0 + MINUTE, deadline=MINUTE)
    late = make_report(
        None, event, entity_lei=OUR_LEI, reported_at=T0 + MINUTE + dt.timedelta(microseconds=1),
        deadline=MINUTE,
    )  # fmt: skip
    assert on_time is not None and late is not None
    assert (on_time[1].late, late[1].late) == (False, True)


def test_a_corrections_deadline_runs_from_when_it_was_received() -> None:
    new = ours(trade("T1"))
    received = T0 + dt.timedelta(hours=3)
    amended = msgspec.structs.replace(amend(new, 2, quantity=Decimal(5)), ingest_time=received)
    made = make_report(
        ReportState(1, "T1-1-N", True), amended, entity_lei=OUR_LEI,
        reported_at=received + dt.timedelta(seconds=30), deadline=MINUTE,
    )  # fmt: skip
    assert made is not None
    assert (made[1].deadline_at, made[1].late) == (received + MINUTE, False)


def test_execution_time_always_has_six_decimals_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert utc_micros(dt.datetime(2026, 11, 24, 16, 0, tzinfo=paris)) == (
        "2026-11-24T15:00:00.000000Z"
    )


def test_report_ids_are_unique_per_version_and_action() -> None:
    new = trade("T1")
    moved_away = cancel(new, 3)
    moved_in = msgspec.structs.replace(new, version=3, account="ACC2")
    assert {report_id(new), report_id(moved_away), report_id(moved_in)} == {
        "T1-1-N", "T1-3-C", "T1-3-N",
    }  # fmt: skip


def test_entity_leis_are_configured_over_the_defaults_and_checked() -> None:
    leis = parse_entity_leis("Tradeflux Nordic AB=5493TFSECLLC0US00077; ")
    assert leis["Tradeflux Nordic AB"] == "5493TFSECLLC0US00077"
    assert leis["Tradeflux UK Ltd"] == DEFAULT_ENTITY_LEIS["Tradeflux UK Ltd"]
    with pytest.raises(ConfigError, match="is not a valid LEI"):
        parse_entity_leis("Tradeflux Nordic AB=5493TFSECLLC0US00078")
    with pytest.raises(ConfigError, match="write Legal entity name=LEI"):
        parse_entity_leis("Tradeflux Nordic AB")


# -- the service -------------------------------------------------------------------------------


def _driver() -> tuple[TestDriver, Counter[str]]:
    driver = TestDriver(reporting.SERVICE)
    task = driver.task(0)
    counted: Counter[str] = Counter()
    take = task.take_counts

    def take_and_keep() -> dict[str, int]:
        counts = take()
        counted.update(counts)
        return counts

    task.take_counts = take_and_keep  # type: ignore[method-assign]
    return driver, counted


def test_the_service_reports_each_version_keyed_by_trade_id_in_stream_time() -> None:
    driver, counted = _driver()
    new = ours(trade("T1"))
    late_new = ours(trade("T2"), ingest_time=T0 + 2 * MINUTE)  # received two minutes late
    out = driver.send([("ACC1", new), ("ACC1", late_new)])
    assert [(o.topic, o.key, o.value.report_id, o.value.late) for o in out] == [
        ("regulatory.reports", "T1", "T1-1-N", False),
        ("regulatory.reports", "T2", "T2-1-N", True),
    ]
    assert out[1].value.reported_at == T0 + 2 * MINUTE
    # Stream time is kept: an old event processed later is reported at the stream time.
    (again,) = driver.send([("ACC1", amend(new, 2, quantity=Decimal(3)))])
    assert (again.value.ref_report_id, again.value.reported_at) == ("T1-1-N", T0 + 2 * MINUTE)
    assert again.value.late is True  # received at T0, reported two minutes later
    assert counted == Counter({"late_reports": 2})
    assert driver.store("clock") == {"stream_time": T0 + 2 * MINUTE}


def test_a_trade_whose_legal_entity_has_no_lei_is_a_dead_letter() -> None:
    driver, _ = _driver()
    (dead,) = driver.send([("ACC1", trade("T1"))])  # legal entity "LE1": no LEI
    assert (dead.topic, dead.headers["tf.reason"]) == ("trades.rejected", "NO_ENTITY_LEI")
    assert "TRADEFLUX_ENTITY_LEIS" in dead.headers["tf.detail"]


def test_report_json_carries_microseconds_and_decimals_as_strings() -> None:
    driver, _ = _driver()
    (out,) = driver.send([("ACC1", ours(trade("T1")))])
    data = msgspec.json.decode(reporting.SERVICE.outputs[0].codec.encode(out.value))
    assert (data["execution_time"], data["price"], data["quantity"]) == (
        "2026-11-24T15:00:00.000000Z",
        "10.00",
        "100",
    )
