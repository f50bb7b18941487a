"""The batch size rule of Intake: a time budget at the measured cost, never below a commit."""

from __future__ import annotations

from tradeflux.stream.intake import Intake


def _intake(max_records: int = 5000, max_batch_ms: int = 50) -> Intake:
    return Intake(max_records, max_batch_ms, lambda: 0)


def test_the_budget_is_max_batch_ms_at_the_measured_cost() -> None:
    intake = _intake()
    intake.measured(1000, 100_000)  # 100 us per record
    assert intake.cost_us == 100
    assert intake.limit() == 500  # 50 ms / 100 us


def test_a_commit_longer_than_the_budget_widens_it() -> None:
    intake = _intake()
    intake.measured(1000, 100_000)
    intake.committed(120_000)  # a 120 ms transaction
    assert intake.budget_us() == 120_000
    assert intake.limit() == 1200
    intake.committed(20_000)  # commits grow fast again: the average moves, not jumps
    assert 50_000 < intake.budget_us() < 120_000


def test_a_short_commit_leaves_max_batch_ms() -> None:
    intake = _intake()
    intake.committed(5_000)
    assert intake.budget_us() == 50_000


def test_a_dear_first_record_does_not_shrink_the_next_batches() -> None:
    intake = _intake()
    intake.measured(1, 20_000)  # one record paying for a first call: 20 ms
    intake.measured(200, 20_000)  # then 100 us per record
    assert intake.cost_us < 200
    assert intake.limit() > 250


def test_recent_batches_weigh_more() -> None:
    intake = _intake()
    for _ in range(30):
        intake.measured(100, 10_000)  # 100 us
    for _ in range(30):
        intake.measured(100, 40_000)  # 400 us
    assert 390 < intake.cost_us <= 400


def test_no_budget_and_the_bounds() -> None:
    assert _intake(max_batch_ms=0).limit() == 5000
    slow = _intake()
    slow.measured(10, 10_000_000)  # 1 s per record
    assert slow.limit() == 50  # never below the floor
    fast = _intake(max_records=300)
    fast.measured(1000, 1_000)
    assert fast.limit() == 300  # never above batch_max_records


def test_a_commit_slowed_by_a_failing_cluster_widens_the_budget_to_a_second_at_most() -> None:
    intake = _intake()
    intake.committed(45_000_000)  # a 45 s commit while a broker was down
    assert intake.budget_us() == 1_000_000
