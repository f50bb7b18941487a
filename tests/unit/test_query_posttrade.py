"""FINAL obligations, adjustments, sese.023 instructions and reports in the read model and API.

The records are what the settlement and reporting services emit (their processors driven by
the TestDriver), encoded with their topics' codecs, as the query service reads them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from tests.unit.test_netting import amend, trade
from tests.unit.test_query_app import Client
from tests.unit.test_reporting import ours
from tests.unit.test_sese023 import schema
from tests.unit.test_settlement_service import CUTOFF_D1, KEY_D1
from tradeflux import topics
from tradeflux.domain.clock import Tick
from tradeflux.query.readmodel import ReadModel
from tradeflux.services import reporting, settlement
from tradeflux.stream.harness import Output, TestDriver


def feed(model: ReadModel, outputs: list[Output]) -> None:
    """Apply what a service emitted to the read model, encoded as on the wire."""
    for o in outputs:
        codec = topics.topic_def(o.topic).codec()
        value = None if o.value is None else codec.encode(o.value)
        model.apply(o.topic, (o.key or "").encode(), value)


def settled_world(model: ReadModel) -> None:
    """Two trades, the cut-off, then a late amend: one FINAL, one ADJUSTMENT, one instruction."""
    driver = TestDriver(settlement.SERVICE)
    t1 = trade("T1", quantity="100", price="10.00")
    feed(model, driver.send([("CP1", t1), ("CP1", trade("T2", side="SELL", quantity="40"))]))
    feed(model, driver.send([(None, Tick(tick=CUTOFF_D1))]))
    late = msgspec.structs.replace(
        amend(t1, 2, quantity=Decimal(120)), ingest_time=CUTOFF_D1 + dt.timedelta(minutes=1)
    )
    feed(model, driver.send([("CP1", late)]))


def test_final_obligations_carry_their_cut_off_figures_and_their_adjustment_count() -> None:
    c = Client()
    service_model = _model(c)
    settled_world(service_model)
    page = c.get("/v1/settlement/final").json()
    assert page["total"] == 1
    (item,) = page["items"]
    assert (item["key"], item["adjustments"]) == (KEY_D1, 1)
    assert item["final"]["kind"] == "FINAL"
    assert item["final"]["obligation"]["net_cash"] == "-600.00"  # 100 x 10 bought, 40 x 10 sold
    assert c.get("/v1/settlement/final", params={"date": "2026-11-27"}).json()["total"] == 0
    (adjustment,) = c.get("/v1/settlement/adjustments").json()["items"]
    assert (adjustment["sequence"], adjustment["net_cash_change"]) == (1, "-200.00")
    assert service_model.counts()["final_obligations"] == 1


def test_instructions_are_listed_and_their_sese023_document_is_served_as_xml() -> None:
    c = Client()
    settled_world(_model(c))
    (instruction,) = c.get("/v1/settlement/instructions", params={"status": "READY"}).json()[
        "items"
    ]
    assert (instruction["movement"], instruction["quantity"], instruction["amount"]) == (
        "RECE",
        "60",
        "600.00",
    )
    tx = instruction["instruction_id"]
    assert c.get(f"/v1/settlement/instructions/{tx}").json() == instruction
    xml = c.get(f"/v1/settlement/instructions/{tx}/sese023.xml")
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xml")
    schema().validate(xml.text)
    missing = c.get("/v1/settlement/instructions/NOPE/sese023.xml")
    assert missing.status_code == 404 and "NOPE" in missing.json()["detail"]


def test_reports_are_listed_newest_first_and_filtered_by_lateness() -> None:
    c = Client()
    model = _model(c)
    driver = TestDriver(reporting.SERVICE)
    new = ours(trade("T1"))
    feed(model, driver.send([("ACC1", new)]))
    late = ours(trade("T2"), ingest_time=new.trade_time + dt.timedelta(minutes=5))
    feed(model, driver.send([("ACC1", late)]))
    page = c.get("/v1/reports").json()
    assert [r["report_id"] for r in page["items"]] == ["T2-1-N", "T1-1-N"]
    late_only = c.get("/v1/reports", params={"late": "true"}).json()
    assert [r["report_id"] for r in late_only["items"]] == ["T2-1-N"]
    assert c.get("/v1/reports", params={"trade_id": "T1"}).json()["total"] == 1
    assert model.counts()["late_reports"] == 1


def test_a_value_that_is_not_the_topics_struct_is_counted_and_changes_nothing() -> None:
    model = ReadModel()
    assert model.apply("settlement.statements", b"k", b'{"kind": "FINAL"}') is None
    assert model.apply("regulatory.reports", b"k", b"not json") is None
    assert model.bad_record_counts() == {"settlement.statements": 1, "regulatory.reports": 1}


def test_openapi_has_the_schemas_of_the_post_trade_structs() -> None:
    schemas = Client().get("/openapi.json").json()["components"]["schemas"]
    for name in ("FinalObligation", "ObligationStatement", "SettlementInstruction", "TradeReport"):
        assert name in schemas, name
    assert "document" in schemas["SettlementInstruction"]["properties"]


def _model(c: Client) -> ReadModel:
    return c.service.model
