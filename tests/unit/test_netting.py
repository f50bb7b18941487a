"""Settlement netting (docs/domain-rules.md, Settlement): exact Decimal, any event order."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflux.domain.netting import (
    fold_obligations,
    leg_key,
    net_obligations,
    net_trade,
    obligation_key,
)
from tradeflux.domain.schemas import EnrichedTrade, SecuritiesObligation, SettlementObligation

T0 = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
D1 = dt.date(2026, 11, 26)
D2 = dt.date(2026, 11, 27)
LEI = {"CP1": "LEI00000000000000001", "CP2": "LEI00000000000000002"}
CURRENCY = {"AAPL": "USD", "MSFT": "USD", "SAP": "EUR"}
ISIN = {"AAPL": "US0378331005", "MSFT": "US5949181045", "SAP": "DE0007164600"}


def trade(
    trade_id: str = "T1",
    version: int = 1,
    event_type: str = "NEW",
    side: str = "BUY",
    quantity: str = "100",
    price: str = "10.00",
    *,
    account: str = "ACC1",
    instrument: str = "AAPL",
    counterparty: str = "CP1",
    settlement_date: dt.date = D1,
    multiplier: str = "1",
) -> EnrichedTrade:
    """Return an enriched trade event; ``notional = quantity * price * multiplier``."""
    qty, px, mult = Decimal(quantity), Decimal(price), Decimal(multiplier)
    return EnrichedTrade(
        event_type=event_type,  # type: ignore[arg-type]
        trade_id=trade_id,
        version=version,
        account=account,
        instrument=instrument,
        side=side,  # type: ignore[arg-type]
        quantity=qty,
        price=px,
        currency=CURRENCY[instrument],
        venue="XNAS",
        counterparty=counterparty,
        trade_time=T0,
        source="test",
        ingest_time=T0,
        isin=ISIN[instrument],
        symbol=instrument,
        mic="XNAS",
        multiplier=mult,
        book="B1",
        legal_entity="LE1",
        base_currency="USD",
        counterparty_lei=LEI[counterparty],
        notional=qty * px * mult,
        trade_date=settlement_date - dt.timedelta(days=2),
        settlement_date=settlement_date,
    )


def amend(event: EnrichedTrade, version: int, **changes: object) -> EnrichedTrade:
    """Return ``event`` amended (full new state) to ``version``, notional recomputed."""
    new = msgspec.structs.replace(event, event_type="AMEND", version=version, **changes)
    return msgspec.structs.replace(new, notional=new.quantity * new.price * new.multiplier)


def cancel(event: EnrichedTrade, version: int) -> EnrichedTrade:
    """Return the CANCEL of ``event`` (it carries the state it cancels) at ``version``."""
    return msgspec.structs.replace(event, event_type="CANCEL", version=version)


def test_buys_pay_cash_and_receive_securities_sells_the_opposite() -> None:
    obligations = fold_obligations(
        [
            trade("T1", side="BUY", quantity="100", price="10.25"),
            trade("T2", side="SELL", quantity="30", price="10.50"),
            trade("T3", side="SELL", quantity="5", price="400.10", instrument="MSFT"),
        ]
    )
    assert obligations == {
        "CP1|USD|2026-11-26": SettlementObligation(
            counterparty="CP1",
            counterparty_lei=LEI["CP1"],
            currency="USD",
            settlement_date=D1,
            net_cash=Decimal("-1025.00") + Decimal("315.00") + Decimal("2000.50"),
            cash_paid=Decimal("1025.00"),
            cash_received=Decimal("2315.50"),
            trade_count=3,
            securities=(
                SecuritiesObligation(
                    instrument="AAPL", isin=ISIN["AAPL"], quantity=Decimal(70), trade_count=2
                ),
                SecuritiesObligation(
                    instrument="MSFT", isin=ISIN["MSFT"], quantity=Decimal(-5), trade_count=1
                ),
            ),
        )
    }


def test_obligations_are_split_by_counterparty_currency_and_settlement_date() -> None:
    obligations = fold_obligations(
        [
            trade("T1"),
            trade("T2", counterparty="CP2"),
            trade("T3", instrument="SAP"),
            trade("T4", settlement_date=D2),
        ]
    )
    assert sorted(obligations) == [
        "CP1|EUR|2026-11-26",
        "CP1|USD|2026-11-26",
        "CP1|USD|2026-11-27",
        "CP2|USD|2026-11-26",
    ]
    assert all(o.trade_count == 1 for o in obligations.values())
    assert obligation_key("CP1", "USD", D1) == "CP1|USD|2026-11-26"


def test_multiplier_is_in_the_cash_not_in_the_securities_quantity() -> None:
    (ob,) = fold_obligations([trade(quantity="2", price="4500.25", multiplier="50")]).values()
    assert ob.net_cash == Decimal("-450025.00")
    assert ob.securities[0].quantity == Decimal(2)


def test_amend_replaces_the_contribution_as_if_booked_right_first_time() -> None:
    new = trade("T1", quantity="100", price="10.00")
    other = trade("T2", side="SELL", quantity="40", price="10.10")
    fixed = amend(new, 2, quantity=Decimal(150), price=Decimal("9.95"))
    assert fold_obligations([new, other, fixed]) == net_obligations([fixed, other])
    (ob,) = fold_obligations([new, other, fixed]).values()
    assert ob.net_cash == Decimal("-1492.50") + Decimal("404.00")
    assert ob.securities[0].quantity == Decimal(110)
    assert ob.trade_count == 2


def test_amend_that_changes_the_side_moves_cash_between_paid_and_received() -> None:
    new = trade("T1", side="BUY", quantity="10", price="2.00")
    (ob,) = fold_obligations([new, amend(new, 2, side="SELL")]).values()
    assert (ob.cash_paid, ob.cash_received, ob.net_cash) == (0, Decimal("20.00"), Decimal("20.00"))
    assert ob.securities[0].quantity == Decimal(-10)


def test_amend_of_the_settlement_date_moves_the_trade_and_empties_the_old_obligation() -> None:
    new = trade("T1", settlement_date=D1)
    moved = amend(new, 2, settlement_date=D2, trade_date=D2 - dt.timedelta(days=2))
    step = net_trade(None, new, {}.get)
    assert step.leg is not None
    old = step.obligations["CP1|USD|2026-11-26"]
    step = net_trade(step.leg, moved, {"CP1|USD|2026-11-26": old}.get)
    assert step.obligations["CP1|USD|2026-11-26"] is None  # a tombstone
    moved_to = step.obligations["CP1|USD|2026-11-27"]
    assert moved_to is not None and moved_to.obligation().net_cash == Decimal("-1000.00")
    assert fold_obligations([new, moved]) == net_obligations([moved])


def test_cancel_of_the_last_trade_leaves_no_obligation() -> None:
    new = trade("T1")
    step = net_trade(None, new, {}.get)
    state = step.obligations["CP1|USD|2026-11-26"]
    assert step.leg is not None
    gone = net_trade(step.leg, cancel(new, 2), {"CP1|USD|2026-11-26": state}.get)
    assert gone.obligations == {"CP1|USD|2026-11-26": None}
    assert gone.leg is not None and not gone.leg.live
    assert fold_obligations([new, cancel(new, 2)]) == {}


def test_cancel_restores_the_other_trades_figures_exactly() -> None:
    a = trade("T1", quantity="3", price="0.10")
    b = trade("T2", side="SELL", quantity="7", price="1234567.89")
    assert fold_obligations([a, b, cancel(a, 2)]) == fold_obligations([b])


def test_an_event_not_newer_than_the_held_version_changes_nothing() -> None:
    new = trade("T1")
    fixed = amend(new, 3, quantity=Decimal(7))
    step = net_trade(None, new, {}.get)
    step = net_trade(step.leg, fixed, step.obligations.get)
    assert net_trade(step.leg, amend(new, 2, quantity=Decimal(9)), {}.get).leg is None
    assert net_trade(step.leg, fixed, {}.get) == (None, {})
    # A replayed event, and a cancel overtaken by nothing: the same obligations.
    assert fold_obligations([new, fixed, new, fixed]) == net_obligations([fixed])
    assert fold_obligations([new, cancel(new, 2), new]) == {}


def test_counterparty_move_in_either_order_counts_the_trade_once_where_it_went() -> None:
    new = trade("T1", counterparty="CP1")
    gone = cancel(new, 2)
    there = amend(new, 2, counterparty="CP2", counterparty_lei=LEI["CP2"])
    there = msgspec.structs.replace(there, event_type="NEW")
    assert leg_key(gone) != leg_key(there)
    expected = net_obligations([there])
    assert fold_obligations([new, gone, there]) == expected
    assert fold_obligations([new, there, gone]) == expected
    assert list(expected) == ["CP2|USD|2026-11-26"]


def test_account_move_whose_new_overtakes_its_cancel_counts_the_trade_once() -> None:
    # CANCEL and NEW come from two partitions of trades.enriched (old and new account),
    # so on trades.by_counterparty the NEW may come first.
    new = trade("T1", account="ACC1")
    moved = msgspec.structs.replace(amend(new, 2, account="ACC2"), event_type="NEW")
    expected = net_obligations([moved])
    assert fold_obligations([new, moved, cancel(new, 2)]) == expected
    assert fold_obligations([new, cancel(new, 2), moved]) == expected
    assert expected["CP1|USD|2026-11-26"].trade_count == 1


def test_sums_stay_exact_beyond_28_digits() -> None:
    big = trade("T1", quantity="1000000000", price="123456789012.3456")  # 1.2e20
    small = trade("T2", side="SELL", quantity="1", price="0.0001")
    (ob,) = fold_obligations([big, small]).values()
    assert ob.net_cash == Decimal("-123456789012345600000.0000") + Decimal("0.0001")
    assert ob.net_cash == Decimal("-123456789012345599999.9999")
    assert fold_obligations([big, small, cancel(big, 2)]) == net_obligations([small])


def test_lei_is_the_one_the_latest_new_or_amend_carried() -> None:
    new = trade("T1")
    fixed = amend(new, 2, counterparty_lei="LEI-RENAMED", quantity=Decimal(1))
    (ob,) = fold_obligations([new, trade("T2"), fixed, cancel(trade("T2"), 2)]).values()
    assert ob.counterparty_lei == "LEI-RENAMED"


# ---------------------------------------------------------------------------------------
# Property: any interleaving that ends in a set of effective trades nets like that set
# ---------------------------------------------------------------------------------------

_SIDES = ("BUY", "SELL")
_PRICES = ("0.01", "10.00", "10.05", "99.99", "1234.5678")
_QTYS = ("1", "5", "100", "2500")
_DATES = (D1, D2, dt.date(2026, 11, 30))


def _state(rng: random.Random, trade_id: str) -> EnrichedTrade:
    return trade(
        trade_id,
        side=rng.choice(_SIDES),
        quantity=rng.choice(_QTYS),
        price=rng.choice(_PRICES),
        account=rng.choice(("ACC1", "ACC2")),
        instrument=rng.choice(tuple(CURRENCY)),
        counterparty=rng.choice(tuple(LEI)),
        settlement_date=rng.choice(_DATES),
        multiplier=rng.choice(("1", "1", "10")),
    )


def _history(rng: random.Random, trade_id: str) -> tuple[list[EnrichedTrade], EnrichedTrade | None]:
    """Return a trade's events as the validator emits them, and its final effective state."""
    current = _state(rng, trade_id)
    events = [current]
    version = 1
    for _ in range(rng.randrange(4)):
        version += rng.randrange(1, 3)  # versions may skip numbers
        draw = _state(rng, trade_id)
        what = rng.random()
        if what < 0.15:  # cancelled: the end of the trade
            events.append(cancel(current, version))
            return events, None
        if what < 0.45:  # moved to another account, instrument or counterparty
            moved = amend(
                current,
                version,
                account=draw.account,
                instrument=draw.instrument,
                currency=draw.currency,
                isin=draw.isin,
                counterparty=draw.counterparty,
                counterparty_lei=draw.counterparty_lei,
            )
            if leg_key(moved) != leg_key(current):
                events.append(cancel(current, version))
                current = msgspec.structs.replace(moved, event_type="NEW")
                events.append(current)
                continue
        current = amend(
            current,
            version,
            side=draw.side,
            quantity=draw.quantity,
            price=draw.price,
            multiplier=draw.multiplier,
            settlement_date=draw.settlement_date,
        )
        events.append(current)
    return events, current


def _interleave(rng: random.Random, events: list[EnrichedTrade]) -> list[EnrichedTrade]:
    """Shuffle ``events`` but keep the order of the events of each leg key.

    That is all the input topic promises: one key's events come from one partition of
    ``trades.enriched`` (its account) through the repartition in order; events of
    different keys, even of one trade, may come in any order.
    """
    slots = list(range(len(events)))
    rng.shuffle(slots)
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, event in enumerate(events):
        by_key[leg_key(event)].append(i)
    order: list[EnrichedTrade | None] = [None] * len(events)
    for indices in by_key.values():
        for i, slot in zip(indices, sorted(slots[i] for i in indices), strict=True):
            order[slot] = events[i]
    return [e for e in order if e is not None]


def _independent_net(effective: list[EnrichedTrade]) -> dict[str, tuple[object, ...]]:
    """Net the effective trades plainly, without tradeflux.domain.netting."""
    out: dict[str, list[object]] = {}
    qty: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for t in effective:
        key = f"{t.counterparty}|{t.currency}|{t.settlement_date.isoformat()}"
        row = out.setdefault(key, [Decimal(0), Decimal(0), 0])
        if t.side == "BUY":
            row[0] = row[0] + t.quantity * t.price * t.multiplier  # type: ignore[operator]
            qty[key][t.instrument] += t.quantity
        else:
            row[1] = row[1] + t.quantity * t.price * t.multiplier  # type: ignore[operator]
            qty[key][t.instrument] -= t.quantity
        row[2] = row[2] + 1  # type: ignore[operator]
    return {
        key: (paid, received, count, sorted(qty[key].items()))
        for key, (paid, received, count) in out.items()
    }


def _figures(obligations: dict[str, SettlementObligation]) -> dict[str, tuple[object, ...]]:
    for ob in obligations.values():
        assert ob.net_cash == ob.cash_received - ob.cash_paid
        assert ob.trade_count == sum(s.trade_count for s in ob.securities)
    return {
        key: (
            ob.cash_paid,
            ob.cash_received,
            ob.trade_count,
            [(s.instrument, s.quantity) for s in ob.securities],
        )
        for key, ob in obligations.items()
    }


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), trades=st.integers(1, 25), replays=st.integers(0, 5))
def test_any_interleaving_nets_like_the_effective_trades(
    seed: int, trades: int, replays: int
) -> None:
    rng = random.Random(seed)
    events: list[EnrichedTrade] = []
    effective: list[EnrichedTrade] = []
    for n in range(trades):
        history, final = _history(rng, f"T{n}")
        events.extend(history)
        if final is not None:
            effective.append(final)
    stream = _interleave(rng, events)
    for _ in range(replays):  # a redelivered event, after its original: changes nothing
        i = rng.randrange(len(stream))
        stream.insert(rng.randrange(i + 1, len(stream) + 1), stream[i])
    incremental = fold_obligations(stream)
    assert incremental == net_obligations(effective)  # incremental == full
    assert _figures(incremental) == _independent_net(effective)
