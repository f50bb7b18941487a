"""The query API and the dashboard describe what they serve with the domain's own structs.

Each read-model route's OpenAPI schema is its page of the domain struct, field for field
the struct's msgspec schema; the dashboard's TypeScript types come from the same schemas.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.unit.test_query_app import client
from tradeflux.domain.allocation_events import Allocation
from tradeflux.domain.confirmation_events import AffirmationException, Confirmation
from tradeflux.domain.schemas import (
    AccountPnL,
    Bar,
    Instrument,
    Position,
    RiskAlert,
    SettlementObligation,
)
from tradeflux.query.typescript import typescript

ROUTES: dict[str, Any] = {
    "/v1/positions": Position,
    "/v1/pnl": AccountPnL,
    "/v1/alerts": RiskAlert,
    "/v1/bars": Bar,
    "/v1/obligations": SettlementObligation,
    "/v1/refdata/instruments": Instrument,
    "/v1/allocations": Allocation,
    "/v1/confirmations": Confirmation,
    "/v1/affirmation-exceptions": AffirmationException,
}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_each_read_model_route_serves_pages_of_its_domain_struct_field_by_field(route: str) -> None:
    document = client().get("/openapi.json").json()
    answer = document["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]
    page = _resolve(document, answer["schema"])
    assert set(page["properties"]) == {"total", "limit", "offset", "items"}
    item = _resolve(document, page["properties"]["items"]["items"])
    struct = ROUTES[route]
    _, components = msgspec.json.schema_components(
        [struct], ref_template="#/components/schemas/{name}"
    )
    components = msgspec.json.decode(msgspec.json.encode(components))  # as JSON says it
    assert item == components[struct.__name__]
    assert set(item["properties"]) == set(struct.__struct_fields__)
    for name, nested in components.items():  # the structs inside it, the same way
        assert document["components"]["schemas"][name] == nested


def test_alerts_bars_and_obligations_are_documented_field_by_field_not_as_empty_objects() -> None:
    schemas = client().get("/openapi.json").json()["components"]["schemas"]
    for struct in (RiskAlert, Bar, SettlementObligation):
        assert set(schemas[struct.__name__]["properties"]) == set(struct.__struct_fields__)
        assert len(struct.__struct_fields__) >= 9


def test_the_dashboards_types_are_the_domain_structs_field_by_field() -> None:
    ts = typescript()
    for struct in (Position, AccountPnL, RiskAlert, Bar, SettlementObligation, Allocation):
        block = ts.split(f"export interface {struct.__name__} {{\n", 1)[1].split("\n}", 1)[0]
        fields = [line.strip().split(":", 1)[0] for line in block.splitlines()]
        assert fields == list(struct.__struct_fields__), struct.__name__
    assert '  status: "BREACHED" | "CLEARED";' in ts  # a Literal is a union of its values
    assert "  securities: SecuritiesObligation[];" in ts  # a nested struct, by name
    assert "  as_of: string | null;" in ts  # an optional time
