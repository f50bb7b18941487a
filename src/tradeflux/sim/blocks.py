"""Simulated blocks and what follows them: fills, an allocation instruction, affirmations.

Each block is one order of a client on the house account (the first active ``FLOW``
book), filled 2 to 4 times within half a second; two seconds later its allocation
instruction (to 2 to 4 client accounts, ``CLIENT`` books, in fractional quantities so
the residual rule works) goes to ``allocations.in``. Some blocks are replaced or
cancelled a few seconds later, a few are rejected (an unknown account, quantities that
do not sum). Every child the allocation books is affirmed on ``confirmations.in``: most
8 to 25 seconds after the block, some only after 150 to 200 seconds (late under
the demo's 90-second deadlines), some never; one in twenty is rejected instead.

The children are foreseen here as the allocations service will book them (the split
comes from ``domain.allocation_split``), so each affirmation names the ConfirmID of the
version it answers. Seeded and clocked by the caller, like the trade generator.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from tradeflux import topics
from tradeflux.domain.allocation_events import (
    AllocationEntry,
    AllocationInstruction,
    block_id_of,
)
from tradeflux.domain.allocation_split import average_price, split_block
from tradeflux.domain.calendars import trade_date
from tradeflux.domain.confirmation_events import ConfirmationAck, confirm_id_of
from tradeflux.domain.schemas import Account, Instrument, Side, TradeEvent
from tradeflux.sim.market import MarketModel
from tradeflux.sim.refdata import SimulationError

ALLOCATIONS_IN = topics.ALLOCATIONS_IN.name
CONFIRMATIONS_IN = topics.CONFIRMATIONS_IN.name
TRADES = topics.RAW.name
SOURCE = "sim"


@dataclass(frozen=True, order=True)
class Scheduled:
    """A record to send at ``due`` (ordered by it, then by ``seq``)."""

    due: dt.datetime
    seq: int
    topic: str
    key: bytes
    value: bytes
    kind: str  # fill, allocation, replace, cancel, rejected_allocation, affirmation, ...


class BlockFlow:
    """Generates blocks; :meth:`block` returns the records one block brings, with their times."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        accounts: Sequence[Account],
        counterparties: Sequence[str],
        market: MarketModel,
        *,
        seed: int = 0,
        id_prefix: str = "B",
    ) -> None:
        priced = set(market.instrument_ids)
        self._instruments = [i for i in instruments if i.active and i.instrument_id in priced]
        active = [a for a in accounts if a.status == "ACTIVE"]
        houses = [a.account_id for a in active if "FLOW" in a.book] or [
            a.account_id for a in active
        ]
        self._clients = [a.account_id for a in active if "CLIENT" in a.book] or houses[1:]
        if not (self._instruments and houses and len(self._clients) >= 2 and counterparties):
            raise SimulationError(
                "blocks need an active instrument with a price, an active account for the house "
                "and two client accounts (CLIENT books) and an active counterparty"
            )
        self._house = houses[0]
        self._counterparties = list(counterparties)
        self._market = market
        self._rng = random.Random(f"blocks:{seed}")  # noqa: S311 - a simulation, not crypto
        self._prefix = id_prefix
        self._seq = 0
        self._encoder = msgspec.json.Encoder(decimal_format="string")

    def next_gap_s(self, rate_per_s: float) -> float:
        """Return the time to the next block of a Poisson process of ``rate_per_s``."""
        return self._rng.expovariate(rate_per_s)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def block(self, now: dt.datetime) -> list[Scheduled]:
        """Return the records of a new block arriving at ``now``, each with its due time."""
        rng = self._rng
        inst = rng.choice(self._instruments)
        order = f"{self._prefix}{self._next():07d}"
        side: Side = "BUY" if rng.random() < 0.5 else "SELL"
        counterparty = rng.choice(self._counterparties)
        mid = self._market.mid_ticks(inst.instrument_id, now)
        out: list[Scheduled] = []
        fills: list[TradeEvent] = []
        for n in range(rng.randint(2, 4)):
            lots = rng.randint(1, 20)
            price = Decimal(max(1, mid + rng.randint(-2, 2))) * inst.tick_size
            at = now + dt.timedelta(milliseconds=150 * n + rng.randint(0, 100))
            fill = TradeEvent(
                event_type="NEW", trade_id=f"{order}-F{n}", version=1, account=self._house,
                instrument=inst.instrument_id, side=side, quantity=Decimal(lots) * inst.lot_size,
                price=price, currency=inst.currency, venue=inst.mic, counterparty=counterparty,
                trade_time=at - dt.timedelta(milliseconds=20), source=SOURCE, order_id=order,
            )  # fmt: skip
            fills.append(fill)
            out.append(self._record(at, TRADES, fill.trade_id, fill, "fill"))
        quantity = sum((f.quantity for f in fills), Decimal(0))
        avg = average_price([(f.quantity, f.price) for f in fills], 6)
        day = trade_date(max(f.trade_time for f in fills), inst.mic)
        accounts = rng.sample(self._clients, k=min(len(self._clients), rng.randint(2, 4)))
        requested = self._shares(quantity, len(accounts))
        base = AllocationInstruction(
            alloc_id=f"{order}-A1", order_id=order, trade_date=day, side=side,
            instrument=inst.instrument_id, quantity=quantity, avg_px=avg,
            allocations=_entries(accounts, requested),
            source=SOURCE,
        )  # fmt: skip
        at = now + dt.timedelta(seconds=2)
        fate = rng.random()
        if fate < 0.03:  # an unknown account: rejected, nothing booked
            bad = msgspec.structs.replace(
                base,
                allocations=(*base.allocations[:-1],
                             msgspec.structs.replace(base.allocations[-1], account="ACC-UNKNOWN")),
            )  # fmt: skip
            out.append(self._record(at, ALLOCATIONS_IN, order, bad, "rejected_allocation"))
            return out
        if fate < 0.05:  # quantities that do not sum: rejected
            bad = msgspec.structs.replace(base, quantity=quantity + inst.lot_size)
            out.append(self._record(at, ALLOCATIONS_IN, order, bad, "rejected_allocation"))
            return out
        out.append(self._record(at, ALLOCATIONS_IN, order, base, "allocation"))
        children = self._children(base, inst.lot_size)
        if fate < 0.10:  # cancelled a few seconds later: nothing to affirm
            cancel = AllocationInstruction(
                alloc_id=f"{order}-A2", trans_type="CANCEL", ref_alloc_id=base.alloc_id,
                order_id=order, trade_date=day, source=SOURCE,
            )  # fmt: skip
            out.append(self._record(now + dt.timedelta(seconds=4), ALLOCATIONS_IN, order, cancel,
                                    "cancel"))  # fmt: skip
            return out
        if fate < 0.20:  # replaced: all to the first two accounts, evenly
            pair = accounts[:2]
            shares = self._shares(quantity, 2)
            last = msgspec.structs.replace(
                base, alloc_id=f"{order}-A2", trans_type="REPLACE", ref_alloc_id=base.alloc_id,
                allocations=_entries(pair, shares),
            )  # fmt: skip
            out.append(self._record(now + dt.timedelta(seconds=4), ALLOCATIONS_IN, order, last,
                                    "replace"))  # fmt: skip
            live = self._rebooked(children, self._children(last, inst.lot_size))
        else:
            live = [(trade_id, 1) for trade_id, _qty in children.values()]
        for trade_id, version in live:
            affirmation = self._affirmation(now, confirm_id_of(trade_id, version))
            if affirmation is not None:
                out.append(affirmation)
        return out

    # -- helpers -----------------------------------------------------------------------

    def _shares(self, quantity: Decimal, n: int) -> list[Decimal]:
        """Split ``quantity`` into ``n`` random fractional shares (two decimals) summing to it."""
        weights = [self._rng.uniform(1.0, 3.0) for _ in range(n)]
        total = sum(weights)
        shares = [(quantity * Decimal(w / total)).quantize(Decimal("0.01")) for w in weights[:-1]]
        shares.append(quantity - sum(shares, Decimal(0)))
        return shares

    def _children(self, ins: AllocationInstruction, lot: Decimal) -> dict[str, tuple[str, Decimal]]:
        """Return account -> (child trade id, quantity) as the allocations service books them."""
        assert ins.quantity is not None  # noqa: S101 - set on every simulated NEW/REPLACE
        booked = split_block(ins.quantity, lot, [e.quantity for e in ins.allocations])
        block = block_id_of(ins.order_id, ins.trade_date)
        return {
            e.account: (f"{block}/{ins.alloc_id}/{e.account}", q)
            for e, q in zip(ins.allocations, booked, strict=True)
            if q > 0
        }

    @staticmethod
    def _rebooked(
        old: dict[str, tuple[str, Decimal]], new: dict[str, tuple[str, Decimal]]
    ) -> list[tuple[str, int]]:
        """Return (trade id, version) of the children live after the replace (same block)."""
        live: list[tuple[str, int]] = []
        for account, (new_id, qty) in new.items():
            before = old.get(account)
            if before is None:
                live.append((new_id, 1))
            else:
                live.append((before[0], 1 if before[1] == qty else 2))
        return live

    def _affirmation(self, now: dt.datetime, confirm_id: str) -> Scheduled | None:
        rng = self._rng
        fate = rng.random()
        if fate < 0.07:
            return None  # never answered
        status = "REJECTED" if fate < 0.12 else "AFFIRMED"
        delay = rng.uniform(150, 200) if fate > 0.92 else rng.uniform(8, 25)
        ack = ConfirmationAck(confirm_id=confirm_id, affirm_status=status, source=SOURCE)  # type: ignore[arg-type]
        key = confirm_id.rpartition("#")[0]
        return self._record(now + dt.timedelta(seconds=delay), CONFIRMATIONS_IN, key, ack,
                            "affirmation")  # fmt: skip

    def _record(
        self, due: dt.datetime, topic: str, key: str, value: object, kind: str
    ) -> Scheduled:
        return Scheduled(due, self._next(), topic, key.encode(), self._encoder.encode(value), kind)


def _entries(accounts: Sequence[str], quantities: Sequence[Decimal]) -> tuple[AllocationEntry, ...]:
    return tuple(
        AllocationEntry(account=a, quantity=q) for a, q in zip(accounts, quantities, strict=True)
    )
