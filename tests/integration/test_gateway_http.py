"""HTTP trade capture against the real broker: POST /v1/trades, each answer exactly.

The gateway runs in process (HTTP only, uvicorn on a free port, the real Kafka writer,
auth on with static tokens); the CLI tests run ``tradeflux gateway --no-fix`` as a process
and stop it with SIGTERM.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.conftest import free_port_block, unique
from tests.support.auth import Tokens, bearer, tokens_file
from tests.support.kafka_tools import REPO, create_topics, read_all, wait_for
from tests.support.tls import make_pki
from tradeflux.config import Settings
from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.http import SCOPE_RULES
from tradeflux.gateway.runner import Gateway, GatewayConfig
from tradeflux.gateway.writer import DeliveryError, TransactionalTradeWriter
from tradeflux.security.policy import edge_policy, uvicorn_tls
from tradeflux.security.tokens import SCOPE_TRADES_WRITE

pytestmark = pytest.mark.integration


# An hour ago: inside the trade time bound (400 days before now to 5 s after) whenever run.
TRADE_TIME = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()


def trade(trade_id: str, **change: object) -> dict[str, object]:
    return {
        "event_type": "NEW",
        "trade_id": trade_id,
        "version": 1,
        "account": "ACC-1",
        "instrument": "DE0007164600",
        "side": "BUY",
        "quantity": 100,
        "price": "101.25",
        "currency": "EUR",
        "venue": "XETR",
        "counterparty": "CP-1",
        "trade_time": TRADE_TIME,
        **change,
    }


class HttpGateway:
    """An in-process HTTP gateway writing to its own topic, auth on (static tokens)."""

    def __init__(self, settings: Settings, tokens: Tokens, max_body_bytes: int = 1 << 20) -> None:
        prefix = unique("gwhttp") + "."
        self.topic = prefix + "trades.raw"
        self.settings = settings
        self.tokens = tokens
        create_topics(settings, {self.topic: 3})
        secured = dataclasses.replace(settings, tokens_file=tokens.path)
        self.gateway = Gateway(
            GatewayConfig(
                settings.client_config(), prefix, http_port=0, max_body_bytes=max_body_bytes,
                http_policy=edge_policy(secured, SCOPE_RULES, SCOPE_TRADES_WRITE),
            )
        )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.gateway.http_port}")

    def post(self, body: object, **headers: str) -> httpx.Response:
        """POST as a trades:write client sends it (JSON, a token), unless ``headers`` change it."""
        sent = {"Content-Type": "application/json", **bearer(self.tokens.writer)}
        sent.update({k.replace("_", "-"): v for k, v in headers.items()})
        sent = {k: v for k, v in sent.items() if v}
        return self.client.post("/v1/trades", content=body, headers=sent)  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()
        self.gateway.stop()

    def records(self) -> list[tuple[bytes, TradeEvent]]:
        return [
            (m.key(), msgspec.json.decode(m.value(), type=TradeEvent))
            for m in read_all(self.settings, self.topic)
        ]


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return tokens_file(tmp_path / "tokens.toml")


@pytest.fixture
def gateway(kafka: Settings, tokens: Tokens) -> Iterator[HttpGateway]:
    gw = HttpGateway(kafka, tokens)
    yield gw
    gw.close()


def test_no_token_is_401_a_reader_403_and_nothing_reaches_trades_raw(
    gateway: HttpGateway,
) -> None:
    body = msgspec.json.encode([trade("A-1")])
    anonymous = gateway.post(body, Authorization="")
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    reader = gateway.post(body, Authorization=f"Bearer {gateway.tokens.reader}")
    assert reader.status_code == 403
    assert reader.json()["detail"] == "reader lacks the 'trades:write' scope"
    assert gateway.records() == []
    assert gateway.post(body).status_code == 202
    assert [key for key, _ in gateway.records()] == [b"A-1"]


def test_a_cross_site_text_plain_post_is_refused_and_nothing_reaches_trades_raw(
    gateway: HttpGateway,
) -> None:
    """A foreign page can make the operator's browser send this (a "simple" request)."""
    body = msgspec.json.encode([trade("X-1")])
    plain = gateway.post(body, Content_Type="text/plain")  # even with a valid token
    assert (plain.status_code, plain.json()["error"]) == (415, "unsupported media type")
    cross = gateway.post(
        body, Content_Type="text/plain", Authorization="", Origin="https://evil.example"
    )
    assert (cross.status_code, cross.json()["error"]) == (415, "unsupported media type")
    as_json = gateway.post(body, Origin="https://evil.example")  # a token, but another origin
    assert (as_json.status_code, as_json.json()["error"]) == (403, "cross-origin request refused")
    assert gateway.records() == []


def test_a_foreign_host_is_400(gateway: HttpGateway) -> None:
    response = gateway.post(msgspec.json.encode([trade("H-1")]), Host="attacker.example")
    assert response.status_code == 400
    assert response.json()["error"] == "host not allowed"
    assert gateway.records() == []


def test_valid_batch_is_in_trades_raw_when_202_comes_back(gateway: HttpGateway) -> None:
    batch = [trade("T-1"), trade("T-2", side="SELL", quantity="0.5"), trade("T-3", price=99.5)]
    response = gateway.post(msgspec.json.encode(batch))
    assert (response.status_code, response.json()) == (202, {"accepted": 3})
    records = gateway.records()  # no waiting: 202 means Kafka has them
    assert sorted(key for key, _ in records) == [b"T-1", b"T-2", b"T-3"]
    by_id = {event.trade_id: event for _, event in records}
    assert by_id["T-2"].side == "SELL"
    assert by_id["T-2"].quantity == Decimal("0.5")
    assert by_id["T-3"].price == Decimal("99.5")
    assert by_id["T-1"].quantity == Decimal(100)
    assert all(event.source == "http" and event.ingest_time for event in by_id.values())


def test_single_object_is_accepted(gateway: HttpGateway) -> None:
    response = gateway.post(msgspec.json.encode(trade("T-9")))
    assert (response.status_code, response.json()) == (202, {"accepted": 1})
    assert [key for key, _ in gateway.records()] == [b"T-9"]


def test_malformed_json_is_400_and_writes_nothing(gateway: HttpGateway) -> None:
    response = gateway.post(b'[{"trade_id": "T-1",}]')
    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed JSON",
        "detail": "JSON is malformed: trailing comma in object (byte 20)",
    }
    assert gateway.records() == []


def test_wrong_types_are_422_per_record_and_the_good_record_is_not_written(
    gateway: HttpGateway,
) -> None:
    body = [
        trade("T-1"),
        trade("T-2", quantity=True, version="2", trade_time="2026-11-24 09:00:00"),
        trade("T-3", side="LONG", price=None),
    ]
    response = gateway.post(msgspec.json.encode(body))
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid trade events; none was written",
        "error_count": 5,
        "errors": [
            {"index": 1, "field": "version", "message": "expected a whole number"},
            {
                "index": 1,
                "field": "quantity",
                "message": "expected a decimal number, as a JSON number or a string such as "
                '"100.25"',
            },
            {
                "index": 1,
                "field": "trade_time",
                "message": "timestamp without a time zone; add one, such as "
                '"2026-11-24T10:15:00.125Z"',
            },
            {"index": 2, "field": "side", "message": "expected one of BUY, SELL"},
            {
                "index": 2,
                "field": "price",
                "message": "expected a decimal number, as a JSON number or a string such as "
                '"100.25"',
            },
        ],
    }
    assert gateway.records() == []


def test_unknown_and_missing_fields_are_422(gateway: HttpGateway) -> None:
    without_account = {k: v for k, v in trade("T-2").items() if k != "account"}
    response = gateway.post(msgspec.json.encode([trade("T-1", qty=5), without_account]))
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid trade events; none was written",
        "error_count": 2,
        "errors": [
            {"index": 0, "field": "qty", "message": "unknown field"},
            {"index": 1, "field": "account", "message": "required field missing"},
        ],
    }
    assert gateway.records() == []


def test_oversize_body_is_413_declared_or_streamed(kafka: Settings, tokens: Tokens) -> None:
    gw = HttpGateway(kafka, tokens, max_body_bytes=1000)
    try:
        body = msgspec.json.encode([trade(f"T-{i}") for i in range(10)])
        assert len(body) > 1000
        expected = {"error": "request body too large", "limit_bytes": 1000}
        declared = gw.post(body)
        assert (declared.status_code, declared.json()) == (413, expected)
        chunks = (body[i : i + 100] for i in range(0, len(body), 100))
        streamed = gw.post(chunks)  # chunked: no Content-Length
        assert (streamed.status_code, streamed.json()) == (413, expected)
        fits = gw.post(msgspec.json.encode(trade("T-0")))
        assert fits.status_code == 202
        assert [key for key, _ in gw.records()] == [b"T-0"]
    finally:
        gw.close()


def test_unreachable_kafka_is_503() -> None:
    port = free_port_block(1)  # nothing listens there
    client = {"bootstrap.servers": f"127.0.0.1:{port}", "delivery.timeout.ms": 1000}
    gateway = Gateway(GatewayConfig(client, http_port=0))
    try:
        url = f"http://127.0.0.1:{gateway.http_port}/v1/trades"
        response = httpx.post(
            url, content=msgspec.json.encode(trade("T-1")), timeout=30,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "not written to Kafka"
        assert body["written"] == "none"
        assert body["detail"].startswith("cannot read max.message.bytes of trades.raw")
    finally:
        gateway.stop()


def test_healthz(gateway: HttpGateway) -> None:
    response = gateway.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "fix": None})


# The command -----------------------------------------------------------------------------


def gateway_command(
    *args: str, tokens_file: Path | None = None, auth: str | None = None
) -> list[str]:
    """``tradeflux [--tokens-file F | --auth A] gateway ARGS`` (auth none by default)."""
    root = ["--tokens-file", str(tokens_file)] if tokens_file else ["--auth", auth or "none"]
    return [sys.executable, "-m", "tradeflux.cli", *root, "gateway", *args]


def test_gateway_command_serves_http_and_stops_cleanly_on_sigterm(
    kafka: Settings, tmp_path: Path, tokens: Tokens
) -> None:
    prefix = unique("gwcli") + "."
    create_topics(kafka, {prefix + "trades.raw": 1})
    port = free_port_block(1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRADEFLUX_BOOTSTRAP": kafka.bootstrap}
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            gateway_command("--no-fix", "--http-port", str(port), "--prefix", prefix,
                            "--runtime-dir", str(tmp_path), tokens_file=tokens.path),
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, 30, "the gateway's /healthz")
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "fix": None}
        body = msgspec.json.encode([trade("C-1")])
        json_only = {"Content-Type": "application/json"}
        assert httpx.post(f"{url}/v1/trades", content=body, headers=json_only).status_code == 401
        response = httpx.post(
            f"{url}/v1/trades", content=body,
            headers={"Content-Type": "application/json", **bearer(tokens.writer)},
        )  # fmt: skip
        assert (response.status_code, response.json()) == (202, {"accepted": 1})
        assert [m.key() for m in read_all(kafka, prefix + "trades.raw")] == [b"C-1"]
        assert httpx.get(f"{url}/metrics").status_code == 401
        metrics = httpx.get(f"{url}/metrics", headers=bearer(tokens.scraper)).text
        assert 'tradeflux_gateway_http_requests_total{status="202"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "gateway stopped" in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http-port", "http"], "tradeflux: error: Invalid value for '--http-port': Input "
         "should be a valid integer, unable to parse string as an integer (see --help)"),
        (["--fix-port", "0"], "tradeflux: error: Invalid value for '--fix-port': Input should "
         "be greater than or equal to 1 (see --help)"),
        (["--fix-settings", "/nonexistent.cfg"],
         "tradeflux: error: --fix-settings /nonexistent.cfg: no such file"),
    ],
)  # fmt: skip
def test_gateway_command_bad_flag_is_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(
        gateway_command(*args),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert done.returncode == (1 if "--fix-settings" in args else 2)
    assert done.stderr.strip() == message


def test_gateway_command_busy_http_port_is_one_line(kafka: Settings, tmp_path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            gateway_command("--no-fix", "--http-port", str(port), "--runtime-dir", str(tmp_path)),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "TRADEFLUX_BOOTSTRAP": kafka.bootstrap},
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"tradeflux: error: cannot listen for HTTP on 127.0.0.1:{port} (Address already in use); "
        "choose another --http-port"
    )


# -- all or nothing, also when Kafka refuses a record -------------------------------------


def _topic_with_max_message_bytes(settings: Settings, max_bytes: int) -> tuple[str, str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = unique("gwtxn") + "."
    topic = prefix + "trades.raw"
    admin = AdminClient(settings.client_config())
    config = {"max.message.bytes": str(max_bytes)}
    for future in admin.create_topics([NewTopic(topic, 3, 1, config=config)]).values():
        future.result()
    return prefix, topic


def test_a_record_kafka_refuses_aborts_the_whole_request_nothing_is_read_committed(
    kafka: Settings,
) -> None:
    prefix, topic = _topic_with_max_message_bytes(kafka, 4096)
    # told the topic takes 1 MB, so the 6 kB record goes out and the broker refuses it
    writer = TransactionalTradeWriter(
        kafka.client_config(), unique("gwtxn-id"), prefix, producers=1, max_message_bytes=1 << 20
    )
    good = [msgspec.convert(trade(f"T-{i}"), TradeEvent) for i in range(5)]
    huge = msgspec.structs.replace(good[0], trade_id="T-huge", source="x" * 6000)
    try:
        with pytest.raises(DeliveryError, match="none was written") as refused:
            writer.write([*good[:3], huge, *good[3:]])
        assert refused.value.outcome_known
        assert read_all(kafka, topic) == []  # read_committed: nothing of the request
        assert len(read_all(kafka, topic, committed=False)) >= 1  # written, then aborted
        writer.write(good)  # the producer goes on with the next request
        assert sorted(m.key() for m in read_all(kafka, topic)) == [
            f"T-{i}".encode() for i in range(5)
        ]
    finally:
        writer.close()


def test_the_gateway_refuses_a_record_larger_than_the_topic_takes_with_422(
    kafka: Settings,
) -> None:
    prefix, topic = _topic_with_max_message_bytes(kafka, 1000)
    gateway = Gateway(GatewayConfig(kafka.client_config(), prefix, http_port=0))
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{gateway.http_port}",
            headers={"Content-Type": "application/json"},
        )
        long_id = "A" * 64
        small = trade("T-1")
        large = trade(long_id, account=long_id, instrument=long_id, counterparty=long_id,
                      source=long_id)  # fmt: skip
        response = client.post("/v1/trades", content=msgspec.json.encode([small, large]))
        assert response.status_code == 422, response.text
        (error,) = response.json()["errors"]
        assert (error["index"], error["field"], error["bound"]) == (1, None, "at most 488 bytes")
        assert client.post("/v1/trades", content=msgspec.json.encode(small)).status_code == 202
        assert [m.key() for m in read_all(kafka, topic)] == [b"T-1"]
    finally:
        gateway.stop()


def test_out_of_bounds_fields_are_422_naming_field_and_bound(gateway: HttpGateway) -> None:
    response = gateway.post(
        msgspec.json.encode([trade("T-1", quantity="1E+27"), trade("T-2", version=2**70)])
    )
    assert response.status_code == 422
    assert [(e["index"], e["field"], e["bound"]) for e in response.json()["errors"]] == [
        (0, "quantity", "finite, |x| < 1E+12, at most 18 significant digits and 8 decimal places"),
        (1, "version", "1 to 2**63-1"),
    ]
    assert gateway.records() == []


def test_gateway_command_refuses_auth_none_on_every_interface(kafka: Settings) -> None:
    done = subprocess.run(
        gateway_command("--no-fix", "--host", "0.0.0.0", auth="none"),  # noqa: S104
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), "TRADEFLUX_BOOTSTRAP": kafka.bootstrap},
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "tradeflux: error: --auth none with HTTP on 0.0.0.0 would let anyone on that network in"
        )
    )


def test_with_mtls_a_client_without_a_certificate_cannot_connect(
    kafka: Settings, tokens: Tokens, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki")
    prefix = unique("gwmtls") + "."
    create_topics(kafka, {prefix + "trades.raw": 1})
    secured = dataclasses.replace(
        kafka, tokens_file=tokens.path, tls_cert=pki.server_cert, tls_key=pki.server_key,
        tls_client_ca=pki.ca,
    )  # fmt: skip
    gateway = Gateway(
        GatewayConfig(
            kafka.client_config(), prefix, http_port=0,
            http_policy=edge_policy(secured, SCOPE_RULES, SCOPE_TRADES_WRITE),
            http_tls=uvicorn_tls(secured),
        )
    )  # fmt: skip
    url = f"https://127.0.0.1:{gateway.http_port}"
    body = msgspec.json.encode(trade("M-1"))
    headers = {"Content-Type": "application/json", **bearer(tokens.writer)}
    try:
        no_cert = ssl.create_default_context(cafile=str(pki.ca))
        with pytest.raises(httpx.TransportError):  # the handshake (or the first read) fails
            httpx.post(
                f"{url}/v1/trades", content=body, headers=headers, verify=no_cert, timeout=10
            )
        with_cert = ssl.create_default_context(cafile=str(pki.ca))
        with_cert.load_cert_chain(pki.client_cert, pki.client_key)
        anonymous = httpx.post(
            f"{url}/v1/trades", content=body, headers={"Content-Type": "application/json"},
            verify=with_cert, timeout=10,
        )  # fmt: skip
        assert anonymous.status_code == 401  # the certificate opens the door, the token decides
        response = httpx.post(f"{url}/v1/trades", content=body, headers=headers,
                              verify=with_cert, timeout=10)  # fmt: skip
        assert (response.status_code, response.json()) == (202, {"accepted": 1})
        assert response.headers["strict-transport-security"] == "max-age=31536000"
    finally:
        gateway.stop()
    assert [m.key() for m in read_all(kafka, prefix + "trades.raw")] == [b"M-1"]
