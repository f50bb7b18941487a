"""Pure parts of the local broker tooling."""

from tradeflux.broker.local import _new_cluster_id


def test_new_cluster_ids_never_start_with_a_dash_so_the_storage_tool_reads_them() -> None:
    ids = [_new_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == 5000


def test_a_sasl_cluster_has_no_plaintext_listener_and_denies_what_no_acl_allows() -> None:
    from tradeflux.broker.local import LocalCluster, Node, _properties

    nodes = tuple(Node(i, 9092 + 2 * (i - 1), 9093 + 2 * (i - 1), f"/tmp/n{i}") for i in (1, 2, 3))
    cluster = LocalCluster("id", "4.4.0", "512m", nodes, sasl=True)
    credentials = {"admin": "a" * 32, "controller": "c" * 32}
    props = dict(
        line.split("=", 1) for line in _properties(nodes[1], cluster, credentials).splitlines()
    )
    assert props["listeners"] == "CLIENT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert props["listener.security.protocol.map"] == (
        "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert "PLAINTEXT://" not in props["listeners"]
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin;User:controller"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["controller.quorum.voters"].count("@127.0.0.1:") == 3
