"""Extreme reference data for the fuzz suite, each record at or beyond its documented bound.

Every record says whether it is within its bounds (docs/domain-rules.md, "Bounds": the
services use it) or beyond them (a service reads it as no record for its key: an unknown
instrument or account, no limits, a missing mark or rate). The labels are written here by
hand from the document; ``tests/fuzz/test_fuzz_pipeline.py`` checks them against the
domain's own check before anything is sent, so a wrong label cannot pass unnoticed. Keys are
unique, so the last record of a key is the only one.

The fuzzed trades use these instruments and accounts next to a slice of the sample
reference data (data/refdata); ``CONTROL_ACCOUNT`` trades only the control flow.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradeflux import topics
from tradeflux.domain.schemas import Account, Counterparty, FxRate, Instrument, Limits, Price

T0 = dt.datetime(2026, 1, 2, 16, 0, tzinfo=dt.UTC)
CONTROL_ACCOUNT = "CTRL-1"
CONTROL_INSTRUMENT = "HO.XNYS"  # sample instrument: USD, lot 1, tick 0.01
CONTROL_MARK = Decimal("12.00")
LIMITED_ACCOUNT = "ACC-0004"  # sample limits: single trade notional 250,000 USD
ISIN = "US0378331005"  # a valid ISIN (check digit); instruments may share one


@dataclass(frozen=True)
class Extreme:
    """A reference record and whether it is within its bounds."""

    record: Any
    valid: bool
    why: str


def _instrument(instrument_id: str, **kw: Any) -> Instrument:
    mic = instrument_id.rpartition(".")[2]
    fields: dict[str, Any] = {
        "instrument_id": instrument_id, "isin": ISIN, "symbol": instrument_id.partition(".")[0],
        "name": "Fuzz instrument", "currency": "USD", "mic": mic, **kw,
    }  # fmt: skip
    return Instrument(**fields)


INSTRUMENTS = [
    Extreme(_instrument("FZ-MICRO.XNYS", lot_size=Decimal("0.00000001"),
                        tick_size=Decimal("0.00000001"), settlement_days=0),
            True, "smallest lot and tick (8 places), same-day settlement"),
    Extreme(_instrument("FZ-BIGLOT.XNYS", lot_size=Decimal("999999999999"), settlement_days=10),
            True, "largest lot (12 digits, below 1E+12), longest cycle"),
    Extreme(_instrument("FZ-MULT.XNYS", tick_size=Decimal("0.00000001"),
                        multiplier=Decimal("99999999.99")),
            True, "largest multiplier (10 digits, below 1E+8)"),
    Extreme(_instrument("FZ-TOPTICK.XNYS", lot_size=Decimal("0.00000001"),
                        tick_size=Decimal("999999999.99999999")),
            True, "largest tick (17 digits, below 1E+9)"),
    Extreme(_instrument("FZ-ODD.XLON", currency="GBP", lot_size=Decimal(7),
                        tick_size=Decimal("0.3"), multiplier=Decimal("0.00000001"),
                        settlement_days=1),
            True, "odd lot and tick, smallest multiplier"),
    Extreme(_instrument("FZ-JPY.XTKS", currency="JPY", lot_size=Decimal(100),
                        tick_size=Decimal(1)),
            True, "yen: notional bound 1E+15"),
    Extreme(_instrument("FZ-KRW.XKRX", currency="KRW", tick_size=Decimal(5)),
            True, "won: notional bound 1E+17"),
    Extreme(_instrument("FZ-INR.XBOM", currency="INR", tick_size=Decimal("0.05")),
            True, "rupee: no valid rate to USD, its price beyond bounds"),
    Extreme(_instrument("FZ-HALT.XNYS", active=False), True, "inactive"),
    Extreme(_instrument("FZ-BAD-LOT.XNYS", lot_size=Decimal("1E+12")), False, "lot 1E+12"),
    Extreme(_instrument("FZ-BAD-TICK.XNYS", tick_size=Decimal("1E-9")), False, "tick, 9 places"),
    Extreme(_instrument("FZ-BAD-MULT.XNYS", multiplier=Decimal("1E+8")), False, "multiplier 1E+8"),
    Extreme(_instrument("FZ-BAD-DIGITS.XNYS", multiplier=Decimal("1.0000000001")), False,
            "multiplier with 11 significant digits"),
    Extreme(_instrument("FZ-BAD-ZERO.XNYS", lot_size=Decimal(0)), False, "lot 0"),
    Extreme(_instrument("FZ-BAD-DAYS.XNYS", settlement_days=11), False, "settlement in 11 days"),
    Extreme(_instrument("FZ-BAD-NAME.XNYS", name="Fuzz\x00instrument"), False, "NUL in the name"),
    Extreme(_instrument("FZ-BAD-MIC.XFOO"), False, "a MIC without a calendar"),
    Extreme(_instrument("FZ-BAD-ISIN.XNYS", isin="US0378331006"), False, "ISIN check digit"),
    Extreme(_instrument("FZ-BAD-CCY.XNYS", currency="XTS"), False, "XTS is no currency"),
]  # fmt: skip

ACCOUNTS = [
    Extreme(Account(account_id="FZ-JPY", book="FZ", legal_entity="Fuzz", base_currency="JPY"),
            True, "base JPY"),
    Extreme(Account(account_id="FZ-KRW", book="FZ", legal_entity="Fuzz", base_currency="KRW"),
            True, "base KRW: a rate at the top of its bound"),
    Extreme(Account(account_id="FZ-BHD", book="FZ", legal_entity="Fuzz", base_currency="BHD"),
            True, "base BHD: a rate at the bottom of its bound"),
    Extreme(Account(account_id="FZ-INR", book="FZ", legal_entity="Fuzz", base_currency="INR"),
            True, "base INR: no rate to USD"),
    Extreme(Account(account_id=CONTROL_ACCOUNT, book="CTRL", legal_entity="Fuzz",
                    base_currency="USD"),
            True, "the control account: only the steady good trades"),
    Extreme(Account(account_id="FZ-BAD-CCY", book="FZ", legal_entity="Fuzz",
                    base_currency="XXX"),
            False, "XXX is no currency"),
    Extreme(Account(account_id="FZ-BAD-BOOK", book="FZ\x1b[31m", legal_entity="Fuzz",
                    base_currency="USD"),
            False, "an escape sequence in the book"),
]  # fmt: skip

COUNTERPARTIES = [
    Extreme(Counterparty(counterparty_id="FZ-CP-BADLEI", lei="5299007W3X0B5CI8IV58", name="Fuzz"),
            False, "LEI check digits"),
]  # fmt: skip

_BIG = Decimal("999999999999999999")  # 18 digits, below 1E+18
LIMITS = [
    Extreme(Limits(account_id="FZ-JPY", gross_notional=Decimal(0), net_notional=Decimal(0),
                   position_qty=Decimal(0), single_trade_notional=Decimal(0)),
            True, "every limit 0: any trade breaches"),
    Extreme(Limits(account_id="FZ-KRW", gross_notional=_BIG, net_notional=_BIG,
                   position_qty=_BIG, single_trade_notional=_BIG,
                   hysteresis=Decimal("0.99999999")),
            True, "the largest limits and hysteresis"),
    Extreme(Limits(account_id="FZ-BHD", gross_notional=Decimal("0.00000001"),
                   net_notional=Decimal("0.00000001"), position_qty=Decimal("0.00000001"),
                   single_trade_notional=Decimal("0.00000001"), hysteresis=Decimal("0.5")),
            True, "the smallest positive limits"),
    Extreme(Limits(account_id="FZ-INR", gross_notional=Decimal("1E+18"), net_notional=_BIG,
                   position_qty=_BIG, single_trade_notional=_BIG),
            False, "a limit of 1E+18"),
    Extreme(Limits(account_id=CONTROL_ACCOUNT, gross_notional=_BIG, net_notional=_BIG,
                   position_qty=_BIG, single_trade_notional=_BIG, hysteresis=Decimal(1)),
            False, "hysteresis 1"),
]  # fmt: skip


def _price(instrument_id: str, last: str, **kw: Any) -> Price:
    mark = Decimal(last)
    return Price(instrument_id=instrument_id, bid=mark, ask=mark, last=mark, time=T0, **kw)


PRICES = [
    Extreme(_price("FZ-MICRO.XNYS", "0.00000001"), True, "the smallest price"),
    Extreme(_price("FZ-BIGLOT.XNYS", "999999999.99999999"), True, "the largest price"),
    Extreme(_price("FZ-MULT.XNYS", "123.45678901"), True, "8 places"),
    Extreme(_price("FZ-TOPTICK.XNYS", "999999999.99999999"), True, "the largest price"),
    Extreme(_price("FZ-ODD.XLON", "0.3"), True, "on the odd tick"),
    Extreme(_price("FZ-JPY.XTKS", "2500"), True, "yen"),
    Extreme(_price("FZ-KRW.XKRX", "70000"), True, "won"),
    Extreme(_price("FZ-INR.XBOM", "1E+9"), False, "a price of 1E+9"),
    Extreme(_price("FZ-HALT.XNYS", "0"), False, "a price of 0"),
    Extreme(_price(CONTROL_INSTRUMENT, str(CONTROL_MARK)), True, "the control's mark"),
    Extreme(_price("VA.XNYS", "33.33"), True, "a sample instrument"),
    Extreme(_price("VE.XLON", "4.5"), True, "a sample instrument"),
    Extreme(_price("3902.XTKS", "1890"), True, "a sample instrument"),
    Extreme(_price("LI.XSWX", "87.5"), True, "a sample instrument"),
]  # fmt: skip


def _rate(pair: str, rate: str, base: str = "", quote: str = "") -> FxRate:
    return FxRate(pair=pair, base=base or pair[:3], quote=quote or pair[3:], rate=Decimal(rate),
                  time=T0)  # fmt: skip


FX_RATES = [
    Extreme(_rate("USDKRW", "99999999.9999999999"), True, "the largest rate (18 digits)"),
    Extreme(_rate("BHDUSD", "0.00000001"), True, "the smallest rate"),
    Extreme(_rate("USDINR", "1E+8"), False, "a rate of 1E+8"),
    Extreme(_rate("SEKNOK", "0"), False, "a rate of 0"),
    Extreme(_rate("JPYKRW", "9.5", quote="USD"), False, "a pair that is not base+quote"),
    Extreme(_rate("USDIDR", "1.0000000000000000001"), False, "19 significant digits"),
]  # fmt: skip

SAMPLE_INSTRUMENTS = [
    "HO.XNYS", "FA.XNYS", "FO.XNYS", "VA.XNYS", "VE.XLON", "3902.XTKS", "LI.XSWX",
]  # fmt: skip
"""The sample instruments fuzzed trades use (FO.XNYS is inactive; some have no price)."""

SAMPLE_ACCOUNTS = [
    "ACC-0001", "ACC-0003", LIMITED_ACCOUNT, "ACC-0017", "ACC-0018", "ACC-0028", "ACC-0035",
]  # fmt: skip
"""The sample accounts fuzzed trades use (ACC-0017 is closed, ACC-0028 and 0035 suspended)."""

SAMPLE_COUNTERPARTIES = ["CP-001", "CP-002", "CP-004"]  # CP-002 is inactive

JUNK = {
    topics.INSTRUMENTS.name: b"\xff\xfenot an instrument",
    topics.ACCOUNTS.name: b'{"account_id": 7}',
    topics.LIMITS.name: b"[" * 5000,
    topics.PRICES.name: b'{"instrument_id":"FZ-JUNK.XNYS","bid":"NaN"}',
    topics.FX.name: b"",
}
"""Records that are not the topic's struct at all (the tables count and skip them)."""
