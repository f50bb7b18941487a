"""Block allocation (docs/domain-rules.md, Block allocation): splits, re-bookings, rejects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.allocation_fixtures import (
    CLIENTS,
    FILLS,
    HOUSE,
    REFDATA,
    SPLIT,
    T0,
    T0_MS,
    execution,
    instruction,
)
from tradeflux.domain.allocation_book import OrderBook
from tradeflux.domain.allocation_codes import AllocationRejectReason as R
from tradeflux.domain.allocation_split import average_price, split_block
from tradeflux.domain.allocation_state import OrderState
from tradeflux.domain.schemas import TradeEvent

D = Decimal
WAIT_MS = 60_000
AVG = D("2502.333333")


def book_of(*executions: object, state: OrderState | None = None) -> OrderBook:
    book = OrderBook(state or OrderState(order_id="ORD-1"), REFDATA, WAIT_MS)
    for e in executions:
        book.apply_execution(e)  # type: ignore[arg-type]
    return book


def decide(book: OrderBook, ins: object, now_ms: int = T0_MS + 10_000) -> OrderBook:
    book.receive(ins, now_ms)  # type: ignore[arg-type]
    book.drain(now_ms)
    return book


def trades(book: OrderBook) -> list[tuple[str, str, int, str, str, Decimal, Decimal]]:
    return [
        (t.event_type, t.trade_id, t.version, t.account, t.side, t.quantity, t.price)
        for t in book.effects.trades
    ]


def test_three_fills_to_four_accounts_sum_to_the_block_at_its_average_price() -> None:
    book = decide(book_of(*FILLS), instruction("AL-1", SPLIT))
    block = "ORD-1:20261124"
    assert trades(book) == [
        ("NEW", f"{block}/AL-1/CL-A", 1, "CL-A", "BUY", D(300), AVG),
        ("NEW", f"{block}/AL-1/CL-B", 1, "CL-B", "BUY", D(300), AVG),
        ("NEW", f"{block}/AL-1/CL-C", 1, "CL-C", "BUY", D(200), AVG),
        ("NEW", f"{block}/AL-1/CL-D", 1, "CL-D", "BUY", D(100), AVG),
        ("NEW", f"{block}/AL-1/OFFSET", 1, HOUSE, "SELL", D(900), AVG),
    ]
    children = [t for t in book.effects.trades if t.allocation and t.allocation.role == "CHILD"]
    assert sum(t.quantity for t in children) == D(900)
    first: TradeEvent = book.effects.trades[0]
    assert first.trade_time == T0 + dt.timedelta(seconds=9)  # the block's last fill
    assert first.ingest_time == T0 + dt.timedelta(seconds=10)  # stream time of the decision
    assert (first.order_id, first.source, first.counterparty) == ("ORD-1", "allocation", "BRK-1")
    [ack] = book.effects.acks
    assert (ack.status, ack.allocation_id, ack.block_id) == ("ACCEPTED", "AL-1", block)
    [record] = book.effects.allocations
    assert (record.quantity, record.avg_px, record.executions) == (D(900), AVG, ("E1", "E2", "E3"))
    assert [(c.account, c.requested, c.quantity) for c in record.children] == [
        ("CL-A", D(250), D(300)),
        ("CL-B", D(250), D(300)),
        ("CL-C", D(250), D(200)),
        ("CL-D", D(150), D(100)),
    ]
    assert [(c.event.account, c.alloc_id, c.mic, c.trade_date) for c in book.effects.children] == [
        (account, "AL-1", "XTKS", dt.date(2026, 11, 24)) for account in CLIENTS
    ]


def test_replace_amends_changed_children_cancels_dropped_and_books_new_accounts() -> None:
    book = decide(book_of(*FILLS), instruction("AL-1", SPLIT))
    state = book.state
    replace = instruction(
        "AL-2",
        {"CL-A": "500", "CL-B": "300", "CL-D": "100"},
        trans_type="REPLACE",
        ref_alloc_id="AL-1",
    )
    book = decide(OrderBook(state, REFDATA, WAIT_MS), replace, T0_MS + 20_000)
    block = "ORD-1:20261124"
    assert trades(book) == [
        ("AMEND", f"{block}/AL-1/CL-A", 2, "CL-A", "BUY", D(500), AVG),
        # CL-B keeps 300 at the same price: nothing to re-book
        # CL-D keeps 100 likewise
        ("CANCEL", f"{block}/AL-1/CL-C", 2, "CL-C", "BUY", D(200), AVG),
    ]
    [record] = book.effects.allocations
    assert (record.alloc_id, record.last_alloc_id, record.replaces) == ("AL-1", "AL-2", 1)
    assert [(c.account, c.quantity, c.version, c.cancelled) for c in record.children] == [
        ("CL-A", D(500), 2, False),
        ("CL-B", D(300), 1, False),
        ("CL-D", D(100), 1, False),
        ("CL-C", D(0), 2, True),
    ]
    again = instruction(
        "AL-3", {"CL-C": "900"}, trans_type="REPLACE", ref_alloc_id="AL-2"
    )  # CL-C comes back: a new child id, the old one is cancelled for good
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), again, T0_MS + 30_000)
    assert [(e, t.split("/")[-2:], v, q) for e, t, v, _, _, q, _ in trades(book)] == [
        ("NEW", ["AL-3", "CL-C"], 1, D(900)),
        ("CANCEL", ["AL-1", "CL-A"], 3, D(500)),
        ("CANCEL", ["AL-1", "CL-B"], 2, D(300)),
        ("CANCEL", ["AL-1", "CL-D"], 2, D(100)),
    ]


def test_cancel_cancels_every_child_and_the_offset_and_frees_the_block() -> None:
    book = decide(book_of(*FILLS), instruction("AL-1", SPLIT))
    cancel = instruction("AL-9", {}, trans_type="CANCEL", ref_alloc_id="AL-1")
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), cancel)
    assert [(e, t.rsplit("/", 1)[1], v, q) for e, t, v, _, _, q, _ in trades(book)] == [
        ("CANCEL", "CL-A", 2, D(300)),
        ("CANCEL", "CL-B", 2, D(300)),
        ("CANCEL", "CL-C", 2, D(200)),
        ("CANCEL", "CL-D", 2, D(100)),
        ("CANCEL", "OFFSET", 2, D(900)),
    ]
    [record] = book.effects.allocations
    assert record.status == "CANCELLED"
    # The block may be allocated anew, under a new AllocID (new child ids).
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), instruction("AL-10", {"CL-D": "900"}))
    assert trades(book)[0][:2] == ("NEW", "ORD-1:20261124/AL-10/CL-D")
    # Replacing or cancelling the cancelled allocation is refused.
    again = instruction("AL-11", {}, trans_type="CANCEL", ref_alloc_id="AL-9")
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), again)
    assert [(a.status, a.reason) for a in book.effects.acks] == [
        ("REJECTED", R.ALLOCATION_CANCELLED)
    ]


def test_an_instruction_waits_for_its_executions_then_books() -> None:
    book = decide(book_of(FILLS[0]), instruction("AL-1", SPLIT))
    assert [(a.status, a.detail) for a in book.effects.acks] == [
        ("PENDING", "waiting for executions")
    ]
    assert book.effects.trades == []
    for e in FILLS[1:]:
        book.apply_execution(e)
        book.drain(T0_MS + 20_000)
    assert [a.status for a in book.effects.acks] == ["PENDING", "ACCEPTED"]
    assert len(book.effects.trades) == 5


def test_an_instruction_for_executions_that_never_come_is_rejected_after_the_wait() -> None:
    book = decide(book_of(), instruction("AL-1", SPLIT), T0_MS)
    book.drain(T0_MS + WAIT_MS - 1)
    assert [a.status for a in book.effects.acks] == ["PENDING"]
    book.drain(T0_MS + WAIT_MS)
    assert [(a.status, a.reason) for a in book.effects.acks] == [
        ("PENDING", ""),
        ("REJECTED", R.UNKNOWN_BLOCK),
    ]


def test_a_resent_instruction_is_a_duplicate_and_a_reused_alloc_id_is_rejected() -> None:
    book = decide(book_of(*FILLS), instruction("AL-1", SPLIT))
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), instruction("AL-1", SPLIT))
    assert (book.effects.acks, book.effects.counts) == ([], {"duplicates": 1})
    other = instruction("AL-1", {"CL-A": "900"})
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), other)
    assert [(a.status, a.reason) for a in book.effects.acks] == [("REJECTED", R.ALLOC_ID_EXISTS)]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"allocations": {"CL-A": "901", "CL-B": "-1"}}, R.NON_POSITIVE_ALLOC_QTY),
        (
            {"allocations": {"CL-A": "450", "CL-B": "450"}, "alloc_type": 7},
            R.UNSUPPORTED_ALLOC_TYPE,
        ),
        ({"allocations": {"CL-A": "800", "NOBODY": "100"}}, R.UNKNOWN_ACCOUNT),
        ({"allocations": {"CL-A": "800", "CL-CLOSED": "100"}}, R.ACCOUNT_INACTIVE),
        ({"allocations": {"CL-A": "800", "CL-B": "99"}}, R.ALLOC_QTY_MISMATCH),
        ({"allocations": {}}, R.NO_ALLOCATIONS),
        ({"quantity": "800", "allocations": {"CL-A": "800"}}, R.BLOCK_QTY_MISMATCH),
        ({"avg_px": "2502.34"}, R.AVG_PX_MISMATCH),
        ({"side": "SELL"}, R.MISMATCHED_BLOCK),
        ({"instrument": "6758.XTKS"}, R.MISMATCHED_BLOCK),
        ({"exec_ids": ("E1", "E2")}, R.BLOCK_QTY_MISMATCH),
        ({"trans_type": "REPLACE", "ref_alloc_id": "AL-0"}, R.UNKNOWN_ALLOCATION),
    ],
)
def test_rejects_name_the_first_failing_check(changes: dict[str, object], reason: R) -> None:
    fields: dict[str, object] = {"allocations": SPLIT, **changes}
    allocations = fields.pop("allocations")
    book = decide(book_of(*FILLS), instruction("AL-1", allocations, **fields))  # type: ignore[arg-type]
    [ack] = book.effects.acks
    assert (ack.status, ack.reason) == ("REJECTED", reason)
    assert book.effects.trades == [] and book.effects.allocations == []
    assert book.state.accepted == {}  # a reject changes nothing: a corrected resend may follow


def test_a_block_allocated_once_cannot_be_allocated_again_but_its_other_fills_can() -> None:
    book = decide(book_of(*FILLS), instruction("AL-1", SPLIT))
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), instruction("AL-2", SPLIT))
    assert [(a.status, a.reason) for a in book.effects.acks] == [
        ("REJECTED", R.BLOCK_ALREADY_ALLOCATED)
    ]
    book = book_of(*FILLS)  # E1 and E2 by NoExecs, then E3 alone
    book = decide(book, instruction("AL-1", {"CL-A": "600"}, quantity="600",
                                    avg_px="2501.5", exec_ids=("E1", "E2")))  # fmt: skip
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS),
                  instruction("AL-2", {"CL-B": "300"}, quantity="300", avg_px="2504",
                              exec_ids=("E3",)))  # fmt: skip
    assert [(a.status, a.alloc_id) for a in book.effects.acks] == [("ACCEPTED", "AL-2")]


def test_an_execution_amended_after_allocation_flags_the_block_and_a_replace_rebooks() -> None:
    book = decide(book_of(*FILLS), instruction("AL-1", SPLIT))
    book = OrderBook(book.state, REFDATA, WAIT_MS)
    book.apply_execution(execution("E3", "300", "2505", version=2, event_type="AMEND", seconds=9))
    [record] = book.effects.allocations
    assert record.block_changed and book.effects.trades == []
    replace = instruction(
        "AL-2", SPLIT, trans_type="REPLACE", ref_alloc_id="AL-1", avg_px="2502.666667"
    )
    book = decide(OrderBook(book.state, REFDATA, WAIT_MS), replace)
    new_avg = D("2502.666667")  # (300 × 2501 + 300 × 2502 + 300 × 2505) / 900
    assert {(e, q, p) for e, _, _, _, _, q, p in trades(book)} == {
        ("AMEND", D(300), new_avg),
        ("AMEND", D(200), new_avg),
        ("AMEND", D(100), new_avg),
        ("AMEND", D(900), new_avg),
    }
    assert not book.effects.allocations[-1].block_changed


def test_average_price_is_rounded_half_even_to_its_precision() -> None:
    fills = [(D(1), D("10.00")), (D(1), D("10.01")), (D(2), D("10.02"))]  # 10.0125
    assert average_price(fills, 6) == D("10.012500")
    assert average_price(fills, 3) == D("10.012")  # half-even: 10.0125 -> 10.012
    assert average_price(fills, 0) == D("10")


@given(
    lots=st.integers(min_value=1, max_value=10_000),
    weights=st.lists(st.integers(min_value=1, max_value=1_000), min_size=1, max_size=12),
    lot=st.sampled_from([D(1), D(100), D("0.001")]),
)
def test_any_split_is_whole_lots_summing_to_the_block_and_near_the_request(
    lots: int, weights: list[int], lot: Decimal
) -> None:
    block = D(lots) * lot
    total = sum(weights)
    requested = [(block * w / total).quantize(D("0.000001")) for w in weights[:-1]]
    requested.append(block - sum(requested))  # exact: six decimals at most
    if any(r <= 0 for r in requested):
        return
    booked = split_block(block, lot, requested)
    assert sum(booked) == block
    assert all(b % lot == 0 for b in booked)
    assert all(abs(b - r) < lot for b, r in zip(booked, requested, strict=True))
