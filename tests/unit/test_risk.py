"""Risk: exposure per account against its limits, alerts on crossing and clearing."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflux.domain.pnl import conversion_factor
from tradeflux.domain.risk import (
    AccountRisk,
    TradeExposure,
    apply_limits,
    apply_trade,
    fold_alerts,
    notional_figures,
    position,
    trade_key,
)
from tradeflux.domain.schemas import (
    Account,
    EnrichedTrade,
    EventType,
    FxRate,
    Limits,
    RiskAlert,
    Side,
)
from tradeflux.services import risk
from tradeflux.stream.harness import TestDriver

D = Decimal
T0 = dt.datetime(2025, 11, 26, 14, 30, tzinfo=dt.UTC)
CURRENCY = {"ACME.XNYS": "USD", "BMW.XETR": "EUR", "SONY.XTKS": "JPY", "ES.XCME": "USD"}
MULTIPLIER = {"ES.XCME": 50}


def trade(
    trade_id: str,
    side: Side,
    qty: str | int,
    price: str | int,
    *,
    version: int = 1,
    event_type: EventType = "NEW",
    account: str = "ACC-1",
    instrument: str = "ACME.XNYS",
    base_currency: str = "USD",
    seconds: int = 0,
) -> EnrichedTrade:
    quantity, px = D(qty), D(price)
    m = D(MULTIPLIER.get(instrument, 1))
    return EnrichedTrade(
        event_type=event_type,
        trade_id=trade_id,
        version=version,
        account=account,
        instrument=instrument,
        side=side,
        quantity=quantity,
        price=px,
        currency=CURRENCY[instrument],
        venue=instrument.split(".")[1],
        counterparty="CP-1",
        trade_time=T0 + dt.timedelta(seconds=seconds),
        source="test",
        ingest_time=T0,
        isin="US0378331005",
        symbol=instrument.split(".")[0],
        mic=instrument.split(".")[1],
        multiplier=m,
        book="EQ-US",
        legal_entity="TFX LLC",
        base_currency=base_currency,
        counterparty_lei="5299007W3X0B5CI8IV57",
        notional=quantity * px * m,
        trade_date=T0.date(),
        settlement_date=T0.date() + dt.timedelta(days=1),
    )


def limits(
    account: str = "ACC-1",
    gross: str | int = 10_000,
    net: str | int = 10_000,
    position_qty: str | int = 1_000,
    single: str | int = 100_000,
) -> Limits:
    return Limits(
        account_id=account,
        gross_notional=D(gross),
        net_notional=D(net),
        position_qty=D(position_qty),
        single_trade_notional=D(single),
    )


def fx_rate(pair: str, rate: str) -> FxRate:
    return FxRate(pair=pair, base=pair[:3], quote=pair[3:], rate=D(rate), time=T0)


FX = {r.pair: r for r in (fx_rate("EURUSD", "1.25"), fx_rate("USDJPY", "150"))}


def run(
    events: list[EnrichedTrade], lim: Limits | None = None, fx: dict[str, FxRate] = FX
) -> tuple[dict[str, AccountRisk], list[RiskAlert]]:
    table = {lim.account_id: lim} if lim is not None else {}
    return fold_alerts(events, table, {}, fx)


def summary(alerts: list[RiskAlert]) -> list[tuple[str, str, str, Decimal, str]]:
    return [(a.status, a.limit, a.instrument, a.value, a.trade_id) for a in alerts]


# -- crossing and clearing ---------------------------------------------------------------


def test_crossing_a_limit_gives_one_breached_alert_with_the_figures() -> None:
    _, alerts = run(
        [trade("T1", "BUY", 60, "100.00"), trade("T2", "BUY", 50, "100.00", seconds=5)],
        limits(gross=10_000, net=20_000),
    )
    assert alerts == [
        RiskAlert(
            account="ACC-1",
            status="BREACHED",
            limit="gross_notional",
            value=D("11000.00"),
            threshold=D(10_000),
            instrument="",
            trade_id="T2",
            time=T0 + dt.timedelta(seconds=5),
            message="ACC-1: gross notional 11,000.00 USD is over the limit 10,000 USD (trade T2)",
            base_currency="USD",
        )
    ]


def test_no_further_alert_while_over_and_one_cleared_on_going_back_within() -> None:
    events = [
        trade("T1", "BUY", 120, "100.00"),  # 12,000: over
        trade("T2", "BUY", 10, "100.00"),  # 13,000: still over
        trade("T3", "BUY", 5, "100.00"),  # 13,500: still over
        trade("T4", "SELL", 40, "100.00"),  # net 9,500 but gross 17,500
        trade("T4", "SELL", 40, "100.00", version=2, event_type="CANCEL"),  # back: 13,500
        trade("T1", "SELL", 120, "100.00", version=2, event_type="CANCEL"),  # 1,500: within
        trade("T5", "BUY", 10, "100.00"),  # 2,500: within
    ]
    _, alerts = run(events, limits(gross=100_000, net=10_000))
    assert summary(alerts) == [
        ("BREACHED", "net_notional", "", D("12000.00"), "T1"),
        ("CLEARED", "net_notional", "", D("9500.00"), "T4"),
        ("BREACHED", "net_notional", "", D("13500.00"), "T4"),
        ("CLEARED", "net_notional", "", D("1500.00"), "T1"),
    ]
    assert alerts[1].message == (
        "ACC-1: net notional 9,500.00 USD is back within the limit 10,000 USD (trade T4)"
    )


def test_a_figure_equal_to_its_limit_is_within() -> None:
    _, alerts = run([trade("T1", "BUY", 100, "100.00")], limits(gross=10_000, net=10_000))
    assert alerts == []


def test_gross_adds_long_and_short_instruments_and_net_offsets_them() -> None:
    accounts, alerts = run(
        [
            trade("T1", "BUY", 100, "100.00"),  # +10,000 ACME
            trade("T2", "SELL", 2, "90.00", instrument="ES.XCME"),  # -9,000 ES (x50)
        ],
        limits(gross=15_000, net=5_000),
    )
    figures = notional_figures(accounts["ACC-1"].currencies, "USD", FX)
    assert (figures.gross, figures.net) == (D("19000.00"), D("1000.00"))
    assert summary(alerts) == [
        ("BREACHED", "net_notional", "", D("10000.00"), "T1"),
        ("BREACHED", "gross_notional", "", D("19000.00"), "T2"),
        ("CLEARED", "net_notional", "", D("1000.00"), "T2"),
    ]


def test_position_limit_is_per_instrument_on_the_absolute_net_quantity() -> None:
    events = [
        trade("T1", "SELL", 150, "10.00"),  # ACME -150: over
        trade("T2", "BUY", 80, "20.00", instrument="BMW.XETR"),  # BMW 80: within
        trade("T3", "BUY", 40, "20.00", instrument="BMW.XETR"),  # BMW 120: over
        trade("T4", "BUY", 100, "10.00"),  # ACME -50: within
    ]
    _, alerts = run(events, limits(gross=10**9, net=10**9, position_qty=100))
    assert summary(alerts) == [
        ("BREACHED", "position_qty", "ACME.XNYS", D(150), "T1"),
        ("BREACHED", "position_qty", "BMW.XETR", D(120), "T3"),
        ("CLEARED", "position_qty", "ACME.XNYS", D(50), "T4"),
    ]
    assert alerts[0].message == "ACC-1: position in ACME.XNYS 150 is over the limit 100 (trade T1)"


# -- amend and cancel ----------------------------------------------------------------


def test_an_amend_replaces_the_trade_in_the_exposure() -> None:
    events = [
        trade("T1", "BUY", 50, "100.00"),
        trade("T1", "BUY", 150, "100.00", version=2, event_type="AMEND"),  # 15,000: over
        trade("T1", "SELL", 80, "100.00", version=3, event_type="AMEND"),  # 8,000: within
    ]
    accounts, alerts = run(events, limits(gross=10_000, net=10**9, position_qty=100))
    assert summary(alerts) == [
        ("BREACHED", "gross_notional", "", D("15000.00"), "T1"),
        ("BREACHED", "position_qty", "ACME.XNYS", D(150), "T1"),
        ("CLEARED", "gross_notional", "", D("8000.00"), "T1"),
        ("CLEARED", "position_qty", "ACME.XNYS", D(80), "T1"),
    ]
    assert accounts["ACC-1"].instruments["ACME.XNYS"].quantity == D(-80)


def test_a_cancel_removes_the_trade_and_leaves_nothing_held() -> None:
    events = [
        trade("T1", "BUY", 150, "100.00"),
        trade("T1", "BUY", 150, "100.00", version=2, event_type="CANCEL"),
    ]
    accounts, alerts = run(events, limits(gross=10_000, net=10**9, position_qty=10**9))
    assert summary(alerts) == [
        ("BREACHED", "gross_notional", "", D("15000.00"), "T1"),
        ("CLEARED", "gross_notional", "", D("0.00"), "T1"),
    ]
    assert accounts["ACC-1"].instruments == {}
    assert accounts["ACC-1"].currencies == {}


def test_an_event_whose_version_is_not_above_the_held_one_changes_nothing() -> None:
    lim = limits(gross=10_000)
    account = AccountRisk(account="ACC-1")
    first = apply_trade(account, None, trade("T1", "BUY", 50, "100.00", version=2), lim, "USD", FX)
    assert first.trade is not None
    for version in (1, 2):  # an older version, then a redelivery
        late = trade("T1", "BUY", 500, "100.00", version=version, event_type="AMEND")
        step = apply_trade(first.account, first.trade, late, lim, "USD", FX)
        assert step == (None, first.account, [])


def test_a_cancel_that_arrives_first_holds_its_version_so_the_new_is_ignored() -> None:
    events = [
        trade("T1", "BUY", 150, "100.00", version=2, event_type="CANCEL"),
        trade("T1", "BUY", 150, "100.00"),
    ]
    accounts, alerts = run(events, limits(gross=10_000))
    assert alerts == []
    assert accounts["ACC-1"].instruments == {}


def test_a_trade_moved_to_another_instrument_moves_its_exposure() -> None:
    # The validator sends an instrument-moving amend as a CANCEL of the old and a NEW of
    # the new trade with the same version: both must count.
    events = [
        trade("T1", "BUY", 150, "10.00"),
        trade("T1", "BUY", 150, "10.00", version=2, event_type="CANCEL"),
        trade("T1", "BUY", 150, "10.00", version=2, instrument="ES.XCME"),
    ]
    accounts, alerts = run(events, limits(gross=10**9, net=10**9, position_qty=100))
    assert summary(alerts) == [
        ("BREACHED", "position_qty", "ACME.XNYS", D(150), "T1"),
        ("CLEARED", "position_qty", "ACME.XNYS", D(0), "T1"),
        ("BREACHED", "position_qty", "ES.XCME", D(150), "T1"),
    ]
    assert set(accounts["ACC-1"].instruments) == {"ES.XCME"}


# -- FX -------------------------------------------------------------------------------


def test_notionals_are_converted_to_the_base_currency() -> None:
    events = [
        trade("T1", "BUY", 100, "80.00", instrument="BMW.XETR"),  # 8,000 EUR = 10,000 USD
        trade("T2", "SELL", 10, "1500", instrument="SONY.XTKS"),  # -15,000 JPY = -100 USD
    ]
    accounts, alerts = run(events, limits(gross="10099.99", net=10**9))
    assert summary(alerts) == [("BREACHED", "gross_notional", "", D("10100.00"), "T2")]
    eur_base = notional_figures(accounts["ACC-1"].currencies, "EUR", FX)
    # USD->EUR is 1 / 1.25; JPY->EUR goes via USD: (1 / 150) * (1 / 1.25)
    assert eur_base.gross == D("8080.00")
    assert eur_base.net == D("7920.00")


def test_the_account_base_currency_comes_from_the_accounts_table() -> None:
    events = [trade("T1", "BUY", 100, "100.00", base_currency="USD")]  # 10,000 USD = 8,000 EUR
    lim = {"ACC-1": limits(gross=9_000)}
    assert fold_alerts(events, lim, {"ACC-1": "EUR"}, FX)[1] == []
    _, alerts = fold_alerts(events, lim, {}, FX)  # not in the table: the trade's base
    assert [(a.limit, a.value, a.base_currency) for a in alerts] == [
        ("gross_notional", D("10000.00"), "USD"),
    ]


def test_an_unconvertible_currency_is_left_out_and_listed() -> None:
    fx = {"EURUSD": FX["EURUSD"]}  # no JPY rate
    events = [
        trade("T1", "BUY", 100, "100.00"),
        trade("T2", "BUY", 1000, "1500", instrument="SONY.XTKS"),
        trade("T3", "BUY", 20, "100.00"),
    ]
    accounts, alerts = run(events, limits(gross=11_000, net=10**9), fx)
    figures = notional_figures(accounts["ACC-1"].currencies, "USD", fx)
    assert figures == (D("12000.00"), D("12000.00"), ("JPY",))
    assert summary(alerts) == [("BREACHED", "gross_notional", "", D("12000.00"), "T3")]
    assert alerts[0].missing_fx == ("JPY",)
    assert alerts[0].message.endswith("; left out for want of an FX rate: JPY")


# -- single trade notional ---------------------------------------------------------------


def test_each_trade_over_the_single_trade_limit_gives_one_breached_alert_and_none_clears() -> None:
    events = [
        trade("T1", "BUY", 100, "60.00", instrument="BMW.XETR"),  # 7,500 USD: over 5,000
        trade("T2", "SELL", 30, "100.00"),  # 3,000: within
        trade("T3", "SELL", 60, "100.00"),  # 6,000: over
        trade("T2", "SELL", 70, "100.00", version=2, event_type="AMEND"),  # 7,000: over
        trade("T3", "SELL", 60, "100.00", version=2, event_type="CANCEL"),  # a cancel: none
    ]
    _, alerts = run(events, limits(gross=10**9, net=10**9, single=5_000))
    assert summary(alerts) == [
        ("BREACHED", "single_trade_notional", "", D("7500.00"), "T1"),
        ("BREACHED", "single_trade_notional", "", D("6000.00"), "T3"),
        ("BREACHED", "single_trade_notional", "", D("7000.00"), "T2"),
    ]
    assert alerts[0].threshold == D(5_000)
    assert alerts[0].message == (
        "ACC-1: trade T1 notional 7,500.00 USD is over the limit 5,000 USD"
    )


# -- limits come and go -------------------------------------------------------------------


def test_an_account_without_limits_is_tracked_but_never_alerted() -> None:
    accounts, alerts = run([trade("T1", "BUY", 10**6, "100.00")], None)
    assert alerts == []
    assert position(accounts["ACC-1"], "ACME.XNYS") == D(10**6)


def test_a_lowered_position_limit_is_checked_on_every_instrument_at_the_next_event() -> None:
    account, lim = AccountRisk(account="ACC-1"), limits(gross=10**9, net=10**9, position_qty=500)
    held: dict[str, TradeExposure] = {}
    alerts: list[RiskAlert] = []
    events = [
        (trade("T1", "BUY", 300, "1.00"), lim),
        (trade("T2", "BUY", 10, "1.00", instrument="BMW.XETR"), lim),
        (trade("T3", "BUY", 10, "1.00", instrument="BMW.XETR"), limits(position_qty=200)),
    ]
    for event, event_limits in events:
        step = apply_trade(account, held.get(trade_key(event)), event, event_limits, "USD", FX)
        assert step.trade is not None
        account, held[trade_key(event)] = step.account, step.trade
        alerts.extend(step.alerts)
    assert summary(alerts) == [("BREACHED", "position_qty", "ACME.XNYS", D(300), "T3")]


def test_a_position_over_when_limits_went_is_cleared_when_they_come_back() -> None:
    account, lim = AccountRisk(account="ACC-1"), limits(gross=10**9, net=10**9, position_qty=100)
    held: dict[str, TradeExposure] = {}
    alerts: list[RiskAlert] = []
    events = [
        (trade("T1", "BUY", 300, "1.00"), lim),
        (trade("T1", "BUY", 300, "1.00", version=2, event_type="CANCEL"), None),
        (trade("T2", "BUY", 10, "1.00", instrument="BMW.XETR"), lim),
    ]
    for event, event_limits in events:
        step = apply_trade(account, held.get(trade_key(event)), event, event_limits, "USD", FX)
        assert step.trade is not None
        account, held[trade_key(event)] = step.account, step.trade
        alerts.extend(step.alerts)
    assert summary(alerts) == [
        ("BREACHED", "position_qty", "ACME.XNYS", D(300), "T1"),
        ("CLEARED", "position_qty", "ACME.XNYS", D(0), "T2"),
    ]
    assert account.breached == ()


# -- the property: alerts alternate, the last one tells the final state ---------------------

ACCOUNTS = {"ACC-1": "USD", "ACC-2": "EUR"}
INSTRUMENTS = sorted(CURRENCY)


@st.composite
def trade_versions(draw: st.DrawFn, trade_id: str) -> list[EnrichedTrade]:
    """A trade's NEW and its AMENDs, the last maybe a CANCEL, with rising versions."""
    account = draw(st.sampled_from(sorted(ACCOUNTS)))
    instrument = draw(st.sampled_from(INSTRUMENTS))
    count = draw(st.integers(min_value=1, max_value=3))
    out = []
    for n in range(1, count + 1):
        cancel = n == count and n > 1 and draw(st.booleans())
        event_type: EventType = "CANCEL" if cancel else ("NEW" if n == 1 else "AMEND")
        prev = out[-1] if out else None
        out.append(
            trade(
                trade_id,
                draw(st.sampled_from(["BUY", "SELL"])) if prev is None else prev.side,
                draw(st.integers(1, 60)) if not cancel or prev is None else prev.quantity,
                draw(st.integers(1, 200)) if not cancel or prev is None else prev.price,
                version=n,
                event_type=event_type,
                account=account,
                instrument=instrument,
                base_currency=ACCOUNTS[account],
            )
        )
    return out


def _quantized(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def final_figures(
    events: list[EnrichedTrade], account: str
) -> tuple[Decimal, Decimal, dict[str, Decimal]]:
    """Gross, net and positions of the account's final effective trades, summed afresh."""
    latest: dict[str, EnrichedTrade] = {}
    for e in events:
        if e.account == account and (
            e.trade_id not in latest or e.version > latest[e.trade_id].version
        ):
            latest[e.trade_id] = e
    notional: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    qty: dict[str, Decimal] = defaultdict(Decimal)
    for e in latest.values():
        if e.event_type != "CANCEL":
            sign = 1 if e.side == "BUY" else -1
            notional[(e.currency, e.instrument)] += sign * e.quantity * e.price * e.multiplier
            qty[e.instrument] += sign * e.quantity
    gross = net = Decimal(0)
    for ccy in sorted({c for c, _ in notional}):
        factor = conversion_factor(ccy, ACCOUNTS[account], FX)
        assert factor is not None
        gross += sum((abs(n) for (c, _), n in notional.items() if c == ccy), Decimal(0)) * factor
        net += sum((n for (c, _), n in notional.items() if c == ccy), Decimal(0)) * factor
    return _quantized(gross), _quantized(abs(net)), {i: abs(q) for i, q in qty.items()}


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=14).flatmap(
        lambda n: st.tuples(*(trade_versions(f"T{i}") for i in range(n)))
    ),
    st.randoms(use_true_random=False),
    st.integers(0, 30_000),
    st.integers(0, 20_000),
    st.integers(0, 120),
)
def test_alerts_alternate_and_the_last_tells_whether_the_final_exposure_is_over(
    histories: tuple[list[EnrichedTrade], ...],
    rnd: random.Random,
    gross_limit: int,
    net_limit: int,
    position_limit: int,
) -> None:
    events = [e for history in histories for e in history]
    rnd.shuffle(events)  # any delivery order: late versions are ignored
    table = {a: limits(a, gross_limit, net_limit, position_limit, 10**9) for a in ACCOUNTS}
    accounts, alerts = fold_alerts(events, table, ACCOUNTS, FX)

    statuses: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for alert in alerts:
        statuses[(alert.account, alert.limit, alert.instrument)].append(alert.status)
    for key, seen in statuses.items():
        assert seen == ["BREACHED", "CLEARED"] * (len(seen) // 2) + ["BREACHED"] * (
            len(seen) % 2
        ), key

    for account, state in accounts.items():
        gross, net, positions = final_figures(events, account)
        lim = table[account]
        assert notional_figures(state.currencies, ACCOUNTS[account], FX)[:2] == (gross, net)
        expected_over = {("gross_notional", ""): gross > lim.gross_notional}
        expected_over[("net_notional", "")] = net > lim.net_notional
        for instrument in INSTRUMENTS:
            assert position(state, instrument) == positions.get(instrument, 0)
            over = positions.get(instrument, 0) > lim.position_qty
            expected_over[("position_qty", instrument)] = over
        for (limit, instrument), over in expected_over.items():
            seen = statuses.get((account, limit, instrument), [])
            assert (seen[-1:] == ["BREACHED"]) == over, (limit, instrument)


# -- the service, without a broker ---------------------------------------------------------


def test_the_risk_service_emits_alerts_keyed_by_account_and_dead_letters_bad_records() -> None:
    driver = TestDriver(
        risk.SERVICE,
        tables={
            "limits": {"ACC-1": limits(gross=10_000, net=10**9, single=8_000)},
            "accounts": {
                "ACC-1": Account(
                    account_id="ACC-1", book="EQ-US", legal_entity="TFX LLC", base_currency="USD"
                )
            },
            "fx": FX,
        },
    )
    out = driver.send(
        [
            ("ACC-1", trade("T1", "BUY", 60, "100.00")),
            ("ACC-1", trade("T2", "BUY", 90, "100.00")),  # 9,000 alone; 15,000 in all
            ("ACC-1", b"{not json"),
        ],
        partition=2,
    )
    alerts = [o for o in out if o.topic == "risk.alerts"]
    assert [(o.key, o.value.status, o.value.limit, o.value.value) for o in alerts] == [
        ("ACC-1", "BREACHED", "single_trade_notional", D("9000.00")),
        ("ACC-1", "BREACHED", "gross_notional", D("15000.00")),
    ]
    assert [o.topic for o in out if o.topic != "risk.alerts"] == ["trades.rejected"]
    assert driver.store("accounts", partition=2)["ACC-1"].breached == ("gross_notional",)
    assert set(driver.store("trades", partition=2)) == {
        "ACC-1|ACME.XNYS|T1",
        "ACC-1|ACME.XNYS|T2",
    }

    cancel = trade("T2", "BUY", 90, "100.00", version=2, event_type="CANCEL", seconds=9)
    out = driver.send([("ACC-1", cancel), ("ACC-1", cancel)], partition=2)  # and a redelivery
    assert [(o.value.status, o.value.limit, o.value.value, o.value.time) for o in out] == [
        ("CLEARED", "gross_notional", D("6000.00"), T0 + dt.timedelta(seconds=9)),
    ]
    assert msgspec.json.decode(msgspec.json.encode(out[0].value), type=RiskAlert) == out[0].value


# -- hysteresis and limit changes (issue 14) ----------------------------------------------


def test_hysteresis_gives_one_breached_on_crossing_and_one_cleared_below_the_band() -> None:
    lim = msgspec.structs.replace(limits(gross=10_000, net=10**9), hysteresis=D("0.1"))
    events = [
        trade("T1", "BUY", 105, "100.00"),  # 10,500: over
        trade("T1", "BUY", 95, "100.00", version=2, event_type="AMEND", seconds=1),  # 9,500
        trade("T1", "BUY", 101, "100.00", version=3, event_type="AMEND", seconds=2),  # 10,100
        trade("T1", "BUY", 91, "100.00", version=4, event_type="AMEND", seconds=3),  # 9,100
        trade("T1", "BUY", 90, "100.00", version=5, event_type="AMEND", seconds=4),  # 9,000
        trade("T1", "BUY", 99, "100.00", version=6, event_type="AMEND", seconds=5),  # 9,900
    ]
    _, alerts = run(events, lim)
    assert summary(alerts) == [
        ("BREACHED", "gross_notional", "", D("10500.00"), "T1"),
        ("CLEARED", "gross_notional", "", D("9000.00"), "T1"),  # at 10,000 * (1 - 0.1)
    ]


def test_without_hysteresis_a_figure_back_at_its_limit_clears() -> None:
    events = [
        trade("T1", "BUY", 101, "100.00"),
        trade("T1", "BUY", 100, "100.00", version=2, event_type="AMEND", seconds=1),
    ]
    _, alerts = run(events, limits(gross=10_000, net=10**9))
    assert [a.status for a in alerts] == ["BREACHED", "CLEARED"]


ACCOUNTS_TABLE = {
    "ACC-1": Account(account_id="ACC-1", book="EQ-US", legal_entity="TFX LLC", base_currency="USD")
}


def test_a_limit_lowered_below_the_exposure_breaches_at_once_then_once_only() -> None:
    table = {"ACC-1": limits(gross=100_000, net=100_000)}
    driver = TestDriver(
        risk.SERVICE, tables={"limits": table, "accounts": ACCOUNTS_TABLE, "fx": FX}
    )
    assert driver.send([("ACC-1", trade("T1", "BUY", 60, "100.00"))]) == []  # 6,000: within
    driver.advance(1_000)  # arms the timer
    assert driver.advance(1_000 + risk.LIMITS_CHECK_MS) == []  # nothing changed

    table["ACC-1"] = limits(gross=5_000, net=100_000)  # refdata.limits changed
    out = driver.advance(1_000 + 2 * risk.LIMITS_CHECK_MS)
    assert [(o.key, o.value.status, o.value.limit, o.value.value, o.value.threshold,
             o.value.trade_id) for o in out] == [
        ("ACC-1", "BREACHED", "gross_notional", D("6000.00"), D(5_000), ""),
    ]  # fmt: skip
    assert out[0].value.message == (
        "ACC-1: gross notional 6,000.00 USD is over the limit 5,000 USD (limits changed)"
    )
    assert out[0].value.time == dt.datetime.fromtimestamp(
        (1_000 + 2 * risk.LIMITS_CHECK_MS) / 1000, dt.UTC
    )
    assert driver.advance(1_000 + 3 * risk.LIMITS_CHECK_MS) == []  # evaluated once

    table["ACC-1"] = limits(gross=7_000, net=100_000)  # raised above it again
    out = driver.advance(1_000 + 4 * risk.LIMITS_CHECK_MS)
    assert [(o.value.status, o.value.limit) for o in out] == [("CLEARED", "gross_notional")]


def test_apply_limits_with_the_limits_of_the_last_check_changes_nothing() -> None:
    lim = limits(gross=10_000)
    accounts, _ = run([trade("T1", "BUY", 60, "100.00")], lim)
    account = accounts["ACC-1"]
    assert apply_limits(account, lim, "USD", FX, T0) == (account, [])
    assert apply_limits(account, None, "USD", FX, T0) == (account, [])
