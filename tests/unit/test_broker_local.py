"""Pure parts of the local broker tooling."""

from tradeflux.broker.local import _new_cluster_id


def test_new_cluster_ids_never_start_with_a_dash_so_the_storage_tool_reads_them() -> None:
    ids = [_new_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == 5000
