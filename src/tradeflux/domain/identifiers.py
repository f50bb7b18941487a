"""Identifiers of the trading world: ISIN, LEI, ISO 4217 currency codes and MICs.

Check digits are computed here (ISO 6166 for ISINs, ISO 17442 / ISO 7064 mod 97-10 for
LEIs) so reference data can be validated on load and sample data generated with valid
codes. Currency codes come from pycountry's ISO 4217 table; a MIC is valid when it is a
well-formed ISO 10383 code that exchange_calendars has a calendar for (a venue we cannot
date trades on is of no use to us).
"""

from __future__ import annotations

import functools
import re

import pycountry

from tradeflux.domain.calendars import is_known_mic

_ISIN_RE = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_LEI_RE = re.compile(r"[A-Z0-9]{18}[0-9]{2}")
_MIC_RE = re.compile(r"[A-Z0-9]{4}")
_ALNUM_UPPER = re.compile(r"[A-Z0-9]+")

# ISO 4217 codes that name no currency one can hold a position in.
_NOT_CURRENCIES = frozenset({"XXX", "XTS"})  # "no currency", "reserved for testing"


def _letters_to_digits(text: str) -> str:
    """Return ``text`` with each letter replaced by its value A=10 .. Z=35 (digits kept)."""
    return "".join(str(int(ch, 36)) for ch in text)


def isin_check_digit(payload11: str) -> str:
    """Return the ISIN check digit of the first 11 characters (ISO 6166).

    Letters become two digits (A=10 .. Z=35), then the Luhn algorithm runs over the
    digit string: from the right, every other digit starting with the rightmost is
    doubled; the check digit brings the digit sum to a multiple of 10.
    """
    if len(payload11) != 11 or not _ALNUM_UPPER.fullmatch(payload11):
        raise ValueError(f"an ISIN payload is 11 upper-case letters or digits, got {payload11!r}")
    digits = _letters_to_digits(payload11)
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch)
        if position % 2 == 0:
            value *= 2
            value = value - 9 if value > 9 else value
        total += value
    return str((10 - total % 10) % 10)


def is_valid_isin(isin: str) -> bool:
    """Tell whether ``isin`` is 2 letters, 9 letters/digits and a correct check digit."""
    if not isinstance(isin, str) or not _ISIN_RE.fullmatch(isin):
        return False
    return isin_check_digit(isin[:11]) == isin[11]


def make_isin(country: str, nsin9: str) -> str:
    """Return the ISIN of a 2-letter country prefix and a 9-character national number.

    A shorter national number is left-padded with zeros, as the standard does.
    """
    if len(country) != 2 or not country.isalpha() or not country.isupper():
        raise ValueError(f"an ISIN prefix is two upper-case letters, got {country!r}")
    if not nsin9 or len(nsin9) > 9 or not _ALNUM_UPPER.fullmatch(nsin9):
        raise ValueError(f"an NSIN is 1 to 9 upper-case letters or digits, got {nsin9!r}")
    payload = country + nsin9.rjust(9, "0")
    return payload + isin_check_digit(payload)


def lei_check_digits(prefix18: str) -> str:
    """Return the two check digits of an 18-character LEI prefix (ISO 17442, mod 97-10).

    The check digits make the whole 20-character code, letters as A=10 .. Z=35, equal
    to 1 modulo 97.
    """
    if len(prefix18) != 18 or not _ALNUM_UPPER.fullmatch(prefix18):
        raise ValueError(f"an LEI prefix is 18 upper-case letters or digits, got {prefix18!r}")
    remainder = int(_letters_to_digits(prefix18) + "00") % 97
    return f"{98 - remainder:02d}"


def is_valid_lei(lei: str) -> bool:
    """Tell whether ``lei`` is 18 letters/digits and 2 check digits that make it 1 mod 97."""
    if not isinstance(lei, str) or not _LEI_RE.fullmatch(lei):
        return False
    return int(_letters_to_digits(lei)) % 97 == 1


def make_lei(prefix18: str) -> str:
    """Return the LEI of an 18-character prefix with its check digits appended."""
    return prefix18 + lei_check_digits(prefix18)


@functools.cache
def currency_codes() -> frozenset[str]:
    """Return the ISO 4217 alphabetic codes of real currencies (XXX and XTS excluded)."""
    return frozenset(c.alpha_3 for c in pycountry.currencies) - _NOT_CURRENCIES


def is_valid_currency(code: str) -> bool:
    """Tell whether ``code`` is an ISO 4217 currency code (upper case, e.g. ``"EUR"``)."""
    return isinstance(code, str) and code in currency_codes()


def is_valid_mic(mic: str) -> bool:
    """Tell whether ``mic`` is a 4-character ISO 10383 code with a known exchange calendar."""
    return isinstance(mic, str) and bool(_MIC_RE.fullmatch(mic)) and is_known_mic(mic)
