"""Risk: an account's exposure against its limits, and the alerts (docs/domain-rules.md, Risk).

Per account the exposure is kept from the effective trades (the latest version of each
trade id; a CANCEL removes it): per instrument the sum of signed quantities and, per
currency, the sum of signed notionals ``quantity * price * multiplier``. After every
event that changes it, the account's figures in its base currency are checked against
its limits: an alert goes out when a limit goes from within to over (BREACHED) and back
below its hysteresis band (CLEARED), once each; a NEW or AMEND whose own notional is over
the single-trade limit gives a BREACHED alert of its own. :func:`apply_limits` checks an
account again, at once, when its limits changed.

State is two kinds of immutable values, so that a service stores one small value per
trade and one per account: :class:`TradeExposure` (per account, instrument and trade id;
a cancel is kept as a tombstone holding its version) and :class:`AccountRisk` (the sums
and the limits currently over). :func:`apply_trade` returns new values, never mutates.
The sums are kept incrementally, so one event costs the same however many instruments
the account holds; sums and differences of the products are exact in the one context of
domain/arithmetic.py (64 digits: enough for any trade inside the bounds), so any order of
the same effective trades gives the same sums, and the same figures as summing them
afresh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

import msgspec

from tradeflux.domain.arithmetic import absolute, add, multiply, negate, subtract, to_cents
from tradeflux.domain.pnl import conversion_factor
from tradeflux.domain.schemas import (
    AlertStatus,
    EnrichedTrade,
    FxRate,
    LimitKind,
    Limits,
    RiskAlert,
)

_ZERO = Decimal(0)
_POSITION_PREFIX = "position_qty|"


class TradeExposure(msgspec.Struct, frozen=True, array_like=True):
    """One version of a trade as risk holds it; ``live`` False is a cancel (a tombstone).

    ``quantity`` is signed (+ BUY, - SELL); the notional is in ``currency``.
    """

    version: int
    live: bool
    instrument: str
    currency: str
    quantity: Decimal
    price: Decimal
    multiplier: Decimal

    @classmethod
    def of(cls, trade: EnrichedTrade) -> TradeExposure:
        """Return the exposure of an enriched trade event; a CANCEL gives a tombstone."""
        qty = trade.quantity if trade.side == "BUY" else negate(trade.quantity)
        return cls(
            trade.version,
            trade.event_type != "CANCEL",
            trade.instrument,
            trade.currency,
            qty,
            trade.price,
            trade.multiplier,
        )

    @property
    def notional(self) -> Decimal:
        """Return the signed notional ``quantity * price * multiplier``, in ``currency``."""
        return multiply(multiply(self.quantity, self.price), self.multiplier)


class InstrumentExposure(msgspec.Struct, frozen=True, array_like=True):
    """The sums of an account's effective trades in one instrument.

    ``quantity``: the sum of the signed quantities; ``notionals``: per currency (in
    practice only the instrument's), the sum of the signed notionals, zeros left out;
    ``trades``: how many effective trades are summed.
    """

    quantity: Decimal
    notionals: dict[str, Decimal]
    trades: int


class CurrencyExposure(msgspec.Struct, frozen=True, array_like=True):
    """An account's notionals in one currency, summed over its instruments.

    ``net``: the sum of the instruments' signed notionals; ``gross``: the sum of their
    absolute values.
    """

    net: Decimal
    gross: Decimal


class AccountRisk(msgspec.Struct, frozen=True, kw_only=True):
    """An account's exposure and the limits it is over; a value of the risk store.

    ``breached`` holds the keys (:func:`breach_key`) of the limits over at the last
    check, sorted; ``limits`` are the limits of that check (None: no check yet, or the
    account had no limits), so a changed limit re-checks every instrument, and
    :func:`apply_limits` can tell a limits change it has not evaluated yet.
    ``position_limit`` is what older values held instead (the position limit alone).
    Immutable: :func:`apply_trade` returns a new value.
    """

    account: str
    instruments: dict[str, InstrumentExposure] = msgspec.field(default_factory=dict)
    currencies: dict[str, CurrencyExposure] = msgspec.field(default_factory=dict)
    breached: tuple[str, ...] = ()
    position_limit: Decimal | None = None
    limits: Limits | None = None
    base_currency: str = ""  # the one of the last event's check


class NotionalFigures(NamedTuple):
    """An account's notionals in its base currency, quantized to 0.01 (half-even).

    ``missing_fx`` lists the currencies left out for want of an FX conversion (sorted).
    """

    gross: Decimal
    net: Decimal
    missing_fx: tuple[str, ...]


class LimitChange(NamedTuple):
    """A limit that went over (BREACHED) or back within (CLEARED), with its figures."""

    status: AlertStatus
    limit: LimitKind
    instrument: str
    value: Decimal
    threshold: Decimal


class RiskStep(NamedTuple):
    """What one event did: the trade's new exposure (None: ignored), the account, alerts."""

    trade: TradeExposure | None
    account: AccountRisk
    alerts: list[RiskAlert]


def breach_key(limit: LimitKind, instrument: str = "") -> str:
    """Return the key a limit's state is held under: the kind, and the instrument if any."""
    return f"{limit}|{instrument}" if instrument else limit


def _add(
    instruments: dict[str, InstrumentExposure],
    currencies: dict[str, CurrencyExposure],
    trade: TradeExposure,
    sign: int,
) -> None:
    """Add (``sign`` 1) or take out (-1) ``trade`` in the (copied) sums of an account."""
    held = instruments.get(trade.instrument)
    notionals = {} if held is None else dict(held.notionals)
    before = notionals.get(trade.currency, _ZERO)
    notional = trade.notional
    after = add(before, notional) if sign > 0 else subtract(before, notional)
    if after:
        notionals[trade.currency] = after
    else:
        notionals.pop(trade.currency, None)
    trades = (0 if held is None else held.trades) + sign
    if trades:
        held_qty = _ZERO if held is None else held.quantity
        quantity = add(held_qty, trade.quantity) if sign > 0 else subtract(held_qty, trade.quantity)
        instruments[trade.instrument] = InstrumentExposure(quantity, notionals, trades)
    else:  # its last trade went: the sums are exactly zero
        del instruments[trade.instrument]
    total = currencies.get(trade.currency, CurrencyExposure(_ZERO, _ZERO))
    net = subtract(add(total.net, after), before)
    gross = subtract(add(total.gross, absolute(after)), absolute(before))
    if gross:
        currencies[trade.currency] = CurrencyExposure(net, gross)
    else:  # nothing left in this currency (gross 0 means every notional is 0)
        currencies.pop(trade.currency, None)


def notional_figures(
    currencies: Mapping[str, CurrencyExposure], base_currency: str, fx: Mapping[str, FxRate]
) -> NotionalFigures:
    """Return an account's gross and net notional in ``base_currency``.

    In currency order, each currency's sums are multiplied by its
    :func:`~tradeflux.domain.pnl.conversion_factor` to base: ``gross`` is the sum of the
    converted gross sums, ``net`` the absolute value of the sum of the converted net
    sums, both quantized to 0.01 at the end. A currency without a conversion is left out
    and listed.
    """
    gross = net = _ZERO
    missing: list[str] = []
    for currency in sorted(currencies):
        factor = conversion_factor(currency, base_currency, fx)
        if factor is None:
            missing.append(currency)
            continue
        total = currencies[currency]
        gross = add(gross, multiply(total.gross, factor))
        net = add(net, multiply(total.net, factor))
    return NotionalFigures(to_cents(gross), to_cents(absolute(net)), tuple(missing))


def position(account: AccountRisk, instrument: str) -> Decimal:
    """Return the absolute net quantity of ``account`` in ``instrument`` (0 if none)."""
    held = account.instruments.get(instrument)
    return _ZERO if held is None else absolute(held.quantity)


def single_trade_notional(
    trade: TradeExposure, base_currency: str, fx: Mapping[str, FxRate]
) -> Decimal | None:
    """Return ``|quantity * price * multiplier|`` in base, quantized to 0.01; None if no FX."""
    factor = conversion_factor(trade.currency, base_currency, fx)
    if factor is None:
        return None
    return to_cents(multiply(absolute(trade.notional), factor))


def apply_trade(
    account: AccountRisk,
    held: TradeExposure | None,
    event: EnrichedTrade,
    limits: Limits | None,
    base_currency: str,
    fx: Mapping[str, FxRate],
) -> RiskStep:
    """Apply one enriched trade event to the account's exposure; return it and the alerts.

    ``held`` is what is held for the event's account, instrument and trade id. An event
    whose version is not above the held one changes nothing and alerts nothing
    (``trade`` None, the same ``account``). Otherwise the held trade is taken out of the
    sums and the event put in (a CANCEL puts nothing in), and, when the account has
    ``limits``, the single-trade check (a NEW or AMEND) and then :func:`check_limits`
    run. Alerts carry the event's trade id and trade time.
    """
    if held is not None and event.version <= held.version:
        return RiskStep(None, account, [])
    trade = TradeExposure.of(event)
    instruments = dict(account.instruments)
    currencies = dict(account.currencies)
    if held is not None and held.live:
        _add(instruments, currencies, held, -1)
    if trade.live:
        _add(instruments, currencies, trade, 1)
    new = AccountRisk(
        account=account.account,
        instruments=instruments,
        currencies=currencies,
        breached=account.breached,
        base_currency=base_currency,
    )  # limits None: without limits, the next check with limits checks everything
    if limits is None:
        return RiskStep(trade, new, [])

    alerts: list[RiskAlert] = []
    single = single_trade_notional(trade, base_currency, fx) if trade.live else None
    if single is not None and single > limits.single_trade_notional:
        change = LimitChange(
            "BREACHED", "single_trade_notional", "", single, limits.single_trade_notional
        )
        cause = Cause(event.trade_id, event.trade_time)
        alerts.append(_make_alert(account.account, base_currency, cause, change))
    if account.limits == limits:  # only the event's positions moved
        touched = {trade.instrument} | ({held.instrument} if held is not None else set())
    else:  # a first check, or changed limits: every instrument held or over before
        touched = _every_instrument(new, account.breached)
    cause = Cause(event.trade_id, event.trade_time)
    new, limit_alerts = _check(new, limits, base_currency, fx, touched, cause)
    return RiskStep(trade, new, alerts + limit_alerts)


class Cause(NamedTuple):
    """What an alert names as its cause: a trade event's id and trade time, or ("", now)."""

    trade_id: str
    time: dt.datetime


def _every_instrument(account: AccountRisk, breached: Iterable[str]) -> set[str]:
    """Return every instrument ``account`` holds or whose position was over before."""
    over_before = (k for k in breached if k.startswith(_POSITION_PREFIX))
    return set(account.instruments) | {k.removeprefix(_POSITION_PREFIX) for k in over_before}


def _check(
    account: AccountRisk,
    limits: Limits,
    base_currency: str,
    fx: Mapping[str, FxRate],
    touched: set[str],
    cause: Cause,
) -> tuple[AccountRisk, list[RiskAlert]]:
    """Check the figures of ``account`` against ``limits``; return it updated and the alerts."""
    figures = notional_figures(account.currencies, base_currency, fx)
    breached, changes = check_limits(account, figures, limits, touched)
    alerts = []
    for change in changes:
        missing = figures.missing_fx if change.limit != "position_qty" else ()
        alerts.append(_make_alert(account.account, base_currency, cause, change, missing))
    checked = msgspec.structs.replace(
        account, breached=breached, position_limit=limits.position_qty, limits=limits
    )
    return checked, alerts


def apply_limits(
    account: AccountRisk,
    limits: Limits | None,
    base_currency: str,
    fx: Mapping[str, FxRate],
    now: dt.datetime,
) -> tuple[AccountRisk, list[RiskAlert]]:
    """Re-evaluate ``account`` at once against limits that changed on ``refdata.limits``.

    Limits equal to those of the account's last check change nothing (the same value,
    no alert), so calling it again is harmless. Otherwise every limit is checked as after
    a trade event (hysteresis and all): a limit lowered below the exposure gives its
    BREACHED, one raised above it its CLEARED, each naming no trade (``trade_id`` "")
    and ``now`` as its time. Limits gone (None) check nothing: the account keeps its
    state until it has limits again.
    """
    if limits is None or account.limits == limits:
        return account, []
    touched = _every_instrument(account, account.breached)
    return _check(account, limits, base_currency, fx, touched, Cause("", now))


def check_limits(
    account: AccountRisk, figures: NotionalFigures, limits: Limits, instruments: Iterable[str]
) -> tuple[tuple[str, ...], list[LimitChange]]:
    """Return the limits now over (sorted keys) and those whose state changed.

    A limit within before is over when ``value > threshold``; one over before stays
    over until ``value <= threshold * (1 - limits.hysteresis)`` (the hysteresis band).
    Checked in this order: gross notional, net notional, then the position of each of
    ``instruments`` (in instrument order); the other instruments keep their state from
    ``account.breached``. A limit over now and not before is BREACHED; over before and
    not now, CLEARED; otherwise nothing.
    """
    checked = sorted(set(instruments))
    checks: list[tuple[LimitKind, str, Decimal, Decimal]] = [
        ("gross_notional", "", figures.gross, limits.gross_notional),
        ("net_notional", "", figures.net, limits.net_notional),
    ]
    checks.extend(("position_qty", i, position(account, i), limits.position_qty) for i in checked)
    before = set(account.breached)
    over = {key for key in before if key.startswith(_POSITION_PREFIX)}
    over -= {breach_key("position_qty", i) for i in checked}
    changes: list[LimitChange] = []
    keep = subtract(Decimal(1), limits.hysteresis)
    for kind, instrument, value, threshold in checks:
        key = breach_key(kind, instrument)
        was_over = key in before
        is_over = value > multiply(threshold, keep) if was_over else value > threshold
        if is_over:
            over.add(key)
        if is_over != was_over:
            status: AlertStatus = "BREACHED" if is_over else "CLEARED"
            changes.append(LimitChange(status, kind, instrument, value, threshold))
    return tuple(sorted(over)), changes


_LABEL: dict[LimitKind, str] = {
    "gross_notional": "gross notional",
    "net_notional": "net notional",
    "position_qty": "position",
    "single_trade_notional": "notional",
}


def _make_alert(
    account: str,
    base_currency: str,
    cause: Cause,
    change: LimitChange,
    missing_fx: tuple[str, ...] = (),
) -> RiskAlert:
    """Return the alert of ``change``, caused by ``cause``, with its human message."""
    status, limit, instrument, value, threshold = change
    if limit == "position_qty":
        what, bound = f"position in {instrument} {value:,}", f"{threshold:,}"
    else:
        what = f"{_LABEL[limit]} {value:,} {base_currency}"
        bound = f"{threshold:,} {base_currency}"
    by = f"trade {cause.trade_id}" if cause.trade_id else "limits changed"
    if limit == "single_trade_notional":
        message = f"{account}: trade {cause.trade_id} {what} is over the limit {bound}"
    else:
        verb = "is over" if status == "BREACHED" else "is back within"
        message = f"{account}: {what} {verb} the limit {bound} ({by})"
    if missing_fx:
        message += f"; left out for want of an FX rate: {', '.join(missing_fx)}"
    return RiskAlert(
        account=account,
        status=status,
        limit=limit,
        value=value,
        threshold=threshold,
        instrument=instrument,
        trade_id=cause.trade_id,
        time=cause.time,
        message=message,
        base_currency=base_currency,
        missing_fx=missing_fx,
    )


def trade_key(event: EnrichedTrade) -> str:
    """Return the key of a trade's exposure: ``account|instrument|trade_id``.

    Per account and instrument, as positions keep trades: an AMEND that moves a trade
    reaches risk as a CANCEL of the old and a NEW of the new with the same version.
    """
    return f"{event.account}|{event.instrument}|{event.trade_id}"


def fold_alerts(
    events: Iterable[EnrichedTrade],
    limits: Mapping[str, Limits],
    base_currencies: Mapping[str, str],
    fx: Mapping[str, FxRate],
) -> tuple[dict[str, AccountRisk], list[RiskAlert]]:
    """Apply ``events`` in order as the risk service does; return the accounts and alerts.

    The state is keyed as the service keys it (:func:`trade_key`). An account's base
    currency is ``base_currencies[account]``, else the event's ``base_currency``.
    """
    trades: dict[str, TradeExposure] = {}
    accounts: dict[str, AccountRisk] = {}
    alerts: list[RiskAlert] = []
    for event in events:
        key = trade_key(event)
        account = accounts.get(event.account) or AccountRisk(account=event.account)
        base = base_currencies.get(event.account, event.base_currency)
        step = apply_trade(account, trades.get(key), event, limits.get(event.account), base, fx)
        if step.trade is not None:
            trades[key] = step.trade
            accounts[event.account] = step.account
            alerts.extend(step.alerts)
    return accounts, alerts
