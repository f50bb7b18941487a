"""Global tables are loaded whole before processing and followed after; metrics and health."""

from __future__ import annotations

import threading
import urllib.request

import msgspec
import pytest

from tests.conftest import unique
from tests.support.jobs import CONVERTER, Number
from tests.support.kafka_tools import caught_up, create_topics, producer, read_all, wait_for
from tradeflux.config import Settings
from tradeflux.stream.app import RuntimeConfig, StreamApp
from tradeflux.stream.deadletter import header_map

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_global_table_is_complete_before_the_first_record_and_follows_updates(
    kafka: Settings,
) -> None:
    prefix = unique("gt") + "-"
    create_topics(
        kafka,
        {f"{prefix}numbers": 3, f"{prefix}converted": 3, f"{prefix}numbers.dlq": 1,
         f"{prefix}rates": 4},
        compacted=[f"{prefix}rates"],
    )  # fmt: skip
    prod = producer(kafka)
    # 200 rates spread over 4 partitions, written before the service starts; a later
    # value for the same key overrides an earlier one.
    for i in range(200):
        prod.produce(f"{prefix}rates", b"1", f"k{i}".encode())
    for i in range(200):
        prod.produce(f"{prefix}rates", str(i + 2).encode(), f"k{i}".encode())
    for i in range(200):
        prod.produce(
            f"{prefix}numbers", msgspec.json.encode(Number(f"k{i}", 1, 10)), f"k{i}".encode()
        )
    prod.produce(f"{prefix}numbers", msgspec.json.encode(Number("nokey", 1, 10)), b"nokey")
    assert prod.flush(30) == 0

    app = StreamApp(
        CONVERTER,
        RuntimeConfig(client=kafka.client_config(), instance_id="gt", topic_prefix=prefix,
                      metrics_port=0),
    )  # fmt: skip
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        group = f"{prefix}converter"
        wait_for(lambda: caught_up(kafka, group, f"{prefix}numbers"), 60, "first catch-up")
        first = read_all(kafka, f"{prefix}converted")
        assert sorted(msgspec.json.decode(m.value())["value"] for m in first) == sorted(
            10 * (i + 2) for i in range(200)
        )
        dead = read_all(kafka, f"{prefix}numbers.dlq")
        assert [header_map(m.headers())["tf.reason"] for m in dead] == ["NO_RATE"]

        # An update of the table reaches the running service.
        prod.produce(f"{prefix}rates", b"1000", b"k7")
        assert prod.flush(30) == 0
        wait_for(lambda: app._tables["rates"].get("k7") == 1000, 30, "table update")
        prod.produce(f"{prefix}numbers", msgspec.json.encode(Number("k7", 2, 3)), b"k7")
        assert prod.flush(30) == 0
        wait_for(lambda: caught_up(kafka, group, f"{prefix}numbers"), 60, "second catch-up")
        values = [msgspec.json.decode(m.value()) for m in read_all(kafka, f"{prefix}converted")]
        assert {"seq": 2, "value": 3000} in values

        port = app.health_port
        assert port is not None
        assert _get(port, "/healthz") == (200, "ok\n")
        assert _get(port, "/readyz") == (200, "ready\n")
        status, metrics = _get(port, "/metrics")
        assert status == 200
        assert 'tradeflux_records_in_total{instance="gt",service="converter"} 202.0' in metrics
        assert (
            'tradeflux_events_total{event="rejected_no_rate",instance="gt",service="converter"} 1.0'
            in metrics
        )
        assert "tradeflux_end_to_end_latency_seconds_bucket" in metrics

        def lag_lines() -> list[str]:
            text = _get(port, "/metrics")[1]
            return [
                ln for ln in text.splitlines() if ln.startswith("tradeflux_consumer_lag_records{")
            ]

        # Caught up: every one of the 3 input partitions comes to report a lag of exactly 0.
        def all_zero() -> bool:
            lines = lag_lines()
            return len(lines) == 3 and all(line.endswith(" 0.0") for line in lines)

        wait_for(all_zero, 15, "three lag gauges at 0")
    finally:
        app.stop()
        thread.join(30)
    assert not thread.is_alive()
