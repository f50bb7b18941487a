"""The query service against the real broker: read model, filters, pages, events, readiness."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from confluent_kafka import Producer

from tests.conftest import unique
from tests.support.auth import Tokens, bearer, tokens_file
from tests.support.kafka_tools import create_query_topics, producer, wait_for
from tradeflux.config import Settings, load_settings
from tradeflux.domain.schemas import AccountPnL, Instrument, Position, position_key
from tradeflux.query.server import BackgroundServer, QueryService
from tradeflux.query.service_metrics import ScrapeTarget
from tradeflux.security.policy import metrics_authorize
from tradeflux.stream.metrics import HealthServer, StreamMetrics

pytestmark = pytest.mark.integration

ENCODE = msgspec.json.Encoder(decimal_format="string").encode
ACCOUNTS = ("ACC-1", "ACC-2", "ACC-3")
INSTRUMENTS = ("AAA.XNAS", "BBB.XNAS", "CCC.XLON", "DDD.XLON", "EEE.XETR")
T0 = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


def position(account: str, instrument: str, n: int) -> Position:
    return Position(
        account=account,
        instrument=instrument,
        currency="USD",
        quantity=Decimal(100 * n) * (1 if n % 2 else -1),
        avg_cost=Decimal(f"{n}.125"),
        realized_pnl=Decimal(f"-{n}.50"),
        trade_count=n,
        last_trade_id=f"T{n}",
        as_of=T0 + dt.timedelta(seconds=n),
    )


def dead_letter_headers(reason: str, offset: int) -> list[tuple[str, bytes]]:
    return [
        ("tf.stage", b"validator"),
        ("tf.reason", reason.encode()),
        ("tf.error", b""),
        ("tf.detail", f"{reason} detail".encode()),
        ("tf.source.topic", b"trades.raw"),
        ("tf.source.partition", b"1"),
        ("tf.source.offset", str(offset).encode()),
    ]


class World:
    """The topics of one test module, what was written to them, and the running service."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.settings = settings
        self.prefix = prefix
        self.producer: Producer = producer(settings)
        self.positions: dict[str, Position] = {}
        self.seeded = 0

    def send(
        self, topic: str, key: str, value: Any, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        data = value if isinstance(value, bytes) or value is None else ENCODE(value)
        self.producer.produce(self.prefix + topic, key=key.encode(), value=data, headers=headers)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def seed(world: World) -> int:
    """Write the records that exist before the service starts; return how many."""
    n = 0
    for i, account in enumerate(ACCOUNTS):
        for j, instrument in enumerate(INSTRUMENTS):
            p = position(account, instrument, 1 + i * len(INSTRUMENTS) + j)
            world.positions[position_key(account, instrument)] = p
            world.send("positions", position_key(account, instrument), p)
            n += 1
        pnl = AccountPnL(
            account=account,
            base_currency="USD",
            realized=Decimal(f"{i}.10"),
            unrealized=Decimal(f"-{i}.20"),
            total=Decimal(f"{i}.10") - Decimal(f"{i}.20"),
            positions=len(INSTRUMENTS),
        )
        world.send("pnl", account, pnl)
        n += 1
    for k, reason in enumerate(("ODD_LOT", "OFF_TICK", "ODD_LOT", "UNKNOWN_ACCOUNT")):
        world.send(
            "trades.rejected", f"R{k}", b'{"trade_id": "R%d"}' % k, dead_letter_headers(reason, k)
        )
        n += 1
    world.send(
        "trades.rejected", "R-BIN", b"\xff\xfe not json", dead_letter_headers("SCHEMA_INVALID", 9)
    )
    n += 1
    for k, (account, status) in enumerate(
        (("ACC-1", "BREACHED"), ("ACC-2", "BREACHED"), ("ACC-1", "CLEARED"))
    ):
        world.send(
            "risk.alerts",
            account,
            {"account": account, "status": status, "limit": "gross_notional", "value": f"{k}.5"},
        )
        n += 1
    world.send("risk.alerts", "ACC-9", b"[1, 2, 3]")  # not an object: counted as bad
    n += 1
    for instrument in ("AAA.XNAS", "BBB.XNAS"):
        for w in range(3):
            start = (T0 + dt.timedelta(minutes=w)).isoformat()
            bar = {"instrument": instrument, "window_start": start, "open": "1.10", "close": "1.20"}
            world.send("analytics.bars", f"{instrument}|{start}", bar)
            n += 1
    start = T0.isoformat()
    world.send(  # a revision of AAA's first window: replaces it
        "analytics.bars",
        f"AAA.XNAS|{start}",
        {"instrument": "AAA.XNAS", "window_start": start, "open": "1.10", "close": "1.30"},
    )
    n += 1
    for cp, ccy, day in (
        ("CP-1", "USD", "2026-03-04"),
        ("CP-1", "EUR", "2026-03-04"),
        ("CP-2", "USD", "2026-03-05"),
    ):
        world.send(
            "settlement.obligations",
            f"{cp}|{ccy}|{day}",
            {"counterparty": cp, "currency": ccy, "settlement_date": day, "net_cash": "-10.00"},
        )
        n += 1
    for instrument in INSTRUMENTS:
        world.send(
            "refdata.instruments",
            instrument,
            Instrument(
                instrument_id=instrument,
                isin="US0000000000",
                symbol=instrument[:3],
                currency="USD",
                mic=instrument[-4:],
            ),
        )
        n += 1
    world.flush()
    # a transaction that aborts: read_committed never shows it
    txn = Producer(world.settings.client_config(**{"transactional.id": unique("q-abort")}))
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(
        world.prefix + "positions",
        key=b"ACC-X|ZZZ.XNAS",
        value=ENCODE(position("ACC-X", "ZZZ.XNAS", 99)),
    )
    txn.flush(30)
    txn.abort_transaction(30)
    return n


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    """A tokens file (auth is on) and the scraper's token file, for the whole module."""
    folder = tmp_path_factory.mktemp("auth")
    tokens = tokens_file(folder / "tokens.toml")
    scrape = folder / "scrape.token"
    scrape.write_text(tokens.scraper)
    return Secrets(tokens, scrape)


@dataclasses.dataclass(frozen=True)
class Secrets:
    tokens: Tokens
    scrape_token_file: Path


@pytest.fixture(scope="module")
def scraped_metrics(secrets: Secrets) -> Iterator[tuple[StreamMetrics, str]]:
    """A real /metrics endpoint of a stream process (metrics scope required), counters set here."""
    metrics = StreamMetrics("validator", "v-1")
    authorize = metrics_authorize(load_settings(env={}, tokens_file=secrets.tokens.path))
    server = HealthServer(metrics, 0, alive=lambda: True, ready=lambda: True, authorize=authorize)
    server.start()
    try:
        yield metrics, f"http://127.0.0.1:{server.port}/metrics"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(kafka: Settings) -> World:
    prefix = unique("query") + "."
    create_query_topics(kafka, prefix)
    w = World(kafka, prefix)
    w.seeded = seed(w)
    return w


@pytest.fixture(scope="module")
def server(
    world: World, scraped_metrics: tuple[StreamMetrics, str], secrets: Secrets
) -> Iterator[BackgroundServer]:
    settings = dataclasses.replace(
        world.settings, topic_prefix=world.prefix, tokens_file=secrets.tokens.path,
        scrape_token_file=secrets.scrape_token_file,
    )  # fmt: skip
    service = QueryService(settings, [ScrapeTarget("validator", scraped_metrics[1])])
    with BackgroundServer(service) as running:
        yield running


@pytest.fixture()
def http(server: BackgroundServer, secrets: Secrets) -> Iterator[httpx.Client]:
    """A client with a token of both read and metrics."""
    headers = bearer(secrets.tokens.operator)
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as client:
        wait_for(lambda: client.get("/readyz").status_code == 200, 60, "the query service ready")
        yield client


def test_readyz_reports_ready_once_everything_present_at_start_was_read(
    world: World, http: httpx.Client
) -> None:
    status = http.get("/readyz").json()
    assert status["ready"] is True
    assert status["behind_start_records"] == 0
    # every record written before the start, and none of the aborted transaction
    assert status["records"] >= world.seeded
    assert status["missing_topics"] == []
    assert http.get("/healthz").status_code == 200


def test_positions_filter_by_account_and_instrument_with_decimals_as_strings(
    world: World, http: httpx.Client
) -> None:
    page = http.get("/v1/positions", params={"account": "ACC-2"}).json()
    assert page["total"] == len(INSTRUMENTS)
    assert [p["instrument"] for p in page["items"]] == sorted(INSTRUMENTS)
    one = http.get("/v1/positions", params={"account": "ACC-2", "instrument": "CCC.XLON"}).json()
    assert one["total"] == 1
    expected = world.positions["ACC-2|CCC.XLON"]
    got = one["items"][0]
    assert got["quantity"] == str(expected.quantity)
    assert got["avg_cost"] == "8.125" and got["realized_pnl"] == "-8.50"
    assert isinstance(got["quantity"], str)
    assert msgspec.convert(got, Position, strict=False) == expected
    assert http.get("/v1/positions", params={"instrument": "CCC.XLON"}).json()["total"] == 3


def test_positions_pages_cover_every_position_once_in_key_order(http: httpx.Client) -> None:
    seen: list[str] = []
    for offset in range(0, 20, 4):
        page = http.get("/v1/positions", params={"limit": 4, "offset": offset}).json()
        assert (page["total"], page["limit"], page["offset"]) == (15, 4, offset)
        seen += [f"{p['account']}|{p['instrument']}" for p in page["items"]]
    assert seen == sorted(position_key(a, i) for a in ACCOUNTS for i in INSTRUMENTS)


def test_an_aborted_transaction_never_shows(http: httpx.Client) -> None:
    assert http.get("/v1/positions", params={"account": "ACC-X"}).json()["total"] == 0


def test_pnl_per_account(http: httpx.Client) -> None:
    assert http.get("/v1/pnl").json()["total"] == 3
    page = http.get("/v1/pnl", params={"account": "ACC-3"}).json()
    assert page["items"] == [
        {
            "account": "ACC-3",
            "base_currency": "USD",
            "realized": "2.10",
            "unrealized": "-2.20",
            "total": "-0.10",
            "positions": 5,
            "missing_marks": [],
        }
    ]


def test_rejects_carry_their_reason_headers_and_filter_by_reason(http: httpx.Client) -> None:
    odd = http.get("/v1/rejects", params={"reason": "ODD_LOT"}).json()
    assert odd["total"] == 2
    assert [r["trade_id"] for r in odd["items"]] == ["R2", "R0"]  # newest first
    first = odd["items"][1]
    assert first["stage"] == "validator"
    assert first["detail"] == "ODD_LOT detail"
    assert (first["source_topic"], first["source_partition"], first["source_offset"]) == (
        "trades.raw",
        1,
        0,
    )
    assert first["value"] == '{"trade_id": "R0"}'
    binary = http.get("/v1/rejects", params={"trade_id": "R-BIN"}).json()["items"][0]
    assert binary["reason"] == "SCHEMA_INVALID"
    assert binary["value"].endswith(" not json")  # undecodable bytes replaced, not dropped
    assert http.get("/v1/rejects/reasons").json() == {
        "ODD_LOT": 2,
        "OFF_TICK": 1,
        "UNKNOWN_ACCOUNT": 1,
        "SCHEMA_INVALID": 1,
    }


def test_alerts_bars_and_obligations_are_any_json_object_keyed_as_the_contract_says(
    http: httpx.Client,
) -> None:
    alerts = http.get("/v1/alerts", params={"account": "ACC-1"}).json()
    assert [a["status"] for a in alerts["items"]] == ["CLEARED", "BREACHED"]
    assert alerts["items"][0]["value"] == "2.5"
    assert http.get("/v1/alerts").json()["total"] == 3
    assert http.get("/v1/status").json()["bad_records"] == {"risk.alerts": 1}

    bars = http.get("/v1/bars", params={"instrument": "AAA.XNAS"}).json()
    assert bars["total"] == 3  # the revision replaced its window
    starts = [b["window_start"] for b in bars["items"]]
    assert starts == sorted(starts, reverse=True)
    assert bars["items"][-1]["close"] == "1.30"

    cp1 = http.get("/v1/obligations", params={"counterparty": "CP-1"}).json()
    assert [o["currency"] for o in cp1["items"]] == ["EUR", "USD"]
    day = http.get("/v1/obligations", params={"date": "2026-03-05"}).json()
    assert [(o["counterparty"], o["net_cash"]) for o in day["items"]] == [("CP-2", "-10.00")]


def test_refdata_lists_and_looks_up_by_id(http: httpx.Client) -> None:
    page = http.get("/v1/refdata/instruments", params={"limit": 2}).json()
    assert page["total"] == 5
    assert [i["instrument_id"] for i in page["items"]] == ["AAA.XNAS", "BBB.XNAS"]
    assert http.get("/v1/refdata/instruments/EEE.XETR").json()["mic"] == "XETR"
    assert http.get("/v1/refdata/instruments/NOPE").status_code == 404
    assert http.get("/v1/refdata/accounts").json()["total"] == 0


def test_bad_parameters_get_422(http: httpx.Client) -> None:
    assert http.get("/v1/positions", params={"limit": 0}).status_code == 422
    assert http.get("/v1/positions", params={"offset": -1}).status_code == 422
    assert http.get("/v1/obligations", params={"date": "tomorrow"}).status_code == 422
    assert http.get("/v1/stream", params={"events": "position,gossip"}).status_code == 422


def _next_event(lines: Iterator[str], deadline: float) -> tuple[str, Any]:
    event, data = "", ""
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            return event, json.loads(data)
    raise AssertionError("no event before the deadline")


def test_stream_delivers_a_new_position_as_it_is_committed(
    world: World, server: BackgroundServer, secrets: Secrets
) -> None:
    fresh = position("ACC-NEW", "FFF.XNAS", 7)
    headers = bearer(secrets.tokens.reader)
    with (
        httpx.Client(
            base_url=server.url, timeout=httpx.Timeout(10, read=20), headers=headers
        ) as client,
        client.stream("GET", "/v1/stream", params={"events": "position,reject"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        deadline = time.monotonic() + 30
        kind, hello = _next_event(lines, deadline)
        assert kind == "hello" and hello["ready"] is True
        world.send("positions", position_key("ACC-NEW", "FFF.XNAS"), fresh)
        world.flush()
        while True:
            kind, data = _next_event(lines, deadline)
            if kind == "position" and data["account"] == "ACC-NEW":
                break
        assert data["quantity"] == "700" and data["avg_cost"] == "7.125"
    # and the listing has it too
    with httpx.Client(base_url=server.url, headers=headers) as client:
        got = client.get("/v1/positions", params={"account": "ACC-NEW"}).json()
        assert got["items"][0]["instrument"] == "FFF.XNAS"


def test_a_tombstone_removes_a_position(world: World, http: httpx.Client) -> None:
    world.send("positions", "ACC-3|EEE.XETR", None)
    world.flush()
    wait_for(
        lambda: http.get("/v1/positions", params={"account": "ACC-3"}).json()["total"] == 4,
        30,
        "the tombstoned position to go",
    )


def test_services_show_throughput_and_lag_from_their_metrics(
    http: httpx.Client, scraped_metrics: tuple[StreamMetrics, str]
) -> None:
    metrics, url = scraped_metrics
    labels = metrics.labels()
    metrics.records_in.labels(**labels).inc(1000)
    metrics.lag.labels(**labels, partition="0").set(40)
    metrics.lag.labels(**labels, partition="1").set(2)
    metrics.dead_letters.labels(**labels, reason="processor_error").inc(3)

    def scraped() -> dict[str, Any] | None:
        services = http.get("/v1/services").json()
        return services[0] if services and services[0]["records_in_total"] == 1000 else None

    svc = wait_for(scraped, 15, "a scrape with the counters set")
    assert (svc["name"], svc["url"], svc["up"], svc["instances"]) == ("validator", url, True, 1)
    assert svc["consumer_lag_records"] == 42
    assert svc["dead_letters_total"] == 3
    metrics.records_in.labels(**labels).inc(500)
    faster = wait_for(
        lambda: next(
            (s for s in http.get("/v1/services").json() if s["records_in_total"] == 1500), None
        ),
        15,
        "a scrape with more records in",
    )
    assert faster["records_in_per_s"] > 0


def test_openapi_and_own_metrics_are_published(
    http: httpx.Client, scraped_metrics: tuple[StreamMetrics, str]
) -> None:
    url = scraped_metrics[1]
    doc = http.get("/openapi.json").json()
    for path in (
        "/v1/positions",
        "/v1/pnl",
        "/v1/alerts",
        "/v1/bars",
        "/v1/obligations",
        "/v1/rejects",
        "/v1/refdata/instruments",
        "/v1/services",
        "/v1/stream",
    ):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    assert schemas["Position"]["properties"]["quantity"]["format"] == "decimal"
    ref = doc["paths"]["/v1/positions"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ref["schema"]["$ref"].split("/")[-1] in schemas
    assert httpx.get(f"{url}", timeout=5).status_code == 401  # the scraped service's /metrics
    text = http.get("/metrics").text
    assert 'tradeflux_records_in_total{instance="query",service="query"}' in text
    assert http.get("/").headers["content-type"].startswith("text/html")
