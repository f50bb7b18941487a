"""The ACL plan: exactly what each process needs, derived from the registry and the services."""

from __future__ import annotations

import pytest

from tradeflux.broker.acl_admin import Acl
from tradeflux.security import SecurityConfigError
from tradeflux.security.acls import kafka_acls_commands, plan
from tradeflux.services import SHIPPED


def test_positions_may_read_its_input_write_its_outputs_and_own_its_changelogs_only() -> None:
    acls = plan("p.", names=["positions"])
    principal = "User:positions"
    changelogs = [f"p.positions-{s}-changelog" for s in ("books", "fills", "index")]
    assert set(acls) == {
        Acl(principal, "topic", "p.trades.enriched", "literal", "read"),
        Acl(principal, "topic", "p.positions", "literal", "write"),
        Acl(principal, "topic", "p.positions", "literal", "describe_configs"),
        Acl(principal, "topic", "p.trades.rejected", "literal", "write"),
        Acl(principal, "topic", "p.trades.rejected", "literal", "describe_configs"),
        *(Acl(principal, "topic", c, "literal", op) for c in changelogs
          for op in ("read", "write", "create", "describe_configs")),
        Acl(principal, "group", "p.positions", "prefixed", "read"),
        Acl(principal, "transactional_id", "p.positions-", "prefixed", "write"),
    }  # fmt: skip
    assert not any(a.resource_name == "p.trades.raw" for a in acls)


def test_a_service_reads_its_global_tables() -> None:
    reads = {a.resource_name for a in plan(names=["validator"]) if a.operation == "read"}
    assert {"trades.raw", "refdata.instruments", "refdata.accounts",
            "refdata.counterparties"} <= reads  # fmt: skip


def test_the_edges_write_or_read_only_their_topics() -> None:
    assert plan(names=["gateway"]) == [
        Acl("User:gateway", "topic", "allocations.acks", "literal", "read"),
        Acl("User:gateway", "topic", "confirmations", "literal", "read"),
        Acl("User:gateway", "topic", "trades.raw", "literal", "write"),
        Acl("User:gateway", "topic", "allocations.in", "literal", "write"),
        Acl("User:gateway", "topic", "confirmations.in", "literal", "write"),
        Acl("User:gateway", "group", "gateway-outbound-", "prefixed", "read"),
        Acl("User:gateway", "transactional_id", "tradeflux-gateway-", "prefixed", "write"),
        Acl("User:gateway", "topic", "trades.raw", "literal", "describe_configs"),
    ]
    query = plan(names=["query"], principal_template="User:CN=tf-{name},O=Bank")
    assert {a.operation for a in query} == {"read", "describe"}
    assert {a.principal for a in query} == {"User:CN=tf-query,O=Bank"}
    assert "positions" in {a.resource_name for a in query}
    assert not any(a.operation == "write" for a in query)


def test_every_component_gets_a_principal() -> None:
    principals = {a.principal for a in plan()}
    assert len(principals) == len(SHIPPED) + 5 == 18  # the services, then five edges


def test_the_plan_prints_as_kafka_acls_commands() -> None:
    gateway = plan(names=["gateway"])
    write_raw = [a for a in gateway if a.resource_name == "trades.raw" and a.operation == "write"]
    (line,) = kafka_acls_commands(write_raw, "kafka-1:9093")
    assert len(kafka_acls_commands(gateway, "kafka-1:9093")) == len(gateway)
    assert line == (
        "kafka-acls.sh --bootstrap-server kafka-1:9093 --command-config admin.properties --add "
        "--allow-principal User:gateway --allow-host '*' --operation Write --topic trades.raw "
        "--resource-pattern-type LITERAL"
    )


def test_a_template_without_a_name_or_an_unknown_component_is_refused() -> None:
    with pytest.raises(SecurityConfigError, match="must contain"):
        plan(principal_template="User:tradeflux")
    with pytest.raises(SecurityConfigError, match="no component nope"):
        plan(names=["nope"])
