"""HTTP allocation instructions and confirmation acks against the real broker, answers exactly."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import pytest

from tests.conftest import unique
from tests.support.kafka_tools import create_topics, read_all
from tradeflux.config import Settings
from tradeflux.domain.allocation_events import AllocationInstruction
from tradeflux.domain.confirmation_events import ConfirmationAck
from tradeflux.gateway.runner import Gateway, GatewayConfig

pytestmark = pytest.mark.integration

INSTRUCTION = {
    "alloc_id": "AL-1",
    "order_id": "ORD-1",
    "trade_date": "2026-11-24",
    "side": "BUY",
    "instrument": "7203.XTKS",
    "quantity": 900,
    "avg_px": "2502.333333",
    "allocations": [{"account": "CL-A", "quantity": "600"}, {"account": "CL-B", "quantity": 300}],
}


@pytest.fixture
def gateway(kafka: Settings) -> Iterator[tuple[httpx.Client, str]]:
    prefix = unique("gwpost") + "."
    create_topics(kafka, {prefix + "allocations.in": 3, prefix + "confirmations.in": 3})
    gw = Gateway(GatewayConfig(kafka.client_config(), prefix, http_port=0))
    client = httpx.Client(base_url=f"http://127.0.0.1:{gw.http_port}", timeout=30)
    try:
        yield client, prefix
    finally:
        client.close()
        gw.stop()


def test_an_allocation_instruction_is_in_kafka_keyed_by_its_order_when_answered(
    kafka: Settings, gateway: tuple[httpx.Client, str]
) -> None:
    client, prefix = gateway
    response = client.post("/v1/allocations", json=INSTRUCTION)
    assert (response.status_code, response.json()) == (
        202,
        {"status": "RECEIVED", "key": "ORD-1", "id": "AL-1"},
    )
    [record] = read_all(kafka, prefix + "allocations.in")
    assert record.key() == b"ORD-1"
    ins = msgspec.json.decode(record.value(), type=AllocationInstruction)
    assert (ins.source, ins.session, ins.quantity, len(ins.allocations)) == ("http", "", 900, 2)
    assert ins.received_at is not None


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "malformed JSON"),
        (msgspec.json.encode({**INSTRUCTION, "qty": 1}), 422, "not a valid request"),
        (msgspec.json.encode({**INSTRUCTION, "trans_type": "AMEND"}), 422, "not a valid request"),
        (msgspec.json.encode({**INSTRUCTION, "alloc_id": ""}), 422, "not a valid request"),
    ],
)
def test_a_bad_instruction_is_refused_and_nothing_is_written(
    kafka: Settings, gateway: tuple[httpx.Client, str], body: bytes, status: int, error: str
) -> None:
    client, prefix = gateway
    response = client.post(
        "/v1/allocations", content=body, headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert read_all(kafka, prefix + "allocations.in") == []


def test_a_confirmation_ack_is_in_kafka_keyed_by_its_child_trade(
    kafka: Settings, gateway: tuple[httpx.Client, str]
) -> None:
    client, prefix = gateway
    confirm_id = "ORD-1:20261124/AL-1/CL-A#1"
    response = client.post(
        "/v1/confirmation-acks", json={"confirm_id": confirm_id, "affirm_status": "AFFIRMED"}
    )
    assert (response.status_code, response.json()["key"]) == (202, "ORD-1:20261124/AL-1/CL-A")
    bad = client.post(
        "/v1/confirmation-acks", json={"confirm_id": "x", "affirm_status": "AFFIRMED"}
    )
    assert bad.status_code == 422 and "trade_id#version" in bad.json()["detail"]
    [record] = read_all(kafka, prefix + "confirmations.in")
    ack = msgspec.json.decode(record.value(), type=ConfirmationAck)
    assert (record.key(), ack.confirm_id, ack.affirm_status) == (
        b"ORD-1:20261124/AL-1/CL-A",
        confirm_id,
        "AFFIRMED",
    )


def test_the_gateway_describes_its_routes_in_openapi(gateway: tuple[httpx.Client, str]) -> None:
    client, _ = gateway
    doc = client.get("/openapi.json").json()
    assert set(doc["paths"]) == {
        "/v1/trades",
        "/v1/allocations",
        "/v1/confirmation-acks",
        "/healthz",
    }
    schemas = doc["components"]["schemas"]
    assert {"TradeEvent", "AllocationRequest", "ConfirmationAckRequest"} <= set(schemas)
    assert set(schemas["AllocationRequest"]["required"]) == {"alloc_id", "order_id", "trade_date"}
