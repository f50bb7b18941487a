"""Inside the bounds nothing raises and sums are exact; beyond them records are refused.

Property tests (hypothesis) at and beyond the documented bounds (domain/bounds.py) for
the validator, positions, P&L, risk and netting: each computes in the one context of
domain/arithmetic.py, whatever the thread's decimal context is.
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflux.domain.arithmetic import multiply
from tradeflux.domain.bounds import (
    MAX_PRICE,
    MAX_QUANTITY,
    decimal_problem,
)
from tradeflux.domain.codes import RejectReason
from tradeflux.domain.netting import fold_obligations
from tradeflux.domain.pnl import account_pnl
from tradeflux.domain.positions import fold_position
from tradeflux.domain.refdata import RefData
from tradeflux.domain.risk import fold_alerts
from tradeflux.domain.schemas import (
    Account,
    Counterparty,
    EnrichedTrade,
    FxRate,
    Instrument,
    Limits,
    Position,
    Price,
)
from tradeflux.domain.validation import Accepted, Duplicate, Rejected, validate

D = Decimal
T0 = dt.datetime(2026, 11, 24, 14, 30, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(minutes=1)


def bounded(max_abs: Decimal, places: int = 8, digits: int = 18) -> st.SearchStrategy[Decimal]:
    """Positive decimals inside a bound, the extremes (largest, smallest, longest) included."""
    top = max_abs.adjusted()  # 10**top is the bound

    def build(coefficient: int, exponent: int) -> Decimal:
        value = Decimal(coefficient).scaleb(exponent, decimal.Context(prec=60))
        return value if value < max_abs else Decimal(1)

    extremes = [
        D(10) ** top - D(10) ** max(-places, top - digits),  # 999..9 with every digit allowed
        D(10) ** -places,
        D("1"),
    ]
    return st.one_of(
        st.sampled_from(extremes),
        st.builds(
            build,
            st.integers(1, 10**digits - 1),
            st.integers(-places, max(-places, top - digits)),
        ),
    )


QUANTITY = bounded(MAX_QUANTITY)
PRICE = bounded(MAX_PRICE)
MULTIPLIER = bounded(D("1E+8"), digits=10)
RATE = st.one_of(st.sampled_from([D("1E-8"), D("99999999.9999999999")]), bounded(D("1E+8")))


def enriched(
    trade_id: str, side: str, qty: Decimal, price: Decimal, m: Decimal, **change: Any
) -> EnrichedTrade:
    values: dict[str, Any] = {
        "event_type": "NEW", "trade_id": trade_id, "version": 1, "account": "ACC-1",
        "instrument": "ACME.XNYS", "side": side, "quantity": qty, "price": price,
        "currency": "USD", "venue": "XNYS", "counterparty": "CP-1", "trade_time": T0,
        "source": "test", "ingest_time": T0, "isin": "US0378331005", "symbol": "ACME",
        "mic": "XNYS", "multiplier": m, "book": "B", "legal_entity": "L",
        "base_currency": "USD", "counterparty_lei": "HWUPKR0MPOU8FGXBT394",
        "notional": multiply(multiply(qty, price), m), "trade_date": T0.date(),
        "settlement_date": T0.date(),
    }  # fmt: skip
    values.update(change)
    return EnrichedTrade(**values)


FILLS = st.lists(
    st.tuples(st.sampled_from(["BUY", "SELL"]), QUANTITY, PRICE, MULTIPLIER, st.integers(0, 3)),
    min_size=1,
    max_size=40,
)


def as_trades(fills: list[tuple[str, Decimal, Decimal, Decimal, int]]) -> list[EnrichedTrade]:
    instruments = ["ACME.XNYS", "BMW.XETR", "SONY.XTKS", "ES.XCME"]
    currencies = ["USD", "EUR", "JPY", "USD"]
    return [
        enriched(f"T{i}", side, q, p, m, instrument=instruments[k], currency=currencies[k],
                 trade_time=T0 + dt.timedelta(seconds=i))
        for i, (side, q, p, m, k) in enumerate(fills)
    ]  # fmt: skip


def exact(value: Decimal) -> Fraction:
    return Fraction(value)


@settings(max_examples=150, deadline=None)
@given(FILLS)
def test_positions_never_raise_and_keep_the_quantity_exact_in_any_thread_context(
    fills: list[tuple[str, Decimal, Decimal, Decimal, int]],
) -> None:
    trades = as_trades([(s, q, p, m, 0) for s, q, p, m, _ in fills])
    with decimal.localcontext(prec=3, traps=[decimal.Inexact, decimal.Overflow]):
        position = fold_position("ACC-1", "ACME.XNYS", "USD", D(1), trades)
    signed = sum(exact(t.quantity) if t.side == "BUY" else -exact(t.quantity) for t in trades)
    assert exact(position.quantity) == signed
    assert position.trade_count == len(trades)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(QUANTITY, st.integers(1, 10**9), PRICE, PRICE, MULTIPLIER, PRICE),
        min_size=1,
        max_size=8,
    ),
    RATE,
    RATE,
)
def test_pnl_never_raises_at_the_bounds_and_quantizes_to_cents(
    rows: list[tuple[Decimal, int, Decimal, Decimal, Decimal, Decimal]],
    eurusd: Decimal,
    usdjpy: Decimal,
) -> None:
    currencies = ["USD", "EUR", "JPY", "GBP"]
    positions, prices = [], {}
    for i, (qty, trades, avg, last, m, realized) in enumerate(rows):
        instrument = f"I{i}"
        positions.append(
            Position(
                account="ACC-1", instrument=instrument, currency=currencies[i % 4],
                quantity=multiply(qty, D(trades)), avg_cost=avg,
                realized_pnl=multiply(multiply(realized, qty), D(trades)), multiplier=m,
            )
        )  # fmt: skip  # quantity up to 1E+21: 10**9 trades of the largest quantity
        prices[instrument] = Price(instrument_id=instrument, bid=last, ask=last, last=last, time=T0)
    fx = {
        "EURUSD": FxRate(pair="EURUSD", base="EUR", quote="USD", rate=eurusd, time=T0),
        "USDJPY": FxRate(pair="USDJPY", base="USD", quote="JPY", rate=usdjpy, time=T0),
    }
    with decimal.localcontext(prec=5):
        pnl = account_pnl("ACC-1", "JPY", positions, prices, fx)  # EUR via USD: the cross
    assert pnl.realized.as_tuple().exponent == -2
    assert pnl.unrealized.as_tuple().exponent == -2
    assert pnl.missing_marks == tuple(f"I{i}" for i in range(len(rows)) if i % 4 == 3)


@settings(max_examples=100, deadline=None)
@given(FILLS)
def test_risk_never_raises_at_the_bounds_and_its_net_is_the_exact_sum(
    fills: list[tuple[str, Decimal, Decimal, Decimal, int]],
) -> None:
    trades = as_trades(fills)
    lim = Limits(account_id="ACC-1", gross_notional=D(10**6), net_notional=D(10**6),
                 position_qty=D(10**6), single_trade_notional=D(10**6))  # fmt: skip
    fx = {"EURUSD": FxRate(pair="EURUSD", base="EUR", quote="USD", rate=D("1.25"), time=T0)}
    with decimal.localcontext(prec=4):
        accounts, alerts = fold_alerts(trades, {"ACC-1": lim}, {}, fx)
    for currency in ("USD", "EUR", "JPY"):
        signed = sum(
            (exact(t.notional) if t.side == "BUY" else -exact(t.notional))
            for t in trades
            if t.currency == currency
        )
        held = accounts["ACC-1"].currencies.get(currency)
        assert (exact(held.net) if held is not None else 0) == signed
    assert all(a.value.as_tuple().exponent == -2 for a in alerts if a.limit != "position_qty")
    factor = {"USD": Fraction(1), "EUR": Fraction(5, 4)}  # no JPY rate: JPY is not checked
    over = {
        t.trade_id
        for t in trades
        if t.currency in factor and round(exact(t.notional) * factor[t.currency], 2) > 10**6
    }  # a trade beyond its limit raises its breach, however large
    assert {a.trade_id for a in alerts if a.limit == "single_trade_notional"} == over


@settings(max_examples=100, deadline=None)
@given(FILLS)
def test_netting_never_raises_at_the_bounds_and_nets_exactly(
    fills: list[tuple[str, Decimal, Decimal, Decimal, int]],
) -> None:
    trades = as_trades(fills)
    with decimal.localcontext(prec=3, traps=[decimal.Inexact]):
        obligations = fold_obligations(trades)
    for obligation in obligations.values():
        mine = [t for t in trades if t.currency == obligation.currency]
        net = sum((exact(t.notional) if t.side == "SELL" else -exact(t.notional)) for t in mine)
        assert exact(obligation.net_cash) == net


# -- the validator: inside accepted, beyond refused, never an exception ---------------------

INSTRUMENT = Instrument(
    instrument_id="ACME.XNYS", isin="US0378331005", symbol="ACME", currency="USD", mic="XNYS",
    lot_size=D("0.00000001"), tick_size=D("0.00000001"), multiplier=D("99999999.99"),
)  # fmt: skip
REFDATA = RefData(
    instruments={"ACME.XNYS": INSTRUMENT},
    accounts={"ACC-1": Account(account_id="ACC-1", book="B", legal_entity="L",
                               base_currency="USD")},
    counterparties={"CP-1": Counterparty(counterparty_id="CP-1", lei="HWUPKR0MPOU8FGXBT394",
                                         name="C")},
)  # fmt: skip
ANY_DECIMAL = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(
        lambda c, e: Decimal(c).scaleb(e, decimal.Context(Emax=10**6, Emin=-(10**6))),
        st.integers(-(10**30), 10**30),
        st.integers(-400, 400),
    ),  # fmt: skip
)
TEXT = st.one_of(st.text(max_size=80), st.sampled_from(["ACC-1", "CP-1", "ACME.XNYS", ""]))


@settings(max_examples=300, deadline=None)
@given(
    version=st.one_of(st.integers(-5, 5), st.integers(2**62, 2**80)),
    quantity=st.one_of(QUANTITY, ANY_DECIMAL),
    price=st.one_of(PRICE, ANY_DECIMAL),
    account=TEXT,
    counterparty=TEXT,
    trade_id=TEXT,
    currency=st.sampled_from(["USD", "EUR", "XYZ", "", "usd"]),
    venue=st.sampled_from(["XNYS", "", "xnys", "X\u0000YZ"]),
    age_s=st.integers(-60, 500 * 86400),
)
def test_the_validator_never_raises_and_accepts_only_what_is_inside_the_bounds(
    **fields: Any,
) -> None:
    age_s = fields.pop("age_s")
    record = {
        "event_type": "NEW", "instrument": "ACME.XNYS", "side": "BUY",
        "trade_time": (NOW - dt.timedelta(seconds=age_s)).isoformat(), **fields,
    }  # fmt: skip
    raw = msgspec.json.Encoder(decimal_format="string").encode(record)
    with decimal.localcontext(prec=2):
        outcome = validate(raw, NOW, None, REFDATA)
    assert isinstance(outcome, Accepted | Rejected | Duplicate)
    q, p = fields["quantity"], fields["price"]
    inside = (
        decimal_problem("q", q, MAX_QUANTITY) is None
        and decimal_problem("p", p, MAX_PRICE) is None
        and 1 <= fields["version"] < 2**63
    )
    if isinstance(outcome, Accepted):
        assert inside
        (event,) = outcome.events
        assert event.notional == multiply(multiply(q, p), INSTRUMENT.multiplier)
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(outcome.new_state)) is not None
    elif not inside:
        assert isinstance(outcome, Rejected)
        assert outcome.reason in (RejectReason.OUT_OF_BOUNDS, RejectReason.SCHEMA_INVALID)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_decimal_bound_is_magnitude_digits_and_places(value: Decimal) -> None:
    digits = format(value.copy_abs(), "f").replace(".", "").strip("0")
    places = format(value.copy_abs(), "f").partition(".")[2].rstrip("0")
    plain = value.copy_abs() < MAX_QUANTITY and len(digits) <= 18 and len(places) <= 8
    assert (decimal_problem("quantity", value, MAX_QUANTITY) is None) == plain
