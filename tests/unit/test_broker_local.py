"""Pure parts of the local broker tooling."""

from tradeflux.broker.local import LocalCluster, Node, _new_cluster_id, _properties


def test_new_cluster_ids_never_start_with_a_dash_so_the_storage_tool_reads_them() -> None:
    ids = [_new_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == 5000


def test_a_sasl_cluster_has_no_plaintext_listener_and_denies_what_no_acl_allows() -> None:
    nodes = tuple(Node(i, 9092 + 2 * (i - 1), 9093 + 2 * (i - 1), f"/tmp/n{i}") for i in (1, 2, 3))
    cluster = LocalCluster("id", "4.4.0", "512m", nodes, sasl=True)
    credentials = {"admin": "a" * 32, "controller": "c" * 32}
    props = dict(
        line.split("=", 1) for line in _properties(nodes[1], cluster, credentials, {}).splitlines()
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


def _three_hosts() -> LocalCluster:
    nodes = tuple(
        Node(i, 9090 + 2 * i, 9091 + 2 * i, f"/tmp/n{i}", f"10.9.0.{i}", f"10.9.1.{i}",
             ("ip", "netns", "exec", f"b{i}"))
        for i in (1, 2, 3)
    )  # fmt: skip
    return LocalCluster("id", "4.4.0", "512m", nodes)


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_a_node_on_a_host_of_its_own_listens_and_votes_on_that_hosts_addresses() -> None:
    cluster = _three_hosts()

    props = _props(_properties(cluster.nodes[1], cluster, {}, {}))

    assert props["listeners"] == "PLAINTEXT://10.9.0.2:9094,CONTROLLER://10.9.1.2:9095"
    assert props["advertised.listeners"] == "PLAINTEXT://10.9.0.2:9094"
    assert props["controller.quorum.voters"] == "1@10.9.1.1:9093,2@10.9.1.2:9095,3@10.9.1.3:9097"
    assert cluster.bootstrap == "10.9.0.1:9092,10.9.0.2:9094,10.9.0.3:9096"


def test_overrides_replace_the_clusters_broker_properties() -> None:
    cluster = _three_hosts()

    props = _props(
        _properties(
            cluster.nodes[0],
            cluster,
            {},
            {"replica.lag.time.max.ms": "10000", "min.insync.replicas": "1"},
        )
    )

    assert (props["replica.lag.time.max.ms"], props["min.insync.replicas"]) == ("10000", "1")
