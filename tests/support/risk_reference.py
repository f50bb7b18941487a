"""An independent, deliberately plain implementation of docs/domain-rules.md, "Risk".

End-to-end tests compare the alerts the risk service wrote with the alerts this model
says the rules require, exactly (Decimal equality, times as instants). It shares nothing
with ``tradeflux.domain.risk``: only the event structs and the FX conversion of the
reference model (tests/support/reference.py, itself independent of the P&L code).

It is a fold over the events that recomputes every figure from scratch after each event
from the account's effective trades: no running sums, no "touched instruments"
shortcut, so that each rule can be checked against the document by reading it.

Points the document leaves open, resolved by reading ``domain/risk.py`` (and only them):

- ``missing_fx`` is carried by the ``gross_notional`` and ``net_notional`` alerts only;
  a ``position_qty`` or ``single_trade_notional`` alert has none (a quantity has no
  currency; a trade without a conversion is not checked at all).
- The message is free text the document does not define (its format is pinned by the
  unit tests): this model leaves it empty and the tests compare it loosely.

Not from the code: every instrument the account ever held is checked after every event
(the document's "per instrument"); the tables are taken as constant, as the tests load
them before the service starts, so no limit or rate changes mid-stream.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from tests.support.reference import conversion, in_rules_context
from tradeflux.domain.schemas import EnrichedTrade, FxRate, Limits, RiskAlert

CENT = Decimal("0.01")
ZERO = Decimal(0)


@dataclass
class HeldTrade:
    """The latest version of a trade (per account, instrument, id); ``live`` False: cancelled."""

    version: int
    live: bool
    event: EnrichedTrade


@dataclass
class AccountBook:
    """What the model keeps per account: its trades and which limits were over at the last check."""

    trades: dict[tuple[str, str], HeldTrade] = field(default_factory=dict)  # (instrument, id)
    instruments: set[str] = field(default_factory=set)  # every instrument ever held
    over: set[tuple[str, str]] = field(default_factory=set)  # (limit, instrument or "")


@in_rules_context
def signed_quantity(trade: EnrichedTrade) -> Decimal:
    """+ quantity for a BUY, - quantity for a SELL."""
    return trade.quantity if trade.side == "BUY" else -trade.quantity


@in_rules_context
def cents(amount: Decimal) -> Decimal:
    """Quantize to 0.01, half-even."""
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


@in_rules_context
def figures(
    book: AccountBook, base: str, rates: dict[str, Decimal]
) -> tuple[Decimal, Decimal, dict[str, Decimal], tuple[str, ...]]:
    """Return gross and net notional in ``base``, position per instrument, missing currencies."""
    position = dict.fromkeys(book.instruments, ZERO)  # signed, until the end
    n: dict[tuple[str, str], Decimal] = {}  # (instrument, currency) -> signed notional
    for held in book.trades.values():
        if held.live:
            t = held.event
            position[t.instrument] += signed_quantity(t)
            key = (t.instrument, t.currency)
            n[key] = n.get(key, ZERO) + signed_quantity(t) * t.price * t.multiplier
    gross = net = ZERO
    missing = []
    for currency in sorted({c for _, c in n}):
        net_c = sum((v for (_, c), v in n.items() if c == currency), ZERO)
        gross_c = sum((abs(v) for (_, c), v in n.items() if c == currency), ZERO)
        factor = conversion(currency, base, rates)
        if factor is None:
            missing.append(currency)
            continue
        gross += gross_c * factor
        net += net_c * factor
    absolute = {i: abs(q) for i, q in position.items()}
    return cents(gross), cents(abs(net)), absolute, tuple(missing)


def alert(
    event: EnrichedTrade,
    status: str,
    limit: str,
    value: Decimal,
    threshold: Decimal,
    base: str,
    instrument: str = "",
    missing_fx: tuple[str, ...] = (),
) -> RiskAlert:
    """The alert ``event`` caused (message left empty: see the module docstring)."""
    return RiskAlert(
        account=event.account,
        status=status,  # type: ignore[arg-type]
        limit=limit,  # type: ignore[arg-type]
        value=value,
        threshold=threshold,
        instrument=instrument,
        trade_id=event.trade_id,
        time=event.trade_time,
        message="",
        base_currency=base,
        missing_fx=missing_fx,
    )


@in_rules_context
def expected_alerts(
    events: Iterable[EnrichedTrade],
    limits: Iterable[Limits],
    base_currencies: Mapping[str, str],
    fx_rates: Iterable[FxRate],
) -> dict[str, list[RiskAlert]]:
    """Return, per account, the alerts the rules require from ``events``, in order.

    ``events``: what trades.enriched holds, in an order that keeps each account's events
    in the order the service reads them. ``limits`` and ``fx_rates``: the tables as they
    stand throughout (constant); ``base_currencies``: account id -> base currency.
    """
    limits_of = {lim.account_id: lim for lim in limits}
    rates = {r.pair: r.rate for r in fx_rates}
    books: dict[str, AccountBook] = {}
    out: dict[str, list[RiskAlert]] = {}
    for event in events:
        book = books.setdefault(event.account, AccountBook())
        key = (event.instrument, event.trade_id)
        held = book.trades.get(key)
        if held is not None and event.version <= held.version:
            continue  # not above the version held: changes nothing, alerts nothing
        live = event.event_type != "CANCEL"
        book.trades[key] = HeldTrade(event.version, live, event)
        if live:
            book.instruments.add(event.instrument)
        lim = limits_of.get(event.account)
        if lim is None:
            continue  # tracked, never checked
        base = base_currencies.get(event.account, event.base_currency)
        alerts = out.setdefault(event.account, [])

        # 1. The single trade (NEW or AMEND), when its currency converts.
        if live:
            factor = conversion(event.currency, base, rates)
            if factor is not None:
                single = cents(abs(event.quantity * event.price * event.multiplier) * factor)
                if single > lim.single_trade_notional:
                    alerts.append(
                        alert(event, "BREACHED", "single_trade_notional", single,
                              lim.single_trade_notional, base)
                    )  # fmt: skip

        # 2. Gross, net, then each instrument's position, against the previous check.
        gross, net, position, missing = figures(book, base, rates)
        checks = [
            ("gross_notional", "", gross, lim.gross_notional, missing),
            ("net_notional", "", net, lim.net_notional, missing),
        ]
        checks += [("position_qty", i, position[i], lim.position_qty, ()) for i in sorted(position)]
        for limit, instrument, value, threshold, missing_fx in checks:
            was_over = (limit, instrument) in book.over
            # over: above the threshold; once over, until at or below the hysteresis band
            is_over = value > threshold * (1 - lim.hysteresis) if was_over else value > threshold
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


def comparable(alert: RiskAlert) -> tuple[object, ...]:
    """The fields of an alert the rules determine: all but the free-text message.

    Decimals compare by value and ``time`` as an instant (converted to UTC).
    """
    return (
        alert.account, alert.status, alert.limit, alert.value, alert.threshold,
        alert.instrument, alert.trade_id, alert.time.astimezone(dt.UTC),
        alert.base_currency, tuple(alert.missing_fx),
    )  # fmt: skip
