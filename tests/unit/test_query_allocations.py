"""The read model and API of the post-trade topics, fed records by hand (no broker)."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import msgspec

from tests.support.allocation_fixtures import allocation, confirmation, exception
from tradeflux.config import load_settings
from tradeflux.domain.allocation_events import AllocationAck
from tradeflux.query import allocation_listings as listings
from tradeflux.query.readmodel import ReadModel
from tradeflux.query.server import QueryService

T = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
ENC = msgspec.json.Encoder(decimal_format="string")


def fed() -> ReadModel:
    model = ReadModel()
    records = [
        ("allocations.status", "O1:20261124|AL-1", allocation("O1:20261124")),
        ("allocations.status", "O2:20261124|AL-1", allocation("O2:20261124", "CANCELLED", 5)),
        ("confirmations", "C1", confirmation("C1", "AFFIRMED", 2)),
        ("confirmations", "C2", confirmation("C2", "CONFIRMED", 1)),
        ("confirmations.exceptions", "C2", exception("C2", "UNAFFIRMED")),
        ("confirmations.exceptions", "C3", exception("C3", "UNAFFIRMED")),
        ("confirmations.exceptions", "C3", exception("C3", "CLEARED")),
    ]
    for topic, key, value in records:
        assert model.apply(topic, key.encode(), ENC.encode(value)) is not None
    ack = AllocationAck(
        alloc_id="AL-9", trans_type="NEW", order_id="O9", trade_date=dt.date(2026, 11, 24),
        block_id="O9:20261124", status="REJECTED", reason="UNKNOWN_ACCOUNT", at=T,
    )  # fmt: skip
    change = model.apply("allocations.acks", b"AL-9", ENC.encode(ack))
    assert change is not None and (change.kind, change.value) == ("allocation_ack", ack)
    return model


def test_the_read_model_holds_allocations_confirmations_and_open_exceptions() -> None:
    model = fed()
    assert [a.block_id for a in listings.list_allocations(model).items] == [
        "O2:20261124",  # latest change first
        "O1:20261124",
    ]
    assert listings.list_allocations(model, status="ACCEPTED").total == 1
    assert listings.list_allocations(model, account="CL-A").total == 2  # a child's account
    assert [c.trade_id for c in listings.list_confirmations(model).items] == ["C2", "C1"]
    assert [c.trade_id for c in listings.list_confirmations(model, status="AFFIRMED").items] == [
        "C1"
    ]
    assert [e.trade_id for e in listings.list_affirmation_exceptions(model, True).items] == ["C2"]
    assert listings.list_affirmation_exceptions(model).total == 3
    assert listings.list_allocation_acks(model, status="REJECTED").items[0].reason == (
        "UNKNOWN_ACCOUNT"
    )
    counts = model.counts()
    assert {
        k: counts[k]
        for k in (
            "allocations",
            "confirmations",
            "open_affirmation_exceptions",
            "cleared_affirmation_exceptions",
        )
    } == {  # fmt: skip
        "allocations": 2,
        "confirmations": 2,
        "open_affirmation_exceptions": 1,
        "cleared_affirmation_exceptions": 1,
    }
    tombstone = model.apply("allocations.status", b"O1:20261124|AL-1", None)
    assert tombstone is not None and tombstone.value is None
    assert model.apply("confirmations", b"C9", b"{not json") is None
    assert model.bad_record_counts() == {"confirmations": 1}


def test_the_api_lists_the_post_trade_tables_with_their_schemas() -> None:
    service = QueryService(load_settings(env={}, bootstrap="127.0.0.1:1", auth="none"))
    model = fed()
    service.model.allocations = model.allocations

    async def call(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.get(path)

    page = asyncio.run(call("/v1/allocations?status=CANCELLED")).json()
    assert (page["total"], page["items"][0]["avg_px"]) == (1, "10.5")
    assert asyncio.run(call("/v1/affirmation-exceptions?open_only=true")).json()["total"] == 1
    assert (
        asyncio.run(call("/v1/confirmations?status=CONFIRMED")).json()["items"][0]["trade_id"]
        == "C2"
    )
    assert asyncio.run(call("/v1/allocations/acks?alloc_id=AL-9")).json()["total"] == 1
    doc = asyncio.run(call("/openapi.json")).json()
    for name in ("Allocation", "AllocationAck", "Confirmation", "AffirmationException"):
        assert name in doc["components"]["schemas"]
    assert "/v1/affirmation-exceptions" in doc["paths"]
