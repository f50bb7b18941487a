"""The OpenAPI 3.1 document of the gateway's HTTP ingest (``GET /openapi.json``).

The TradeEvent schema is msgspec's, with the bounds of domain/bounds.py written in as
JSON Schema keywords (lengths, patterns, ranges), so a client generator or an API fuzzer
(schemathesis, in the test suite) knows what a valid request is and what answers come.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tradeflux.domain.bounds import MAX_ID_LENGTH, MAX_VERSION
from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.ingest import INTERNAL_FIELDS

_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
       "pattern": "^[A-Za-z0-9._:/#@+=-]+$"}  # fmt: skip
_DECIMAL_TEXT = (
    "a decimal number, as a JSON number or a string, with at most 18 significant digits "
    "and 8 decimal places"
)
_DECIMAL: dict[str, Any] = {
    "description": _DECIMAL_TEXT,
    "anyOf": [
        {"type": "string", "pattern": "^-?[0-9]{1,18}(\\.[0-9]{1,8})?$"},
        {"type": "number"},
    ],
}
_FIELDS: dict[str, dict[str, Any]] = {
    "trade_id": _ID,
    "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
    "account": _ID,
    "instrument": _ID,
    "counterparty": _ID,
    "source": _ID,
    "quantity": {**_DECIMAL, "description": "|quantity| < 1E+12; " + _DECIMAL_TEXT},
    "price": {**_DECIMAL, "description": "|price| < 1E+9; " + _DECIMAL_TEXT},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"},
    "venue": {"type": "string", "pattern": "^([A-Z0-9]{4})?$", "description": "a MIC, or empty"},
}
_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error"],
}
_RECORD_ERROR = {
    "type": "object",
    "properties": {
        "index": {"type": ["integer", "null"]},
        "field": {"type": ["string", "null"]},
        "message": {"type": "string"},
        "bound": {"type": "string"},
    },
    "required": ["index", "field", "message"],
}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def trade_event_schema() -> dict[str, Any]:
    """Return the JSON Schema of one TradeEvent as the gateway accepts it."""
    (schema,), components = msgspec.json.schema_components([TradeEvent])
    event = dict(components["TradeEvent"])
    properties = {k: v for k, v in event["properties"].items() if k not in INTERNAL_FIELDS}
    for name, bound in _FIELDS.items():
        properties[name] = {**bound, "title": properties[name].get("title", name)}
    properties.pop("allocation", None)  # set by the allocations service only (ingest.py)
    properties["trade_time"] = {"type": "string", "format": "date-time"}
    properties["ingest_time"] = {"type": "string", "format": "date-time"}
    event["properties"] = {k: {kk: vv for kk, vv in v.items() if kk != "title"}
                           for k, v in properties.items()}  # fmt: skip
    event["additionalProperties"] = False
    event.pop("title", None)
    return event


def openapi_document(max_body_bytes: int) -> dict[str, Any]:
    """Return the gateway's OpenAPI document."""
    event = {"$ref": "#/components/schemas/TradeEvent"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tradeflux gateway",
            "version": "1",
            "summary": "Trade capture over HTTP into trades.raw, all or nothing per request.",
        },
        "paths": {
            "/v1/trades": {
                "post": {
                    "summary": "Capture trade events (one object or a list), all or nothing",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        event,
                                        {"type": "array", "items": event, "minItems": 1},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json_response(
                            "Every record is in Kafka",
                            {
                                "type": "object",
                                "properties": {"accepted": {"type": "integer"}},
                                "required": ["accepted"],
                            },
                        ),
                        "400": _json_response("Not JSON", _ERROR),
                        "413": _json_response(
                            f"Body over {max_body_bytes} bytes",
                            {**_ERROR, "properties": {"limit_bytes": {"type": "integer"}}},
                        ),
                        "422": _json_response(
                            "Invalid records; none was written",
                            {
                                "type": "object",
                                "properties": {
                                    "error": {"type": "string"},
                                    "error_count": {"type": "integer"},
                                    "errors": {"type": "array", "items": _RECORD_ERROR},
                                },
                                "required": ["error", "error_count", "errors"],
                            },
                        ),
                        "503": _json_response(
                            "Kafka did not take the records; none was written",
                            {**_ERROR, "properties": {"written": {"enum": ["none", "unknown"]}}},
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness, with the FIX session counters",
                    "responses": {"200": _json_response("Alive", {"type": "object"})},
                }
            },
        },
        "components": {"schemas": {"TradeEvent": trade_event_schema()}},
    }
