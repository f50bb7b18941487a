"""The benchmark input and its reference positions: seeded EnrichedTrade records, simple fold.

Only NEW trades, with strictly increasing ``trade_time`` and ``trade_id``: so fold order
``(trade_time, trade_id)`` is arrival order, and every contender may fold each position
straight in the order it reads its partition (no amends, cancels or late trades to re-fold).

The reference fold here is written again from docs/domain-rules.md "Positions", apart
from ``tradeflux.domain``, in Python's default decimal context (28 digits, half-even).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from tradeflux.domain.schemas import EnrichedTrade

ZERO = Decimal(0)
T0 = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
_encode = msgspec.json.Encoder(decimal_format="string").encode


@dataclass(frozen=True)
class InstrumentSpec:
    """What the generator knows of an instrument."""

    instrument_id: str
    currency: str
    multiplier: Decimal
    base_cents: int


def instruments(count: int, rnd: random.Random) -> list[InstrumentSpec]:
    """Return ``count`` instruments: mostly USD equities, some EUR, some with multipliers."""
    specs = []
    for j in range(count):
        multiplier = Decimal(100) if j % 10 == 0 else Decimal(10) if j % 7 == 0 else Decimal(1)
        specs.append(
            InstrumentSpec(
                f"INS{j:04d}", "EUR" if j % 5 == 0 else "USD", multiplier, rnd.randint(500, 50_000)
            )
        )
    return specs


def _cents(cents: int) -> Decimal:
    return Decimal(f"{cents // 100}.{cents % 100:02d}")


def generate(
    count: int, seed: int, accounts: int, instrument_count: int, tag: str = "T"
) -> Iterator[EnrichedTrade]:
    """Yield ``count`` NEW enriched trades, uniform over accounts x instruments, seeded."""
    rnd = random.Random(seed)
    specs = instruments(instrument_count, random.Random(seed * 7919 + 1))
    one_ms = dt.timedelta(milliseconds=1)
    for i in range(count):
        acct = rnd.randrange(accounts)
        spec = specs[rnd.randrange(instrument_count)]
        qty = Decimal(rnd.randint(1, 50) * 10)
        spread = spec.base_cents // 20
        price = _cents(max(1, spec.base_cents + rnd.randint(-spread, spread)))
        when = T0 + i * one_ms
        day = when.date()
        yield EnrichedTrade(
            event_type="NEW",
            trade_id=f"{tag}{i:09d}",
            version=1,
            account=f"ACC{acct:03d}",
            instrument=spec.instrument_id,
            side="BUY" if rnd.random() < 0.5 else "SELL",
            quantity=qty,
            price=price,
            currency=spec.currency,
            venue="XNAS",
            counterparty=f"CPTY{acct % 7}",
            trade_time=when,
            source="bench",
            ingest_time=when,
            isin=f"US{int(spec.instrument_id[3:]):010d}",
            symbol=spec.instrument_id,
            mic="XNAS",
            multiplier=spec.multiplier,
            book=f"BOOK{acct % 5}",
            legal_entity="LE-BENCH",
            base_currency="USD",
            counterparty_lei=f"LEI{acct % 7:017d}",
            notional=qty * price * spec.multiplier,
            trade_date=day,
            settlement_date=day + dt.timedelta(days=2),
        )


def encode(trade: EnrichedTrade) -> bytes:
    """Return the wire form of a trade, as tradeflux writes it (msgspec, decimals as strings)."""
    return _encode(trade)


@dataclass
class RefPosition:
    """One position of the reference model."""

    currency: str
    multiplier: Decimal
    quantity: Decimal = ZERO
    avg_cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    trade_count: int = 0
    last_trade_id: str = ""
    as_of: dt.datetime | None = None


@dataclass
class Reference:
    """The reference model: the average-cost fold per ``account|instrument``, in input order."""

    positions: dict[str, RefPosition] = field(default_factory=dict)
    trades: int = 0

    def apply(self, trade: EnrichedTrade) -> tuple[str, int]:
        """Fold one NEW trade; return its position key and the position's trade count."""
        key = f"{trade.account}|{trade.instrument}"
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = RefPosition(trade.currency, trade.multiplier)
        q = trade.quantity if trade.side == "BUY" else -trade.quantity
        p, m = trade.price, trade.multiplier
        big_q, a = pos.quantity, pos.avg_cost
        if big_q == 0 or (q > 0) == (big_q > 0):
            pos.avg_cost = (abs(big_q) * a + abs(q) * p) / (abs(big_q) + abs(q))
            pos.quantity = big_q + q
        else:
            c = min(abs(q), abs(big_q))
            if big_q > 0:
                pos.realized_pnl = pos.realized_pnl + (p - a) * c * m
            else:
                pos.realized_pnl = pos.realized_pnl + (a - p) * c * m
            new_q = big_q + q
            if new_q == 0:
                pos.avg_cost = ZERO
            elif (new_q > 0) != (big_q > 0):
                pos.avg_cost = p
            pos.quantity = new_q
        pos.multiplier = m
        pos.trade_count += 1
        pos.last_trade_id = trade.trade_id
        pos.as_of = trade.trade_time
        self.trades += 1
        return key, pos.trade_count

    def expected_counts(self) -> dict[str, int]:
        """Return the final trade count per position key."""
        return {key: pos.trade_count for key, pos in self.positions.items()}


class _OutPosition(msgspec.Struct):
    account: str
    instrument: str
    currency: str
    quantity: str
    avg_cost: str
    realized_pnl: str
    multiplier: str
    trade_count: int
    last_trade_id: str
    as_of: str | None = None


_decode_position = msgspec.json.Decoder(_OutPosition).decode


def _as_of(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check(reference: Reference, finals: dict[str, bytes]) -> list[str]:
    """Compare a contender's last position per key with the reference; return the mismatches.

    Values are compared as numbers (Decimal, datetime), never as strings.
    """
    problems: list[str] = []
    for key in sorted(set(finals) - set(reference.positions)):
        problems.append(f"{key}: output for a position that has no trades")
    for key, ref in reference.positions.items():
        raw = finals.get(key)
        if raw is None:
            problems.append(f"{key}: no output")
            continue
        try:
            out = _decode_position(raw)
            got = (
                out.currency,
                Decimal(out.quantity),
                Decimal(out.avg_cost),
                Decimal(out.realized_pnl),
                Decimal(out.multiplier),
                out.trade_count,
                out.last_trade_id,
                _as_of(out.as_of),
                f"{out.account}|{out.instrument}",
            )
        except (msgspec.DecodeError, ArithmeticError, ValueError) as exc:
            problems.append(f"{key}: undecodable output {raw[:200]!r}: {exc}")
            continue
        want = (
            ref.currency,
            ref.quantity,
            ref.avg_cost,
            ref.realized_pnl,
            ref.multiplier,
            ref.trade_count,
            ref.last_trade_id,
            ref.as_of,
            key,
        )
        if got != want:
            names = ("currency", "quantity", "avg_cost", "realized_pnl", "multiplier",
                     "trade_count", "last_trade_id", "as_of", "key")  # fmt: skip
            diffs = [f"{n} {g} != {w}" for n, g, w in zip(names, got, want, strict=True) if g != w]
            problems.append(f"{key}: {'; '.join(diffs)}")
    return problems
