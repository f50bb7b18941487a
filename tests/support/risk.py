"""Risk runs on the real broker: the input (a simulated session's enriched events plus a
hand-made account), topics, reading the alerts back, and comparing them with the rules'
independent fold (tests/support/risk_reference.py). Shared by tests/integration/test_risk.py
and tests/fault/test_risk_crash.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import msgspec

from tests.support.kafka_tools import (
    ServiceProcess,
    assert_running,
    caught_up,
    producer,
    read_all,
    wait_for,
)
from tests.support.pipeline import REFDATA_DIR, REFDATA_FILES, reference, simulated_session
from tests.support.risk_reference import comparable, expected_alerts
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.domain.schemas import EnrichedTrade, FxRate, Limits, RiskAlert
from tradeflux.gateway.refdata import load_files
from tradeflux.sim.refdata import load_refdata, read_structs
from tradeflux.sim.trades import TradeMix

_ENCODE = msgspec.json.Encoder(decimal_format="string").encode

HAND_ACCOUNT = "ACC-9001"  # on refdata.limits (added here), not on refdata.accounts
HAND_LIMITS = Limits(
    account_id=HAND_ACCOUNT,
    gross_notional=Decimal(1_000_000),
    net_notional=Decimal(500_000),
    position_qty=Decimal(1_000),
    single_trade_notional=Decimal(400_000),
)


@dataclass(frozen=True)
class RiskInput:
    """A risk run's input: the events for trades.enriched and the tables they meet."""

    events: list[EnrichedTrade]
    limits: list[Limits]
    base_currencies: dict[str, str]
    fx_rates: list[FxRate]  # the last rate per pair, as marketdata.fx ends up


def risk_input(count: int, seed: int) -> RiskInput:
    """Return a simulated session's enriched events plus the hand-made account's, and tables."""
    mix = TradeMix(amend_rate=0.08, cancel_rate=0.04, duplicate_rate=0.01, malformed_rate=0.01)
    session = simulated_session(count, seed, mix)
    events = list(reference(session).enriched)
    fx = {r.pair: r for r in read_structs(REFDATA_DIR / "fx.csv", FxRate)}
    fx.update({r.pair: r for r in session.fx_rates})
    return RiskInput(
        events=events + hand_made_events(events[0]),
        limits=[*read_structs(REFDATA_DIR / "limits.csv", Limits), HAND_LIMITS],
        base_currencies={a.account_id: a.base_currency for a in load_refdata(REFDATA_DIR).accounts},
        fx_rates=list(fx.values()),
    )


def hand_made_events(template: EnrichedTrade) -> list[EnrichedTrade]:
    """Events of HAND_ACCOUNT (base EUR from the trades): see the comments for what each does."""
    t0 = template.trade_time

    def trade(n: int, trade_id: str, side: str, qty: int, price: str, **kw: Any) -> EnrichedTrade:
        instrument = kw.pop("instrument", "AAA.XNYS")
        currency = kw.pop("currency", "USD")
        q, p = Decimal(qty), Decimal(price)
        return msgspec.structs.replace(
            template, event_type=kw.pop("event_type", "NEW"), trade_id=trade_id,
            version=kw.pop("version", 1), account=HAND_ACCOUNT, instrument=instrument,
            side=side, quantity=q, price=p, currency=currency, multiplier=Decimal(1),
            notional=q * p, base_currency="EUR", trade_time=t0 + dt.timedelta(seconds=n),
        )  # fmt: skip

    # In EUR (1 / EURUSD); the SEK trade has no FX rate, so gross and net leave it out.
    h1 = trade(1, "H1", "BUY", 100, "1000.00")  # ~92k: within every limit
    h2 = trade(2, "H2", "SELL", 50, "200.00", instrument="VOLV.XSTO", currency="SEK")
    h3 = trade(3, "H3", "BUY", 1_000, "700.00")  # single ~646k, net ~738k, AAA 1,100: over
    h4 = trade(4, "H4", "SELL", 3_000, "150.00", instrument="BBB.XNAS")
    # ^ single ~415k and gross ~1.15M over, net ~323k back within, BBB 3,000 over
    h3_cancel = msgspec.structs.replace(h3, event_type="CANCEL", version=2)
    # ^ gross ~507k back within, AAA 100 back within
    h4_amend = trade(
        6, "H4", "SELL", 500, "150.00", instrument="BBB.XNAS", event_type="AMEND", version=2
    )  # BBB 500 back within
    # Redeliveries (H3 at once, then H3 stale after its cancel, the amend again, the first
    # H4): not above the version held, so nothing changes and nothing is alerted.
    return [h1, h2, h3, h3, h4, h3_cancel, h4_amend, h3, h4_amend, h4]


def prepare_risk_topics(settings: Settings, prefix: str, data: RiskInput) -> None:
    """Create every topic under ``prefix``; load the sample refdata, the extra limits, FX.

    The global tables are complete before the service starts, so every event meets the
    same limits and rates (the reference's).
    """
    create_topics(replace(settings, topic_prefix=prefix, partitions=6), TopicSet.ALL)
    report = load_files(REFDATA_FILES, settings.client_config(), prefix)
    assert not report.errors
    prod = producer(settings)
    prod.produce(f"{prefix}refdata.limits", _ENCODE(HAND_LIMITS), HAND_ACCOUNT.encode())
    for rate in data.fx_rates:  # after fx.csv: the session's rates are the last per pair
        prod.produce(f"{prefix}marketdata.fx", _ENCODE(rate), rate.pair.encode())
    assert prod.flush(30) == 0


def expected_for(data: RiskInput) -> dict[str, list[RiskAlert]]:
    """The alerts per account the rules require from ``data``."""
    return expected_alerts(data.events, data.limits, data.base_currencies, data.fx_rates)


def read_alerts(settings: Settings, prefix: str) -> dict[str, list[RiskAlert]]:
    """Return risk.alerts (read_committed) per account, in offset order; keys must be accounts."""
    decoder = msgspec.json.Decoder(RiskAlert)
    out: dict[str, list[RiskAlert]] = {}
    for m in read_all(settings, f"{prefix}risk.alerts", timeout_s=120):
        alert = decoder.decode(m.value())
        assert m.key().decode() == alert.account
        out.setdefault(alert.account, []).append(alert)
    return out


def assert_alerts_equal(
    seen: dict[str, list[RiskAlert]], expected: dict[str, list[RiskAlert]]
) -> None:
    """Assert per account the same alerts in the same order (all but the message, exactly)
    and that each message names the account, the trade and, for a position, the instrument."""
    assert {a: [comparable(x) for x in xs] for a, xs in seen.items()} == {
        a: [comparable(x) for x in xs] for a, xs in expected.items()
    }
    for alerts in seen.values():
        for a in alerts:
            assert a.message.startswith(f"{a.account}: ") and a.trade_id in a.message
            assert a.instrument in a.message


def assert_input_exercises_the_rules(expected: dict[str, list[RiskAlert]]) -> int:
    """Assert the expected alerts are many and varied (no vacuous pass); return their count."""
    simulated = [a for acc, xs in expected.items() if acc != HAND_ACCOUNT for a in xs]
    kinds = {(a.status, a.limit) for a in simulated}
    assert len(simulated) >= 45, f"only {len(simulated)} alerts: lower the limits or feed more"
    assert {("BREACHED", "single_trade_notional"), ("BREACHED", "gross_notional"),
            ("BREACHED", "position_qty"), ("CLEARED", "position_qty")} <= kinds  # fmt: skip
    hand = [(a.status, a.limit, a.instrument, a.trade_id, a.missing_fx)
            for a in expected[HAND_ACCOUNT]]  # fmt: skip
    assert hand == [
        ("BREACHED", "single_trade_notional", "", "H3", ()),
        ("BREACHED", "net_notional", "", "H3", ("SEK",)),
        ("BREACHED", "position_qty", "AAA.XNYS", "H3", ()),
        ("BREACHED", "single_trade_notional", "", "H4", ()),
        ("BREACHED", "gross_notional", "", "H4", ("SEK",)),
        ("CLEARED", "net_notional", "", "H4", ("SEK",)),
        ("BREACHED", "position_qty", "BBB.XNAS", "H4", ()),
        ("CLEARED", "gross_notional", "", "H3", ("SEK",)),
        ("CLEARED", "position_qty", "AAA.XNYS", "H3", ()),
        ("CLEARED", "position_qty", "BBB.XNAS", "H4", ()),
    ]
    return len(simulated) + len(hand)


def wait_caught_up(settings: Settings, prefix: str, proc: ServiceProcess) -> None:
    """Wait until the risk group has committed trades.enriched to its end."""
    wait_for(
        lambda: assert_running(proc)
        or caught_up(settings, f"{prefix}risk", f"{prefix}trades.enriched"),
        90, "risk to catch up",
    )  # fmt: skip
