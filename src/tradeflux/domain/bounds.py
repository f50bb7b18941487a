"""The bounds of every field of a trade event and of reference data: the single source.

docs/domain-rules.md, "Bounds", states them and why. The gateway (HTTP and FIX) refuses
an event out of bounds before it reaches Kafka (HTTP 422 naming the field and the bound);
the validator rejects one that reached ``trades.raw`` another way (``OUT_OF_BOUNDS``);
reference data is checked when it is loaded and again when a service reads it from its
global table. Inside the bounds every computation of the domain is total and, where the
rules say so, exact (domain/arithmetic.py derives its precision from these numbers).

Decimal figures: 18 significant digits is what a signed 64-bit integer of minor units
holds (how FIX engines, exchanges and most back offices store a quantity or price), so
any figure a counterparty system can represent fits; 8 decimal places covers fractional
shares and crypto units (1E-8); the magnitudes are far beyond any real trade.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NamedTuple

from tradeflux.domain.arithmetic import absolute, multiply
from tradeflux.domain.identifiers import (
    is_valid_currency,
    is_valid_isin,
    is_valid_lei,
    is_valid_mic,
)
from tradeflux.domain.schemas import (
    Account,
    Counterparty,
    FxRate,
    Instrument,
    Limits,
    Price,
    TradeEvent,
)

MAX_SIGNIFICANT_DIGITS = 18
MAX_DECIMAL_PLACES = 8
MAX_QUANTITY = Decimal("1E+12")  # |quantity| below this: a trillion units
MAX_PRICE = Decimal("1E+9")  # |price| below this: a billion per unit
MAX_MULTIPLIER = Decimal("1E+8")  # contract sizes to 12,500,000 (CME yen futures) fit
MAX_MULTIPLIER_DIGITS = 10
MAX_LIMIT = Decimal("1E+18")
MIN_FX_RATE = Decimal("1E-8")  # so a conversion factor, even via USD, is below 1E+16
MAX_FX_RATE = Decimal("1E+8")
MAX_VERSION = 2**63 - 1  # what a signed 64-bit integer (and MessagePack's int64) holds
MAX_ID_LENGTH = 64
MAX_TEXT_LENGTH = 200
MAX_INSTRUCTIONS_LENGTH = 1000
MAX_SETTLEMENT_DAYS = 10

FUTURE_TOLERANCE = dt.timedelta(seconds=5)
"""How far after "now" a trade time may lie (the sender's clock may run a little ahead)."""

MAX_TRADE_AGE = dt.timedelta(days=400)
"""How far before "now" a NEW or AMEND's trade time may lie: a year and a month, so that a
correction of the last trades of a year still lands after the year-end close."""

_ID_RE = re.compile(r"[A-Za-z0-9._:/#@+=-]+")
_ID_CHARS = "letters, digits and . _ : / # @ + = -"
_MIC_FORM_RE = re.compile(r"[A-Z0-9]{4}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_TIER_15 = (
    "AMD ARS DZD EGP ETB HUF INR ISK JMD JPY KES KZT LKR MKD NPR PHP PKR RSD RUB THB TRY TWD "
    "UAH XAF XOF XPF YER"
)
_TIER_17 = (
    "BIF CDF CLP COP GNF IDR IQD IRR KHR KMF KPW KRW LAK LBP MGA MMK MNT MWK NGN PYG RWF "
    "SLL SOS SYP TZS UGX UZS VND"
)
DEFAULT_MAX_NOTIONAL: Mapping[str, Decimal] = MappingProxyType(
    {
        **{ccy: Decimal("1E+15") for ccy in _TIER_15.split()},
        **{ccy: Decimal("1E+17") for ccy in _TIER_17.split()},
    }
)
"""Per-currency bound of a trade's notional: 1E+15 for currencies of 10 to 1,000 units
per US dollar, 1E+17 beyond (2026 rates, rounded up); every other currency 1E+13.
Each is about ten trillion dollars: a bound against nonsense, not a risk limit."""

DEFAULT_NOTIONAL_BOUND = Decimal("1E+13")


class BoundsConfigError(ValueError):
    """A notional bound setting cannot be read."""


@dataclass(frozen=True)
class NotionalBounds:
    """The configurable per-currency bound of ``|quantity * price * multiplier|``."""

    default: Decimal = DEFAULT_NOTIONAL_BOUND
    per_currency: Mapping[str, Decimal] = field(default_factory=lambda: DEFAULT_MAX_NOTIONAL)

    def of(self, currency: str) -> Decimal:
        """Return the bound of a notional in ``currency``."""
        return self.per_currency.get(currency, self.default)


def parse_notional_bounds(text: str) -> NotionalBounds:
    """Return the defaults overridden by ``text``: ``"JPY=1E+16,USD=5E+12,*=1E+14"``.

    ``*`` sets the bound of the currencies not listed. Raises BoundsConfigError.
    """
    default = DEFAULT_NOTIONAL_BOUND
    table = dict(DEFAULT_MAX_NOTIONAL)
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        currency, _, amount = item.partition("=")
        currency = currency.strip().upper()
        try:
            bound = Decimal(amount.strip())
        except ArithmeticError:
            bound = Decimal(0)
        if not bound.is_finite() or bound <= 0:
            raise BoundsConfigError(
                f"notional bound {item!r}: expected CCY=AMOUNT with a positive amount, "
                "for example JPY=1E+16"
            )
        if currency == "*":
            default = bound
        elif is_valid_currency(currency):
            table[currency] = bound
        else:
            raise BoundsConfigError(f"notional bound {item!r}: {currency} is no ISO 4217 code")
    return NotionalBounds(default, MappingProxyType(table))


class BoundProblem(NamedTuple):
    """A field beyond its bound: which field, the bound it broke, and a sentence."""

    field: str
    bound: str
    message: str


def decimal_bound(
    max_abs: Decimal,
    places: int | None = MAX_DECIMAL_PLACES,
    digits: int = MAX_SIGNIFICANT_DIGITS,
) -> str:
    """Return the text of a decimal bound, as answers and docs show it."""
    text = f"finite, |x| < {max_abs:E}, at most {digits} significant digits"
    return text + (f" and {places} decimal places" if places is not None else "")


def decimal_problem(
    name: str,
    value: Decimal,
    max_abs: Decimal,
    places: int | None = MAX_DECIMAL_PLACES,
    digits: int = MAX_SIGNIFICANT_DIGITS,
) -> BoundProblem | None:
    """Return why ``value`` breaks the decimal bound, or None.

    Trailing zeros do not count (``100.2500`` has 5 significant digits, 2 places); the
    sign is a business rule, not a bound.
    """
    bound = decimal_bound(max_abs, places, digits)
    if not value.is_finite():
        return BoundProblem(name, bound, f"{name} {value} is not a finite number")
    sign, coefficient, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # noqa: S101 - finite, so an int
    significant = "".join(map(str, coefficient)).lstrip("0")
    stripped = significant.rstrip("0")
    exponent += len(significant) - len(stripped)
    if not stripped:
        return None  # zero
    if len(stripped) + exponent > max_abs.adjusted() or value.copy_abs() >= max_abs:
        return BoundProblem(name, bound, f"{name} {value} is not below {max_abs:E} in magnitude")
    if len(stripped) > digits:
        return BoundProblem(
            name, bound, f"{name} {value} has {len(stripped)} significant digits; at most {digits}"
        )
    if places is not None and -exponent > places:
        return BoundProblem(
            name, bound, f"{name} {value} has {-exponent} decimal places; at most {places}"
        )
    return None


def identifier_problem(name: str, value: str, required: bool = True) -> BoundProblem | None:
    """Return why ``value`` is no identifier (1 to 64 of letters, digits, ``._:/#@+=-``)."""
    bound = f"1 to {MAX_ID_LENGTH} characters: {_ID_CHARS}"
    if not value:
        return BoundProblem(name, bound, f"{name} is empty") if required else None
    if len(value) > MAX_ID_LENGTH:
        return BoundProblem(name, bound, f"{name} has {len(value)} characters; at most 64")
    if not _ID_RE.fullmatch(value):
        bad = next(ch for ch in value if not _ID_RE.fullmatch(ch))
        return BoundProblem(name, bound, f"{name} holds the character {bad!r}; only {_ID_CHARS}")
    return None


def text_problem(name: str, value: str, max_length: int = MAX_TEXT_LENGTH) -> str | None:
    """Return why free text (a name) breaks its bound (length, control characters), or None."""
    if len(value) > max_length:
        return f"{name} has {len(value)} characters; at most {max_length}"
    if _CONTROL_RE.search(value):
        return f"{name} holds a control character"
    return None


def version_problem(version: int) -> BoundProblem | None:
    """Return why ``version`` is not in 1..2**63-1, or None."""
    if 1 <= version <= MAX_VERSION:
        return None
    return BoundProblem("version", "1 to 2**63-1", f"version {version} is not in 1..2**63-1")


def event_form_problems(event: TradeEvent) -> list[BoundProblem]:
    """Return every field of ``event`` beyond its form bound, in field order.

    A CANCEL names only its trade: its account, instrument, currency, venue and
    counterparty may be empty (when present they must have their form).
    """
    new = event.event_type != "CANCEL"
    problems = [
        identifier_problem("trade_id", event.trade_id),
        version_problem(event.version),
        identifier_problem("account", event.account, required=new),
        identifier_problem("instrument", event.instrument, required=new),
        decimal_problem("quantity", event.quantity, MAX_QUANTITY),
        decimal_problem("price", event.price, MAX_PRICE),
        _currency_problem(event.currency, required=new),
        _venue_problem(event.venue),
        identifier_problem("counterparty", event.counterparty, required=new),
        identifier_problem("source", event.source),
    ]
    return [p for p in problems if p is not None]


def _currency_problem(code: str, required: bool) -> BoundProblem | None:
    if (not code and not required) or is_valid_currency(code):
        return None
    return BoundProblem("currency", "an ISO 4217 code", f"currency {code!r} is no ISO 4217 code")


def _venue_problem(venue: str) -> BoundProblem | None:
    if not venue or _MIC_FORM_RE.fullmatch(venue):
        return None
    bound = "empty, or a MIC: 4 upper-case letters or digits"
    return BoundProblem("venue", bound, f"venue {venue!r} is not of the form of a MIC")


def is_future(time: dt.datetime, now: dt.datetime) -> bool:
    """Tell whether ``time`` lies more than :data:`FUTURE_TOLERANCE` after ``now``."""
    return time > now + FUTURE_TOLERANCE


def time_problem(name: str, time: dt.datetime, now: dt.datetime) -> BoundProblem | None:
    """Return why ``time`` is outside ``[now - 400 days, now + 5 s]``, or None."""
    bound = "from 400 days before now to 5 s after"
    if is_future(time, now):
        seconds = FUTURE_TOLERANCE.total_seconds()
        message = f"{name} {time.isoformat()} is after {now.isoformat()} + {seconds:g} s"
        return BoundProblem(name, bound, message)
    if time < now - MAX_TRADE_AGE:
        message = f"{name} {time.isoformat()} is more than 400 days before {now.isoformat()}"
        return BoundProblem(name, bound, message)
    return None


def notional_problem(
    currency: str, quantity: Decimal, price: Decimal, multiplier: Decimal, bounds: NotionalBounds
) -> BoundProblem | None:
    """Return why ``|quantity * price * multiplier|`` is over the currency's bound, or None.

    The factors must be inside their own bounds (the product is then exact).
    """
    notional = absolute(multiply(multiply(quantity, price), multiplier))
    limit = bounds.of(currency)
    if notional <= limit:
        return None
    message = f"notional {notional} {currency} is over the bound {limit:E} {currency}"
    return BoundProblem("notional", f"|notional| <= {limit:E} {currency}", message)


# -- reference data --------------------------------------------------------------------


def _messages(*problems: BoundProblem | str | None) -> list[str]:
    return [p.message if isinstance(p, BoundProblem) else p for p in problems if p is not None]


def _positive(name: str, value: Decimal, max_abs: Decimal, digits: int = 18) -> list[str]:
    bounded = decimal_problem(name, value, max_abs, digits=digits)
    if bounded is not None:
        return [bounded.message]
    return [] if value > 0 else [f"{name} must be positive, got {value}"]


def _aware(name: str, value: dt.datetime) -> list[str]:
    if value.tzinfo is None or value.utcoffset() is None:
        return [f"{name} {value.isoformat()} has no time zone; add Z or an offset"]
    return []


def instrument_problems(r: Instrument) -> list[str]:
    """Return every bound an instrument breaks (empty: within every bound)."""
    problems = _messages(
        identifier_problem("instrument_id", r.instrument_id),
        identifier_problem("symbol", r.symbol),
        text_problem("name", r.name),
        identifier_problem("asset_class", r.asset_class),
    )
    if not is_valid_isin(r.isin):
        problems.append(f"isin {r.isin!r} is not a valid ISIN (format or check digit)")
    if not is_valid_currency(r.currency):
        problems.append(f"currency {r.currency!r} is not an ISO 4217 currency")
    if not is_valid_mic(r.mic):
        problems.append(f"mic {r.mic!r} is not a MIC with a known exchange calendar")
    problems += _positive("lot_size", r.lot_size, MAX_QUANTITY)
    problems += _positive("tick_size", r.tick_size, MAX_PRICE)
    problems += _positive("multiplier", r.multiplier, MAX_MULTIPLIER, MAX_MULTIPLIER_DIGITS)
    if not 0 <= r.settlement_days <= MAX_SETTLEMENT_DAYS:
        days = r.settlement_days
        problems.append(f"settlement_days must be 0..{MAX_SETTLEMENT_DAYS}, got {days}")
    return problems


def account_problems(r: Account) -> list[str]:
    """Return every bound an account breaks."""
    problems = _messages(
        identifier_problem("account_id", r.account_id),
        text_problem("book", r.book),
        text_problem("legal_entity", r.legal_entity),
    )
    problems += [
        f"{name} is empty" for name in ("book", "legal_entity") if not getattr(r, name).strip()
    ]
    if not is_valid_currency(r.base_currency):
        problems.append(f"base_currency {r.base_currency!r} is not an ISO 4217 currency")
    return problems


def counterparty_problems(r: Counterparty) -> list[str]:
    """Return every bound a counterparty breaks."""
    problems = _messages(
        identifier_problem("counterparty_id", r.counterparty_id),
        text_problem("name", r.name),
        text_problem("settlement_instructions", r.settlement_instructions, MAX_INSTRUCTIONS_LENGTH),
    )
    if not r.name.strip():
        problems.append("name is empty")
    if not is_valid_lei(r.lei):
        problems.append(f"lei {r.lei!r} is not a valid LEI (format or check digits)")
    return problems


def limits_problems(r: Limits) -> list[str]:
    """Return every bound a set of limits breaks (each 0 or more, below 1E+18)."""
    problems = _messages(identifier_problem("account_id", r.account_id))
    for name in ("gross_notional", "net_notional", "position_qty", "single_trade_notional"):
        value: Decimal = getattr(r, name)
        bounded = decimal_problem(name, value, MAX_LIMIT)
        if bounded is not None:
            problems.append(bounded.message)
        elif value < 0:
            problems.append(f"{name} must be 0 or more, got {value}")
    hysteresis = decimal_problem("hysteresis", r.hysteresis, Decimal(1))
    if hysteresis is not None:
        problems.append(hysteresis.message)
    elif r.hysteresis < 0:
        problems.append(f"hysteresis must be 0 or more (a fraction below 1), got {r.hysteresis}")
    return problems


def price_problems(r: Price) -> list[str]:
    """Return every bound a market price breaks."""
    problems = _messages(identifier_problem("instrument_id", r.instrument_id))
    for name in ("bid", "ask", "last"):
        problems += _positive(name, getattr(r, name), MAX_PRICE)
    return problems + _aware("time", r.time)


def fx_problems(r: FxRate) -> list[str]:
    """Return every bound an FX rate breaks (1E-8 <= rate < 1E+8, 18 significant digits)."""
    problems = []
    for name, code in (("base", r.base), ("quote", r.quote)):
        if not is_valid_currency(code):
            problems.append(f"{name} {code!r} is not an ISO 4217 currency")
    if r.base == r.quote:
        problems.append(f"base and quote are both {r.base}")
    if r.pair != r.base + r.quote:
        problems.append(f"pair {r.pair!r} is not base+quote {r.base + r.quote!r}")
    bounded = decimal_problem("rate", r.rate, MAX_FX_RATE, places=None)
    if bounded is not None:
        problems.append(bounded.message)
    elif r.rate < MIN_FX_RATE:
        problems.append(f"rate {r.rate} is below {MIN_FX_RATE:E}")
    return problems + _aware("time", r.time)


_REFDATA_CHECKS: Mapping[type, Any] = MappingProxyType(
    {
        Instrument: instrument_problems,
        Account: account_problems,
        Counterparty: counterparty_problems,
        Limits: limits_problems,
        Price: price_problems,
        FxRate: fx_problems,
    }
)


def refdata_problems(
    record: Instrument | Account | Counterparty | Limits | Price | FxRate,
) -> list[str]:
    """Return every bound a reference data record breaks (empty: it may be used)."""
    check = _REFDATA_CHECKS[type(record)]
    problems: list[str] = check(record)
    return problems
