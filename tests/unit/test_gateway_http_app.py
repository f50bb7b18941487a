"""The gateway's HTTP app without Kafka: every answer is JSON, pathological bodies are 400."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from starlette.testclient import TestClient

from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.http import create_app
from tradeflux.gateway.writer import DeliveryError


class FakeWriter:
    """Keeps what it was given; refuses everything when ``refuse`` is set."""

    def __init__(self, max_record_bytes: int = 100_000, refuse: bool = False) -> None:
        self.max_record_bytes = max_record_bytes
        self.refuse = refuse
        self.written: list[TradeEvent] = []
        self._encoder = msgspec.json.Encoder(decimal_format="string")

    def encode(self, event: TradeEvent) -> bytes:
        return self._encoder.encode(event)

    def write(self, events: list[TradeEvent]) -> None:
        if self.refuse:
            raise DeliveryError("Kafka refused it; none was written")
        self.written.extend(events)


def trade(**change: object) -> dict[str, object]:
    return {
        "event_type": "NEW", "trade_id": "T-1", "version": 1, "account": "ACC-1",
        "instrument": "ACME.XNYS", "side": "BUY", "quantity": "100", "price": "10.25",
        "currency": "USD", "venue": "XNYS", "counterparty": "CP-1",
        "trade_time": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(),
        **change,
    }  # fmt: skip


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def client(writer: FakeWriter) -> TestClient:
    json_body = {"Content-Type": "application/json"}
    return TestClient(create_app(writer), raise_server_exceptions=False, headers=json_body)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"version": ' + b"9" * 5000 + b"}",
        b'"\\ud800"',
        b"\xff\xfe",
        b"",
    ],
    ids=["deep-arrays", "deep-objects", "huge-integer", "lone-surrogate", "not-utf8", "empty"],
)
def test_pathological_json_is_400_with_a_json_body(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/trades", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed JSON"


def test_an_unknown_path_and_a_wrong_method_answer_json(client: TestClient) -> None:
    missing = client.get("/v1/nothing")
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    wrong = client.get("/v1/trades")
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method Not Allowed"})
    assert wrong.headers["allow"] == "POST"


def test_a_value_beyond_its_bound_is_422_with_field_and_bound(
    client: TestClient, writer: FakeWriter
) -> None:
    response = client.post(
        "/v1/trades",
        content=msgspec.json.encode(
            [trade(), trade(trade_id="T\u0000", price="1E+400", quantity="1E+11", venue="x")]
        ),
    )
    assert response.status_code == 422
    assert [(e["index"], e["field"], e["bound"]) for e in response.json()["errors"]] == [
        (1, "trade_id", "1 to 64 characters: letters, digits and . _ : / # @ + = -"),
        (1, "price", "finite, |x| < 1E+9, at most 18 significant digits and 8 decimal places"),
        (1, "venue", "empty, or a MIC: 4 upper-case letters or digits"),
    ]
    assert writer.written == []


def test_a_notional_over_its_currencys_bound_is_422(client: TestClient) -> None:
    body = msgspec.json.encode(trade(quantity="999999999999", price="100000"))  # 1E+17 USD
    response = client.post("/v1/trades", content=body)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert (error["field"], error["bound"]) == ("notional", "|notional| <= 1E+13 USD")


def test_kafka_refusing_the_request_is_503_saying_none_was_written() -> None:
    json_body = {"Content-Type": "application/json"}
    client = TestClient(create_app(FakeWriter(refuse=True)), headers=json_body)
    response = client.post("/v1/trades", content=msgspec.json.encode(trade()))
    assert response.status_code == 503
    assert response.json()["written"] == "none"


def test_the_openapi_document_describes_post_v1_trades_with_its_bounds(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    post = document["paths"]["/v1/trades"]["post"]
    assert set(post["responses"]) == {"202", "400", "413", "422", "503"}
    event = document["components"]["schemas"]["TradeEvent"]
    assert event["properties"]["version"] == {"type": "integer", "minimum": 1,
                                              "maximum": 2**63 - 1}  # fmt: skip
    assert event["properties"]["trade_id"]["maxLength"] == 64
    assert event["additionalProperties"] is False
