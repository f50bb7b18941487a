"""The risk rules' fold of tests/support/risk_reference.py, kept incrementally, for long runs.

``risk_reference.expected_alerts`` recomputes every figure from all of an account's trades
after each event, so that it reads like the rules; that is quadratic in an account's
trades, and a fault run's tens of thousands of events would take it minutes. This fold
keeps the same state (the latest version of each trade per account, instrument and id;
the limits over at the last check) plus running sums of the signed quantities and
notionals of the live trades, and checks exactly as the reference does. A unit test
holds its alerts equal to the reference's (tests/unit/test_fault_support.py); it shares
nothing with ``tradeflux.domain.risk``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from tests.support.reference import conversion
from tests.support.risk_reference import ZERO, alert, cents, signed_quantity
from tradeflux.domain.schemas import EnrichedTrade, FxRate, Limits, RiskAlert


@dataclass
class _Book:
    """One account: its trades, running sums over the live ones, the limits over."""

    trades: dict[tuple[str, str], tuple[int, bool, EnrichedTrade]] = field(default_factory=dict)
    position: dict[str, Decimal] = field(default_factory=dict)  # every instrument ever held
    notional: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (instrument, ccy)
    live: dict[tuple[str, str], int] = field(default_factory=dict)  # live trades per key
    over: set[tuple[str, str]] = field(default_factory=set)

    def add(self, t: EnrichedTrade, sign: int) -> None:
        """Add (``sign`` 1) or take out (-1) a live trade's contributions."""
        q = signed_quantity(t)
        self.position[t.instrument] = self.position.get(t.instrument, ZERO) + sign * q
        key = (t.instrument, t.currency)
        self.notional[key] = self.notional.get(key, ZERO) + sign * (q * t.price * t.multiplier)
        self.live[key] = self.live.get(key, 0) + sign
        if self.live[key] == 0:  # no live trade left: the key is gone, as in the reference
            del self.live[key], self.notional[key]

    def figures(
        self, base: str, rates: dict[str, Decimal]
    ) -> tuple[Decimal, Decimal, dict[str, Decimal], tuple[str, ...]]:
        gross = net = ZERO
        missing = []
        for currency in sorted({c for _, c in self.notional}):
            values = [v for (_, c), v in self.notional.items() if c == currency]
            factor = conversion(currency, base, rates)
            if factor is None:
                missing.append(currency)
                continue
            gross += sum((abs(v) for v in values), ZERO) * factor
            net += sum(values, ZERO) * factor
        absolute = {i: abs(q) for i, q in self.position.items()}
        return cents(gross), cents(abs(net)), absolute, tuple(missing)


def fold_alerts(
    events: Iterable[EnrichedTrade],
    limits: Iterable[Limits],
    base_currencies: Mapping[str, str],
    fx_rates: Iterable[FxRate],
) -> dict[str, list[RiskAlert]]:
    """Return what ``risk_reference.expected_alerts`` returns for the same arguments."""
    limits_of = {lim.account_id: lim for lim in limits}
    rates = {r.pair: r.rate for r in fx_rates}
    books: dict[str, _Book] = {}
    out: dict[str, list[RiskAlert]] = {}
    for event in events:
        book = books.setdefault(event.account, _Book())
        key = (event.instrument, event.trade_id)
        held = book.trades.get(key)
        if held is not None and event.version <= held[0]:
            continue
        if held is not None and held[1]:
            book.add(held[2], -1)
        live = event.event_type != "CANCEL"
        book.trades[key] = (event.version, live, event)
        if live:
            book.add(event, 1)
        lim = limits_of.get(event.account)
        if lim is None:
            continue
        base = base_currencies.get(event.account, event.base_currency)
        alerts = out.setdefault(event.account, [])
        if live:
            factor = conversion(event.currency, base, rates)
            if factor is not None:
                single = cents(abs(event.quantity * event.price * event.multiplier) * factor)
                if single > lim.single_trade_notional:
                    alerts.append(
                        alert(event, "BREACHED", "single_trade_notional", single,
                              lim.single_trade_notional, base)
                    )  # fmt: skip
        gross, net, position, missing = book.figures(base, rates)
        checks = [
            ("gross_notional", "", gross, lim.gross_notional, missing),
            ("net_notional", "", net, lim.net_notional, missing),
        ]
        checks += [("position_qty", i, position[i], lim.position_qty, ()) for i in sorted(position)]
        for limit, instrument, value, threshold, missing_fx in checks:
            was_over = (limit, instrument) in book.over
            is_over = value > threshold
            if is_over and not was_over:
                book.over.add((limit, instrument))
                alerts.append(
                    alert(event, "BREACHED", limit, value, threshold, base, instrument, missing_fx)
                )
            elif was_over and not is_over:
                book.over.discard((limit, instrument))
                alerts.append(
                    alert(event, "CLEARED", limit, value, threshold, base, instrument, missing_fx)
                )
    return {account: alerts for account, alerts in out.items() if alerts}
