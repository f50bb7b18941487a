"""Topic contracts: schemas from the registry, and the compatibility check against a release.

The altered structs below are deliberately changed copies of the released ones (same
names, so the schema documents line up); each shows one change a consumer survives or not.
"""

# No `from __future__ import annotations`: the altered structs are local classes whose
# annotations msgspec must resolve, and they name each other.
import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from tests.unit.test_query_app import Client
from tradeflux import contracts, topics
from tradeflux.contracts import Incompatibility, incompatibilities, registry_schemas, topic_schema


def released() -> dict[str, contracts.Schema]:
    return contracts.latest_release()[1]


def changes_with(topic: topics.TopicDef, value: type) -> list[str]:
    """Return the incompatibilities of the release against the registry with ``topic`` altered."""
    current = registry_schemas()
    current[topic.name] = topic_schema(dataclasses.replace(topic, value=value))
    return [str(p) for p in incompatibilities(released(), current)]


def test_every_registry_topic_has_a_schema_with_its_key_cleanup_and_wire() -> None:
    schemas = registry_schemas()
    assert list(schemas) == [t.name for t in topics.TOPICS]
    positions = schemas["positions"]
    assert positions["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert positions["$ref"] == "#/$defs/Position"
    assert positions["x-tradeflux-topic"] == {
        "name": "positions",
        "key": "account + instrument",
        "cleanup": "compact",
        "wire": "json",
        "copartition": "account",
        "tombstones": True,
    }
    quantity = positions["$defs"]["Position"]["properties"]["quantity"]
    assert quantity == {"type": "string", "format": "decimal"}  # money never a JSON number
    assert schemas["trades.rejected"]["contentMediaType"] == "application/octet-stream"


def test_the_code_is_compatible_with_the_last_release() -> None:
    version, schemas = contracts.latest_release()
    assert version == "0.1.0"
    assert incompatibilities(schemas, registry_schemas()) == []


def test_adding_an_optional_field_is_compatible() -> None:
    class Position(msgspec.Struct, frozen=True, kw_only=True):
        account: str
        instrument: str
        currency: str
        quantity: Decimal
        avg_cost: Decimal
        realized_pnl: Decimal
        multiplier: Decimal = Decimal(1)
        trade_count: int = 0
        last_trade_id: str = ""
        as_of: dt.datetime | None = None
        book: str = ""  # new, with a default

    assert changes_with(topics.POSITIONS, Position) == []


def test_removing_a_field_is_incompatible() -> None:
    class Position(msgspec.Struct, frozen=True, kw_only=True):
        account: str
        instrument: str
        currency: str
        quantity: Decimal
        avg_cost: Decimal
        # realized_pnl removed
        multiplier: Decimal = Decimal(1)
        trade_count: int = 0
        last_trade_id: str = ""
        as_of: dt.datetime | None = None

    assert changes_with(topics.POSITIONS, Position) == [
        "positions: realized_pnl: was removed; a consumer that reads it breaks: keep the "
        "field, deprecated, or release a new topic"
    ]


def test_renaming_a_field_is_incompatible_and_said_to_be_a_rename() -> None:
    class Position(msgspec.Struct, frozen=True, kw_only=True):
        account: str
        instrument: str
        currency: str
        qty: Decimal  # was quantity
        avg_cost: Decimal
        realized_pnl: Decimal
        multiplier: Decimal = Decimal(1)
        trade_count: int = 0
        last_trade_id: str = ""
        as_of: dt.datetime | None = None

    assert changes_with(topics.POSITIONS, Position) == [
        "positions: qty: is a new required field; records and producers of the release lack "
        "it: give it a default",
        "positions: quantity: was removed (renamed to qty?); a consumer that reads it breaks: "
        "keep the field, deprecated, or release a new topic",
    ]


def test_retyping_a_field_is_incompatible() -> None:
    class Position(msgspec.Struct, frozen=True, kw_only=True):
        account: str
        instrument: str
        currency: str
        quantity: Decimal
        avg_cost: Decimal
        realized_pnl: Decimal
        multiplier: Decimal = Decimal(1)
        trade_count: str = "0"  # was int
        last_trade_id: str = ""
        as_of: dt.datetime | None = None

    assert changes_with(topics.POSITIONS, Position) == [
        "positions: trade_count: its type changed from integer to string; add a new "
        "optional field instead"
    ]


def test_allowing_null_in_a_field_is_incompatible() -> None:
    class Position(msgspec.Struct, frozen=True, kw_only=True):
        account: str
        instrument: str
        currency: str
        quantity: Decimal
        avg_cost: Decimal
        realized_pnl: Decimal | None  # consumers would meet null
        multiplier: Decimal = Decimal(1)
        trade_count: int = 0
        last_trade_id: str = ""
        as_of: dt.datetime | None = None

    assert changes_with(topics.POSITIONS, Position) == [
        "positions: realized_pnl: its type changed from string (decimal) to string (decimal) "
        "| null; add a new optional field instead"
    ]


def test_a_field_removed_from_a_nested_struct_is_found_by_its_path() -> None:
    class SecuritiesObligation(msgspec.Struct, frozen=True, kw_only=True):
        instrument: str
        quantity: Decimal
        trade_count: int

    class SettlementObligation(msgspec.Struct, frozen=True, kw_only=True):
        counterparty: str
        counterparty_lei: str
        currency: str
        settlement_date: dt.date
        net_cash: Decimal
        cash_paid: Decimal
        cash_received: Decimal
        trade_count: int
        securities: tuple[SecuritiesObligation, ...] = ()

    assert changes_with(topics.OBLIGATIONS, SettlementObligation) == [
        "settlement.obligations: securities[].isin: was removed; a consumer that reads it "
        "breaks: keep the field, deprecated, or release a new topic"
    ]


def test_an_optional_field_added_to_a_nested_struct_is_compatible() -> None:
    class SecuritiesObligation(msgspec.Struct, frozen=True, kw_only=True):
        instrument: str
        isin: str
        quantity: Decimal
        trade_count: int
        place_of_settlement: str = ""

    class SettlementObligation(msgspec.Struct, frozen=True, kw_only=True):
        counterparty: str
        counterparty_lei: str
        currency: str
        settlement_date: dt.date
        net_cash: Decimal
        cash_paid: Decimal
        cash_received: Decimal
        trade_count: int
        securities: tuple[SecuritiesObligation, ...] = ()

    assert changes_with(topics.OBLIGATIONS, SettlementObligation) == []


def test_an_enum_value_added_or_a_field_made_required_is_incompatible() -> None:
    class TradeEvent(msgspec.Struct, frozen=True, kw_only=True):
        event_type: Literal["NEW", "AMEND", "CANCEL", "ALLOCATE"]
        trade_id: str
        version: int
        account: str
        instrument: str
        side: Literal["BUY", "SELL"]
        quantity: Decimal
        price: Decimal
        currency: str
        venue: str
        counterparty: str
        trade_time: dt.datetime
        source: str  # had the default "kafka"
        ingest_time: dt.datetime | None = None

    assert changes_with(topics.RAW, TradeEvent) == [
        "trades.raw: event_type: enum values ['ALLOCATE'] were added; a consumer that knows "
        "only the old values breaks",
        "trades.raw: source: was optional and is now required; records without it no longer decode",
    ]


def test_a_removed_topic_or_a_changed_key_is_incompatible() -> None:
    current = registry_schemas()
    del current["analytics.bars"]
    current["pnl"] = topic_schema(dataclasses.replace(topics.PNL, key="account + currency"))
    assert incompatibilities(released(), current) == [
        Incompatibility("analytics.bars", "", "the topic was removed; its consumers break"),
        Incompatibility(
            "pnl", "", "its key changed from 'account' to 'account + currency'; release a new "
            "topic instead",
        ),
    ]  # fmt: skip


def test_write_makes_one_file_per_topic_and_release_refuses_to_overwrite(tmp_path: Path) -> None:
    assert contracts.main(["write", str(tmp_path / "build")]) == 0
    written = sorted(p.name for p in (tmp_path / "build").iterdir())
    assert written == sorted(f"{t.name}.schema.json" for t in topics.TOPICS)
    root = tmp_path / "released"
    assert contracts.main(["release", "0.2.0", "--root", str(root)]) == 0
    assert contracts.main(["release", "0.2.0", "--root", str(root)]) == 2
    assert contracts.main(["release", "0.10.0", "--root", str(root)]) == 0
    assert contracts.released_versions(root) == ["0.2.0", "0.10.0"]
    assert contracts.main(["check", "--root", str(root)]) == 0
    assert contracts.read_schemas(root / "0.10.0") == json.loads(json.dumps(registry_schemas()))


def test_the_query_api_serves_every_schema_and_one_by_topic() -> None:
    c = Client()
    listing = c.get("/v1/schemas")
    assert listing.status_code == 200
    assert listing.json() == json.loads(json.dumps(registry_schemas()))
    one = c.get("/v1/schemas/trades.enriched")
    assert one.status_code == 200
    assert one.headers["content-type"] == "application/schema+json"
    assert one.json()["$ref"] == "#/$defs/EnrichedTrade"
    missing = c.get("/v1/schemas/trades.nowhere")
    assert missing.status_code == 404
    assert "GET /v1/schemas lists every topic" in missing.json()["detail"]
