"""HTTP trade capture: ``POST /v1/trades`` into ``trades.raw``, plus ``/healthz`` and ``/metrics``.

``POST /v1/trades`` takes one TradeEvent object or a JSON list of them, sent as
``Content-Type: application/json``. All or nothing per request: if any record is
invalid, none is written. The app runs behind ``tradeflux.security.http`` (allowed Host,
no cross-origin caller, a bearer token with the ``trades:write`` scope; ``metrics`` for
/metrics; see ``docs/security.md``). Answers, each a JSON object:

- 202 ``{"accepted": n}``: all n records are in Kafka (acknowledged by all in-sync
  replicas) — only then;
- 400 ``{"error": "malformed JSON", "detail": "<parser message>"}``;
- 401 / 403 ``{"error": "unauthorized" | "forbidden", "detail": ...}``: no valid token, or
  one without the scope (and 400 for a Host, 403 for an Origin that is not allowed);
- 413 ``{"error": "request body too large", "limit_bytes": <limit>}`` (default 1 MiB);
- 415 ``{"error": "unsupported media type", "detail": ...}``: not ``application/json``
  (what a cross-site HTML form or ``text/plain`` fetch sends); the body is not read;
- 422 ``{"error": "invalid trade events; none was written", "error_count": k,
  "errors": [{"index": i, "field": f, "message": m}, ...]}``: every problem of every
  record (the first 100), in record order; ``index`` is the record's position (0 for a
  single object; null for the request as a whole), ``field`` null for the record as a
  whole;
- 503 ``{"error": "not acknowledged by Kafka", "detail": "..."}``: some records may be in
  Kafka; send the same request again: the validator drops a (trade id, version) it has.

A record without ``source`` is stamped ``"http"``, one without ``ingest_time`` the time
the request was received.
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
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.ingest import MalformedJson, decode_body, parse_trade_events
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
    policy: EdgePolicy | None = None,
) -> Starlette:
    """Build the ASGI app; ``health`` adds to /healthz, ``metrics`` to /metrics.

    ``policy``: the security middleware's (see ``tradeflux.security.policy.edge_policy``
    with ``SCOPE_RULES``); None serves the bare app (in-process tests of the handlers).
    """
    counters = HttpCounters()

    async def post_trades(request: Request) -> Response:
        response, accepted = await _post_trades(request)
        counters.count(response.status_code, accepted)
        return response

    async def _post_trades(request: Request) -> tuple[Response, int]:
        received_at = dt.datetime.now(dt.UTC)
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            detail = f"send Content-Type: application/json, not {media_type or 'none'}"
            return _json(415, {"error": "unsupported media type", "detail": detail}), 0
        too_large = {"error": "request body too large", "limit_bytes": max_body_bytes}
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            return _json(413, too_large), 0
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:  # a chunked body that did not declare its size
                return _json(413, too_large), 0
        try:
            document = decode_body(bytes(body))
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
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        middleware=[] if policy is None else [Middleware(SecurityMiddleware, policy=policy)],
    )
