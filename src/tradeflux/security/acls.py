"""Least-privilege Kafka ACLs, derived from the topic registry and what each process declares.

A service (:class:`~tradeflux.stream.topology.Service`) may:

- READ its inputs and its global tables' topics;
- WRITE its outputs and its dead-letter topic;
- READ, WRITE and CREATE its own changelogs, ``<prefix><service>-<store>-changelog``, each
  by its literal name (its stores are declared, so no wildcard is needed to create them);
- READ its consumer groups: PREFIXED ``<prefix><service>`` (the group and the runtime's
  ``-table`` and ``-restore`` readers);
- WRITE its transactional ids: PREFIXED ``<prefix><service>-`` (``<service>-<instance>``);

and nothing else. The edges: the gateway WRITEs ``trades.raw``; the simulator
``trades.raw`` and market data; the refdata loader the topics of its file kinds; the query
service READs the read model's topics (by hand-assigned partitions: its consumer's
random group ``tradeflux-query-<id>`` is only looked up, which needs DESCRIBE). READ,
WRITE and CREATE imply DESCRIBE, which is all the metadata a process needs. An idempotent
producer needs no cluster ACL on Kafka 3.0 and later (WRITE on a topic implies it).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

from tradeflux import topics
from tradeflux.broker.acl_admin import Acl
from tradeflux.security import SecurityConfigError
from tradeflux.services import SHIPPED, service_target
from tradeflux.stream.changelog import changelog_topic
from tradeflux.stream.runner import load_service
from tradeflux.stream.topology import Service


def _edges() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Return each edge process's topics: (reads, writes), unprefixed."""
    from tradeflux.gateway.outbound import ACKS, CONFIRMATIONS
    from tradeflux.gateway.refdata import TOPIC_OF_KIND
    from tradeflux.gateway.ticker import TICKED
    from tradeflux.gateway.writer import RAW_TOPIC
    from tradeflux.query.readmodel import TOPICS as READ_MODEL_TOPICS
    from tradeflux.sim.blocks import ALLOCATIONS_IN, CONFIRMATIONS_IN
    from tradeflux.sim.producer import FX_TOPIC, PRICES_TOPIC, TRADES_TOPIC

    return {
        "gateway": ((ACKS, CONFIRMATIONS), (RAW_TOPIC, ALLOCATIONS_IN, CONFIRMATIONS_IN)),
        "simulator": (
            (),
            (TRADES_TOPIC, PRICES_TOPIC, FX_TOPIC, ALLOCATIONS_IN, CONFIRMATIONS_IN),
        ),
        "refdata": ((), tuple(dict.fromkeys(TOPIC_OF_KIND.values()))),
        "query": (tuple(READ_MODEL_TOPICS), ()),
        "ticker": ((), TICKED),
    }


GATEWAY_OUTBOUND_GROUP = "gateway-outbound-"
"""The prefix of the gateway's outbound follower's group (``gateway/runner.py``)."""
GATEWAY_TRANSACTIONS = "tradeflux-gateway-"
"""The prefix of the gateway's HTTP transactional ids (``gateway/runner.py``)."""


def service_acls(service: Service, principal: str, prefix: str = "") -> list[Acl]:
    """Return every ACL ``service`` needs under ``prefix``, run as ``principal``."""
    acls: list[Acl] = []

    def topic(name: str, *operations: str) -> None:
        acls.extend(Acl(principal, "topic", name, "literal", op) for op in operations)

    for t in service.inputs:
        topic(prefix + t.name, "read")
    for table in service.global_tables:
        topic(prefix + table.topic, "read")
    # What it writes, and the record size limits of those topics (max.message.bytes), so that
    # an oversized output is pinned on its record before the broker would refuse it.
    for t in service.outputs:
        topic(prefix + t.name, "write", "describe_configs")
    if service.dead_letter_topic:
        topic(prefix + service.dead_letter_topic, "write", "describe_configs")
    for store in service.stores:
        if store.logged:  # a derived store has no changelog
            changelog = changelog_topic(prefix, service.name, store.name)
            topic(changelog, "read", "write", "create", "describe_configs")
    acls.append(Acl(principal, "group", prefix + service.name, "prefixed", "read"))
    acls.append(Acl(principal, "transactional_id", f"{prefix}{service.name}-", "prefixed", "write"))
    return _unique(acls)


QUERY_GROUP_PREFIX = "tradeflux-query-"
"""The query follower's group ids (``query/follower.py``): never joined or committed."""


def edge_acls(name: str, principal: str, prefix: str = "") -> list[Acl]:
    """Return the ACLs of edge process ``name`` (gateway, simulator, refdata, query, ticker)."""
    reads, writes = _edges()[name]
    for t in (*reads, *writes):
        topics.topic_def(t)  # every topic is the registry's
    acls = [Acl(principal, "topic", prefix + t, "literal", "read") for t in reads]
    acls += [Acl(principal, "topic", prefix + t, "literal", "write") for t in writes]
    if name == "query":
        acls.append(Acl(principal, "group", QUERY_GROUP_PREFIX, "prefixed", "describe"))
    if name == "gateway":
        # It follows the services' answers in a group of its own; it writes a request's
        # trades in a transaction of its own producers, sized to what trades.raw takes.
        acls.append(Acl(principal, "group", prefix + GATEWAY_OUTBOUND_GROUP, "prefixed", "read"))
        acls.append(
            Acl(principal, "transactional_id", prefix + GATEWAY_TRANSACTIONS, "prefixed", "write")
        )
        acls.append(
            Acl(principal, "topic", prefix + topics.RAW.name, "literal", "describe_configs")
        )
    return _unique(acls)


def _unique(acls: Iterable[Acl]) -> list[Acl]:
    return list(dict.fromkeys(acls))


def components() -> tuple[str, ...]:
    """Return every process that gets a principal: the shipped services, then the edges."""
    return (*SHIPPED, *_edges())


def plan(
    prefix: str = "",
    principal_template: str = "User:{name}",
    names: Sequence[str] | None = None,
) -> list[Acl]:
    """Return the ACLs of ``names`` (default: every component) under ``prefix``.

    ``principal_template`` names each principal, e.g. ``User:CN=tradeflux-{name},O=Bank``.
    """
    if "{name}" not in principal_template:
        raise SecurityConfigError("--principal-template must contain {name}, e.g. User:{name}")
    chosen = tuple(names or components())
    unknown = [n for n in chosen if n not in components()]
    if unknown:
        raise SecurityConfigError(
            f"no component {', '.join(unknown)}; known: {', '.join(components())}"
        )
    services = [n for n in chosen if n in SHIPPED]
    for a in services:  # a prefixed group ACL of one must not cover another's group
        for b in services:
            if a != b and b.startswith(a):
                raise SecurityConfigError(f"service {a}'s group prefix would cover {b}'s")
    acls: list[Acl] = []
    for name in chosen:
        principal = principal_template.format(name=name)
        if name in SHIPPED:
            service = load_service(service_target(name))
            acls += service_acls(service, principal, prefix)
        else:
            acls += edge_acls(name, principal, prefix)
    return acls


_RESOURCE_FLAG = {"topic": "--topic", "group": "--group", "transactional_id": "--transactional-id",
                  "cluster": "--cluster"}  # fmt: skip


def kafka_acls_commands(acls: Iterable[Acl], bootstrap: str = "$BOOTSTRAP") -> list[str]:
    """Return ``kafka-acls.sh`` command lines creating ``acls`` (for admins who apply them)."""
    lines = []
    for acl in acls:
        words = [
            "kafka-acls.sh", "--bootstrap-server", bootstrap, "--command-config",
            "admin.properties", "--add", "--allow-principal", acl.principal,
            "--allow-host", acl.host, "--operation", acl.operation.capitalize(),
            _RESOURCE_FLAG[acl.resource_type], acl.resource_name,
            "--resource-pattern-type", acl.pattern.upper(),
        ]  # fmt: skip
        lines.append(" ".join(w if w.startswith("$") else shlex.quote(w) for w in words))
    return lines
