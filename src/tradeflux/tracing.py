"""A trade's trace: W3C trace context in Kafka record headers, OpenTelemetry spans per hop.

Off by default, and cheap when off: :data:`OFF` answers every call at once, adds no
header and imports no OpenTelemetry module. On (:func:`configure_tracing` with an OTLP
endpoint, or an exporter in tests), each hop of a trade is a span in the trade's trace:

- an edge (the gateway) starts the trace: :meth:`Tracing.start` returns the headers
  (``traceparent``, ``tracestate``) to put on the record it writes;
- a service continues it: per batch :meth:`Tracing.batch` opens a batch span linked to
  the trace context of every input record it carries; per output record
  :meth:`BatchTrace.child_headers` opens (once per input record) a hop span, child of the
  input record's context and linked to the batch span, and returns the headers for the
  output; :meth:`BatchTrace.end` ends them all when the transaction committed (or marks
  them failed when it aborted). A record without trace context starts no trace;
- a reader (the query service's events) names the trace with :func:`trace_id_of`.

Sampling is decided where the trace starts (``sample_ratio``) and followed downstream
(the ``traceparent`` flags). The runtime wires these calls; this module knows nothing of
Kafka clients or of trades.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tradeflux.errors import TradefluxError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, SpanContext

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = frozenset({TRACEPARENT, TRACESTATE})
MAX_LINKS = 128
"""Links per batch span (the SDK's default limit); a larger batch links its first 128."""

HeaderList = Sequence[tuple[str, "bytes | str | None"]]
"""Kafka record headers as the client gives them: (name, value) pairs."""

_TRACEPARENT = re.compile(rb"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


class TracingError(TradefluxError):
    """Tracing cannot be set up as configured."""


def _value(headers: HeaderList | None, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.encode() if isinstance(value, str) else value
    return None


def trace_id_of(headers: HeaderList | None) -> str | None:
    """Return the trace id (32 hex digits) a record's headers carry, or None."""
    value = _value(headers, TRACEPARENT)
    match = _TRACEPARENT.match(value) if value is not None else None
    return match.group(1).decode() if match else None


def with_trace(headers: HeaderList | None, trace: Sequence[tuple[str, bytes]]) -> list[Any]:
    """Return ``headers`` with their trace context replaced by ``trace`` (if any)."""
    if not trace:
        return list(headers or ())
    return [h for h in headers or () if h[0] not in TRACE_HEADERS] + list(trace)


class BatchTrace:
    """The trace of one batch of one service; this base class is tracing off."""

    __slots__ = ()

    def child_headers(self, parent: HeaderList | None) -> list[tuple[str, bytes]]:
        """Return the trace headers of an output record made from the input with ``parent``."""
        return []

    def end(self, committed: bool = True) -> None:
        """End the batch's spans: its transaction committed (or, ``committed`` false, aborted)."""


OFF_BATCH = BatchTrace()


class Tracing:
    """Tracing of one process; this base class is tracing off (:data:`OFF`)."""

    enabled = False

    def start(self, name: str) -> list[tuple[str, bytes]]:
        """Start a trace at an edge (``name``: e.g. ``gateway http``); return its headers."""
        return []

    def batch(self, name: str, inputs: Iterable[HeaderList | None]) -> BatchTrace:
        """Open the trace of a batch of service ``name`` whose input records have ``inputs``."""
        return OFF_BATCH

    def shutdown(self) -> None:
        """Export what is buffered and stop (at process exit)."""


OFF = Tracing()
"""Tracing off: no spans, no headers, no OpenTelemetry import."""


class _OnBatch(BatchTrace):
    __slots__ = ("_batch", "_hops", "_owner")

    def __init__(self, owner: _OnTracing, batch: Span) -> None:
        self._owner = owner
        self._batch = batch
        self._hops: dict[bytes, tuple[Span, list[tuple[str, bytes]]]] = {}

    def child_headers(self, parent: HeaderList | None) -> list[tuple[str, bytes]]:
        traceparent = _value(parent, TRACEPARENT)
        if traceparent is None:
            return []  # services continue traces; only an edge starts one
        known = self._hops.get(traceparent)
        if known is not None:
            return known[1]
        owner = self._owner
        context = owner.extract(parent)
        if context is None:
            return []
        span = owner.tracer.start_span(
            owner.hop_name,
            context=context,
            links=[owner.link(self._batch.get_span_context())],
            kind=owner.span_kind.CONSUMER,
        )
        headers = owner.inject(span)
        self._hops[traceparent] = (span, headers)
        return headers

    def end(self, committed: bool = True) -> None:
        status = None if committed else self._owner.error_status()
        for span, _ in self._hops.values():
            if status is not None:
                span.set_status(status)
            span.end()
        if status is not None:
            self._batch.set_status(status)
        self._batch.end()
        self._hops.clear()


class _OnTracing(Tracing):
    enabled = True

    def __init__(self, service: str, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.propagators.textmap import Getter
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        class HeaderGetter(Getter[HeaderList]):
            """Reads W3C trace context out of a list of Kafka headers."""

            def get(self, carrier: HeaderList, key: str) -> list[str] | None:
                value = _value(carrier, key)
                return [value.decode(errors="replace")] if value is not None else None

            def keys(self, carrier: HeaderList) -> list[str]:
                return [k for k, _ in carrier]

        self._getter = HeaderGetter()
        self._provider = provider
        self.tracer = provider.get_tracer("tradeflux")
        self.hop_name = f"{service} process"
        self.span_kind = trace.SpanKind
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()

    def extract(self, headers: HeaderList | None) -> Any:
        """Return the OpenTelemetry context of ``headers``' trace, or None if it has none."""
        context = self._propagator.extract(headers or [], getter=self._getter)
        span_context = self._trace.get_current_span(context).get_span_context()
        return context if span_context.is_valid else None

    def inject(self, span: Span) -> list[tuple[str, bytes]]:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
        return [(k, v.encode()) for k, v in carrier.items()]

    def link(self, span_context: SpanContext) -> Any:
        return self._trace.Link(span_context)

    def error_status(self) -> Any:
        return self._trace.Status(self._trace.StatusCode.ERROR, "transaction aborted")

    def start(self, name: str) -> list[tuple[str, bytes]]:
        span = self.tracer.start_span(name, kind=self.span_kind.PRODUCER)
        try:
            return self.inject(span)
        finally:
            span.end()

    def batch(self, name: str, inputs: Iterable[HeaderList | None]) -> BatchTrace:
        links: list[Any] = []
        count = 0
        for headers in inputs:
            count += 1
            if len(links) < MAX_LINKS and _value(headers, TRACEPARENT) is not None:
                context = self.extract(headers)
                if context is not None:
                    span_context = self._trace.get_current_span(context).get_span_context()
                    links.append(self._trace.Link(span_context))
        span = self.tracer.start_span(
            f"{name} batch",
            links=links,
            kind=self.span_kind.CONSUMER,
            attributes={"messaging.batch.message_count": count},
        )
        return _OnBatch(self, span)

    def shutdown(self) -> None:
        self._provider.shutdown()


def endpoint_from_env(env: Mapping[str, str]) -> str | None:
    """Return the OTLP/HTTP traces endpoint the environment names, or None (tracing off).

    ``TRADEFLUX_OTLP_ENDPOINT`` (a full URL), else OpenTelemetry's own
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (a full URL) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
    (a base URL, ``/v1/traces`` added).
    """
    for name in ("TRADEFLUX_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        if env.get(name):
            return env[name]
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else None


def configure_tracing(
    service: str,
    instance: str,
    endpoint: str | None = None,
    *,
    sample_ratio: float = 1.0,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """Return the tracing of a process: :data:`OFF` unless ``endpoint`` or ``exporter`` is given.

    ``endpoint``: an OTLP/HTTP traces URL (``http://collector:4318/v1/traces``); spans are
    exported in batches in the background. ``exporter``: spans go to it as they end (tests:
    the SDK's ``InMemorySpanExporter``). ``sample_ratio``: the share of the traces this
    process starts that are recorded (0..1); traces started elsewhere follow their flags.
    """
    if endpoint is None and exporter is None:
        return OFF
    if not 0.0 <= sample_ratio <= 1.0:
        raise TracingError(f"sample ratio must be between 0 and 1, got {sample_ratio}")
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError:
        raise TracingError(
            "tracing needs the OpenTelemetry SDK; install it: pip install 'tradeflux[tracing]'"
        ) from None
    resource = Resource.create(
        {"service.name": f"tradeflux-{service}", "service.instance.id": instance}
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(sample_ratio))
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if endpoint is not None:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(endpoint)))
    return _OnTracing(service, provider)


def _otlp_exporter(endpoint: str) -> SpanExporter:
    if not endpoint.startswith(("http://", "https://")):
        raise TracingError(
            f"OTLP endpoint {endpoint!r} is no URL; for example http://collector:4318/v1/traces"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TracingError(
            "exporting traces needs the OTLP exporter; install it: pip install 'tradeflux[tracing]'"
        ) from None
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
    return exporter
