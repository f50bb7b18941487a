from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeflux.domain.identifiers import (
    is_valid_currency,
    is_valid_isin,
    is_valid_lei,
    is_valid_mic,
    isin_check_digit,
    lei_check_digits,
    make_isin,
    make_lei,
)

REAL_ISINS = [
    "US0378331005",  # Apple
    "GB0002634946",  # BAE Systems
    "DE000BAY0017",  # Bayer
    "JP3633400001",  # Toyota
    "CH0038863350",  # Nestle
    "FR0000120271",  # TotalEnergies
    "US5949181045",  # Microsoft
]
REAL_LEIS = [
    "HWUPKR0MPOU8FGXBT394",  # Apple Inc.
    "7LTWFZYICNSX8D621K86",  # Deutsche Bank
    "529900T8BM49AURSDO55",
    "213800WAVVOPS85N2205",
    "5493001KJTIIGC8Y1R12",
]
ALNUM = string.ascii_uppercase + string.digits


@pytest.mark.parametrize("isin", REAL_ISINS)
def test_published_isins_are_valid(isin: str) -> None:
    assert is_valid_isin(isin)


@pytest.mark.parametrize("isin", REAL_ISINS)
def test_any_other_isin_check_digit_is_invalid(isin: str) -> None:
    for digit in "0123456789":
        if digit != isin[-1]:
            assert not is_valid_isin(isin[:-1] + digit)


@pytest.mark.parametrize(
    "isin",
    [
        "us0378331005",
        "US037833100",
        "US03783310055",
        "US037833100X",
        "1S0378331005",
        "",
        "US-378331005",
    ],
)
def test_malformed_isins_are_invalid(isin: str) -> None:
    assert not is_valid_isin(isin)


def test_isin_check_digit_converts_letters_before_luhn() -> None:
    assert isin_check_digit("US037833100") == "5"
    assert isin_check_digit("DE000BAY001") == "7"
    assert make_isin("US", "037833100") == "US0378331005"


def test_make_isin_pads_a_short_national_number() -> None:
    assert make_isin("CH", "3886335") == "CH0038863350"


@pytest.mark.parametrize(
    "country,nsin", [("us", "037833100"), ("U1", "037833100"), ("US", ""), ("US", "0378331000")]
)
def test_make_isin_refuses_bad_parts(country: str, nsin: str) -> None:
    with pytest.raises(ValueError):
        make_isin(country, nsin)


@given(
    st.text(string.ascii_uppercase, min_size=2, max_size=2), st.text(ALNUM, min_size=9, max_size=9)
)
def test_made_isins_are_valid_and_a_changed_check_digit_is_not(country: str, nsin: str) -> None:
    isin = make_isin(country, nsin)
    assert is_valid_isin(isin)
    assert not is_valid_isin(isin[:-1] + str((int(isin[-1]) + 1) % 10))


@pytest.mark.parametrize("lei", REAL_LEIS)
def test_published_leis_are_valid(lei: str) -> None:
    assert is_valid_lei(lei)


@pytest.mark.parametrize("lei", REAL_LEIS)
def test_any_other_lei_check_digits_are_invalid(lei: str) -> None:
    for check in range(100):
        if f"{check:02d}" != lei[-2:]:
            assert not is_valid_lei(lei[:-2] + f"{check:02d}")


def test_lei_check_digits_make_the_code_one_mod_97() -> None:
    assert lei_check_digits("HWUPKR0MPOU8FGXBT3") == "94"
    assert make_lei("7LTWFZYICNSX8D621K") == "7LTWFZYICNSX8D621K86"


@pytest.mark.parametrize(
    "lei",
    [
        "hwupkr0mpou8fgxbt394",
        "HWUPKR0MPOU8FGXBT39",
        "HWUPKR0MPOU8FGXBT3944",
        "HWUPKR0MPOU8FGXBT3X4",
        "",
    ],
)
def test_malformed_leis_are_invalid(lei: str) -> None:
    assert not is_valid_lei(lei)


@given(st.text(ALNUM, min_size=18, max_size=18))
def test_made_leis_are_valid_and_swapping_two_different_characters_breaks_them(prefix: str) -> None:
    lei = make_lei(prefix)
    assert is_valid_lei(lei)
    for i in range(17):
        if lei[i] != lei[i + 1] and lei[i].isdigit() and lei[i + 1].isdigit():
            swapped = lei[:i] + lei[i + 1] + lei[i] + lei[i + 2 :]
            assert not is_valid_lei(swapped)


def test_make_lei_refuses_a_prefix_of_the_wrong_length() -> None:
    with pytest.raises(ValueError):
        make_lei("TOO-SHORT")


@pytest.mark.parametrize("code", ["USD", "EUR", "GBP", "JPY", "CHF", "HKD", "SEK", "XAU"])
def test_iso_4217_currencies_are_valid(code: str) -> None:
    assert is_valid_currency(code)


@pytest.mark.parametrize("code", ["usd", "EURO", "XYZ", "XXX", "XTS", "GBX", ""])
def test_other_currency_codes_are_invalid(code: str) -> None:
    assert not is_valid_currency(code)


@pytest.mark.parametrize("mic", ["XNYS", "XNAS", "XLON", "XETR", "XPAR", "XTKS", "XHKG", "XSWX"])
def test_mics_with_an_exchange_calendar_are_valid(mic: str) -> None:
    assert is_valid_mic(mic)


@pytest.mark.parametrize("mic", ["XFOO", "xnys", "NYSE", "HKEX", "XNY", "XNYSE", ""])
def test_unknown_or_malformed_mics_are_invalid(mic: str) -> None:
    assert not is_valid_mic(mic)
