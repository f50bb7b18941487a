"""Issue 11: a large trade must raise a limit breach in risk and a P&L, never a dead letter."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.test_risk import FX, limits, trade
from tradeflux.domain.schemas import Account, AccountPnL, Position, Price
from tradeflux.services import pnl, risk
from tradeflux.stream.harness import TestDriver

D = Decimal
ACCOUNT = Account(account_id="ACC-1", book="EQ-US", legal_entity="TFX LLC", base_currency="USD")


def test_risk_raises_a_breach_for_a_quantity_of_1e27_instead_of_dead_lettering_it() -> None:
    driver = TestDriver(
        risk.SERVICE,
        tables={"limits": {"ACC-1": limits()}, "accounts": {"ACC-1": ACCOUNT}, "fx": FX},
    )
    out = driver.send([("ACC-1", trade("T1", "BUY", "1E+27", "100.00"))])
    assert [(o.topic, o.value.status, o.value.limit, o.value.value) for o in out] == [
        ("risk.alerts", "BREACHED", "single_trade_notional", D("1" + "0" * 29 + ".00")),
        ("risk.alerts", "BREACHED", "gross_notional", D("1" + "0" * 29 + ".00")),
        ("risk.alerts", "BREACHED", "net_notional", D("1" + "0" * 29 + ".00")),
        ("risk.alerts", "BREACHED", "position_qty", D("1E+27")),
    ]


def test_pnl_of_a_position_of_1e27_is_computed_not_rolled_back() -> None:
    prices = {
        "ACME.XNYS": Price(
            instrument_id="ACME.XNYS", bid=D("101"), ask=D("102"), last=D("101.50"),
            time=trade("T", "BUY", 1, 1).trade_time,
        )
    }  # fmt: skip
    driver = TestDriver(
        pnl.SERVICE, tables={"accounts": {"ACC-1": ACCOUNT}, "prices": prices, "fx": FX}
    )
    position = Position(
        account="ACC-1", instrument="ACME.XNYS", currency="USD", quantity=D("1E+27"),
        avg_cost=D("100.00"), realized_pnl=D("0"),
    )  # fmt: skip
    out = driver.send([("ACC-1|ACME.XNYS", position)])  # P&L goes out on the change
    assert [o.value for o in out] == [
        AccountPnL(
            account="ACC-1", base_currency="USD", realized=D("0.00"),
            unrealized=D("15" + "0" * 26 + ".00"), total=D("15" + "0" * 26 + ".00"),
            positions=1,
        )
    ]  # fmt: skip
