"""A trade's trace across the real pipeline: gateway HTTP -> validator -> positions -> P&L.

The gateway and three services run in this process (the services as StreamApps in
threads), each with its own tracer provider and all exporting to one in-memory exporter
of the OpenTelemetry SDK; the broker is the session's real Kafka. One trade posted over
HTTP must give one trace: the gateway's span, then one hop span per service, each the
child of the one before and linked to the batch span of the batch that carried it; the
P&L record on Kafka carries that trace's context, and so does the query service's SSE
event made from it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import httpx
import msgspec
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import unique
from tests.support.kafka_tools import read_all, wait_for
from tests.support.pipeline import prepare
from tradeflux.config import Settings
from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.runner import Gateway, GatewayConfig
from tradeflux.query.live import LiveHub
from tradeflux.query.readmodel import ReadModel
from tradeflux.services import service_target
from tradeflux.stream.config import RuntimeConfig
from tradeflux.stream.loop import StreamApp
from tradeflux.stream.runner import load_service
from tradeflux.tracing import configure_tracing, trace_id_of

pytestmark = pytest.mark.integration

CHAIN = ("validator", "positions", "pnl")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced_pipeline(
    kafka: Settings, exporter: InMemorySpanExporter
) -> Iterator[tuple[str, Gateway, TradeEvent]]:
    prefix = unique("trace") + "."
    session = prepare(kafka, prefix, count=40, seed=21)
    trade = next(
        event
        for record in session.records
        if (event := _decoded(record.value)) is not None and event.event_type == "NEW"
    )
    apps = []
    for name in CHAIN:
        service = load_service(service_target(name), replace(kafka, topic_prefix=prefix))
        config = RuntimeConfig(
            client=kafka.client_config(), instance_id="t1", topic_prefix=prefix,
            tracing=configure_tracing(name, "t1", exporter=exporter),
        )  # fmt: skip
        apps.append(StreamApp(service, config))
    threads = [threading.Thread(target=app.run, daemon=True) for app in apps]
    for thread in threads:
        thread.start()
    gateway = Gateway(
        GatewayConfig(
            kafka.client_config(), prefix, http_port=0,
            tracing=configure_tracing("gateway", "t1", exporter=exporter),
        )
    )  # fmt: skip
    try:
        wait_for(lambda: all(app.ready() for app in apps), 120, "the services ready")
        yield prefix, gateway, trade
    finally:
        gateway.stop()
        for app in apps:
            app.stop()
        for thread in threads:
            thread.join(30)


def _decoded(value: bytes | None) -> TradeEvent | None:
    try:
        return msgspec.json.decode(value or b"", type=TradeEvent)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def test_one_trade_posted_over_http_is_one_trace_with_a_span_per_service(
    kafka: Settings,
    exporter: InMemorySpanExporter,
    traced_pipeline: tuple[str, Gateway, TradeEvent],
) -> None:
    prefix, gateway, trade = traced_pipeline
    body = msgspec.json.Encoder(decimal_format="string").encode(
        msgspec.structs.replace(trade, trade_id=unique("TRC"), ingest_time=None, source="http")
    )
    answer = httpx.post(
        f"http://127.0.0.1:{gateway.http_port}/v1/trades",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.text

    [started] = [s for s in exporter.get_finished_spans() if s.name == "gateway http"]
    trace_id = started.context.trace_id

    def hops() -> dict[str, object]:
        spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        return {s.name: s for s in spans}

    try:
        wait_for(lambda: {f"{n} process" for n in CHAIN} <= set(hops()), 90, "a span per service")
    except AssertionError:
        seen = [(s.name, f"{s.context.trace_id:032x}") for s in exporter.get_finished_spans()]
        have = sorted(hops())
        raise AssertionError(f"trace {trace_id:032x} has {have}; all spans: {seen}") from None
    spans = exporter.get_finished_spans()
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    assert sorted(s.name for s in in_trace) == sorted(
        ["gateway http", *(f"{n} process" for n in CHAIN)]
    )  # one span per hop: no service made two of the one trade
    by_name = {s.name: s for s in in_trace}
    parent = started
    batches = {s.context.span_id: s for s in spans if s.name.endswith(" batch")}
    for name in CHAIN:
        hop = by_name[f"{name} process"]
        assert hop.parent is not None and hop.parent.span_id == parent.context.span_id, name
        [link] = hop.links
        batch = batches[link.context.span_id]  # the batch span that carried it, ended
        assert batch.name == f"{name} batch"
        assert any(b.context.span_id == hop.parent.span_id for b in batch.links), name
        parent = hop

    # The P&L on Kafka carries the trace; the query service's SSE event made from it too.
    wanted = f"{trace_id:032x}"
    pnl = [m for m in read_all(kafka, f"{prefix}pnl") if trace_id_of(m.headers()) == wanted]
    assert len(pnl) == 1
    hub, model = LiveHub(), ReadModel()
    change = model.apply("pnl", pnl[0].key(), pnl[0].value(), pnl[0].headers())
    assert change is not None
    events: list[bytes] = []
    hub._subscribers.add(_Collect(events))  # type: ignore[arg-type]
    hub.publish([change])
    hub.flush()
    [event] = events
    assert f"traceparent: 00-{wanted}-".encode() in event
    assert event.startswith(b"event: pnl\n")


class _Collect:
    """An SSE subscriber that keeps what the hub sends it."""

    kinds = None

    def __init__(self, into: list[bytes]) -> None:
        self.queue = self
        self._into = into

    def put_nowait(self, text: bytes) -> None:
        self._into.append(text)
