"""Bars over event-time windows (domain/windows.py), pure: exact Decimal values."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflux.domain import windows
from tradeflux.domain.schemas import Bar, EnrichedTrade
from tradeflux.domain.windows import (
    BarTrade,
    Outcome,
    TradeSlot,
    WindowBatch,
    WindowSpec,
    WindowState,
    bar_of,
    window_key,
)
from tradeflux.stream.codecs import MsgpackCodec

T0 = dt.datetime(2026, 11, 24, 15, 0, 0, tzinfo=dt.UTC)
SPEC = WindowSpec(size=dt.timedelta(seconds=5), grace=dt.timedelta(seconds=2))
INSTRUMENT = "AAPL.XNAS"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(microseconds=round(seconds * 1_000_000))


def trade(
    trade_id: str,
    version: int,
    event: str,
    seconds: float,
    qty: str,
    price: str,
    instrument: str = INSTRUMENT,
    account: str = "ACC-1",
) -> EnrichedTrade:
    quantity, px = Decimal(qty), Decimal(price)
    return EnrichedTrade(
        event_type=event,  # type: ignore[arg-type]
        trade_id=trade_id,
        version=version,
        account=account,
        instrument=instrument,
        side="BUY",
        quantity=quantity,
        price=px,
        currency="USD",
        venue="XNAS",
        counterparty="CP-1",
        trade_time=at(seconds),
        source="test",
        ingest_time=None,
        isin="US0000000001",
        symbol="AAPL",
        mic="XNAS",
        multiplier=Decimal(1),
        book="B",
        legal_entity="LE",
        base_currency="USD",
        counterparty_lei="LEI",
        notional=quantity * px,
        trade_date=T0.date(),
        settlement_date=T0.date(),
    )


def bar_trade(
    trade_id: str, seconds: float, qty: str, price: str, account: str = "ACC-1"
) -> BarTrade:
    """What a window holds of ``trade(...)`` with the same values."""
    quantity, px = Decimal(qty), Decimal(price)
    return BarTrade(trade_id, account, at(seconds), quantity, px, quantity * px)


class Partition:
    """A committed partition state, fed batch by batch as the service does."""

    def __init__(self, spec: WindowSpec = SPEC) -> None:
        self.spec = spec
        self.windows: dict[str, WindowState] = {}
        self.slots: dict[str, TradeSlot] = {}
        self.members: dict[str, tuple[str, ...]] = {}
        self.stream_time: dt.datetime | None = None
        self.emitted: list[tuple[str, Bar | None]] = []
        self.outcomes: list[Outcome] = []
        self.closed = 0

    def batch(self, events: list[EnrichedTrade]) -> list[tuple[str, Bar | None]]:
        batch = WindowBatch(self.spec, self.stream_time, self.windows, self.slots, self.members)
        self.outcomes += [batch.apply(e) for e in events]
        result = batch.finish(list(self.windows.items()))
        for key, window in result.windows.items():
            if window is None:
                del self.windows[key]
            else:
                self.windows[key] = window
        for key, slot in result.slots.items():
            if slot is None:
                del self.slots[key]
            else:
                self.slots[key] = slot
        for key, chunk in result.members.items():
            if chunk is None:
                del self.members[key]
            else:
                self.members[key] = chunk
        self.stream_time = result.stream_time
        self.closed += result.closed
        self.emitted += result.bars
        return result.bars

    def latest(self) -> dict[str, Bar]:
        """The last bar per key, a tombstone removing it (what a reader keeps)."""
        out: dict[str, Bar] = {}
        for key, bar in self.emitted:
            if bar is None:
                out.pop(key, None)
            else:
                out[key] = bar
        return out


def test_window_start_is_aligned_on_the_epoch_and_the_end_is_exclusive() -> None:
    assert SPEC.start_of(at(0)) == at(0)
    assert SPEC.start_of(at(4.999999)) == at(0)
    assert SPEC.start_of(at(5)) == at(5)
    assert SPEC.start_of(at(-0.000001)) == at(-5)
    assert WindowSpec(dt.timedelta(seconds=60), dt.timedelta(0)).start_of(at(7)) == T0
    assert window_key(INSTRUMENT, at(5)) == "AAPL.XNAS|2026-11-24T15:00:05Z"


def test_a_window_closes_only_when_stream_time_is_past_end_plus_grace() -> None:
    assert not SPEC.is_closed(at(0), None)
    assert not SPEC.is_closed(at(0), at(7))
    assert SPEC.is_closed(at(0), at(7.000001))


def test_window_spec_refuses_a_zero_size_or_negative_grace() -> None:
    with pytest.raises(ValueError, match="size"):
        WindowSpec(dt.timedelta(0), dt.timedelta(0))
    with pytest.raises(ValueError, match="grace"):
        WindowSpec(dt.timedelta(seconds=1), dt.timedelta(seconds=-1))


def test_bar_is_ohlcv_in_trade_time_then_trade_id_order() -> None:
    trades = [
        BarTrade("T3", "A", at(1), Decimal(300), Decimal("10.02"), Decimal("3006.00")),
        BarTrade("T2", "A", at(1), Decimal(100), Decimal("10.05"), Decimal("1005.00")),
        BarTrade("T1", "A", at(2), Decimal(200), Decimal("9.99"), Decimal("1998.00")),
    ]
    bar = bar_of(INSTRUMENT, at(0), SPEC.size, "USD", trades)
    assert bar == Bar(
        instrument=INSTRUMENT,
        window_start=at(0),
        window_end=at(5),
        currency="USD",
        open=Decimal("10.05"),  # T2 sorts before T3 at the same time
        high=Decimal("10.05"),
        low=Decimal("9.99"),
        close=Decimal("9.99"),
        volume=Decimal(600),
        vwap=Decimal("10.015000"),  # (1005 + 3006 + 1998) / 600
        notional=Decimal("6009.00"),
        count=3,
        final=False,
    )
    assert bar_of(INSTRUMENT, at(0), SPEC.size, "USD", []) is None


def test_vwap_is_quantized_to_six_places_half_even() -> None:
    def vwap(*prices: str) -> Decimal:
        trades = [
            BarTrade(f"T{i}", "A", at(1), Decimal(1), Decimal(p), Decimal(p))
            for i, p in enumerate(prices)
        ]
        bar = bar_of(INSTRUMENT, at(0), SPEC.size, "USD", trades)
        assert bar is not None
        return bar.vwap

    assert vwap("10.000001", "10.000000") == Decimal("10.000000")  # .0000005 to even
    assert vwap("10.000003", "10.000000") == Decimal("10.000002")  # .0000015 to even
    assert vwap("1", "1", "2") == Decimal("1.333333")
    assert vwap("2", "2", "1") == Decimal("1.666667")


def test_one_revision_per_changed_window_per_batch() -> None:
    p = Partition()
    bars = p.batch(
        [trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T2", 1, "NEW", 2, "50", "11.00")]
    )
    assert [(k, b.count if b else None) for k, b in bars] == [(window_key(INSTRUMENT, at(0)), 2)]
    assert bars[0][1] is not None and bars[0][1].vwap == Decimal("10.333333")


def test_an_amend_replaces_the_trade_in_its_window() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T2", 1, "NEW", 2, "100", "12.00")])
    (key, bar), = p.batch([trade("T1", 2, "AMEND", 1, "300", "10.00")])  # fmt: skip
    assert bar is not None
    assert (bar.volume, bar.vwap, bar.count, bar.open) == (
        Decimal(400), Decimal("10.500000"), 2, Decimal("10.00"),
    )  # fmt: skip


def test_an_amend_that_moves_trade_time_leaves_the_old_window_for_the_new() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00")])
    bars = p.batch([trade("T1", 2, "AMEND", 6, "100", "10.00")])
    assert [k for k, _ in bars] == [window_key(INSTRUMENT, at(0)), window_key(INSTRUMENT, at(5))]
    assert bars[0][1] is None  # the old window has no trade left: a tombstone
    assert bars[1][1] is not None and bars[1][1].count == 1
    assert p.slots["AAPL.XNAS|ACC-1|T1"] == TradeSlot(at(5), 2, bar_trade("T1", 6, "100", "10.00"))


def test_cancel_removes_the_trade_and_an_empty_window_is_a_tombstone() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T2", 1, "NEW", 2, "100", "12.00")])
    (_, bar), = p.batch([trade("T2", 2, "CANCEL", 2, "100", "12.00")])  # fmt: skip
    assert bar is not None and (bar.count, bar.close, bar.high) == (
        1,
        Decimal("10.00"),
        Decimal("10.00"),
    )
    assert p.batch([trade("T1", 2, "CANCEL", 1, "100", "10.00")]) == [
        (window_key(INSTRUMENT, at(0)), None)
    ]
    assert p.latest() == {}


def test_closing_sends_one_final_bar_and_drops_the_window_and_its_slots() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T2", 1, "NEW", 3, "100", "11.00")])
    p.batch([trade("T2", 2, "CANCEL", 3, "100", "11.00")])
    assert p.batch([trade("T3", 1, "NEW", 7, "1", "12.00")])[-1][0] == window_key(INSTRUMENT, at(5))
    bars = p.batch([trade("T4", 1, "NEW", 7.5, "1", "12.00")])  # stream time past 0 + 5 + 2
    first = window_key(INSTRUMENT, at(0))
    assert [(k, b.final if b else None) for k, b in bars] == [
        (first, True),
        (window_key(INSTRUMENT, at(5)), False),
    ]
    assert bars[0][1] is not None and bars[0][1].count == 1
    assert first not in p.windows
    assert set(p.slots) == {
        "AAPL.XNAS|ACC-1|T3",
        "AAPL.XNAS|ACC-1|T4",
    }  # T1 and the cancelled T2 went
    assert p.closed == 1
    assert p.batch([trade("T5", 1, "NEW", 7.6, "1", "12.00")])[0][1].final is False  # type: ignore[union-attr]
    assert [k for k, b in p.emitted if b is not None and b.final] == [first]


def test_an_empty_window_closes_without_a_bar() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00")])
    p.batch([trade("T1", 2, "CANCEL", 1, "100", "10.00")])
    bars = p.batch([trade("T9", 1, "NEW", 20, "1", "12.00", instrument="MSFT.XNAS")])
    assert [k for k, _ in bars] == [window_key("MSFT.XNAS", at(20))]
    assert p.windows.keys() == {window_key("MSFT.XNAS", at(20))}
    assert p.slots.keys() == {"MSFT.XNAS|ACC-1|T9"}


def test_late_events_are_counted_and_not_applied() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T2", 1, "NEW", 1.5, "100", "10.00")])
    p.batch([trade("T3", 1, "NEW", 7, "1", "11.00")])  # stream time 7: window 0 still open
    assert p.batch([trade("T1", 2, "AMEND", 1, "200", "10.00")])[0][1].volume == 300  # type: ignore[union-attr]
    p.batch([trade("T4", 1, "NEW", 7.1, "1", "11.00")])  # closes window 0
    final = p.latest()[window_key(INSTRUMENT, at(0))]
    assert final.final and final.volume == 300
    late = [
        trade("T5", 1, "NEW", 4.9, "1", "9.00"),  # its window is closed
        trade("T1", 3, "AMEND", 6, "1", "9.00"),  # moves out of a closed window
        trade("T2", 2, "CANCEL", 1.5, "100", "10.00"),  # cancels out of a closed window
        trade("T5", 2, "AMEND", 6, "1", "9.00"),  # amends a trade that never got in
    ]
    bars = p.batch(late)
    assert p.outcomes[-4:] == [Outcome.LATE] * 4
    assert bars == []  # nothing changed
    assert p.latest()[window_key(INSTRUMENT, at(0))] == final


def test_an_amend_is_late_when_its_new_window_is_closed() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T2", 1, "NEW", 11, "1", "10.00")])
    assert p.batch([trade("T2", 2, "AMEND", 1, "1", "10.00")]) == []
    assert p.outcomes[-1] is Outcome.LATE
    assert p.slots["AAPL.XNAS|ACC-1|T2"] == TradeSlot(
        at(10), 1, bar_trade("T2", 11, "1", "10.00")
    )  # still where it was


def test_lateness_is_judged_against_stream_time_before_the_event() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00")])
    # The amend itself moves stream time past window 0's close; it still leaves window 0.
    bars = p.batch([trade("T1", 2, "AMEND", 30, "100", "10.00")])
    assert p.outcomes[-1] is Outcome.APPLIED
    assert bars == [
        (window_key(INSTRUMENT, at(0)), None),
        (window_key(INSTRUMENT, at(30)), bars[1][1]),
    ]
    assert p.windows.keys() == {window_key(INSTRUMENT, at(30))}


@pytest.mark.parametrize("cancel_first", [True, False])
def test_an_account_move_gives_the_same_bar_in_either_order(cancel_first: bool) -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T2", 1, "NEW", 2, "10", "10.50")])
    cancel = trade("T1", 2, "CANCEL", 1, "100", "10.00")
    moved = trade("T1", 2, "NEW", 1, "100", "10.00", account="ACC-2")
    p.batch([cancel, moved] if cancel_first else [moved, cancel])
    bar = p.latest()[window_key(INSTRUMENT, at(0))]
    assert (bar.count, bar.volume, bar.open) == (2, Decimal(110), Decimal("10.00"))
    assert p.outcomes[-2:] == [Outcome.APPLIED, Outcome.APPLIED]


def test_a_version_not_above_the_held_one_is_ignored() -> None:
    p = Partition()
    p.batch([trade("T1", 1, "NEW", 1, "100", "10.00"), trade("T1", 2, "AMEND", 1, "5", "10.00")])
    assert p.batch([trade("T1", 1, "NEW", 1, "100", "10.00")]) == []
    assert p.outcomes == [Outcome.APPLIED, Outcome.APPLIED, Outcome.STALE]
    assert p.latest()[window_key(INSTRUMENT, at(0))].volume == 5


def test_batching_does_not_change_the_bars() -> None:
    events = [
        trade("T1", 1, "NEW", 1, "100", "10.00"),
        trade("T2", 1, "NEW", 6, "10", "10.50"),
        trade("T1", 2, "AMEND", 4, "50", "10.10"),
        trade("T3", 1, "NEW", 12, "1", "11.00"),  # closes window 0
        trade("T1", 3, "CANCEL", 4, "50", "10.10"),  # late
        trade("T2", 2, "AMEND", 9, "20", "10.40"),
    ]
    whole, single = Partition(), Partition()
    whole.batch(events)
    for event in events:
        single.batch([event])
    assert whole.latest() == single.latest()
    assert whole.outcomes == single.outcomes
    assert whole.windows == single.windows and whole.slots == single.slots


# -- properties ---------------------------------------------------------------------------

PRICES = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2)
QTYS = st.integers(min_value=1, max_value=10_000).map(Decimal)
TIMES = st.integers(min_value=0, max_value=40_000_000)  # microseconds after T0


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[EnrichedTrade], dict[str, EnrichedTrade]]:
    """Trades with NEW, AMENDs (any field, any window) and maybe a CANCEL, interleaved.

    Returns the events in a delivery order that keeps each trade's versions in order,
    and the final effective version of every trade not cancelled.
    """
    per_trade: list[list[EnrichedTrade]] = []
    effective: dict[str, EnrichedTrade] = {}
    for n in range(draw(st.integers(min_value=1, max_value=12))):
        trade_id = f"T{n}"
        instrument = draw(st.sampled_from([INSTRUMENT, "MSFT.XNAS"]))
        versions: list[EnrichedTrade] = []
        for version in range(1, draw(st.integers(min_value=1, max_value=4)) + 1):
            t = draw(TIMES) / 1_000_000
            event = trade(
                trade_id, version, "NEW" if version == 1 else "AMEND", t,
                str(draw(QTYS)), str(draw(PRICES)), instrument,
            )  # fmt: skip
            versions.append(event)
        if draw(st.booleans()):
            last = versions[-1]
            versions.append(
                trade(
                    trade_id, last.version + 1, "CANCEL", (last.trade_time - T0).total_seconds(),
                    str(last.quantity), str(last.price), instrument,
                )
            )  # fmt: skip
        else:
            effective[trade_id] = versions[-1]
        per_trade.append(versions)
    order: list[EnrichedTrade] = []
    queues = [list(v) for v in per_trade]
    while any(queues):
        i = draw(st.sampled_from([j for j, q in enumerate(queues) if q]))
        order.append(queues[i].pop(0))
    return order, effective


def expected_bars(
    effective: dict[str, EnrichedTrade], spec: WindowSpec, final: bool
) -> dict[str, Bar]:
    """Bars computed straight from the final effective trades, without domain.windows."""
    groups: dict[tuple[str, dt.datetime], list[EnrichedTrade]] = {}
    size_us = spec.size // dt.timedelta(microseconds=1)
    for t in effective.values():
        us = (t.trade_time - T0) // dt.timedelta(microseconds=1)  # T0 is on a window boundary
        start = T0 + dt.timedelta(microseconds=us - us % size_us)
        groups.setdefault((t.instrument, start), []).append(t)
    out = {}
    for (instrument, start), trades in groups.items():
        trades.sort(key=lambda t: (t.trade_time, t.trade_id))
        volume = sum((t.quantity for t in trades), Decimal(0))
        value = sum((t.price * t.quantity for t in trades), Decimal(0))
        out[f"{instrument}|{start.strftime('%Y-%m-%dT%H:%M:%SZ')}"] = Bar(
            instrument=instrument,
            window_start=start,
            window_end=start + spec.size,
            currency="USD",
            open=trades[0].price,
            high=max(t.price for t in trades),
            low=min(t.price for t in trades),
            close=trades[-1].price,
            volume=volume,
            vwap=(value / volume).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN),
            notional=sum((t.notional for t in trades), Decimal(0)),
            count=len(trades),
            final=final,
        )
    return out


def _split(events: list[Any], cuts: list[int]) -> list[list[Any]]:
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    return [events[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


WIDE = WindowSpec(size=dt.timedelta(seconds=5), grace=dt.timedelta(seconds=60))


@settings(max_examples=300, deadline=None)
@given(histories(), st.lists(st.integers(min_value=0), max_size=6))
def test_any_order_of_amends_and_cancels_within_grace_gives_the_bars_of_the_final_trades(
    history: tuple[list[EnrichedTrade], dict[str, EnrichedTrade]], cuts: list[int]
) -> None:
    events, effective = history
    p = Partition(WIDE)  # trade times span 40 s < 60 s of grace: nothing is ever late
    for batch in _split(events, cuts):
        p.batch(batch)
    assert Outcome.LATE not in p.outcomes
    assert p.latest() == expected_bars(effective, WIDE, final=False)
    for key, bar in p.emitted:  # at most one bar per window per batch, and none final yet
        assert bar is None or not bar.final, key


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(min_value=0), max_size=6))
def test_every_window_closes_once_with_its_final_bar_and_leaves_no_state(
    history: tuple[list[EnrichedTrade], dict[str, EnrichedTrade]], cuts: list[int]
) -> None:
    events, effective = history
    p = Partition(WIDE)
    for batch in _split(events, cuts):
        p.batch(batch)
    p.batch([trade("Z", 1, "NEW", 1000, "1", "1.00", instrument="ZZZ.XNAS")])  # closes all
    finals = [k for k, b in p.emitted if b is not None and b.final]
    assert sorted(finals) == sorted(expected_bars(effective, WIDE, final=True))
    latest = p.latest()
    latest.pop(window_key("ZZZ.XNAS", at(1000)))
    assert latest == expected_bars(effective, WIDE, final=True)
    assert p.windows.keys() == {window_key("ZZZ.XNAS", at(1000))}
    assert p.slots.keys() == {"ZZZ.XNAS|ACC-1|Z"}


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(min_value=0), max_size=6))
def test_with_a_short_grace_batching_never_changes_the_bars_or_the_late_count(
    history: tuple[list[EnrichedTrade], dict[str, EnrichedTrade]], cuts: list[int]
) -> None:
    events, _ = history
    whole, cut = Partition(SPEC), Partition(SPEC)
    whole.batch(events)
    for batch in _split(events, cuts):
        cut.batch(batch)
    assert whole.latest() == cut.latest()
    assert whole.outcomes == cut.outcomes
    assert (whole.windows, whole.slots, whole.closed) == (cut.windows, cut.slots, cut.closed)
    finals = [k for k, b in cut.emitted if b is not None and b.final]
    assert len(finals) == len(set(finals))


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(min_value=0), max_size=6))
def test_member_lists_of_many_chunks_give_the_same_bars_and_leave_no_state(
    history: tuple[list[EnrichedTrade], dict[str, EnrichedTrade]], cuts: list[int]
) -> None:
    events, effective = history
    p = Partition(WIDE)
    with mock.patch.object(windows, "MEMBERS_PER_CHUNK", 2):
        for batch in _split(events, cuts):
            p.batch(batch)
        assert p.latest() == expected_bars(effective, WIDE, final=False)
        assert all(len(chunk) <= 2 for chunk in p.members.values())
        p.batch([trade("Z", 1, "NEW", 1000, "1", "1.00", instrument="ZZZ.XNAS")])  # closes all
    latest = p.latest()
    latest.pop(window_key("ZZZ.XNAS", at(1000)))
    assert latest == expected_bars(effective, WIDE, final=True)
    assert p.slots.keys() == {"ZZZ.XNAS|ACC-1|Z"}
    assert p.members.keys() == {windows.member_key("", window_key("ZZZ.XNAS", at(1000)), 0)}


def test_no_record_of_a_window_grows_with_its_trades() -> None:
    """A hot instrument's window of 20,000 trades, amended and cancelled: every record small."""
    p = Partition()
    n = 20_000
    events = [trade(f"T{i:05d}", 1, "NEW", i * 4 / n, "10", f"{100 + i % 97}.00") for i in range(n)]
    events += [trade(f"T{i:05d}", 2, "AMEND", i * 4 / n, "20", "150.00") for i in range(0, n, 7)]
    events += [trade(f"T{i:05d}", 3, "CANCEL", i * 4 / n, "20", "150.00") for i in range(0, n, 14)]
    for start in range(0, len(events), 1000):
        p.batch(events[start : start + 1000])
    codec = MsgpackCodec(WindowState)
    (window,) = p.windows.values()
    sizes = [len(codec.encode(window))]
    sizes += [len(MsgpackCodec(TradeSlot).encode(slot)) for slot in p.slots.values()]
    sizes += [len(MsgpackCodec(tuple[str, ...]).encode(c)) for c in p.members.values()]
    assert max(sizes) < 8 * 1024
    effective = {  # the final version of every trade not cancelled
        f"T{i:05d}": trade(f"T{i:05d}", 2, "AMEND", i * 4 / n, "20", "150.00")
        if i % 7 == 0
        else trade(f"T{i:05d}", 1, "NEW", i * 4 / n, "10", f"{100 + i % 97}.00")
        for i in range(n)
        if i % 14
    }
    assert p.latest() == expected_bars(effective, SPEC, final=False)
    assert window.count == len(effective)
