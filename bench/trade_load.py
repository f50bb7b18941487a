"""The latency benchmark's input and its checks: simulated NEW trades on a schedule.

Trades come from the project's simulator (``tradeflux.sim``) over the sample reference
data: Zipf-popular instruments, lognormal sizes, prices around a random-walking market.
NEW trades only, each sent once, so that a position's trade count says which trades it
holds (bench/inclusion.py). Each trade is generated for its scheduled send time (its Kafka
timestamp, the ingest time): its trade time a moment before that, less the time it took
to generate the load before the run (:meth:`TradeLoad.shift`).

Checks, so that a wrong contender is not ranked: tradeflux's final positions and P&L
against tests/support/reference.py (the project's independent model of the rules);
the Kafka Streams chain's final positions against bench/peers/trades.py's fold (in the
order of its enriched partitions, which is the order it folds in) and its aggregates
against sums of that fold.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import msgspec
from bench.peers import trades as peer_trades
from tests.support import pipeline as support

from tradeflux.domain.schemas import AccountPnL, FxRate, Position, Price, TradeEvent
from tradeflux.sim.market import MarketModel
from tradeflux.sim.refdata import load_refdata, read_structs
from tradeflux.sim.trades import SimRecord, SimSession, TradeGenerator, TradeMix, VirtualClock

NEW_ONLY = TradeMix(amend_rate=0, cancel_rate=0, duplicate_rate=0, malformed_rate=0)


@dataclass(frozen=True)
class SentTrade:
    """A trade of the load: its record for ``trades.raw`` and when it is due to be sent."""

    record: SimRecord
    trade_id: str
    key: str  # account|instrument: its position
    due: float  # scheduled send, epoch seconds (the record's timestamp, to the ms)


class _Ids(msgspec.Struct):
    account: str
    instrument: str


_decode_ids = msgspec.json.Decoder(_Ids).decode


class TradeLoad:
    """Generates the trades of one run, each for its due time, and holds the marks of P&L."""

    def __init__(self, seed: int, start: dt.datetime, id_prefix: str = "T") -> None:
        ref = load_refdata(support.REFDATA_DIR)
        self.refdata = ref
        self.clock = VirtualClock(start)
        self.market = MarketModel(
            ref.instruments, {a.base_currency for a in ref.accounts}, start=start, seed=seed
        )
        self.prices: list[Price] = self.market.prices(start)  # constant for the run
        self.fx_rates: list[FxRate] = self.market.fx_rates(start)
        self._generator = TradeGenerator(
            ref.instruments, ref.accounts, ref.counterparties, self.market,
            seed=seed, mix=NEW_ONLY, clock=self.clock, id_prefix=id_prefix,
        )  # fmt: skip
        self.sent: list[SentTrade] = []

    def trade(self, due: float) -> SentTrade:
        """Return the next trade, generated at ``due`` (epoch seconds; not before the last)."""
        self.clock.now = dt.datetime.fromtimestamp(due, dt.UTC)
        record = self._generator.next_record()
        ids = _decode_ids(record.value)
        trade = SentTrade(record, record.key.decode(), f"{ids.account}|{ids.instrument}", due)
        self.sent.append(trade)
        return trade

    def shift(self, first: int, delta_s: float) -> list[SentTrade]:
        """Move the trades from ``first`` on ``delta_s`` later; return them, moved.

        Their schedule (and Kafka timestamp) moves, their trade time does not: a load is
        generated before its first trade is due, and then sent as if reported that much
        after execution, which no rule minds.
        """
        for i in range(first, len(self.sent)):
            t = self.sent[i]
            due = t.due + delta_s
            record = replace(t.record, timestamp_ms=int(due * 1000))
            self.sent[i] = replace(t, record=record, due=due)
        return self.sent[first:]

    def session(self) -> SimSession:
        """Return what was sent, with the marks, as the test support's reference takes it."""
        return SimSession(
            records=[t.record for t in self.sent], prices=self.prices, fx_rates=self.fx_rates,
            counts=Counter(), end=self.clock.now,
        )  # fmt: skip

    def fx_table(self) -> dict[str, FxRate]:
        """Return the FX rates the P&L service holds: the sample file's, then the market's."""
        fx = {r.pair: r for r in read_structs(support.REFDATA_DIR / "fx.csv", FxRate)}
        fx.update({r.pair: r for r in self.fx_rates})
        return fx

    def position_counts(self) -> dict[str, int]:
        """Return how many trades every position got."""
        return dict(Counter(t.key for t in self.sent))


def schedule(rate: float, count: int, start: float, arrivals: str, seed: int) -> Iterator[float]:
    """Yield ``count`` due times from ``start`` (epoch s): ``uniform`` gaps or ``poisson``."""
    rnd = random.Random(seed)
    due = start
    for i in range(count):
        if arrivals == "uniform":
            yield start + i / rate
        else:
            yield due
            due += rnd.expovariate(rate)


def check_tradeflux(
    load: TradeLoad, positions: Mapping[str, bytes], pnl: Mapping[str, bytes]
) -> list[str]:
    """Compare tradeflux's last position per key and P&L per account with the reference."""
    expected = support.reference(load.session())
    problems = []
    got_positions = {k: msgspec.json.decode(v, type=Position) for k, v in positions.items()}
    for key in sorted(set(expected.positions) | set(got_positions)):
        want, got = expected.positions.get(key), got_positions.get(key)
        if want != got:
            problems.append(f"position {key}: {got} != reference {want}")
    got_pnl = {k: msgspec.json.decode(v, type=AccountPnL) for k, v in pnl.items()}
    for account in sorted(set(expected.pnl) | set(got_pnl)):
        want_pnl, got_one = expected.pnl.get(account), got_pnl.get(account)
        if want_pnl != got_one:
            problems.append(f"P&L {account}: {got_one} != reference {want_pnl}")
    return problems


@dataclass(frozen=True)
class _FoldInput:
    """A raw trade as bench/peers/trades.py's fold reads it (no refdata: multiplier 1)."""

    trade_id: str
    account: str
    instrument: str
    side: str
    quantity: Decimal
    price: Decimal
    currency: str
    trade_time: dt.datetime
    multiplier: Decimal = Decimal(1)


class _Aggregate(msgspec.Struct):
    account: str
    positions: int
    trade_count: int
    realized: dict[str, str]


def check_kafka_streams(
    load: TradeLoad,
    enriched_order: Mapping[str, Sequence[str]],
    positions: Mapping[str, bytes],
    aggregates: Mapping[str, bytes],
) -> list[str]:
    """Compare the chain's last positions with a fold in its enriched order; and aggregates."""
    events = {t.trade_id: msgspec.json.decode(t.record.value, type=TradeEvent) for t in load.sent}
    reference = peer_trades.Reference()
    for trade_ids in enriched_order.values():
        for trade_id in trade_ids:
            e = events[trade_id]
            reference.apply(
                _FoldInput(e.trade_id, e.account, e.instrument, e.side, e.quantity, e.price,  # type: ignore[arg-type]
                           e.currency, e.trade_time)
            )  # fmt: skip
    problems = peer_trades.check(reference, dict(positions))
    missing = set(events) - {t for ids in enriched_order.values() for t in ids}
    if missing:
        problems.append(f"{len(missing)} trades never enriched, e.g. {sorted(missing)[0]}")
    want: dict[str, tuple[int, int, dict[str, Decimal]]] = {}
    for key, pos in reference.positions.items():
        account = key.split("|", 1)[0]
        held, count, realized = want.get(account, (0, 0, {}))
        realized[pos.currency] = realized.get(pos.currency, Decimal(0)) + pos.realized_pnl
        want[account] = (held + 1, count + pos.trade_count, realized)
    for account, (held, count, realized) in sorted(want.items()):
        raw = aggregates.get(account)
        if raw is None:
            problems.append(f"aggregate {account}: none")
            continue
        agg = msgspec.json.decode(raw, type=_Aggregate)
        got = {c: Decimal(v) for c, v in agg.realized.items()}
        # The chain adds and subtracts in 28 digits as positions change: equal to 1e-12.
        close = set(got) == set(realized) and all(
            abs(got[c] - realized[c]) <= Decimal("1e-12") for c in got
        )
        if (agg.positions, agg.trade_count) != (held, count) or not close:
            problems.append(
                f"aggregate {account}: {agg.positions} positions, {agg.trade_count} trades, "
                f"realized {got} != {held}, {count}, {realized}"
            )
    return problems
