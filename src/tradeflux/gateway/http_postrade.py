"""HTTP allocation instructions and confirmation acks, and the gateway's OpenAPI document.

``POST /v1/allocations`` takes one :class:`AllocationRequest` (the fields of a FIX 35=J)
and writes it to ``allocations.in``; ``POST /v1/confirmation-acks`` one
:class:`ConfirmationAckRequest` (a 35=AU) and writes it to ``confirmations.in``. Both
answer only once Kafka has the record, like ``POST /v1/trades``:

- 202 ``{"status": "RECEIVED", ...}``: in Kafka; the allocations service decides an
  instruction (``GET /v1/allocations/acks?alloc_id=...`` on the query API, the HTTP
  equivalent of 35=P), the confirmations service an ack (``GET /v1/confirmations``,
  the equivalent of 35=AK);
- 400 malformed JSON; 413 too large; 422 ``{"error": ..., "detail": ...}``: not such a
  request (unknown or missing field, wrong type); 503 not acknowledged by Kafka (send
  it again: an identical instruction or ack is recognised as a resend).

The OpenAPI document at ``/openapi.json`` describes these two and ``POST /v1/trades``,
with the schemas of the structs the gateway decodes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from tradeflux import topics
from tradeflux.domain.allocation_events import (
    AllocationEntry,
    AllocationInstruction,
    AllocTransType,
)
from tradeflux.domain.confirmation_events import (
    AffirmStatus,
    ConfirmationAck,
    parse_confirm_id,
)
from tradeflux.domain.schemas import Side, TradeEvent


class PostTradeWriter(Protocol):
    """Writes records to a topic and returns once Kafka acknowledged them (TradeWriter)."""

    def write_to(self, topic: str, records: list[tuple[str | None, bytes, int | None]]) -> None:
        """Write ``(key, value, partition)`` records; raise DeliveryError if not acknowledged."""


class AllocationRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An allocation instruction over HTTP: the fields of a FIX 4.4 AllocationInstruction.

    ``order_id`` is the block's order (ClOrdID); ``exec_ids`` optionally the executions
    of it that make the block. A REPLACE or CANCEL names the AllocID it changes in
    ``ref_alloc_id``; a CANCEL needs no other field but ``order_id`` and ``trade_date``.
    """

    alloc_id: str
    trans_type: AllocTransType = "NEW"
    ref_alloc_id: str = ""
    alloc_type: int = 1
    order_id: str
    trade_date: dt.date
    exec_ids: tuple[str, ...] = ()
    side: Side | None = None
    instrument: str = ""
    quantity: Decimal | None = None
    avg_px: Decimal | None = None
    avg_px_precision: int | None = None
    allocations: tuple[AllocationEntry, ...] = ()
    text: str = ""


class ConfirmationAckRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A client's answer to a confirmation over HTTP (FIX 4.4 ConfirmationAck).

    ``confirm_id`` is the confirmation's (``trade_id#version``, as ``GET
    /v1/confirmations`` lists it); ``affirm_status`` AFFIRMED, REJECTED or RECEIVED.
    """

    confirm_id: str
    affirm_status: AffirmStatus
    reason: str = ""
    text: str = ""


class Received(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to an accepted request: the record is in Kafka, to be decided."""

    status: str = "RECEIVED"
    key: str  # the record key: the order id, or the child trade id
    id: str  # the AllocID, or the ConfirmID


class RequestError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a request was not taken."""

    error: str
    detail: str = ""


_ALLOCATION_DECODER = msgspec.json.Decoder(AllocationRequest, float_hook=Decimal)
_ACK_DECODER = msgspec.json.Decoder(ConfirmationAckRequest)
_ALLOCATIONS_IN = topics.ALLOCATIONS_IN.codec()
_CONFIRMATIONS_IN = topics.CONFIRMATIONS_IN.codec()


def allocation_record(body: bytes, received_at: dt.datetime) -> tuple[str, bytes, str]:
    """Return ``(key, value, alloc_id)`` of a request body; raise msgspec.DecodeError if bad."""
    request = _ALLOCATION_DECODER.decode(body)
    if not request.alloc_id or not request.order_id:
        raise msgspec.ValidationError("alloc_id and order_id must not be empty")
    fields = msgspec.structs.asdict(request)
    ins = AllocationInstruction(**fields, source="http", received_at=received_at)
    return ins.order_id, _ALLOCATIONS_IN.encode(ins), ins.alloc_id


def confirmation_ack_record(body: bytes, received_at: dt.datetime) -> tuple[str, bytes, str]:
    """Return ``(key, value, confirm_id)`` of a request body; raise msgspec.DecodeError if bad."""
    request = _ACK_DECODER.decode(body)
    parsed = parse_confirm_id(request.confirm_id)
    if parsed is None:
        raise msgspec.ValidationError(
            f"confirm_id {request.confirm_id!r} is not trade_id#version (as GET /v1/confirmations "
            "lists it)"
        )
    ack = ConfirmationAck(**msgspec.structs.asdict(request), source="http", received_at=received_at)
    return parsed[0], _CONFIRMATIONS_IN.encode(ack), ack.confirm_id


_REF = "#/components/schemas/{name}"


def _body(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": _REF.format(name=name)}}}}


def _responses(ok: str) -> dict[str, Any]:
    error = {"description": "", **_body("RequestError")}
    return {
        "202": {"description": "In Kafka.", **_body(ok)},
        "400": {**error, "description": "Malformed JSON."},
        "413": {**error, "description": "Request body too large."},
        "422": {**error, "description": "Not a valid request; nothing was written."},
        "503": {**error, "description": "Not acknowledged by Kafka; send it again."},
    }


def openapi_document() -> dict[str, Any]:
    """Return the gateway's OpenAPI 3.1 document (its ingest routes and their schemas)."""
    _, components = msgspec.json.schema_components(
        [TradeEvent, AllocationRequest, ConfirmationAckRequest, Received, RequestError],
        ref_template=_REF,
    )
    event = {"$ref": _REF.format(name="TradeEvent")}
    trades = {"oneOf": [event, {"type": "array", "items": event}]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tradeflux gateway",
            "version": "1",
            "summary": "Trades, allocation instructions and confirmation acks into Kafka.",
        },  # fmt: skip
        "paths": {
            "/v1/trades": {
                "post": {
                    "summary": "Trade events (one or a list) into trades.raw.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": trades}},
                    },
                    "responses": {"202": {"description": 'All in Kafka: {"accepted": n}.'}},
                }
            },
            "/v1/allocations": {
                "post": {
                    "summary": "An allocation instruction (35=J) into allocations.in.",
                    "requestBody": {"required": True, **_body("AllocationRequest")},
                    "responses": _responses("Received"),
                }
            },
            "/v1/confirmation-acks": {
                "post": {
                    "summary": "A confirmation ack (35=AU) into confirmations.in.",
                    "requestBody": {"required": True, **_body("ConfirmationAckRequest")},
                    "responses": _responses("Received"),
                }
            },
        },
        "components": {"schemas": components},
    }
