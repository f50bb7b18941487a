"""A seeded trade generator: the raw bytes of ``TradeEvent``s as a trade capture system sends them.

Arrivals are Poisson (exponential gaps at a given rate). Instruments are drawn with
Zipf-like popularity (the first listed is the busiest), sizes are lognormal in whole
lots (at least one), prices lie a few ticks around the market mid, on the tick grid.
Besides NEW trades the generator sends, at configurable fractions of all records,
AMENDs of earlier trades (a new version with another quantity or price; a share of
them moves the trade to another account), CANCELs, exact duplicates (the bytes of a
trade's latest accepted event resent) and malformed records of every kind the
validator must reject, each tagged with the reason code docs/domain-rules.md gives it.

Time comes from a ``clock`` callable, so tests run without a wall clock: with the
same seed, reference data and clock readings the output is identical, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from tradeflux.domain.codes import RejectReason
from tradeflux.domain.schemas import (
    Account,
    Counterparty,
    FxRate,
    Instrument,
    Price,
    Side,
    TradeEvent,
)
from tradeflux.sim.malformed import (
    EXPECTED_REJECT,
    NEEDS_HISTORY,
    Inactive,
    Malformed,
    corrupt_booked,
    corrupt_new,
)
from tradeflux.sim.market import MarketModel
from tradeflux.sim.refdata import SimulationError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DEFAULT_START = dt.datetime(2025, 3, 3, 14, 30, tzinfo=dt.UTC)
"""Where generated runs start by default: a Monday, the New York open."""

Clock = Callable[[], dt.datetime]


class RecordKind(enum.StrEnum):
    """What a generated record is, as the simulator meant it."""

    NEW = "new"
    AMEND = "amend"  # same account and instrument, another quantity and/or price
    AMEND_ACCOUNT = "amend_account"  # moved to another account
    CANCEL = "cancel"
    DUPLICATE = "duplicate"  # the exact bytes of the trade's latest accepted event again
    MALFORMED = "malformed"


@dataclass(frozen=True)
class TradeMix:
    """Which share of the records is of each kind; the rest are NEW trades.

    ``account_move_share`` is the share of AMENDs that move the trade to another account.
    """

    amend_rate: float = 0.05
    cancel_rate: float = 0.02
    duplicate_rate: float = 0.01
    malformed_rate: float = 0.01
    account_move_share: float = 0.1

    def __post_init__(self) -> None:
        rates = {
            "amend rate": self.amend_rate,
            "cancel rate": self.cancel_rate,
            "duplicate rate": self.duplicate_rate,
            "malformed rate": self.malformed_rate,
            "account move share": self.account_move_share,
        }
        for name, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise SimulationError(f"the {name} must be between 0 and 1, got {rate}")
        total = self.amend_rate + self.cancel_rate + self.duplicate_rate + self.malformed_rate
        if total > 1.0:
            raise SimulationError(
                f"amend, cancel, duplicate and malformed rates add up to {total:g}; "
                "keep their sum at most 1 (the rest are NEW trades)"
            )


@dataclass(frozen=True)
class SimRecord:
    """One record for ``trades.raw``: key (the trade id), value bytes and Kafka timestamp."""

    kind: RecordKind
    key: bytes
    value: bytes
    timestamp_ms: int
    malformed: Malformed | None = None

    @property
    def expected_reject(self) -> RejectReason | None:
        """Return the reason the validator should reject this record with (None: accepted)."""
        return None if self.malformed is None else EXPECTED_REJECT[self.malformed]


class VirtualClock:
    """A clock that moves only when told to: deterministic runs, tests, pre-generation."""

    def __init__(self, start: dt.datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self.now = start

    def __call__(self) -> dt.datetime:
        """Return the current virtual time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += dt.timedelta(seconds=seconds)


def utc_now() -> dt.datetime:
    """Return the wall-clock time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def epoch_ms(t: dt.datetime) -> int:
    """Return ``t`` as whole milliseconds since the Unix epoch (a Kafka timestamp)."""
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


class _IdPool:
    """A set of trade ids with O(1) add, discard and seeded random choice."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, trade_id: str) -> None:
        if trade_id not in self._index:
            self._index[trade_id] = len(self._ids)
            self._ids.append(trade_id)

    def discard(self, trade_id: str) -> None:
        index = self._index.pop(trade_id, None)
        if index is None:
            return
        last = self._ids.pop()
        if last != trade_id:
            self._ids[index] = last
            self._index[last] = index

    def choice(self, rng: random.Random) -> str | None:
        return self._ids[rng.randrange(len(self._ids))] if self._ids else None


@dataclass
class _Booked:
    """What the generator remembers of a trade: its latest accepted event and its bytes."""

    event: TradeEvent
    value: bytes
    cancelled: bool = False


@dataclass
class _Pools:
    """Trades by what can still be done to them (all bounded by the book's size)."""

    booked: _IdPool = field(default_factory=_IdPool)  # any: duplicates, TRADE_EXISTS
    live: _IdPool = field(default_factory=_IdPool)  # not cancelled: AMEND, CANCEL
    versioned: _IdPool = field(default_factory=_IdPool)  # version >= 2: STALE_VERSION
    cancelled: _IdPool = field(default_factory=_IdPool)  # AMEND_CANCELLED

    def discard(self, trade_id: str) -> None:
        for pool in (self.booked, self.live, self.versioned, self.cancelled):
            pool.discard(trade_id)


class TradeGenerator:
    """Generates ``trades.raw`` records one by one; see the module docstring for the mix.

    Valid trades use only active instruments, accounts and counterparties; inactive
    ones appear in malformed records (when the reference data has any). The generator
    remembers the last ``book_size`` trades to amend, cancel and duplicate them.
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        accounts: Sequence[Account],
        counterparties: Sequence[Counterparty],
        market: MarketModel,
        *,
        seed: int = 0,
        mix: TradeMix | None = None,
        clock: Clock = utc_now,
        id_prefix: str = "T",
        book_size: int = 4096,
        zipf_exponent: float = 1.1,
        median_notional: float = 20_000.0,
    ) -> None:
        priced = set(market.instrument_ids)
        self._instruments = [
            i
            for i in instruments
            if i.active and i.instrument_id in priced and i.lot_size > 0 and i.multiplier > 0
        ]
        self._accounts = [a.account_id for a in accounts if a.status == "ACTIVE"]
        self._counterparties = [c.counterparty_id for c in counterparties if c.active]
        if not (self._instruments and self._accounts and self._counterparties):
            raise SimulationError(
                "the reference data needs at least one active instrument (with a price), "
                "one active account and one active counterparty to simulate trades"
            )
        self._inactive = Inactive(
            instruments=[i for i in instruments if not i.active],
            accounts=[a.account_id for a in accounts if a.status != "ACTIVE"],
            counterparties=[c.counterparty_id for c in counterparties if not c.active],
        )
        self._market = market
        self._mix = mix or TradeMix()
        self._clock = clock
        self._id_prefix = id_prefix
        self._book_size = book_size
        self._median_notional = median_notional
        self._rng = random.Random(f"trades:{seed}")  # noqa: S311 - a simulation, not crypto
        weights = [1.0 / (rank + 1) ** zipf_exponent for rank in range(len(self._instruments))]
        self._cum_weights = list(itertools.accumulate(weights))
        self._instrument_of = {i.instrument_id: i for i in instruments}
        self._tick_lot_value = {  # what one lot is worth per tick of price
            i.instrument_id: float(i.tick_size * i.multiplier * i.lot_size) for i in instruments
        }
        self._malformed_kinds = [k for k in Malformed if self._inactive.allows(k)]
        self._encoder = msgspec.json.Encoder(decimal_format="string")
        self._seq = 0
        self._book: dict[str, _Booked] = {}
        self._order: deque[str] = deque()
        self._pools = _Pools()
        self.counts: Counter[str] = Counter()
        """Records sent by kind (``new``, ``amend``, ...) and ``malformed:<kind>``."""

    @property
    def malformed_kinds(self) -> list[Malformed]:
        """Return the malformed kinds this reference data allows (inactive ones need some)."""
        return list(self._malformed_kinds)

    def next_gap_s(self, rate_per_s: float) -> float:
        """Return the time to the next arrival of a Poisson process of ``rate_per_s``."""
        return self._rng.expovariate(rate_per_s)

    def next_record(self) -> SimRecord:
        """Return the next record, stamped with the clock's current time."""
        now = self._clock()
        mix = self._mix
        u = self._rng.random()
        if u < mix.malformed_rate:
            record = self._malformed(now)
        elif u < mix.malformed_rate + mix.duplicate_rate:
            record = self._duplicate(now)
        elif u < mix.malformed_rate + mix.duplicate_rate + mix.cancel_rate:
            record = self._cancel(now)
        elif u < mix.malformed_rate + mix.duplicate_rate + mix.cancel_rate + mix.amend_rate:
            record = self._amend(now)
        else:
            record = self._new(now)
        self.counts[record.kind] += 1
        if record.malformed is not None:
            self.counts[f"malformed:{record.malformed}"] += 1
        return record

    # -- building blocks -------------------------------------------------------------

    def _next_id(self) -> str:
        self._seq += 1
        return f"{self._id_prefix}{self._seq:09d}"

    def _quantity(self, inst: Instrument, mid_ticks: int) -> Decimal:
        """Return a lognormal size in whole lots (at least one) of about the median notional."""
        lot_value = mid_ticks * self._tick_lot_value[inst.instrument_id]
        median_lots = max(1.0, self._median_notional / lot_value)
        lots = max(1, round(median_lots * self._rng.lognormvariate(0.0, 1.0)))
        return Decimal(lots) * inst.lot_size

    def _trade_price(self, inst: Instrument, side: Side, mid_ticks: int) -> Decimal:
        """Return a price a few ticks around the mid (buyers pay up a little), on the grid."""
        low, high = (-1, 2) if side == "BUY" else (-2, 1)
        ticks = max(1, mid_ticks + self._rng.randint(low, high))
        return Decimal(ticks) * inst.tick_size

    def _fresh_event(self, now: dt.datetime, trade_id: str) -> TradeEvent:
        """Return a valid NEW trade executed a moment before ``now``."""
        rng = self._rng
        inst = rng.choices(self._instruments, cum_weights=self._cum_weights)[0]
        side: Side = "BUY" if rng.random() < 0.5 else "SELL"
        mid = self._market.mid_ticks(inst.instrument_id, now)
        jitter_us = min(2_000_000, int(rng.expovariate(1 / 50_000)))
        return TradeEvent(
            event_type="NEW",
            trade_id=trade_id,
            version=1,
            account=rng.choice(self._accounts),
            instrument=inst.instrument_id,
            side=side,
            quantity=self._quantity(inst, mid),
            price=self._trade_price(inst, side, mid),
            currency=inst.currency,
            venue=inst.mic,
            counterparty=rng.choice(self._counterparties),
            trade_time=now - dt.timedelta(microseconds=jitter_us),
        )

    def _record(
        self,
        kind: RecordKind,
        trade_id: str,
        value: bytes,
        now: dt.datetime,
        malformed: Malformed | None = None,
    ) -> SimRecord:
        return SimRecord(kind, trade_id.encode(), value, epoch_ms(now), malformed)

    def _book_event(self, event: TradeEvent, value: bytes) -> None:
        """Remember ``event`` as the latest accepted event of its trade."""
        trade_id, pools = event.trade_id, self._pools
        booked = self._book.get(trade_id)
        if booked is None:
            self._book[trade_id] = _Booked(event, value)
            self._order.append(trade_id)
            pools.booked.add(trade_id)
            pools.live.add(trade_id)
            if len(self._order) > self._book_size:
                oldest = self._order.popleft()
                del self._book[oldest]
                pools.discard(oldest)
            return
        booked.event, booked.value = event, value
        pools.versioned.add(trade_id)
        if event.event_type == "CANCEL":
            booked.cancelled = True
            pools.live.discard(trade_id)
            pools.cancelled.add(trade_id)

    # -- the kinds of record ---------------------------------------------------------

    def _new(self, now: dt.datetime) -> SimRecord:
        event = self._fresh_event(now, self._next_id())
        value = self._encoder.encode(event)
        self._book_event(event, value)
        return self._record(RecordKind.NEW, event.trade_id, value, now)

    def _amend(self, now: dt.datetime) -> SimRecord:
        trade_id = self._pools.live.choice(self._rng)
        if trade_id is None:
            return self._new(now)
        rng, old = self._rng, self._book[trade_id].event
        inst = self._instrument_of[old.instrument]
        kind = RecordKind.AMEND
        if len(self._accounts) > 1 and rng.random() < self._mix.account_move_share:
            account = rng.choice([a for a in self._accounts if a != old.account])
            event = msgspec.structs.replace(
                old, event_type="AMEND", version=old.version + 1, account=account
            )
            kind = RecordKind.AMEND_ACCOUNT
        else:
            what = rng.random()  # < 0.5 quantity, 0.5 .. 0.7 both, >= 0.7 price
            mid = self._market.mid_ticks(inst.instrument_id, now)
            quantity, price = old.quantity, old.price
            if what < 0.7:
                quantity = self._quantity(inst, mid)
                if quantity == old.quantity:
                    quantity += inst.lot_size
            if what >= 0.5:
                price = self._trade_price(inst, old.side, mid)
                if price == old.price:
                    price += inst.tick_size
            event = msgspec.structs.replace(
                old, event_type="AMEND", version=old.version + 1, quantity=quantity, price=price
            )
        value = self._encoder.encode(event)
        self._book_event(event, value)
        return self._record(kind, trade_id, value, now)

    def _cancel(self, now: dt.datetime) -> SimRecord:
        trade_id = self._pools.live.choice(self._rng)
        if trade_id is None:
            return self._new(now)
        old = self._book[trade_id].event
        event = msgspec.structs.replace(old, event_type="CANCEL", version=old.version + 1)
        value = self._encoder.encode(event)
        self._book_event(event, value)
        return self._record(RecordKind.CANCEL, trade_id, value, now)

    def _duplicate(self, now: dt.datetime) -> SimRecord:
        trade_id = self._pools.booked.choice(self._rng)
        if trade_id is None:
            return self._new(now)
        return self._record(RecordKind.DUPLICATE, trade_id, self._book[trade_id].value, now)

    def _malformed(self, now: dt.datetime) -> SimRecord:
        rng, pools = self._rng, self._pools
        kind = rng.choice(self._malformed_kinds)
        if kind in NEEDS_HISTORY:
            pool = {
                Malformed.STALE_VERSION: pools.versioned,
                Malformed.TRADE_EXISTS: pools.booked,
                Malformed.AMEND_CANCELLED: pools.cancelled,
            }[kind]
            trade_id = pool.choice(rng)
            if trade_id is not None:
                old = self._book[trade_id].event
                value = corrupt_booked(kind, old, self._instrument_of[old.instrument], rng)
                return self._record(RecordKind.MALFORMED, trade_id, value, now, kind)
            kind = Malformed.UNKNOWN_TRADE  # nothing to reuse yet
        base = self._fresh_event(now, self._next_id())
        inst = self._instrument_of[base.instrument]
        value = corrupt_new(kind, base, inst, now, rng, self._inactive)
        return self._record(RecordKind.MALFORMED, base.trade_id, value, now, kind)


@dataclass(frozen=True)
class SimSession:
    """A pre-generated run: the records, and the market as it stood after the last one."""

    records: list[SimRecord]
    prices: list[Price]
    fx_rates: list[FxRate]
    counts: Counter[str]
    end: dt.datetime


def generate_session(
    instruments: Sequence[Instrument],
    accounts: Sequence[Account],
    counterparties: Sequence[Counterparty],
    *,
    count: int,
    rate_per_s: float = 1000.0,
    seed: int = 0,
    mix: TradeMix | None = None,
    start: dt.datetime = DEFAULT_START,
    id_prefix: str = "T",
    fx_start: Sequence[FxRate] = (),
) -> SimSession:
    """Generate ``count`` records on a virtual clock from ``start``, deterministically.

    Arrivals are Poisson at ``rate_per_s`` of virtual time; no wall clock is read, so
    the same arguments give the same bytes. The market's final prices and FX rates
    (at the last arrival) come with the records, for a reference model's P&L; FX
    walks start from ``fx_start`` where it quotes a currency's USD pair.
    """
    if rate_per_s <= 0:
        raise SimulationError(f"the rate must be positive, got {rate_per_s}")
    clock = VirtualClock(start)
    currencies = {a.base_currency for a in accounts}
    market = MarketModel(instruments, currencies, fx_start, start=start, seed=seed)
    generator = TradeGenerator(
        instruments,
        accounts,
        counterparties,
        market,
        seed=seed,
        mix=mix,
        clock=clock,
        id_prefix=id_prefix,
    )
    records = []
    for _ in range(count):
        clock.advance(generator.next_gap_s(rate_per_s))
        records.append(generator.next_record())
    return SimSession(
        records=records,
        prices=market.prices(clock.now),
        fx_rates=market.fx_rates(clock.now),
        counts=generator.counts,
        end=clock.now,
    )


def generate_trades(
    instruments: Sequence[Instrument],
    accounts: Sequence[Account],
    counterparties: Sequence[Counterparty],
    *,
    count: int,
    rate_per_s: float = 1000.0,
    seed: int = 0,
    mix: TradeMix | None = None,
    start: dt.datetime = DEFAULT_START,
    id_prefix: str = "T",
) -> list[tuple[bytes, bytes, int]]:
    """Return ``count`` records for ``trades.raw`` as ``(key, value, timestamp_ms)``.

    Deterministic (see :func:`generate_session`, which also returns the final market).
    """
    session = generate_session(
        instruments,
        accounts,
        counterparties,
        count=count,
        rate_per_s=rate_per_s,
        seed=seed,
        mix=mix,
        start=start,
        id_prefix=id_prefix,
    )
    return [(r.key, r.value, r.timestamp_ms) for r in session.records]
