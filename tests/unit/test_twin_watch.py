"""Fences of the transactional producer: a live twin against the coordinator's aborts."""

from __future__ import annotations

from tradeflux.stream.loop import TwinWatch


def test_fences_of_transactions_open_past_the_timeout_are_never_counted() -> None:
    watch = TwinWatch(timeout_s=10.0, limit=5, window_s=120.0)
    # The coordinator aborted a slow transaction, again and again: never a twin.
    assert [watch.fenced(open_s, now) for now, open_s in enumerate((10.0, 12.5, 30.0) * 4)] == [
        None
    ] * 12
    assert watch.count == 0


def test_young_fences_mean_a_twin_at_the_limit_within_the_window() -> None:
    watch = TwinWatch(timeout_s=10.0, limit=5, window_s=120.0)
    assert [watch.fenced(0.4, t) for t in (0.0, 1.0, 2.0, 3.0)] == [False] * 4
    assert watch.fenced(None, 4.0) is True  # fenced with no transaction open counts too
    assert watch.count == 5


def test_young_fences_spread_wider_than_the_window_are_not_a_twin() -> None:
    watch = TwinWatch(timeout_s=10.0, limit=3, window_s=120.0)
    assert [watch.fenced(1.0, t) for t in (0.0, 100.0, 221.0, 300.0)] == [False] * 4
    assert watch.count == 2  # 221 and 300: the others fell out of the window


def test_a_coordinator_abort_between_young_fences_does_not_reset_them() -> None:
    watch = TwinWatch(timeout_s=10.0, limit=3, window_s=120.0)
    assert watch.fenced(1.0, 0.0) is False
    assert watch.fenced(11.0, 1.0) is None
    assert watch.fenced(2.0, 2.0) is False
    assert watch.fenced(0.1, 3.0) is True
