"""HTTP trade capture: ``POST /v1/trades`` into ``trades.raw``, plus ``/healthz`` and ``/metrics``.

``POST /v1/trades`` takes one TradeEvent object or a JSON list of them, sent as
``Content-Type: application/json``. All or nothing per request: if any record is
invalid, none is written; the records of a valid request are written in one Kafka
transaction, so if Kafka refuses any of them none is visible to a ``read_committed``
reader (the validator). The app runs behind ``tradeflux.security.http`` (allowed Host,
no cross-origin caller, a bearer token with the ``trades:write`` scope; ``metrics`` for
/metrics; see ``docs/security.md``). Answers, each a JSON object (the OpenAPI document is
at ``GET /openapi.json``):

- 202 ``{"accepted": n}``: all n records are in Kafka (the transaction is committed,
  every record acknowledged by all in-sync replicas) — only then;
- 400 ``{"error": "malformed JSON", "detail": "<parser message>"}``: not JSON, or
  nested too deeply;
- 401 / 403 ``{"error": "unauthorized" | "forbidden", "detail": ...}``: no valid token, or
  one without the scope (and 400 for a Host, 403 for an Origin that is not allowed);
- 413 ``{"error": "request body too large", "limit_bytes": <limit>}`` (default 1 MiB);
- 415 ``{"error": "unsupported media type", "detail": ...}``: not ``application/json``
  (what a cross-site HTML form or ``text/plain`` fetch sends); the body is not read;
- 422 ``{"error": "invalid trade events; none was written", "error_count": k,
  "errors": [{"index": i, "field": f, "message": m, "bound": b}, ...]}``: every problem
  of every record (the first 100), in record order; ``index`` is the record's position
  (0 for a single object; null for the request as a whole), ``field`` null for the
  record as a whole, ``bound`` the bound a value broke (domain/bounds.py; absent for
  other problems), including the size of a record beyond what ``trades.raw`` takes;
- 503 ``{"error": "not written to Kafka", "detail": "...", "written": "none"}``: the
  transaction was aborted, nothing of the request is in ``trades.raw``; ``"written":
  "unknown"`` in the rare case the abort itself failed. Either way, send the same
  request again: the validator drops a (trade id, version) it has.

Any other error (an unknown path, a wrong method) is a JSON ``{"error": ...}`` too.

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
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tradeflux import topics
from tradeflux.domain.bounds import NotionalBounds
from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.http_postrade import (
    PostTradeWriter,
    Received,
    RequestError,
    allocation_record,
    confirmation_ack_record,
)
from tradeflux.gateway.http_postrade import openapi_document as post_trade_openapi
from tradeflux.gateway.ingest import MalformedJson, RecordError, decode_body, parse_trade_events
from tradeflux.gateway.openapi import openapi_document
from tradeflux.gateway.writer import DeliveryError
from tradeflux.security.http import EdgePolicy, Rule, SecurityMiddleware
from tradeflux.security.tokens import SCOPE_METRICS, SCOPE_TRADES_WRITE

DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_ERRORS_LISTED = 100
SCOPE_RULES = (Rule("/v1/trades", SCOPE_TRADES_WRITE), Rule("/metrics", SCOPE_METRICS))
"""What each path of the gateway needs; any other path needs ``trades:write`` too."""

log = logging.getLogger("tradeflux.gateway.http")
_encoder = msgspec.json.Encoder(decimal_format="string")


class EventWriter(Protocol):
    """Writes trade events, all or none, returning once Kafka has them all.

    (TransactionalTradeWriter.) ``max_record_bytes`` is the largest record value it can
    write; ``encode`` gives a record's value.
    """

    @property
    def max_record_bytes(self) -> int:
        """Return the largest record value Kafka takes (DeliveryError if it cannot tell)."""

    def encode(self, event: TradeEvent) -> bytes:
        """Return the record value of ``event``."""

    def write(self, events: list[TradeEvent]) -> None:
        """Write ``events``; raise DeliveryError if Kafka did not take them all."""


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


def _not_written(events: list[TradeEvent], exc: DeliveryError) -> Response:
    """Answer 503: the records are not in Kafka (or, rarely, may be: ``written`` unknown)."""
    log.error("http trades not written to Kafka count=%d error=%r", len(events), exc)
    written = "none" if exc.outcome_known else "unknown"
    return _json(503, {"error": "not written to Kafka", "detail": str(exc), "written": written})


def _too_large_records(writer: EventWriter, events: list[TradeEvent]) -> list[RecordError]:
    """Return an error for each event whose record would be larger than Kafka takes."""
    limit = writer.max_record_bytes
    errors = []
    for index, event in enumerate(events):
        size = len(writer.encode(event))
        if size > limit:
            message = f"the record is {size} bytes; trades.raw takes at most {limit}"
            errors.append(RecordError(index, None, message, f"at most {limit} bytes"))
    return errors


def create_app(
    writer: EventWriter,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    health: Callable[[], dict[str, Any]] | None = None,
    metrics: Callable[[], Iterator[CounterMetricFamily]] | None = None,
    notional_bounds: NotionalBounds | None = None,
    post_trade: PostTradeWriter | None = None,
    policy: EdgePolicy | None = None,
) -> Starlette:
    """Build the ASGI app; ``health`` adds to /healthz, ``metrics`` to /metrics.

    ``post_trade`` writes allocation instructions and confirmation acks (without it those
    routes answer 503). ``policy``: the security middleware's (see
    ``tradeflux.security.policy.edge_policy`` with ``SCOPE_RULES``); None serves the bare
    app (in-process tests of the handlers).
    """
    counters = HttpCounters()
    bounds = notional_bounds or NotionalBounds()
    document = openapi_document(max_body_bytes)
    extra = post_trade_openapi()
    document["paths"].update({k: v for k, v in extra["paths"].items() if k != "/v1/trades"})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in extra["components"]["schemas"].items():
        schemas.setdefault(name, schema)  # the bounded TradeEvent stays
    openapi = _encoder.encode(document)

    async def read_body(request: Request) -> bytes | Response:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":  # what a cross-site form or text/plain sends
            detail = f"send Content-Type: application/json, not {media_type or 'none'}"
            return _json(415, {"error": "unsupported media type", "detail": detail})
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
        except (msgspec.DecodeError, RecursionError) as exc:
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
        events, errors = parse_trade_events(document, received_at, notional_bounds=bounds)
        try:
            errors = errors or _too_large_records(writer, events)
        except DeliveryError as exc:
            return _not_written(events, exc), 0
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
            return _not_written(events, exc), 0
        return _json(202, {"accepted": len(events)}), len(events)

    async def openapi_endpoint(_request: Request) -> Response:
        return Response(openapi, media_type="application/json")

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
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        middleware=[] if policy is None else [Middleware(SecurityMiddleware, policy=policy)],
    )


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Answer an HTTP error of the framework (404, 405, ...) with a JSON body."""
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    headers = dict(exc.headers or {})
    return Response(
        _encoder.encode({"error": exc.detail}),
        status_code=exc.status_code,
        media_type="application/json",
        headers=headers,
    )


async def _internal_error(_request: Request, exc: Exception) -> Response:
    """Answer a defect with a JSON 500 (and log it): never a bare text page."""
    log.error("http request failed error=%r", exc, exc_info=exc)
    return _json(500, {"error": "internal error", "detail": type(exc).__name__})
