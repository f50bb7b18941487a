"""Position books: incremental folding, the tail, the index, the cache, old books."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from unittest import mock

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.positions import D, figures, fold, trade
from tradeflux.domain.position_book import (
    INDEX_CHUNK,
    TAIL_FILLS,
    PositionBook,
    PositionLedger,
    TailCache,
    apply_event,
)
from tradeflux.domain.positions import FLAT, apply_fill
from tradeflux.domain.schemas import EnrichedTrade, EventType, Position, Side

# ---- the book -----------------------------------------------------------------------


def ledger_of(*events: EnrichedTrade, cache: bool = False) -> tuple[PositionLedger, Position]:
    ledger = PositionLedger(TailCache() if cache else None)
    position = PositionBook.empty(events[0]).position
    for event in events:
        position = ledger.apply(event).position
    return ledger, position


def assert_book_holds_its_invariants(ledger: PositionLedger, key: str, tail: int) -> None:
    """Check a book against the fold of its fills as the ledger holds them (PositionBook)."""
    book = ledger.books[key]
    live = sorted(
        (f for k, f in ledger.fills.items() if k.startswith(key + "|") and f.live),
        key=lambda f: (f.trade_time, f.trade_id),
    )
    count = book.checkpoint_count
    states = list(itertools.accumulate(
        live, lambda s, f: apply_fill(s, f.side, f.quantity, f.price, f.multiplier), initial=FLAT
    ))  # fmt: skip
    assert book.checkpoint == states[count]
    assert book.checkpoint_last == (live[count - 1] if count else None)
    assert book.tail_ids == tuple(f.trade_id for f in live[count:])
    assert len(book.tail_ids) < 2 * tail and book.state == states[-1]
    assert book.last == (live[-1] if live else None)
    if len(book.tail_ids) >= tail:
        assert (book.mid, book.mid_last) == (states[count + tail], live[count + tail - 1])
    else:
        assert (book.mid, book.mid_last) == (None, None)


def book_of(*events: EnrichedTrade) -> tuple[PositionBook, Position]:
    ledger, position = ledger_of(*events)
    return ledger.books[f"{events[-1].account}|{events[-1].instrument}"], position


def test_a_new_trade_after_the_last_is_applied_incrementally() -> None:
    book, position = book_of(trade("A", "BUY", 100, 10), trade("B", "BUY", 50, 13, seconds=1))
    assert figures(position) == (D(150), D(11), D(0))
    assert position == fold(trade("A", "BUY", 100, 10), trade("B", "BUY", 50, 13, seconds=1))


def test_a_late_new_trade_refolds_in_trade_time_order() -> None:
    a = trade("A", "BUY", 100, 10, seconds=0)
    b = trade("B", "SELL", 100, 12, seconds=10)
    c = trade("C", "BUY", 100, 14, seconds=5)  # arrives last, sorts between
    _, position = book_of(a, b, c)
    assert figures(position) == (D(100), D(12), D(0))
    assert position == fold(a, b, c)


def test_an_amend_refolds_as_if_the_original_had_been_right() -> None:
    a = trade("A", "BUY", 100, 10)
    b = trade("B", "SELL", 50, 12, seconds=1)
    b2 = trade("B", "SELL", 80, 11, seconds=1, version=2, event_type="AMEND")
    _, position = book_of(a, b, b2)
    assert position == fold(a, b2)
    assert figures(position) == (D(20), D(10), D(80))


def test_a_cancel_restores_the_position_as_if_never_booked() -> None:
    a = trade("A", "BUY", 100, 10)
    b = trade("B", "SELL", 40, 12, seconds=1)
    c = trade("C", "BUY", 10, 11, seconds=2)
    cancel_b = trade("B", "SELL", 40, 12, seconds=1, version=2, event_type="CANCEL")
    _, position = book_of(a, b, c, cancel_b)
    assert position == fold(a, c)
    assert (position.trade_count, position.last_trade_id) == (2, "C")


def test_cancelling_the_last_trade_leaves_a_flat_position_with_no_trades() -> None:
    a = trade("A", "BUY", 100, 10)
    _, position = book_of(a, trade("A", "BUY", 100, 10, version=2, event_type="CANCEL"))
    assert figures(position) == (D(0), D(0), D(0))
    assert (position.trade_count, position.last_trade_id, position.as_of) == (0, "", None)


def test_a_version_not_above_the_held_one_changes_nothing() -> None:
    a2 = trade("A", "BUY", 100, 10, version=2, event_type="AMEND")
    ledger, position = ledger_of(a2)
    book = ledger.books["ACC-1|ACME.XNYS"]
    change = ledger.apply(trade("A", "BUY", 999, 1, version=1))
    assert change.book is book and change.position == position and change.fill is None
    assert ledger.apply(a2).book is book


def test_an_old_amend_after_a_cancel_does_not_resurrect_the_trade() -> None:
    a = trade("A", "BUY", 100, 10)
    cancel = trade("A", "BUY", 100, 10, version=3, event_type="CANCEL")
    late = trade("A", "BUY", 70, 10, version=2, event_type="AMEND")
    _, position = book_of(a, cancel, late)
    assert position.trade_count == 0


def test_an_account_moving_amend_leaves_the_old_book_flat_and_opens_the_new() -> None:
    a = trade("A", "BUY", 100, 10)
    cancel = trade("A", "BUY", 100, 10, version=2, event_type="CANCEL")
    moved = trade("A", "BUY", 100, 10, version=2, account="ACC-2")
    _, old = book_of(a, cancel)
    _, new = book_of(moved)
    assert (old.quantity, old.trade_count) == (D(0), 0)
    assert (new.account, new.quantity, new.trade_count) == ("ACC-2", D(100), 1)


def test_the_book_round_trips_through_messagepack() -> None:
    trades = [trade(f"T{i}", "BUY", 10, 10 + i, seconds=i) for i in range(2 * TAIL_FILLS + 3)]
    ledger, position = ledger_of(*trades)
    book = ledger.books["ACC-1|ACME.XNYS"]
    assert book.checkpoint_count == TAIL_FILLS and len(book.tail_ids) == TAIL_FILLS + 3
    assert book.mid is not None
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(book), type=PositionBook)
    assert decoded == book and decoded.position == position
    ledger.books["ACC-1|ACME.XNYS"] = decoded
    after = ledger.apply(trade("C", "SELL", 10 * len(trades), 11, seconds=99)).position
    assert after == fold(*trades, trade("C", "SELL", 10 * len(trades), 11, seconds=99))


def test_a_book_stays_small_however_many_trades_it_folds() -> None:
    n = 4 * max(INDEX_CHUNK, TAIL_FILLS) + 5
    trades = [trade(f"T{i:04d}", "BUY", 1, 10, seconds=i) for i in range(n)]
    ledger, position = ledger_of(*trades)
    book = ledger.books["ACC-1|ACME.XNYS"]
    chunks, open_ids = divmod(n, INDEX_CHUNK)
    assert TAIL_FILLS <= len(book.tail_ids) < 2 * TAIL_FILLS
    assert (len(book.open_ids), book.chunks) == (open_ids, chunks)
    assert len(ledger.chunks) == chunks and position.trade_count == n
    assert_book_holds_its_invariants(ledger, "ACC-1|ACME.XNYS", TAIL_FILLS)


def test_appending_in_fold_order_never_reads_a_fill_back() -> None:
    trades = [trade(f"T{i:04d}", "BUY" if i % 3 else "SELL", 3, 10 + i % 4, seconds=i)
              for i in range(5 * TAIL_FILLS + 1)]  # fmt: skip
    ledger = PositionLedger()
    reads: list[str] = []
    for t in trades:  # what apply_event asks of the fills store: only the event's own id
        change = apply_event(
            ledger.books.get("ACC-1|ACME.XNYS") or PositionBook.empty(t),
            t,
            lambda i: reads.append(i) or ledger.fills.get(f"ACC-1|ACME.XNYS|{i}"),
            lambda n: ledger.chunks[f"ACC-1|ACME.XNYS#{n}"],
        )
        ledger.books["ACC-1|ACME.XNYS"] = change.book
        assert change.fill is not None and change.path == "append"
        ledger.fills[f"ACC-1|ACME.XNYS|{t.trade_id}"] = change.fill
    assert reads == [t.trade_id for t in trades]
    assert ledger.books["ACC-1|ACME.XNYS"].position == fold(*trades)
    assert_book_holds_its_invariants(ledger, "ACC-1|ACME.XNYS", TAIL_FILLS)


def test_a_book_written_before_mid_existed_decodes_and_goes_on_exactly() -> None:
    # Books changelogged by earlier versions have no mid and a tail of 32; the first
    # change moves the tail down to TAIL_FILLS (reading the fills), then goes on as usual.
    trades = [trade(f"T{i:03d}", "BUY" if i % 5 else "SELL", 2, 10 + i % 3, seconds=2 * i)
              for i in range(40)]  # fmt: skip
    with mock.patch("tradeflux.domain.position_book.TAIL_FILLS", 33):
        ledger, _ = ledger_of(*trades[:32])
    key = "ACC-1|ACME.XNYS"
    fields = msgspec.msgpack.decode(msgspec.msgpack.encode(ledger.books[key]))
    old = msgspec.msgpack.decode(msgspec.msgpack.encode(fields[:-2]), type=PositionBook)
    assert old.mid is None and len(old.tail_ids) == 32 > TAIL_FILLS
    for cache in (None, TailCache()):
        again = PositionLedger(cache)
        again.books, again.fills = {key: old}, dict(ledger.fills)
        late = trade("LATE", "SELL", 1, 11, seconds=61)  # lands in the tail
        amend = trade("T035", "BUY", 7, 12, seconds=70, version=2, event_type="AMEND")
        for event in (*trades[32:36], late, amend, *trades[36:]):
            position = again.apply(event).position
            assert_book_holds_its_invariants(again, key, TAIL_FILLS)
        assert position == fold(*trades[:35], amend, *trades[36:], late)


def test_an_amend_before_the_checkpoint_refolds_every_trade_through_the_index() -> None:
    trades = [
        trade(f"T{i:04d}", "BUY" if i % 3 else "SELL", 7, 10 + i % 5, seconds=i)
        for i in range(2 * INDEX_CHUNK + 9)
    ]
    ledger, _ = ledger_of(*trades)
    first = trade("T0000", "BUY", 500, 9, seconds=0, version=2, event_type="AMEND")
    late = trade("LATE", "SELL", 3, 12, seconds=-5)  # sorts before every trade
    ledger.apply(first)
    position = ledger.apply(late).position
    assert position == fold(first, *trades[1:], late)
    cancel = trade("T0001", "BUY", 7, 11, seconds=1, version=2, event_type="CANCEL")
    position = ledger.apply(cancel).position
    assert position == fold(first, *trades[2:], late)


# ---- properties ---------------------------------------------------------------------

PRICES = st.decimals(min_value=D("0.01"), max_value=D(500), places=2)
QUANTITIES = st.integers(min_value=1, max_value=1000).map(D)
SIDES: st.SearchStrategy[Side] = st.sampled_from(["BUY", "SELL"])


@st.composite
def versions_of(draw: st.DrawFn, trade_id: str, multiplier: int) -> list[EnrichedTrade]:
    """A NEW and 0-3 later versions of one trade; the last may be a CANCEL."""
    count = draw(st.integers(min_value=1, max_value=4))
    events = []
    for version in range(1, count + 1):
        last = version == count
        cancel = last and version > 1 and draw(st.booleans())
        kind: EventType = "NEW" if version == 1 else ("CANCEL" if cancel else "AMEND")
        if cancel:
            prev = events[-1]
            events.append(msgspec.structs.replace(prev, event_type="CANCEL", version=version))
            continue
        events.append(
            trade(
                trade_id,
                draw(SIDES),
                draw(QUANTITIES),
                draw(PRICES),
                seconds=draw(st.integers(min_value=0, max_value=20)),
                version=version,
                event_type=kind,
                multiplier=multiplier,
            )
        )
    return events


@st.composite
def trade_histories(draw: st.DrawFn) -> tuple[int, list[list[EnrichedTrade]]]:
    multiplier = draw(st.sampled_from([1, 10, 50]))
    count = draw(st.integers(min_value=1, max_value=12))
    return multiplier, [draw(versions_of(f"T{i:02d}", multiplier)) for i in range(count)]


@settings(max_examples=300, deadline=None)
@given(trade_histories(), st.randoms(use_true_random=False))
def test_any_delivery_order_gives_the_position_of_the_final_effective_versions(
    history: tuple[int, list[list[EnrichedTrade]]], rnd: random.Random
) -> None:
    multiplier, histories = history
    deliveries = [e for versions in histories for e in versions]
    deliveries += [rnd.choice(deliveries) for _ in range(3)]  # redeliveries
    rnd.shuffle(deliveries)
    ledger = PositionLedger()
    position = PositionBook.open("ACC-1", "ACME.XNYS", "USD", D(multiplier)).position
    for event in deliveries:
        position = ledger.apply(event).position
    effective = [v[-1] for v in histories if v[-1].event_type != "CANCEL"]
    assert position == fold(*effective, multiplier=multiplier)


@settings(max_examples=300, deadline=None)
@given(trade_histories(), st.randoms(use_true_random=False), st.integers(1, 3), st.integers(1, 3))
def test_any_order_with_tiny_tails_and_index_chunks_gives_the_same_position(
    history: tuple[int, list[list[EnrichedTrade]]], rnd: random.Random, tail: int, chunk: int
) -> None:
    # every path (incremental, tail re-fold, full re-fold through sealed chunks) is taken
    multiplier, histories = history
    deliveries = [e for versions in histories for e in versions]
    rnd.shuffle(deliveries)
    ledger, uncached = PositionLedger(TailCache()), PositionLedger()
    with (
        mock.patch("tradeflux.domain.position_book.TAIL_FILLS", tail),
        mock.patch("tradeflux.domain.position_book.INDEX_CHUNK", chunk),
    ):
        for event in deliveries:
            position = ledger.apply(event).position
            uncached.apply(event)
            assert_book_holds_its_invariants(ledger, "ACC-1|ACME.XNYS", tail)
            assert uncached.books == ledger.books  # the cache saves work, changes nothing
    effective = [v[-1] for v in histories if v[-1].event_type != "CANCEL"]
    assert position == fold(*effective, multiplier=multiplier)
    book = ledger.books["ACC-1|ACME.XNYS"]
    assert book.trade_count == len(effective)
    assert book.chunks == len(histories) // chunk


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(SIDES, QUANTITIES, PRICES, st.integers(0, 30)), min_size=1, max_size=25),
    st.permutations(range(25)),
)
def test_incremental_apply_equals_a_full_fold(
    fills: list[tuple[Side, Decimal, Decimal, int]], order: list[int]
) -> None:
    trades = [trade(f"T{i:02d}", s, q, p, seconds=t) for i, (s, q, p, t) in enumerate(fills)]
    ledger = PositionLedger()
    seen = set()
    for i in (i for i in order if i < len(trades)):
        position = ledger.apply(trades[i]).position
        seen.add(trades[i].trade_id)
        assert position == fold(*(t for t in trades if t.trade_id in seen))
    assert position == fold(*trades)


@given(st.lists(st.tuples(SIDES, QUANTITIES, PRICES), min_size=1, max_size=30))
def test_in_time_order_every_new_is_applied_incrementally_and_matches_the_fold(
    fills: list[tuple[Side, Decimal, Decimal]],
) -> None:
    trades = [trade(f"T{i:02d}", s, q, p, seconds=i) for i, (s, q, p) in enumerate(fills)]
    state = FLAT
    ledger = PositionLedger()
    for t in trades:
        state = apply_fill(state, t.side, t.quantity, t.price, t.multiplier)
        position = ledger.apply(t).position
        assert figures(position) == figures(state)
    assert position == fold(*trades)


@settings(max_examples=300, deadline=None)
@given(trade_histories(), st.integers(0, 2**32), st.integers(1, 4))
def test_the_tail_cache_survives_aborted_batches_and_gives_the_same_position(
    history: tuple[int, list[list[EnrichedTrade]]], seed: int, tail: int
) -> None:
    # Batches of events; some abort: the stores go back to the last commit (older book
    # objects) while the cache still holds newer ones, and the batch is applied again.
    rnd = random.Random(seed)
    multiplier, histories = history
    deliveries = [e for versions in histories for e in versions]
    rnd.shuffle(deliveries)
    ledger = PositionLedger(TailCache(max_positions=rnd.choice([1, 1000])))
    with mock.patch("tradeflux.domain.position_book.TAIL_FILLS", tail):
        n = 0
        while n < len(deliveries):
            batch = deliveries[n : n + rnd.randint(1, 5)]
            committed = (dict(ledger.books), dict(ledger.fills), dict(ledger.chunks))
            for event in batch:
                ledger.apply(event)
            if rnd.random() < 0.3:  # abort: back to the committed state, then again
                ledger.books, ledger.fills, ledger.chunks = committed
                continue
            n += len(batch)
    effective = [v[-1] for v in histories if v[-1].event_type != "CANCEL"]
    book = ledger.books["ACC-1|ACME.XNYS"]
    assert book.position == fold(*effective, multiplier=multiplier)


def test_with_the_tail_cache_a_late_new_gives_the_same_books_as_without() -> None:
    trades = [trade(f"T{i:03d}", "BUY" if i % 4 else "SELL", 5, 10 + i % 7, seconds=2 * i)
              for i in range(3 * TAIL_FILLS)]  # fmt: skip
    late = [trade(f"L{i:03d}", "SELL", 3, 12, seconds=2 * i + 1) for i in range(0, 90, 9)]
    events = [*trades, *late, trade("T050", "BUY", 9, 11, seconds=100, version=2,
                                    event_type="AMEND")]  # fmt: skip
    with_cache, position = ledger_of(*events, cache=True)
    without, expected = ledger_of(*events)
    assert position == expected == fold(*(t for t in trades if t.trade_id != "T050"),
                                        *late, events[-1])  # fmt: skip
    assert with_cache.books == without.books


def test_a_position_over_the_cache_bound_keeps_only_its_tail_and_stays_exact() -> None:
    trades = [trade(f"T{i:03d}", "BUY" if i % 3 else "SELL", 4, 10 + i % 5, seconds=i)
              for i in range(60)]  # fmt: skip
    amend = trade("T001", "BUY", 9, 12, seconds=1, version=2, event_type="AMEND")
    late = trade("LATE", "SELL", 2, 11, seconds=-1)
    with mock.patch("tradeflux.domain.position_book.CACHE_ALL_FILLS_UP_TO", 10):
        ledger, _ = ledger_of(*trades, cache=True)
        ledger.apply(amend)  # a full re-fold over 60 fills: only the tail is cached
        position = ledger.apply(late).position  # before the checkpoint: full again
    assert position == fold(trades[0], amend, *trades[2:], late)
