"""The topic set as ARCHITECTURE.md section 3 specifies it: names, keys, kinds, co-partitioning."""

from __future__ import annotations

from tradeflux.broker.topics import TOPICS, TopicSet, topic_specs

# ARCHITECTURE.md section 3, row by row: (topic, key, compacted).
ARCHITECTURE_TOPICS = [
    ("refdata.instruments", "instrument id", True),
    ("refdata.accounts", "account id", True),
    ("refdata.counterparties", "counterparty id", True),
    ("refdata.limits", "account id", True),
    ("marketdata.prices", "instrument id", True),
    ("marketdata.fx", "currency pair", True),
    ("trades.raw", "trade id", False),
    ("trades.rejected", "trade id", False),
    ("trades.enriched", "account id", False),
    ("positions", "account + instrument", True),
    ("pnl", "account", True),
    ("risk.alerts", "account", False),
    # not in the table: trades.enriched re-keyed for analytics and settlement
    ("trades.by_instrument", "instrument id", False),
    ("trades.by_counterparty", "counterparty id", False),
    ("analytics.bars", "instrument + window", False),
    ("settlement.obligations", "counterparty + currency + settlement date", True),
    # issue 14: settlement finality and instructions, regulatory reports, more windows
    ("settlement.statements", "counterparty + currency + settlement date", False),
    ("settlement.instructions", "counterparty + currency + settlement date", False),
    ("regulatory.reports", "trade id", False),
    ("analytics.hopping_bars", "instrument + window", False),
    ("analytics.sessions", "account + session start", False),
    # block allocation, confirmation and affirmation (each service's input is a union)
    ("allocations.in", "order id (the block's ClOrdID)", False),
    ("allocations.status", "block id + alloc id", True),
    ("allocations.acks", "alloc id", False),
    ("confirmations.in", "child trade id", False),
    ("confirmations", "child trade id", True),
    ("confirmations.exceptions", "child trade id", False),
]


def test_topic_set_lists_the_architecture_topics_with_their_keys_and_kinds_in_order() -> None:
    assert [(t.name, t.key, t.compacted) for t in TOPICS] == ARCHITECTURE_TOPICS


def test_compacted_topics_are_reference_data_market_data_and_latest_state_outputs() -> None:
    assert {t.name for t in TOPICS if t.compacted} == {
        "refdata.instruments",
        "refdata.accounts",
        "refdata.counterparties",
        "refdata.limits",
        "marketdata.prices",
        "marketdata.fx",
        "positions",
        "pnl",
        "settlement.obligations",
        "allocations.status",
        "confirmations",
    }


def test_account_keyed_topics_joined_by_the_services_form_one_copartition_group() -> None:
    groups: dict[str, set[str]] = {}
    for t in TOPICS:
        if t.copartition_group is not None:
            groups.setdefault(t.copartition_group, set()).add(t.name)

    assert groups == {"account": {"trades.enriched", "positions", "pnl", "risk.alerts"}}


def test_global_tables_are_not_copartitioned() -> None:
    # Reference and market data are read whole by every instance, so their counts are free.
    assert [t.name for t in TOPICS if t.compacted and t.copartition_group is not None] == [
        "positions",
        "pnl",
    ]
    assert all(
        t.copartition_group is None for t in TOPICS if t.name.startswith(("refdata.", "market"))
    )


def test_only_settlements_input_carries_clock_ticks() -> None:
    assert [t.name for t in TOPICS if t.ticks] == ["trades.by_counterparty"]


def test_all_set_holds_every_topic() -> None:
    assert [t.name for t in topic_specs(TopicSet.ALL)] == [t[0] for t in ARCHITECTURE_TOPICS]


def test_core_set_holds_reference_data_and_the_trades_to_pnl_chain() -> None:
    assert [t.name for t in topic_specs(TopicSet.CORE)] == [
        "refdata.instruments",
        "refdata.accounts",
        "refdata.counterparties",
        "refdata.limits",
        "marketdata.prices",
        "marketdata.fx",
        "trades.raw",
        "trades.rejected",
        "trades.enriched",
        "positions",
        "pnl",
    ]


def test_refdata_set_holds_the_compacted_reference_and_market_data_topics() -> None:
    assert [t.name for t in topic_specs(TopicSet.REFDATA)] == [
        "refdata.instruments",
        "refdata.accounts",
        "refdata.counterparties",
        "refdata.limits",
        "marketdata.prices",
        "marketdata.fx",
    ]
    assert all(t.compacted for t in topic_specs(TopicSet.REFDATA))


def test_topic_set_values_are_the_cli_choices() -> None:
    assert [s.value for s in TopicSet] == ["all", "core", "refdata"]


def test_the_topic_table_in_the_docs_is_the_registrys() -> None:
    from tests.support.kafka_tools import REPO
    from tradeflux.topics import markdown_table

    doc = (REPO / "docs" / "topics.md").read_text()
    table = doc.split("<!-- registry table: begin -->\n", 1)[1].split(
        "<!-- registry table: end -->"
    )[0]
    assert table == markdown_table(), "regenerate the table of docs/topics.md from the registry"
