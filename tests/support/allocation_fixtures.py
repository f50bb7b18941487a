"""Small hand-made executions, instructions and reference data for the allocation unit tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tradeflux.domain.allocation_checks import RefView
from tradeflux.domain.allocation_events import (
    AllocatedChild,
    Allocation,
    AllocationEntry,
    AllocationInstruction,
)
from tradeflux.domain.confirmation_events import AffirmationException, Confirmation
from tradeflux.domain.schemas import Account, EnrichedTrade, Instrument

D = Decimal
TRADE_DATE = dt.date(2026, 11, 24)
T0 = dt.datetime(2026, 11, 24, 1, 0, tzinfo=dt.UTC)  # 10:00 in Tokyo
T0_MS = int(T0.timestamp() * 1000)
HOUSE = "HOUSE-1"
CLIENTS = ("CL-A", "CL-B", "CL-C", "CL-D")

TOYOTA = Instrument(
    instrument_id="7203.XTKS",
    isin="JP3633400001",
    symbol="7203",
    currency="JPY",
    mic="XTKS",
    lot_size=D(100),
    tick_size=D("0.5"),
    settlement_days=2,
)
ACCOUNTS = {
    a: Account(account_id=a, book="B", legal_entity="LE", base_currency="JPY")
    for a in (HOUSE, *CLIENTS)
} | {
    "CL-CLOSED": Account(
        account_id="CL-CLOSED", book="B", legal_entity="LE", base_currency="JPY", status="CLOSED"
    )
}
REFDATA = RefView(instruments={TOYOTA.instrument_id: TOYOTA}, accounts=ACCOUNTS)


def execution(
    trade_id: str,
    quantity: str,
    price: str,
    *,
    version: int = 1,
    event_type: str = "NEW",
    order_id: str = "ORD-1",
    seconds: int = 0,
    side: str = "BUY",
    account: str = HOUSE,
    counterparty: str = "BRK-1",
    trade_date: dt.date = TRADE_DATE,
) -> EnrichedTrade:
    """Return an enriched execution of ``order_id`` on the house account."""
    qty, px = D(quantity), D(price)
    return EnrichedTrade(
        event_type=event_type,  # type: ignore[arg-type]
        trade_id=trade_id,
        version=version,
        account=account,
        instrument=TOYOTA.instrument_id,
        side=side,  # type: ignore[arg-type]
        quantity=qty,
        price=px,
        currency="JPY",
        venue="XTKS",
        counterparty=counterparty,
        trade_time=T0 + dt.timedelta(seconds=seconds),
        source="fix",
        ingest_time=T0 + dt.timedelta(seconds=seconds),
        isin=TOYOTA.isin,
        symbol=TOYOTA.symbol,
        mic="XTKS",
        multiplier=D(1),
        book="B",
        legal_entity="LE",
        base_currency="JPY",
        counterparty_lei="5299007W3X0B5CI8IV57",
        notional=qty * px,
        trade_date=trade_date,
        settlement_date=trade_date + dt.timedelta(days=2),
        order_id=order_id,
    )


def instruction(
    alloc_id: str,
    allocations: dict[str, str],
    *,
    quantity: str = "900",
    avg_px: str = "2502.333333",
    trans_type: str = "NEW",
    ref_alloc_id: str = "",
    order_id: str = "ORD-1",
    exec_ids: tuple[str, ...] = (),
    side: str = "BUY",
    instrument: str = TOYOTA.instrument_id,
    trade_date: dt.date = TRADE_DATE,
    alloc_type: int = 1,
) -> AllocationInstruction:
    """Return an instruction for ``order_id`` splitting among ``{account: AllocQty}``."""
    return AllocationInstruction(
        alloc_id=alloc_id,
        trans_type=trans_type,  # type: ignore[arg-type]
        ref_alloc_id=ref_alloc_id,
        order_id=order_id,
        trade_date=trade_date,
        alloc_type=alloc_type,
        exec_ids=exec_ids,
        side=side,  # type: ignore[arg-type]
        instrument=instrument,
        quantity=D(quantity),
        avg_px=D(avg_px),
        allocations=tuple(
            AllocationEntry(account=a, quantity=D(q)) for a, q in allocations.items()
        ),
        source="test",
    )


# A block of three fills, 900 shares at an average of 7507/3 = 2502.333333... JPY.
FILLS = (
    execution("E1", "300", "2501", seconds=0),
    execution("E2", "300", "2502", seconds=5),
    execution("E3", "300", "2504", seconds=9),
)
# 250 each to A, B, C and 150 to D: whole lots of 100 are 200, 200, 200, 100; the two
# lots left go to the largest remainders (50, 50, 50, 50: a tie, so A and B, in order).
SPLIT = {"CL-A": "250", "CL-B": "250", "CL-C": "250", "CL-D": "150"}


# -- records of the post-trade output topics, for the read model and dashboard tests ------

T15 = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def allocation(block: str, status: str = "ACCEPTED", minutes: int = 0) -> Allocation:
    return Allocation(
        block_id=block, order_id=block.split(":")[0], alloc_id="AL-1", last_alloc_id="AL-1",
        status=status, trade_date=dt.date(2026, 11, 24), account="HOUSE", instrument="HO.XNYS",  # type: ignore[arg-type]
        side="BUY", currency="USD", quantity=D(300), avg_px=D("10.5"), executions=("E1",),
        children=(AllocatedChild(account="CL-A", requested=D(300), quantity=D(300),
                                 trade_id=f"{block}/AL-1/CL-A", version=1),),
        offset_trade_id=f"{block}/AL-1/OFFSET", updated_at=T15 + dt.timedelta(minutes=minutes),
    )  # fmt: skip


def confirmation(trade_id: str, status: str, deadline_h: int) -> Confirmation:
    return Confirmation(
        confirm_id=f"{trade_id}#1", trade_id=trade_id, version=1, status=status,  # type: ignore[arg-type]
        block_id="B", alloc_id="AL-1", account="CL-A", instrument="HO.XNYS", side="BUY",
        quantity=D(300), avg_px=D("10.5"), currency="USD", counterparty="CP-001", mic="XNYS",
        trade_date=dt.date(2026, 11, 24), trade_time=T15,
        deadline=T15 + dt.timedelta(hours=deadline_h), updated_at=T15,
    )  # fmt: skip


def exception(trade_id: str, kind: str) -> AffirmationException:
    return AffirmationException(
        trade_id=trade_id, confirm_id=f"{trade_id}#1", kind=kind, status="CONFIRMED",  # type: ignore[arg-type]
        deadline=T15, at=T15, account="CL-A", block_id="B", alloc_id="AL-1", instrument="HO.XNYS",
        mic="XNYS", trade_date=dt.date(2026, 11, 24),
    )  # fmt: skip
