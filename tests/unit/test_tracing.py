"""Tracing without a broker: off by default and inert, on with the SDK's in-memory exporter.

The hops below are driven by hand, as the runtime will drive them per batch: a trade
started at the gateway, then the validator, positions and P&L batches that carry it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tradeflux import tracing
from tradeflux.tracing import (
    OFF,
    OFF_BATCH,
    TracingError,
    configure_tracing,
    endpoint_from_env,
    trace_id_of,
    with_trace,
)


def test_tracing_is_off_without_an_endpoint_and_imports_no_opentelemetry() -> None:
    code = (
        "import sys; from tradeflux import tracing; "
        "t = tracing.configure_tracing('validator', 'v-1'); "
        "tp = b'00-' + b'1' * 32 + b'-' + b'2' * 16 + b'-01'; "
        "b = t.batch('validator', [[('traceparent', tp)]]); "
        "assert t is tracing.OFF and b is tracing.OFF_BATCH; "
        "assert b.child_headers([('traceparent', b'x')]) == [] and t.start('gateway') == []; "
        "b.end(); print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_off_leaves_headers_as_they_are() -> None:
    headers = [("source", b"fix"), ("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")]
    batch = OFF.batch("positions", [headers])
    assert batch is OFF_BATCH
    assert with_trace(headers, batch.child_headers(headers)) == headers
    assert OFF.enabled is False


def test_one_trade_gives_one_trace_with_a_span_per_hop_linked_to_its_batches() -> None:
    exporter = InMemorySpanExporter()
    gateway = configure_tracing("gateway", "gw-1", exporter=exporter)
    validator = configure_tracing("validator", "v-1", exporter=exporter)
    positions = configure_tracing("positions", "p-1", exporter=exporter)

    raw = with_trace([("source", b"http")], gateway.start("gateway http"))
    trace_id = trace_id_of(raw)
    assert trace_id is not None and len(trace_id) == 32

    batch = validator.batch("validator", [raw, [("source", b"kafka")]])  # one untraced record
    enriched = with_trace([], batch.child_headers(raw))
    assert batch.child_headers(raw) == [h for h in enriched if h[0] == "traceparent"] + [
        h for h in enriched if h[0] == "tracestate"
    ]  # one hop span per input record, however many outputs it makes
    assert batch.child_headers([("source", b"kafka")]) == []  # services start no trace
    batch.end()

    batch = positions.batch("positions", [enriched])
    position = with_trace([], batch.child_headers(enriched))
    batch.end()
    assert trace_id_of(enriched) == trace_id_of(position) == trace_id

    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == [
        "gateway http",
        "positions batch",
        "positions process",
        "validator batch",
        "validator process",
    ]
    hops = [spans["gateway http"], spans["validator process"], spans["positions process"]]
    assert {format(s.context.trace_id, "032x") for s in hops} == {trace_id}
    assert hops[1].parent.span_id == hops[0].context.span_id
    assert hops[2].parent.span_id == hops[1].context.span_id
    assert spans["gateway http"].kind is SpanKind.PRODUCER
    assert spans["validator batch"].attributes["messaging.batch.message_count"] == 2
    (link,) = spans["validator batch"].links  # the traced record of the two
    assert link.context.span_id == hops[0].context.span_id
    (back,) = hops[1].links
    assert back.context.span_id == spans["validator batch"].context.span_id
    assert hops[1].resource.attributes["service.name"] == "tradeflux-validator"


def test_an_aborted_batch_ends_its_spans_as_errors() -> None:
    exporter = InMemorySpanExporter()
    gateway = configure_tracing("gateway", "gw-1", exporter=exporter)
    risk = configure_tracing("risk", "r-1", exporter=exporter)
    raw = gateway.start("gateway http")
    batch = risk.batch("risk", [raw])
    batch.child_headers(raw)
    batch.end(committed=False)
    ended = {s.name: s for s in exporter.get_finished_spans()}
    assert ended["risk process"].status.status_code is StatusCode.ERROR
    assert ended["risk batch"].status.description == "transaction aborted"


def test_an_unsampled_trace_is_carried_on_but_not_recorded() -> None:
    exporter = InMemorySpanExporter()
    gateway = configure_tracing("gateway", "gw-1", exporter=exporter, sample_ratio=0.0)
    pnl = configure_tracing("pnl", "pnl-1", exporter=exporter)
    raw = gateway.start("gateway http")
    assert int(raw[0][1].rsplit(b"-", 1)[1], 16) & 1 == 0  # the sampled flag is off
    batch = pnl.batch("pnl", [raw])
    out = batch.child_headers(raw)
    batch.end()
    assert trace_id_of(out) == trace_id_of(raw)
    assert [s.name for s in exporter.get_finished_spans()] == ["pnl batch"]


def test_a_malformed_traceparent_is_ignored() -> None:
    exporter = InMemorySpanExporter()
    validator = configure_tracing("validator", "v-1", exporter=exporter)
    bad = [("traceparent", b"not-a-trace")]
    batch = validator.batch("validator", [bad])
    assert batch.child_headers(bad) == []
    batch.end()
    assert trace_id_of(bad) is None
    (only,) = exporter.get_finished_spans()
    assert only.links == ()


def test_the_endpoint_comes_from_tradeflux_or_opentelemetry_variables() -> None:
    assert endpoint_from_env({}) is None
    assert endpoint_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    assert (
        endpoint_from_env(
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/t",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "x",
            }
        )
        == "http://c:4318/t"
    )
    assert (
        endpoint_from_env(
            {
                "TRADEFLUX_OTLP_ENDPOINT": "http://t:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "x",
            }
        )
        == "http://t:4318/v1/traces"
    )


def test_an_endpoint_exports_over_otlp_and_a_bad_one_or_ratio_is_refused() -> None:
    on = configure_tracing("query", "q-1", "http://127.0.0.1:4318/v1/traces")
    assert on.enabled
    on.shutdown()  # nothing was recorded: nothing is sent
    with pytest.raises(TracingError, match="is no URL"):
        configure_tracing("query", "q-1", "collector:4318")
    with pytest.raises(TracingError, match="between 0 and 1"):
        configure_tracing("query", "q-1", exporter=InMemorySpanExporter(), sample_ratio=1.5)
    assert tracing.MAX_LINKS == 128
