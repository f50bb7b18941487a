"""The HTTP surface of the query service: JSON listings, server-sent events, health, dashboard.

Every answer comes from the in-memory read model; no request touches Kafka. Decimals are
JSON strings, times ISO 8601 UTC. Listings are pages: ``limit`` (1..10000, default 100)
and ``offset`` select ``items`` out of ``total`` matches. The OpenAPI document, with the
schemas of every page, is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.staticfiles import StaticFiles

from tradeflux.contracts import registry_schemas
from tradeflux.domain.allocation_events import Allocation, AllocationAck
from tradeflux.domain.confirmation_events import AffirmationException, Confirmation
from tradeflux.domain.finality import ObligationStatement
from tradeflux.domain.reporting import TradeReport
from tradeflux.domain.schemas import (
    Account,
    AccountPnL,
    Bar,
    Counterparty,
    Instrument,
    Position,
    RiskAlert,
    SettlementObligation,
)
from tradeflux.domain.sese023 import SettlementInstruction
from tradeflux.query import allocation_listings as post_trade
from tradeflux.query.follower import FollowerStatus, TopicFollower
from tradeflux.query.live import LiveHub, cancel_quietly
from tradeflux.query.posttrade import FinalObligation
from tradeflux.query.readmodel import (
    ACCOUNTS,
    COUNTERPARTIES,
    INSTRUMENTS,
    Page,
    ReadModel,
    RejectedTrade,
)
from tradeflux.query.service_metrics import ServiceScraper, ServiceStatus
from tradeflux.security.http import EdgePolicy, Rule, SecurityMiddleware
from tradeflux.security.tokens import SCOPE_METRICS
from tradeflux.stream.metrics import StreamMetrics

STATIC_DIR = Path(__file__).parent / "static"
SCOPE_RULES = (Rule("/metrics", SCOPE_METRICS),)
"""/metrics needs ``metrics``; every other path but the probes needs ``read``."""
MAX_LIMIT = 10_000
EVENT_KINDS = frozenset(
    {"position", "pnl", "alert", "bar", "reject", "obligation", "instrument", "account",
     "counterparty", "final", "adjustment", "instruction", "report", "allocation",
     "allocation_ack", "confirmation", "affirmation_exception"}
)  # fmt: skip


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """The query service itself: how far it has read, what it holds, who listens."""

    follower: FollowerStatus
    counts: dict[str, int]
    bad_records: dict[str, int]  # per topic: values that were not the JSON they should be
    reject_reasons: dict[str, int]
    stream_subscribers: int
    server_time: dt.datetime


class RefdataKind(enum.StrEnum):
    """The reference data the read model holds."""

    instruments = "instruments"
    accounts = "accounts"
    counterparties = "counterparties"


_REFDATA_TOPIC = {
    RefdataKind.instruments: INSTRUMENTS,
    RefdataKind.accounts: ACCOUNTS,
    RefdataKind.counterparties: COUNTERPARTIES,
}
_SCHEMAS: dict[str, Any] = {
    "positions": Page[Position],
    "pnl": Page[AccountPnL],
    "alerts": Page[RiskAlert],
    "bars": Page[Bar],
    "obligations": Page[SettlementObligation],
    "final_obligations": Page[FinalObligation],
    "adjustments": Page[ObligationStatement],
    "instructions": Page[SettlementInstruction],
    "instruction": SettlementInstruction,
    "reports": Page[TradeReport],
    "rejects": Page[RejectedTrade],
    "allocations": Page[Allocation],
    "allocation_acks": Page[AllocationAck],
    "confirmations": Page[Confirmation],
    "affirmation_exceptions": Page[AffirmationException],
    "instruments": Page[Instrument],
    "accounts": Page[Account],
    "counterparties": Page[Counterparty],
    "services": list[ServiceStatus],
    "status": Status,
    "reasons": dict[str, int],
}
_REF_TEMPLATE = "#/components/schemas/{name}"
_ENCODER = msgspec.json.Encoder(decimal_format="string")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Most items in the page.")]
Offset = Annotated[int, Query(ge=0, description="Matches to skip before the page.")]


def _json(value: Any, status_code: int = 200) -> Response:
    return Response(_ENCODER.encode(value), status_code, media_type="application/json")


def _documented(name: str) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` of a route answering with ``_SCHEMAS[name]``."""
    schema, _ = msgspec.json.schema_components([_SCHEMAS[name]], ref_template=_REF_TEMPLATE)
    return {200: {"content": {"application/json": {"schema": schema[0]}}}}


def create_app(
    model: ReadModel,
    follower: TopicFollower,
    hub: LiveHub,
    scraper: ServiceScraper,
    metrics: StreamMetrics,
    static_dir: Path = STATIC_DIR,
    policy: EdgePolicy | None = None,
) -> FastAPI:
    """Return the ASGI app; its lifespan starts and stops the follower, the hub and the scraper.

    ``policy``: the security middleware's (bearer scopes, the dashboard's login link and
    session cookie, Host and Origin checks, security headers); None: none of it (tests).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        follower.start()
        tasks = [asyncio.create_task(hub.run()), asyncio.create_task(scraper.run())]
        try:
            yield
        finally:
            hub.close()
            for task in tasks:
                await cancel_quietly(task)
            await asyncio.to_thread(follower.stop)

    app = FastAPI(
        title="tradeflux query API",
        version="1",
        summary="Positions, P&L, risk alerts, bars, settlement obligations, allocations, "
        "confirmations and rejects, live.",
        description=__doc__,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs and /redoc load their scripts from a CDN: none here
        redoc_url=None,
    )
    _install_openapi_components(app)
    if policy is not None:
        app.add_middleware(SecurityMiddleware, policy=policy)

    @app.get("/healthz", tags=["health"], response_class=PlainTextResponse)
    def healthz() -> PlainTextResponse:
        """200 while the Kafka reader runs; 503 when it has stopped on an error."""
        ok = follower.alive()
        return PlainTextResponse("ok\n" if ok else "follower stopped\n", 200 if ok else 503)

    @app.get("/readyz", tags=["health"], responses=_documented("status"))
    def readyz() -> Response:
        """200 once every topic was read up to the end it had at start; 503 before."""
        return _json(follower.status(), 200 if follower.ready else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def prometheus() -> Response:
        """Prometheus metrics of the query service (records read, consumer lag)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/status", tags=["service"], responses=_documented("status"))
    def status() -> Response:
        """Progress of the reader, table sizes, rejects per reason and open streams."""
        return _json(
            Status(
                follower=follower.status(),
                counts=model.counts(),
                bad_records=model.bad_record_counts(),
                reject_reasons=model.reject_counts(),
                stream_subscribers=hub.subscribers,
                server_time=dt.datetime.now(dt.UTC),
            )
        )

    @app.get("/v1/positions", tags=["read model"], responses=_documented("positions"))
    def positions(
        account: str | None = None,
        instrument: str | None = None,
        open_only: Annotated[bool, Query(description="Leave out flat positions.")] = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Positions per account and instrument, in ``account|instrument`` order."""
        return _json(model.list_positions(account, instrument, open_only, limit, offset))

    @app.get("/v1/pnl", tags=["read model"], responses=_documented("pnl"))
    def pnl(account: str | None = None, limit: Limit = 100, offset: Offset = 0) -> Response:
        """P&L per account in its base currency, in account order."""
        return _json(model.list_pnl(account, limit, offset))

    @app.get("/v1/alerts", tags=["read model"], responses=_documented("alerts"))
    def alerts(account: str | None = None, limit: Limit = 100, offset: Offset = 0) -> Response:
        """Risk alerts (limit breached / cleared), newest first."""
        return _json(model.list_alerts(account, limit, offset))

    @app.get("/v1/bars", tags=["read model"], responses=_documented("bars"))
    def bars(instrument: str | None = None, limit: Limit = 100, offset: Offset = 0) -> Response:
        """OHLC bars, the latest revision of each window, newest window first."""
        return _json(model.list_bars(instrument, limit, offset))

    @app.get("/v1/obligations", tags=["read model"], responses=_documented("obligations"))
    def obligations(
        counterparty: str | None = None,
        currency: str | None = None,
        settlement_date: Annotated[
            dt.date | None, Query(alias="date", description="Settlement date, YYYY-MM-DD.")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Netted settlement obligations per counterparty, currency and settlement date."""
        day = settlement_date.isoformat() if settlement_date is not None else None
        return _json(model.list_obligations(counterparty, currency, day, limit, offset))

    @app.get(
        "/v1/settlement/final", tags=["settlement"], responses=_documented("final_obligations")
    )
    def final_obligations(
        counterparty: str | None = None,
        currency: str | None = None,
        settlement_date: Annotated[
            dt.date | None, Query(alias="date", description="Settlement date, YYYY-MM-DD.")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Obligations made FINAL at their market's cut-off, with their adjustment count."""
        day = settlement_date.isoformat() if settlement_date is not None else None
        return _json(
            model.posttrade.list_final_obligations(counterparty, currency, day, limit, offset)
        )

    @app.get(
        "/v1/settlement/adjustments", tags=["settlement"], responses=_documented("adjustments")
    )
    def adjustments(
        counterparty: str | None = None,
        currency: str | None = None,
        settlement_date: Annotated[
            dt.date | None, Query(alias="date", description="Settlement date, YYYY-MM-DD.")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """List the ADJUSTMENTs of FINAL obligations (before, after, the event), newest first."""
        day = settlement_date.isoformat() if settlement_date is not None else None
        return _json(model.posttrade.list_adjustments(counterparty, currency, day, limit, offset))

    @app.get(
        "/v1/settlement/instructions", tags=["settlement"], responses=_documented("instructions")
    )
    def instructions(
        counterparty: str | None = None,
        settlement_date: Annotated[
            dt.date | None, Query(alias="date", description="Settlement date, YYYY-MM-DD.")
        ] = None,
        status: Annotated[
            str | None, Query(description="READY, or REJECTED (no document; see reason).")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """ISO 20022 sese.023.001.11 instructions of the FINAL obligations, newest first."""
        day = settlement_date.isoformat() if settlement_date is not None else None
        return _json(model.posttrade.list_instructions(counterparty, day, status, limit, offset))

    @app.get(
        "/v1/settlement/instructions/{instruction_id}",
        tags=["settlement"],
        responses=_documented("instruction"),
    )
    def instruction(instruction_id: str) -> Response:
        """One instruction by its TxId; 404 if unknown."""
        item = model.posttrade.instruction(instruction_id)
        if item is None:
            raise HTTPException(404, f"no instruction {instruction_id!r}")
        return _json(item)

    @app.get(
        "/v1/settlement/instructions/{instruction_id}/sese023.xml",
        tags=["settlement"],
        response_class=Response,
        responses={200: {"content": {"application/xml": {"schema": {"type": "string"}}}}},
    )
    def instruction_document(instruction_id: str) -> Response:
        """Return the instruction's sese.023.001.11 XML document; 404 if unknown or REJECTED."""
        item = model.posttrade.instruction(instruction_id)
        if item is None:
            raise HTTPException(404, f"no instruction {instruction_id!r}")
        if not item.document:
            raise HTTPException(
                404, f"instruction {instruction_id!r} has no document: {item.reason}"
            )
        return Response(item.document, media_type="application/xml")

    @app.get("/v1/reports", tags=["reporting"], responses=_documented("reports"))
    def reports(
        trade_id: str | None = None,
        late: Annotated[
            bool | None, Query(description="Only late (true) or on-time (false) reports.")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Regulatory transaction reports (MiFIR RTS 22 subset), newest first."""
        return _json(model.posttrade.list_reports(trade_id, late, limit, offset))

    @app.get("/v1/rejects", tags=["read model"], responses=_documented("rejects"))
    def rejects(
        reason: Annotated[str | None, Query(description="Reason code, e.g. ODD_LOT.")] = None,
        stage: str | None = None,
        trade_id: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Rejected records (dead letters) with stage, reason and source offset, newest first."""
        return _json(model.list_rejects(reason, stage, trade_id, limit, offset))

    @app.get("/v1/rejects/reasons", tags=["read model"], responses=_documented("reasons"))
    def reject_reasons() -> Response:
        """How many records were rejected per reason code since the service started."""
        return _json(model.reject_counts())

    @app.get("/v1/allocations", tags=["post-trade"], responses=_documented("allocations"))
    def allocations(
        status: Annotated[str | None, Query(description="ACCEPTED or CANCELLED.")] = None,
        order_id: Annotated[str | None, Query(description="The block's order (ClOrdID).")] = None,
        account: Annotated[
            str | None, Query(description="The house account or an allocated account.")
        ] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Block allocations of record: children, quantities, average price; latest first."""
        return _json(post_trade.list_allocations(model, status, order_id, account, limit, offset))

    @app.get("/v1/allocations/acks", tags=["post-trade"], responses=_documented("allocation_acks"))
    def allocation_acks(
        alloc_id: str | None = None,
        status: Annotated[str | None, Query(description="PENDING, ACCEPTED or REJECTED.")] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Answers to allocation instructions (what FIX 35=P carries), newest first."""
        return _json(post_trade.list_allocation_acks(model, alloc_id, status, limit, offset))

    @app.get("/v1/confirmations", tags=["post-trade"], responses=_documented("confirmations"))
    def confirmations(
        status: Annotated[
            str | None,
            Query(description="PENDING, CONFIRMED, AFFIRMED, REJECTED or CANCELLED."),
        ] = None,
        account: str | None = None,
        block_id: str | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """List the confirmations of allocated children (what FIX 35=AK carries), by deadline."""
        return _json(post_trade.list_confirmations(model, status, account, block_id, limit, offset))

    @app.get(
        "/v1/affirmation-exceptions",
        tags=["post-trade"],
        responses=_documented("affirmation_exceptions"),
    )
    def affirmation_exceptions(
        open_only: Annotated[
            bool, Query(description="Only children still unaffirmed past their deadline.")
        ] = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Response:
        """Children unaffirmed at their deadline, and their clearing; newest first."""
        return _json(post_trade.list_affirmation_exceptions(model, open_only, limit, offset))

    @app.get("/v1/refdata/instruments", tags=["refdata"], responses=_documented("instruments"))
    def instruments(limit: Limit = 100, offset: Offset = 0) -> Response:
        """Instruments in id order."""
        return _json(model.list_refdata(INSTRUMENTS, limit, offset))

    @app.get("/v1/refdata/accounts", tags=["refdata"], responses=_documented("accounts"))
    def accounts(limit: Limit = 100, offset: Offset = 0) -> Response:
        """Accounts in id order."""
        return _json(model.list_refdata(ACCOUNTS, limit, offset))

    @app.get(
        "/v1/refdata/counterparties", tags=["refdata"], responses=_documented("counterparties")
    )
    def counterparties(limit: Limit = 100, offset: Offset = 0) -> Response:
        """Counterparties in id order."""
        return _json(model.list_refdata(COUNTERPARTIES, limit, offset))

    @app.get("/v1/refdata/{kind}/{item_id}", tags=["refdata"])
    def refdata_item(kind: RefdataKind, item_id: str) -> Response:
        """One instrument, account or counterparty by id; 404 if unknown."""
        item = model.get(_REFDATA_TOPIC[kind], item_id)
        if item is None:
            raise HTTPException(404, f"no {kind.value} entry with id {item_id!r}")
        return _json(item)

    topic_schemas = registry_schemas()

    @app.get("/v1/schemas", tags=["contracts"])
    def schemas() -> Response:
        """Return the JSON Schema of every topic's record values, by topic name (the registry)."""
        return _json(topic_schemas)

    @app.get("/v1/schemas/{topic}", tags=["contracts"])
    def schema(topic: str) -> Response:
        """Return the JSON Schema of one topic's record values; 404 if there is no such topic."""
        found = topic_schemas.get(topic)
        if found is None:
            raise HTTPException(404, f"no topic {topic!r}; GET /v1/schemas lists every topic")
        return Response(_ENCODER.encode(found), media_type="application/schema+json")

    @app.get("/v1/services", tags=["service"], responses=_documented("services"))
    def services() -> Response:
        """Throughput and consumer lag of every service, from their last /metrics scrape."""
        return _json(scraper.statuses)

    @app.get(
        "/v1/stream",
        tags=["live"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    )
    def stream(
        events: Annotated[
            str | None,
            Query(
                description="Comma-separated kinds to receive (default all): position, pnl, "
                "alert, bar, reject, obligation, instrument, account, counterparty, final, "
                "adjustment, instruction, report, allocation, allocation_ack, confirmation, "
                "affirmation_exception."
            ),
        ] = None,
    ) -> StreamingResponse:
        """Server-sent events: one per changed position, P&L, bar, obligation; each alert, reject.

        The event name is the kind; its data is the item as the listing returns it. A
        tombstone arrives as ``<kind>_removed`` with ``{"key": ..., "removed": true}``.
        Keyed kinds are coalesced to the last value per key every 250 ms. The first
        event, ``hello``, carries the reader's status; reload snapshots after it.
        """
        kinds: frozenset[str] | None = None
        if events:
            kinds = frozenset(k.strip() for k in events.split(",") if k.strip())
            unknown = kinds - EVENT_KINDS
            if unknown:
                raise HTTPException(
                    422, f"unknown event kind(s) {sorted(unknown)}; known: {sorted(EVENT_KINDS)}"
                )
        hello = b"event: hello\ndata: " + _ENCODER.encode(follower.status()) + b"\n\n"
        return StreamingResponse(
            hub.stream(kinds, hello),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    index = static_dir / "index.html"

    @app.get("/", include_in_schema=False, response_model=None)
    def dashboard() -> FileResponse | PlainTextResponse:
        if not index.is_file():
            return PlainTextResponse(
                "the dashboard's assets are not built; run: npm --prefix web ci && "
                "npm --prefix web run build\n",
                503,
            )
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static")
    return app


def _install_openapi_components(app: FastAPI) -> None:
    """Add the msgspec schemas the routes refer to to the generated OpenAPI document."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = default_openapi()
        _, components = msgspec.json.schema_components(
            list(_SCHEMAS.values()), ref_template=_REF_TEMPLATE
        )
        document.setdefault("components", {}).setdefault("schemas", {}).update(components)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
