"""Reference data read from a global table is checked against its bounds (services)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from tradeflux import topics
from tradeflux.domain.schemas import Account, AccountPnL, FxRate, Limits, Position, Price
from tradeflux.services import pnl, risk, validator
from tradeflux.services.refdata_tables import BoundedCodec
from tradeflux.stream.harness import TestDriver

D = Decimal
T0 = dt.datetime(2026, 11, 24, 14, 30, tzinfo=dt.UTC)
ENCODE = msgspec.json.Encoder(decimal_format="string").encode


def price(last: str) -> Price:
    return Price(instrument_id="ACME.XNYS", bid=D(last), ask=D(last), last=D(last), time=T0)


def test_a_price_beyond_its_bounds_reads_as_no_price() -> None:
    codec = BoundedCodec(topics.PRICES)
    assert codec.decode(ENCODE(price("101.25"))) == price("101.25")
    for bad in ("1E+300", "0", "-5", "1.123456789", "NaN"):
        assert codec.decode(ENCODE(price(bad))) is None, bad


def test_limits_and_rates_beyond_their_bounds_read_as_absent() -> None:
    limits = Limits(account_id="ACC-1", gross_notional=D(-1), net_notional=D(1),
                    position_qty=D(1), single_trade_notional=D(1))  # fmt: skip
    assert BoundedCodec(topics.LIMITS).decode(ENCODE(limits)) is None
    rate = FxRate(pair="EURUSD", base="EUR", quote="USD", rate=D("1E-9"), time=T0)
    assert BoundedCodec(topics.FX).decode(ENCODE(rate)) is None


def test_every_service_reads_its_reference_tables_through_the_bounds() -> None:
    for service in (validator.SERVICE, risk.SERVICE, pnl.SERVICE):
        assert all(isinstance(t.codec, BoundedCodec) for t in service.global_tables)


def test_pnl_goes_on_with_a_missing_mark_when_a_price_was_out_of_bounds() -> None:
    account = Account(account_id="ACC-1", book="B", legal_entity="L", base_currency="USD")
    prices = {"ACME.XNYS": BoundedCodec(topics.PRICES).decode(ENCODE(price("1E+300")))}
    driver = TestDriver(pnl.SERVICE, tables={"accounts": {"ACC-1": account}, "prices": prices,
                                              "fx": {}})  # fmt: skip
    position = Position(account="ACC-1", instrument="ACME.XNYS", currency="USD",
                        quantity=D(100), avg_cost=D("10.00"), realized_pnl=D("5.00"))  # fmt: skip
    out = driver.send([("ACC-1|ACME.XNYS", position)])  # P&L goes out on the change
    assert [o.value for o in out] == [
        AccountPnL(account="ACC-1", base_currency="USD", realized=D("0.00"),
                   unrealized=D("0.00"), total=D("0.00"), positions=1,
                   missing_marks=("ACME.XNYS",))
    ]  # fmt: skip
