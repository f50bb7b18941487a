"""HTTP trade capture: ``POST /v1/trades`` into ``trades.raw``, plus ``/healthz`` and ``/metrics``.

``POST /v1/trades`` takes one TradeEvent object or a JSON list of them (the body is
read as JSON whatever its Content-Type says). All or nothing per request: if any
record is invalid, none is written. Answers, each a JSON object:

- 202 ``{"accepted": n}``: all n records are in Kafka (acknowledged by all in-sync
  replicas) — only then;
- 400 ``{"error": "malformed JSON", "detail": "<parser message>"}``;
- 413 ``{"error": "request body too large", "limit_bytes": <limit>}`` (default 1 MiB);
- 422 ``{"error": "invalid trade events; none was written", "error_count": k,
  "errors": [{"index": i, "field": f, "message": m}, ...]}``: every problem of every
  record (the first 100), in record order; ``index`` is the record's position (0 for a
  single object; null for the request as a whole), ``field`` null for the record as a
  whole;
- 503 ``{"error": "not acknowledged by Kafka", "detail": "..."}``: some records may be in
  Kafka; send the same request again: the validator drops a (trade id, version) it has.

A record without ``source`` is stamped ``"http"``, one without ``ingest_time`` the time
the request was received.

``POST /v1/allocations`` and ``POST /v1/confirmation-acks`` take allocation instructions
and confirmation acks (``http_postrade``); ``GET /openapi.json`` describes every route.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import anyio.to_thread
import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tradeflux import topics
from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.http_postrade import (
    PostTradeWriter,
    Received,
    RequestError,
    allocation_record,
    confirmation_ack_record,
    openapi_document,
)
from tradeflux.gateway.ingest import MalformedJson, decode_body, parse_trade_events
from tradeflux.gateway.writer import DeliveryError

DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_ERRORS_LISTED = 100

log = logging.getLogger("tradeflux.gateway.http")
_encoder = msgspec.json.Encoder(decimal_format="string")


class EventWriter(Protocol):
    """Writes trade events and returns once Kafka acknowledged them all (TradeWriter)."""

    def write(self, events: list[TradeEvent]) -> None:
        """Write ``events``; raise DeliveryError if Kafka did not acknowledge them all."""


class HttpCounters:
    """Request outcomes since start (for /metrics)."""

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.records_accepted = 0

    def count(self, status: int, records: int = 0) -> None:
        """Count a request answered with ``status`` that wrote ``records``."""
        self.requests[status] = self.requests.get(status, 0) + 1
        self.records_accepted += records


def _json(status: int, body: Any) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


def create_app(
    writer: EventWriter,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    health: Callable[[], dict[str, Any]] | None = None,
    metrics: Callable[[], Iterator[CounterMetricFamily]] | None = None,
    post_trade: PostTradeWriter | None = None,
) -> Starlette:
    """Build the ASGI app; ``health`` adds to /healthz, ``metrics`` to /metrics.

    ``post_trade`` writes allocation instructions and confirmation acks (without it those
    routes answer 503).
    """
    counters = HttpCounters()
    openapi = _encoder.encode(openapi_document())

    async def read_body(request: Request) -> bytes | Response:
        too_large = {"error": "request body too large", "limit_bytes": max_body_bytes}
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            return _json(413, too_large)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:  # a chunked body that did not declare its size
                return _json(413, too_large)
        return bytes(body)

    async def post_record(
        request: Request,
        topic: str,
        to_record: Callable[[bytes, dt.datetime], tuple[str, bytes, str]],
    ) -> Response:
        received_at = dt.datetime.now(dt.UTC)
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        try:
            key, value, record_id = to_record(body, received_at)
        except msgspec.ValidationError as exc:
            return _json(422, RequestError(error="not a valid request", detail=str(exc)))
        except msgspec.DecodeError as exc:
            return _json(400, RequestError(error="malformed JSON", detail=str(exc)))
        if post_trade is None:
            return _json(503, RequestError(error="this gateway takes no post-trade records"))
        try:
            records: list[tuple[str | None, bytes, int | None]] = [(key, value, None)]
            await anyio.to_thread.run_sync(post_trade.write_to, topic, records)
        except DeliveryError as exc:
            log.error("http %s record not acknowledged by Kafka error=%r", topic, exc)
            return _json(503, RequestError(error="not acknowledged by Kafka", detail=str(exc)))
        return _json(202, Received(key=key, id=record_id))

    async def post_allocation(request: Request) -> Response:
        response = await post_record(request, topics.ALLOCATIONS_IN.name, allocation_record)
        counters.count(response.status_code)
        return response

    async def post_confirmation_ack(request: Request) -> Response:
        response = await post_record(request, topics.CONFIRMATIONS_IN.name, confirmation_ack_record)
        counters.count(response.status_code)
        return response

    async def openapi_json(_request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    async def post_trades(request: Request) -> Response:
        response, accepted = await _post_trades(request)
        counters.count(response.status_code, accepted)
        return response

    async def _post_trades(request: Request) -> tuple[Response, int]:
        received_at = dt.datetime.now(dt.UTC)
        body = await read_body(request)
        if isinstance(body, Response):
            return body, 0
        try:
            document = decode_body(body)
        except MalformedJson as exc:
            return _json(400, {"error": "malformed JSON", "detail": str(exc)}), 0
        events, errors = parse_trade_events(document, received_at)
        if errors:
            return _json(
                422,
                {
                    "error": "invalid trade events; none was written",
                    "error_count": len(errors),
                    "errors": errors[:MAX_ERRORS_LISTED],
                },
            ), 0
        try:
            await anyio.to_thread.run_sync(writer.write, events)
        except DeliveryError as exc:
            log.error("http trades not acknowledged by Kafka count=%d error=%r", len(events), exc)
            return _json(503, {"error": "not acknowledged by Kafka", "detail": str(exc)}), 0
        return _json(202, {"accepted": len(events)}), len(events)

    async def healthz(_request: Request) -> Response:
        return _json(200, {"status": "ok", **(health() if health else {})})

    class _Collector:
        def collect(self) -> Iterator[CounterMetricFamily]:
            requests = CounterMetricFamily(
                "tradeflux_gateway_http_requests",
                "POST /v1/trades requests by status code",
                labels=["status"],
            )
            for status, count in sorted(counters.requests.items()):
                requests.add_metric([str(status)], count)
            yield requests
            yield CounterMetricFamily(
                "tradeflux_gateway_http_records_accepted",
                "trade events accepted over HTTP (in Kafka)",
                value=counters.records_accepted,
            )
            if metrics is not None:
                yield from metrics()

    registry = CollectorRegistry()
    registry.register(_Collector())

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/v1/trades", post_trades, methods=["POST"]),
            Route("/v1/allocations", post_allocation, methods=["POST"]),
            Route("/v1/confirmation-acks", post_confirmation_ack, methods=["POST"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ]
    )
