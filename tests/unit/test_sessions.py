"""Activity sessions per account (domain/sessions.py): merge, split, close, lateness, exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_windows import T0, at
from tests.unit.test_windows import trade as window_trade
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.domain.sessions import (
    AccountSession,
    CurrencyNotional,
    Outcome,
    SessionBatch,
    SessionSpec,
    session_key,
)

SPEC = SessionSpec(gap=dt.timedelta(seconds=10), grace=dt.timedelta(seconds=2))
LENIENT = SessionSpec(gap=dt.timedelta(seconds=10), grace=dt.timedelta(seconds=30))
ACC = "ACC-1"


def trade(
    trade_id: str,
    seconds: float,
    qty: str = "1",
    price: str = "10.00",
    *,
    version: int = 1,
    event: str = "NEW",
    side: str = "BUY",
    account: str = ACC,
    currency: str = "USD",
) -> EnrichedTrade:
    base = window_trade(trade_id, version, event, seconds, qty, price, account=account)
    return msgspec.structs.replace(base, side=side, currency=currency)


class Table(dict[str, Any]):
    def put(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


class Partition:
    """The session state of one partition across batches, as the service keeps it."""

    def __init__(self, spec: SessionSpec = SPEC) -> None:
        self.spec = spec
        self.accounts, self.trades, self.buckets = Table(), Table(), Table()
        self.stream_time: dt.datetime | None = None
        self.emitted: list[tuple[str, AccountSession | None]] = []
        self.outcomes: list[Outcome] = []
        self.closed = 0

    def batch(self, events: list[EnrichedTrade]) -> list[tuple[str, AccountSession | None]]:
        b = SessionBatch(self.spec, self.stream_time, self.accounts, self.trades, self.buckets)
        self.outcomes += [b.apply(e) for e in events]
        result = b.finish(list(self.accounts))
        self.stream_time = result.stream_time
        self.emitted += result.emitted
        self.closed += result.closed
        return result.emitted

    def latest(self) -> dict[str, AccountSession]:
        out: dict[str, AccountSession] = {}
        for key, session in self.emitted:
            if session is None:
                out.pop(key, None)
            else:
                out[key] = session
        return out


def key(seconds: float, account: str = ACC) -> str:
    return session_key(account, at(seconds))


def summary(
    start: float, end: float, count: int, bought: str, *, sold: str = "0", buys: int | None = None,
    final: bool = False,
) -> AccountSession:  # fmt: skip
    buys = count if buys is None else buys
    return AccountSession(
        account=ACC,
        session_start=at(start),
        session_end=at(end),
        trade_count=count,
        buy_count=buys,
        sell_count=count - buys,
        notional=(CurrencyNotional(currency="USD", bought=Decimal(bought), sold=Decimal(sold)),),
        final=final,
    )


def test_trades_within_the_gap_are_one_session_and_a_wider_gap_starts_another() -> None:
    p = Partition()
    out = p.batch([trade("T1", 0), trade("T2", 5, side="SELL"), trade("T3", 16)])
    assert out == [
        (key(0), summary(0, 5, 2, "10.00", sold="10.00", buys=1)),
        (key(16), summary(16, 16, 1, "10.00")),
    ]
    assert key(0) == "ACC-1|2026-11-24T15:00:00Z"


def test_a_trade_within_the_gap_of_two_sessions_merges_them() -> None:
    p = Partition(LENIENT)
    p.batch([trade("T1", 0), trade("T2", 5), trade("T3", 18)])
    out = p.batch([trade("T4", 12, qty="2")])
    assert out == [(key(0), summary(0, 18, 4, "50.00")), (key(18), None)]


def test_cancelling_the_trade_that_bridged_two_bursts_splits_the_session() -> None:
    p = Partition(LENIENT)
    p.batch([trade("T1", 0), trade("T2", 5), trade("T3", 18), trade("T4", 12, qty="2")])
    out = p.batch([trade("T4", 12, qty="2", version=2, event="CANCEL")])
    assert out == [(key(0), summary(0, 5, 2, "20.00")), (key(18), summary(18, 18, 1, "10.00"))]


def test_an_amend_that_moves_the_first_trade_moves_the_sessions_start() -> None:
    p = Partition(LENIENT)
    p.batch([trade("T1", 0), trade("T2", 5)])
    out = p.batch([trade("T1", 3, qty="3", version=2, event="AMEND")])
    assert out == [(key(0), None), (key(3), summary(3, 5, 2, "40.00"))]


def test_an_amend_that_moves_a_trade_out_of_the_gap_splits_and_moves_the_end() -> None:
    p = Partition(LENIENT)
    p.batch([trade("T1", 0), trade("T2", 8), trade("T3", 16)])
    out = p.batch([trade("T2", 20, version=2, event="AMEND")])
    # 0 and 16 are 16 s apart once T2 leaves; T2 joins 16 at 20.
    assert out == [(key(0), summary(0, 0, 1, "10.00")), (key(16), summary(16, 20, 2, "20.00"))]


def test_a_session_closes_gap_plus_grace_after_its_last_trade_with_one_final() -> None:
    p = Partition()
    p.batch([trade("T1", 0), trade("T2", 4)])
    out = p.batch([trade("T9", 16, account="ACC-2")])  # 16 = 4 + 10 + 2: not past it
    assert [k for k, _ in out] == [key(16, "ACC-2")]
    out = p.batch([trade("T8", 16.000001, account="ACC-2")])
    assert out[0] == (key(0), summary(0, 4, 2, "20.00", final=True))
    assert [k for k, _ in out[1:]] == [key(16, "ACC-2")]
    assert p.closed == 1
    assert set(p.accounts) == {"ACC-2"}
    assert all(k.startswith("ACC-2|") for k in p.trades)
    assert all(k.startswith("ACC-2|") for k in p.buckets)


def test_late_events_are_counted_and_not_applied() -> None:
    p = Partition()
    p.batch([trade("T1", 0), trade("T2", 30)])  # the session at 0 closed: 30 > 0 + 12
    outcomes = []
    for event in (
        trade("T3", 27.9),  # more than 2 s of grace behind stream time 30
        trade("T1", 0, version=2, event="CANCEL"),  # its session closed
        trade("T2", 20, version=2, event="AMEND"),  # moved more than the grace behind
        trade("T2", 30, version=1),  # a redelivery
    ):
        outcomes.append(p.batch([event]) and None or p.outcomes[-1])
    assert outcomes == [Outcome.LATE, Outcome.LATE, Outcome.LATE, Outcome.STALE]
    assert p.latest()[key(30)] == summary(30, 30, 1, "10.00")


def test_a_cancel_within_an_open_session_is_applied_even_behind_the_grace() -> None:
    p = Partition()
    p.batch([trade("T1", 0), trade("T2", 9)])
    out = p.batch([trade("T3", 15), trade("T1", 0, version=2, event="CANCEL")])
    assert out == [(key(0), None), (key(9), summary(9, 15, 2, "20.00"))]


def test_notional_is_summed_exactly_per_currency_and_side() -> None:
    p = Partition()
    out = p.batch(
        [
            trade("T1", 0, qty="3", price="0.01"),
            trade("T2", 1, qty="7", price="123.456", side="SELL"),
            trade("T3", 2, qty="1", price="99.99", currency="EUR"),
        ]
    )
    (_, session) = out[0]
    assert session is not None
    assert session.notional == (
        CurrencyNotional(currency="EUR", bought=Decimal("99.99"), sold=Decimal(0)),
        CurrencyNotional(currency="USD", bought=Decimal("0.03"), sold=Decimal("864.192")),
    )


# -- properties ---------------------------------------------------------------------------------

TIMES = st.integers(min_value=0, max_value=60_000_000)  # microseconds after T0


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[EnrichedTrade], dict[str, EnrichedTrade]]:
    """NEWs, AMENDs that move trades and CANCELs of one account, versions in order."""
    per_trade: list[list[EnrichedTrade]] = []
    effective: dict[str, EnrichedTrade] = {}
    for n in range(draw(st.integers(min_value=1, max_value=14))):
        versions = []
        for version in range(1, draw(st.integers(min_value=1, max_value=3)) + 1):
            versions.append(
                trade(
                    f"T{n}", draw(TIMES) / 1_000_000, str(draw(st.integers(1, 999))),
                    version=version, event="NEW" if version == 1 else "AMEND",
                    side=draw(st.sampled_from(["BUY", "SELL"])),
                )
            )  # fmt: skip
        if draw(st.booleans()):
            last = versions[-1]
            versions.append(
                msgspec.structs.replace(last, event_type="CANCEL", version=last.version + 1)
            )
        else:
            effective[f"T{n}"] = versions[-1]
        per_trade.append(versions)
    order: list[EnrichedTrade] = []
    queues = [list(v) for v in per_trade]
    while any(queues):
        i = draw(st.sampled_from([j for j, q in enumerate(queues) if q]))
        order.append(queues[i].pop(0))
    return order, effective


def expected_sessions(
    effective: dict[str, EnrichedTrade], spec: SessionSpec
) -> list[AccountSession]:
    """Sessions straight from the final effective trades: sort, cut where the gap is wider."""
    trades = sorted(effective.values(), key=lambda t: t.trade_time)
    runs: list[list[EnrichedTrade]] = []
    for t in trades:
        if runs and t.trade_time - runs[-1][-1].trade_time <= spec.gap:
            runs[-1].append(t)
        else:
            runs.append([t])
    out = []
    for run in runs:
        buys = [t for t in run if t.side == "BUY"]
        sells = [t for t in run if t.side == "SELL"]
        out.append(
            AccountSession(
                account=ACC, session_start=run[0].trade_time, session_end=run[-1].trade_time,
                trade_count=len(run), buy_count=len(buys), sell_count=len(sells),
                notional=(CurrencyNotional(
                    currency="USD",
                    bought=sum((t.notional for t in buys), Decimal(0)),
                    sold=sum((t.notional for t in sells), Decimal(0)),
                ),),
                final=True,
            )
        )  # fmt: skip
    return out


def _split(events: list[Any], cuts: list[int]) -> list[list[Any]]:
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    return [events[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


WIDE = SessionSpec(gap=dt.timedelta(seconds=10), grace=dt.timedelta(seconds=120))


@settings(max_examples=300, deadline=None)
@given(histories(), st.lists(st.integers(min_value=0), max_size=6))
def test_any_order_of_amends_and_cancels_within_grace_gives_the_sessions_of_the_final_trades(
    history: tuple[list[EnrichedTrade], dict[str, EnrichedTrade]], cuts: list[int]
) -> None:
    events, effective = history
    p = Partition(WIDE)  # trade times span 60 s < 120 s of grace: nothing is ever late
    for batch in _split(events, cuts):
        p.batch(batch)
    assert Outcome.LATE not in p.outcomes
    p.batch([trade("Z", 1000, account="ACC-9")])  # closes every session of ACC-1
    finals = [s for _, s in p.emitted if s is not None and s.final and s.account == ACC]
    assert sorted(finals, key=lambda s: s.session_start) == expected_sessions(effective, WIDE)
    assert set(p.accounts) == {"ACC-9"}  # nothing of ACC-1 is left
    assert all(k.startswith("ACC-9|") for k in (*p.trades, *p.buckets))


@settings(max_examples=200, deadline=None)
@given(histories(), st.lists(st.integers(min_value=0), max_size=6))
def test_with_a_short_grace_batching_never_changes_the_final_sessions_or_the_late_count(
    history: tuple[list[EnrichedTrade], dict[str, EnrichedTrade]], cuts: list[int]
) -> None:
    events, _ = history
    whole, cut = Partition(SPEC), Partition(SPEC)
    whole.batch(events)
    for batch in _split(events, cuts):
        cut.batch(batch)
    assert whole.outcomes == cut.outcomes
    assert whole.latest() == cut.latest()
    assert (whole.accounts, whole.trades, whole.buckets) == (cut.accounts, cut.trades, cut.buckets)
    finals = [k for k, s in cut.emitted if s is not None and s.final]
    assert len(finals) == len(set(finals))
    assert (cut.stream_time or T0) >= T0
