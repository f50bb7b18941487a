from hypothesis import given
from hypothesis import strategies as st

from tradeflux.stream.stores import InMemoryStore, StorePartition


def test_writes_are_invisible_to_the_map_until_commit() -> None:
    base = InMemoryStore()
    store = StorePartition("s", 0, base)
    store.put("a", 1)
    assert store.get("a") == 1
    assert base.data == {}
    store.commit()
    assert base.data == {"a": 1}


def test_rollback_drops_the_batch_and_keeps_the_committed_state() -> None:
    store = StorePartition("s", 0)
    store.put("a", 1)
    store.commit()
    store.put("a", 2)
    store.delete("a")
    store.put("b", 3)
    store.rollback()
    assert dict(store.items()) == {"a": 1}
    assert not store.dirty


def test_changes_give_the_last_value_per_key_and_none_for_deletes() -> None:
    store = StorePartition("s", 0)
    store.put("x", 1)
    store.commit()
    store.put("a", 1)
    store.put("a", 2)
    store.delete("x")
    assert sorted(store.changes(), key=lambda kv: kv[0]) == [("a", 2), ("x", None)]


def test_savepoint_undoes_only_the_failed_call() -> None:
    store = StorePartition("s", 0)
    store.put("a", 1)
    store.savepoint()
    store.put("a", 2)
    store.put("b", 1)
    store.delete("a")
    store.rollback_to_savepoint()
    assert dict(store.items()) == {"a": 1}
    store.savepoint()
    store.put("c", 1)
    store.release_savepoint()
    store.commit()
    assert dict(store.items()) == {"a": 1, "c": 1}


def test_put_none_is_refused_so_tombstones_are_explicit() -> None:
    store = StorePartition("s", 0)
    try:
        store.put("a", None)
    except ValueError as exc:
        assert "delete" in str(exc)
    else:
        raise AssertionError("put(None) was accepted")


ops = st.lists(
    st.tuples(st.sampled_from(["put", "delete", "commit", "rollback"]), st.sampled_from("abc"),
              st.integers(0, 9)),
    max_size=60,
)  # fmt: skip


@given(ops)
def test_overlay_behaves_like_a_dict_with_commit_and_rollback(script: list) -> None:
    store = StorePartition("s", 0)
    committed: dict[str, int] = {}
    pending: dict[str, int] = {}
    for op, key, value in script:
        if op == "put":
            store.put(key, value)
            pending[key] = value
        elif op == "delete":
            store.delete(key)
            pending.pop(key, None)
        elif op == "commit":
            store.commit()
            committed = dict(pending)
        else:
            store.rollback()
            pending = dict(committed)
        assert dict(store.items()) == pending
        assert all(store.get(k) == pending.get(k) for k in "abc")
        assert all((k in store) == (k in pending) for k in "abc")
    assert store.committed_size == len(committed)
