"""bench/latency.py's pure parts: timing headers, percentiles, which output holds a trade."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import msgspec
import pytest
from bench import hops
from bench.inclusion import AggregateCounts, Seen, TradefluxPnl, visibility
from bench.trade_load import TradeLoad, schedule
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflux.domain.pnl import account_pnl
from tradeflux.domain.schemas import FxRate, Position, Price

D = Decimal
T = dt.datetime(2026, 1, 2, 16, tzinfo=dt.UTC)
_encode = msgspec.json.Encoder(decimal_format="string").encode


def stamp(service: str, batch: int, *times_us: int) -> bytes:
    return f"{service};{service}-1;{batch};{';'.join(str(t) for t in times_us)}".encode()


# -- headers and percentiles ----------------------------------------------------------------


def test_parse_hop_reads_the_seven_fields_of_a_tf_hop_header() -> None:
    assert hops.parse_hop(stamp("positions", 12, 100, 150, 190, 200)) == hops.HopStamp(
        "positions", "positions-1", 12, 100, 150, 190, 200
    )


@pytest.mark.parametrize("value", [b"positions;p-1;12;100;150;190", b"a;b;x;1;2;3;4", b""])
def test_parse_hop_refuses_a_value_without_seven_well_formed_fields(value: bytes) -> None:
    with pytest.raises(ValueError):
        hops.parse_hop(value)


def test_hop_stamps_keeps_only_tf_hop_headers_in_their_order() -> None:
    headers = [("tf.hop", stamp("validator", 1, 1, 2, 3, 4)), ("other", b"x"),
               ("tf.hop", stamp("positions", 7, 5, 6, 7, 8))]  # fmt: skip
    assert [s.service for s in hops.hop_stamps(headers)] == ["validator", "positions"]
    assert hops.hop_stamps(None) == []


def test_parse_commit_line_finds_the_batch_and_its_commit_times_among_other_pairs() -> None:
    line = ("ts=2026-12-01 level=DEBUG logger=tradeflux.stream msg=batch committed "
            "service=positions instance=positions-1 batch=12 records=40 "
            "commit_started_us=1000 commit_ended_us=1600")  # fmt: skip
    assert hops.parse_commit_line(line) == hops.BatchCommit(
        "positions", "positions-1", 12, 1000, 1600
    )
    assert hops.parse_commit_line("msg=batch committed service=positions batch=12") is None
    assert hops.parse_commit_line("msg=partitions assigned") is None


def test_breakdown_splits_a_record_into_each_hops_intervals_with_commit_lines() -> None:
    validator = hops.HopStamp("validator", "v-1", 1, 1_000_000, 1_002_000, 1_003_000, 1_003_500)
    positions = hops.HopStamp("positions", "p-1", 9, 1_010_000, 1_011_000, 1_014_000, 1_014_200)
    commits = {
        ("validator", "v-1", 1): hops.BatchCommit("validator", "v-1", 1, 1_003_600, 1_008_000),
        ("positions", "p-1", 9): hops.BatchCommit("positions", "p-1", 9, 1_014_300, 1_020_000),
    }
    bd = hops.breakdown([([validator, positions], 0.999, 1.025)], commits)
    assert bd.records == 1
    assert {(hop, name): values for hop, name, values in bd.rows()} == {
        ("validator", "fetch"): [1.0],
        ("validator", "queue"): [2.0],
        ("validator", "processing"): [1.0],
        ("validator", "produce"): [0.5],
        ("validator", "commit"): [4.5],
        ("positions", "fetch"): [2.0],
        ("positions", "queue"): [1.0],
        ("positions", "processing"): [3.0],
        ("positions", "produce"): [0.2],
        ("positions", "commit"): [5.8],
        ("reader", "fetch"): [5.0],
    }


def test_breakdown_without_commit_lines_joins_commit_and_the_next_fetch() -> None:
    only = hops.HopStamp("pnl", "pnl-1", 3, 2_000_000, 2_000_500, 2_001_000, 2_001_000)
    rows = {(h, n): v for h, n, v in hops.breakdown([([only], None, 2.011)], {}).rows()}
    assert ("pnl", "fetch") not in rows  # no origin: a timer's output names no trade
    assert rows[("pnl", "queue")] == [0.5]
    assert rows[("reader", "commit+fetch")] == [10.0]


def test_percentile_is_the_nearest_rank_of_the_sorted_values() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert hops.summary(values) == [500.0, 900.0, 990.0, 999.0, 1000.0]
    assert hops.percentile([3.0], 0.999) == 3.0
    assert math.isnan(hops.percentile([], 0.5))
    assert hops.percentile([1.0, math.inf], 0.99) == math.inf


# -- which output includes each trade -------------------------------------------------------


def enriched(trade_id: str, account: str, instrument: str) -> bytes:
    return _encode({"trade_id": trade_id, "account": account, "instrument": instrument})


def position_of(account: str, instrument: str, count: int, qty: str = "0") -> bytes:
    return _encode(
        Position(account=account, instrument=instrument, currency="USD", quantity=D(qty),
                 avg_cost=D("10"), realized_pnl=D(0), trade_count=count)
    )  # fmt: skip


def aggregate(positions: int, count: int) -> bytes:
    return _encode({"account": "A", "positions": positions, "trade_count": count, "realized": {}})


def seen(p: int, offset: int, key: str, value: bytes, t: float) -> Seen:
    return (p, offset, key.encode(), value, None, t)


def test_a_trade_is_in_the_first_position_whose_count_reaches_its_place_in_the_partition() -> None:
    records = {
        "enriched": [seen(0, 0, "A", enriched("t1", "A", "X"), 1.0),
                     seen(0, 1, "A", enriched("t2", "A", "X"), 1.0),
                     seen(0, 2, "A", enriched("t3", "A", "Y"), 1.1),
                     seen(0, 3, "A", enriched("t4", "A", "X"), 1.2)],
        "positions": [seen(0, 0, "A|X", position_of("A", "X", 2), 2.0),  # t1, t2 coalesced
                      seen(0, 1, "A|Y", position_of("A", "Y", 1), 2.5),
                      seen(0, 2, "A|X", position_of("A", "X", 3), 3.0)],
        "pnl": [seen(0, 0, "A", aggregate(1, 2), 4.0),
                seen(0, 1, "A", aggregate(2, 4), 5.0)],  # skips the prefix (2, 3)
    }  # fmt: skip
    vis = visibility(records, AggregateCounts())
    assert vis.enriched == {"t1": 1.0, "t2": 1.0, "t3": 1.1, "t4": 1.2}
    assert vis.position == {"t1": 2.0, "t2": 2.0, "t3": 2.5, "t4": 3.0}
    assert vis.pnl == {"t1": 4.0, "t2": 4.0, "t3": 5.0, "t4": 5.0}
    assert vis.enriched_order == {"A|X": ["t1", "t2", "t4"], "A|Y": ["t3"]}
    assert (vis.unmatched_pnl, vis.no_change) == (0, 0)


def test_a_pnl_record_that_no_prefix_explains_is_counted_not_matched() -> None:
    records = {
        "enriched": [seen(0, 0, "A", enriched("t1", "A", "X"), 1.0)],
        "positions": [seen(0, 0, "A|X", position_of("A", "X", 1), 2.0)],
        "pnl": [seen(0, 0, "A", aggregate(1, 7), 3.0), seen(0, 1, "A", aggregate(1, 1), 4.0)],
    }
    vis = visibility(records, AggregateCounts())
    assert vis.unmatched_pnl == 1
    assert vis.pnl == {"t1": 4.0}


MARKS = {"X": Price(instrument_id="X", bid=D("11"), ask=D("11"), last=D("11"), time=T),
         "Y": Price(instrument_id="Y", bid=D("20"), ask=D("20"), last=D("20"), time=T)}  # fmt: skip
FX = {"EURUSD": FxRate(pair="EURUSD", base="EUR", quote="USD", rate=D("1.0842"), time=T)}
PNL = TradefluxPnl({"A": "USD"}, MARKS, FX)


def test_a_trade_that_leaves_the_pnl_unchanged_is_visible_with_its_position_and_that_value() -> (
    None
):
    records = {
        "enriched": [seen(0, 0, "A", enriched("t1", "A", "X"), 1.0),
                     seen(0, 1, "A", enriched("t2", "A", "X"), 1.1)],
        "positions": [seen(0, 0, "A|X", position_of("A", "X", 1, qty="5"), 2.0),
                      seen(0, 1, "A|X", position_of("A", "X", 2, qty="5"), 6.0)],
        "pnl": [seen(0, 0, "A", _encode(PNL.signatures("A", [position_of("A", "X", 1, "5")])[1]),
                     3.0)],
    }  # fmt: skip
    vis = visibility(records, PNL)
    assert vis.pnl == {"t1": 3.0, "t2": 6.0}  # t2 changed nothing: seen once its position is
    assert vis.no_change == 1


def test_sse_events_are_matched_in_order_to_the_pnl_records_they_carry() -> None:
    one = position_of("A", "X", 1, qty="5")
    two = position_of("A", "X", 2, qty="9")
    sig1, sig2 = PNL.signatures("A", [one, two])[1:]
    records = {
        "enriched": [seen(0, 0, "A", enriched("t1", "A", "X"), 1.0),
                     seen(0, 1, "A", enriched("t2", "A", "X"), 1.1)],
        "positions": [seen(0, 0, "A|X", one, 2.0), seen(0, 1, "A|X", two, 2.2)],
        "pnl": [seen(0, 0, "A", _encode(sig1), 3.0), seen(0, 1, "A", _encode(sig2), 3.5)],
    }  # fmt: skip
    sse = [(4.0, "hello", b"{}"), (4.25, "pnl", _encode(sig2))]  # coalesced: sig1 skipped
    vis = visibility(records, PNL, sse)
    assert vis.sse == {"t1": 4.25, "t2": 4.25}
    assert vis.unmatched_sse == 0


_decimal = st.decimals(min_value=-5000, max_value=5000, places=4, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["X", "Y", "Z", "W"]), st.sampled_from(["USD", "EUR", "JPY"]),
                  _decimal, _decimal, _decimal),
        min_size=1, max_size=25,
    )
)  # fmt: skip
def test_tradeflux_pnl_of_every_prefix_equals_account_pnl_of_the_positions_held(
    updates: list[tuple[str, str, Decimal, Decimal, Decimal]],
) -> None:
    values, held = [], {}
    for n, (instrument, currency, qty, avg, realized) in enumerate(updates, start=1):
        pos = Position(account="A", instrument=instrument, currency=currency, quantity=qty,
                       avg_cost=avg, realized_pnl=realized, trade_count=n)  # fmt: skip
        values.append(_encode(pos))
        held[instrument] = pos
        want = account_pnl("A", "USD", held.values(), MARKS, FX)  # JPY: no rate, W: no mark
        assert PNL.signatures("A", values)[-1] == want


# -- the load -----------------------------------------------------------------------------


def test_uniform_schedule_sends_on_fixed_gaps_from_the_start() -> None:
    assert list(schedule(4.0, 3, 100.0, "uniform", seed=1)) == [100.0, 100.25, 100.5]
    poisson = list(schedule(1000.0, 500, 100.0, "poisson", seed=1))
    assert poisson == sorted(poisson) and poisson[0] == 100.0
    assert poisson == list(schedule(1000.0, 500, 100.0, "poisson", seed=1))


def test_shift_moves_the_schedule_and_kafka_timestamp_but_not_the_trade_time() -> None:
    load = TradeLoad(7, T)
    first = load.trade(T.timestamp() + 1)
    moved = load.shift(0, 10.0)[0]
    assert moved.due == first.due + 10.0
    assert moved.record.timestamp_ms == int((first.due + 10.0) * 1000)
    assert moved.record.value == first.record.value  # the trade time is inside
    assert load.position_counts() == {first.key: 1}


# -- completion and the breakdown of what the reader saw ---------------------------------


def test_the_output_is_complete_once_every_position_and_account_reached_its_final_count() -> None:
    from bench.visibility import Expectation, _Completion

    done = _Completion(Expectation(2, {"A|X": 2}, AggregateCounts()))
    records: dict[str, list[Seen]] = {
        "enriched": [seen(0, 0, "A", enriched("t1", "A", "X"), 1.0),
                     seen(0, 1, "A", enriched("t2", "A", "X"), 1.0)],
        "positions": [seen(0, 0, "A|X", position_of("A", "X", 1), 2.0)],
        "pnl": [seen(0, 0, "A", aggregate(1, 1), 3.0)],
    }  # fmt: skip
    assert not done.complete(records)
    records["positions"].append(seen(0, 1, "A|X", position_of("A", "X", 2), 4.0))
    assert not done.complete(records)  # the aggregate still holds one trade
    records["pnl"].append(seen(0, 1, "A", aggregate(1, 2), 5.0))
    assert done.complete(records)
    assert done.final_pnl == {"A": (1, 2)}


def test_breakdown_of_positions_starts_at_the_scheduled_send_of_the_trade_it_names() -> None:
    from bench.latency import _breakdowns
    from bench.trade_load import SentTrade
    from bench.visibility import Observed

    load = TradeLoad(7, T)
    trade = load.trade(T.timestamp() + 1)
    measured = [SentTrade(trade.record, "t1", "A|X", 1000.0)]
    pos = _encode(
        Position(
            account="A",
            instrument="X",
            currency="USD",
            quantity=D(1),
            avg_cost=D(1),
            realized_pnl=D(0),
            trade_count=1,
            last_trade_id="t1",
        )
    )
    headers = [("tf.hop", stamp("positions", 4, 1_000_001_000, 1_000_002_000, 1_000_003_000,
                                1_000_003_000))]  # fmt: skip
    observed = Observed()
    observed.records["positions"] = [(0, 0, b"A|X", pos, headers, 1000.010),
                                     (0, 1, b"A|X", pos, None, 1000.020)]  # fmt: skip
    bd = _breakdowns(observed, measured, {})
    assert list(bd) == ["positions"]
    rows = {(h, n): v for h, n, v in bd["positions"].rows()}
    assert rows[("positions", "fetch")] == [1.0]
    assert rows[("reader", "commit+fetch")] == [7.0]


def test_a_position_with_only_its_own_stamp_gets_the_validators_from_its_trades_enrichment() -> (
    None
):
    from bench.latency import _breakdowns
    from bench.trade_load import SentTrade
    from bench.visibility import Observed

    load = TradeLoad(7, T)
    trade = load.trade(T.timestamp() + 1)
    measured = [SentTrade(trade.record, "t1", "A|X", 1000.0)]
    pos = _encode(
        Position(
            account="A",
            instrument="X",
            currency="USD",
            quantity=D(1),
            avg_cost=D(1),
            realized_pnl=D(0),
            trade_count=1,
            last_trade_id="t1",
        )
    )
    validator = [
        (
            "tf.hop",
            stamp("validator", 2, 1_000_000_500, 1_000_000_600, 1_000_000_700, 1_000_000_800),
        )
    ]
    positions = [("tf.hop", stamp("positions", 4, 1_000_001_000, 1_000_002_000, 1_000_003_000,
                                  1_000_003_000))]  # fmt: skip
    observed = Observed()
    observed.records["enriched"] = [(0, 0, b"A", enriched("t1", "A", "X"), validator, 1000.001)]
    observed.records["positions"] = [(0, 0, b"A|X", pos, positions, 1000.010)]
    rows = {(h, n): v for h, n, v in _breakdowns(observed, measured, {})["positions"].rows()}
    assert rows[("validator", "fetch")] == [0.5]
    assert rows[("positions", "commit+fetch")] == [0.2]
    assert rows[("reader", "commit+fetch")] == [7.0]
