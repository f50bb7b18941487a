from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from pathlib import Path

import pytest

from tradeflux.domain.identifiers import is_valid_isin, is_valid_lei
from tradeflux.domain.pnl import convert
from tradeflux.domain.refdata import (
    ParsedFile,
    RefData,
    RefDataError,
    RowError,
    kind_of_columns,
    kind_of_name,
    parse_refdata_file,
    parse_refdata_text,
    refdata_key,
)
from tradeflux.domain.schemas import (
    Account,
    Counterparty,
    FxRate,
    Instrument,
    Limits,
    Price,
)

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "refdata"
INSTRUMENT_HEADER = "instrument_id,isin,symbol,currency,mic,lot_size,tick_size,settlement_days"


def parse_sample(name: str) -> ParsedFile:
    parsed = parse_refdata_file(SAMPLE / name)
    assert parsed.errors == []
    return parsed


def test_sample_instruments_span_markets_and_currencies_with_valid_codes() -> None:
    rows = parse_sample("instruments.csv").rows
    instruments = [r for r in rows if isinstance(r, Instrument)]
    assert len(instruments) == len(rows) >= 300
    assert len({i.currency for i in instruments}) >= 5
    assert len({i.mic for i in instruments}) >= 6
    assert all(is_valid_isin(i.isin) for i in instruments)
    assert len({i.isin for i in instruments}) == len(instruments)
    assert {i.lot_size for i in instruments} >= {Decimal(1), Decimal(10), Decimal(100)}
    assert {i.settlement_days for i in instruments} == {1, 2}
    assert 0 < sum(not i.active for i in instruments) < 10


def test_sample_accounts_have_several_bases_and_a_few_suspended() -> None:
    accounts = [r for r in parse_sample("accounts.csv").rows if isinstance(r, Account)]
    assert len(accounts) >= 40
    assert len({a.base_currency for a in accounts}) >= 4
    assert 0 < sum(a.status == "SUSPENDED" for a in accounts) < 8


def test_sample_counterparties_have_valid_leis_and_a_few_inactive() -> None:
    parties = [r for r in parse_sample("counterparties.csv").rows if isinstance(r, Counterparty)]
    assert len(parties) >= 25
    assert all(is_valid_lei(p.lei) for p in parties)
    assert 0 < sum(not p.active for p in parties) < 6


def test_sample_limits_cover_every_account_once() -> None:
    accounts = {refdata_key(r) for r in parse_sample("accounts.csv").rows}
    limits = [r for r in parse_sample("limits.csv").rows if isinstance(r, Limits)]
    assert sorted(refdata_key(limit) for limit in limits) == sorted(accounts)


def test_sample_fx_converts_every_instrument_currency_to_every_base_currency() -> None:
    fx = {refdata_key(r): r for r in parse_sample("fx.csv").rows if isinstance(r, FxRate)}
    currencies = {
        r.currency for r in parse_sample("instruments.csv").rows if isinstance(r, Instrument)
    }
    bases = {r.base_currency for r in parse_sample("accounts.csv").rows if isinstance(r, Account)}
    for ccy, base in itertools.product(currencies, bases):
        assert convert(Decimal(100), ccy, base, fx) is not None, (ccy, base)


def test_bad_rows_are_reported_by_line_and_left_out() -> None:
    parsed = parse_refdata_file(SAMPLE / "bad-instruments.csv")
    assert parsed.kind == "instruments"
    assert [refdata_key(r) for r in parsed.rows] == ["GOOD.XNYS", "ALSOGOOD.XLON"]
    assert parsed.errors == [
        RowError(3, "isin 'US0378331006' is not a valid ISIN (format or check digit)"),
        RowError(4, "currency 'XYZ' is not an ISO 4217 currency"),
        RowError(5, "mic 'XFOO' is not a MIC with a known exchange calendar"),
        RowError(6, "lot_size must be positive, got 0"),
        RowError(7, "settlement_days must be 0..10, got 12"),
        RowError(8, "Object missing required field `isin`"),
    ]


def test_empty_csv_cells_take_the_schema_defaults() -> None:
    text = (
        "instrument_id,isin,symbol,currency,mic,lot_size,active\nA.XNYS,US0378331005,A,USD,XNYS,,\n"
    )
    (row,) = parse_refdata_text(text, "csv", "instruments").rows
    assert row == Instrument(
        instrument_id="A.XNYS", isin="US0378331005", symbol="A", currency="USD", mic="XNYS"
    )


def test_csv_rows_with_the_wrong_number_of_cells_are_errors() -> None:
    text = INSTRUMENT_HEADER + "\nA.XNYS,US0378331005,A,USD,XNYS,1,0.01\n"
    assert parse_refdata_text(text, "csv", "instruments").errors == [
        RowError(2, "7 cells for 8 columns")
    ]


def test_blank_and_comment_lines_keep_line_numbers_true() -> None:
    text = f"# instruments\n{INSTRUMENT_HEADER}\n\nA.XNYS,US0378331006,A,USD,XNYS,1,0.01,1\n"
    (error,) = parse_refdata_text(text, "csv", "instruments").errors
    assert error.line == 4


@pytest.mark.parametrize(
    "field,value", [("tick_size", "0"), ("multiplier", "-1"), ("settlement_days", "-1")]
)
def test_non_positive_sizes_are_errors(field: str, value: str) -> None:
    row = {
        "instrument_id": "A",
        "isin": "US0378331005",
        "symbol": "A",
        "currency": "USD",
        "mic": "XNYS",
    }
    row[field] = value
    text = ",".join(row) + "\n" + ",".join(row.values()) + "\n"
    (error,) = parse_refdata_text(text, "csv", "instruments").errors
    assert error.line == 2 and field in error.message


def test_a_repeated_key_is_an_error_and_the_first_row_is_kept() -> None:
    text = "account_id,book,legal_entity,base_currency\nA1,B,LE,USD\nA1,B2,LE,EUR\n"
    parsed = parse_refdata_text(text, "csv", "accounts")
    assert parsed.rows == [
        Account(account_id="A1", book="B", legal_entity="LE", base_currency="USD")
    ]
    assert parsed.errors == [RowError(3, "duplicate key 'A1', first on line 2")]


def test_a_json_array_reports_the_line_each_object_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "counterparties.json"
    path.write_text(
        "[\n"
        '  {"counterparty_id": "CP1", "lei": "HWUPKR0MPOU8FGXBT394", "name": "Good"},\n'
        "  {\n"
        '    "counterparty_id": "CP2", "lei": "HWUPKR0MPOU8FGXBT395", "name": "Bad LEI"\n'
        "  },\n"
        '  {"counterparty_id": "CP3", "lei": "7LTWFZYICNSX8D621K86", "name": "Off",\n'
        '   "active": false}\n'
        "]\n"
    )
    parsed = parse_refdata_file(path)
    assert parsed.kind == "counterparties"
    assert [refdata_key(r) for r in parsed.rows] == ["CP1", "CP3"]
    assert parsed.errors == [
        RowError(3, "lei 'HWUPKR0MPOU8FGXBT395' is not a valid LEI (format or check digits)")
    ]


def test_json_lines_keep_numbers_exact_and_report_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "prices.jsonl"
    path.write_text(
        '{"instrument_id": "A", "bid": 10.10, "ask": 10.12, "last": "10.11",'
        ' "time": "2026-01-02T16:00:00Z"}\n'
        "not json\n"
        '{"instrument_id": "B", "bid": 0, "ask": 1, "last": 1, "time": "2026-01-02T16:00:00Z"}\n'
        '{"instrument_id": "C", "bid": 1, "ask": 1, "last": 1, "time": "2026-01-02T16:00:00"}\n'
    )
    parsed = parse_refdata_file(path)
    assert parsed.rows == [
        Price(
            instrument_id="A",
            bid=Decimal("10.10"),
            ask=Decimal("10.12"),
            last=Decimal("10.11"),
            time=dt.datetime(2026, 1, 2, 16, tzinfo=dt.UTC),
        )
    ]
    assert [e.line for e in parsed.errors] == [2, 3, 4]
    assert parsed.errors[0].message.startswith("not JSON")
    assert parsed.errors[1].message == "bid must be positive, got 0"
    assert "has no time zone" in parsed.errors[2].message


def test_fx_rows_must_name_their_pair_as_base_plus_quote() -> None:
    text = (
        "pair,base,quote,rate,time\n"
        "EURUSD,EUR,USD,1.08,2026-01-02T16:00:00Z\n"
        "EURUSD,USD,EUR,0.92,2026-01-02T16:00:00Z\n"
        "USDUSD,USD,USD,1,2026-01-02T16:00:00Z\n"
    )
    parsed = parse_refdata_text(text, "csv", "fx")
    assert [refdata_key(r) for r in parsed.rows] == ["EURUSD"]
    assert parsed.errors == [
        RowError(3, "pair 'EURUSD' is not base+quote 'USDEUR'"),
        RowError(4, "base and quote are both USD"),
    ]


def test_limits_must_not_be_negative() -> None:
    text = (
        "account_id,gross_notional,net_notional,position_qty,single_trade_notional\nA1,100,-1,0,5\n"
    )
    assert parse_refdata_text(text, "csv", "limits").errors == [
        RowError(2, "net_notional must be 0 or more, got -1")
    ]


def test_the_kind_comes_from_the_header_when_the_name_does_not_tell(tmp_path: Path) -> None:
    path = tmp_path / "upload-0042.csv"
    path.write_text(
        "account_id,gross_notional,net_notional,position_qty,single_trade_notional\nA1,1,1,1,1\n"
    )
    assert parse_refdata_file(path).kind == "limits"


def test_a_file_of_no_known_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "upload.csv"
    path.write_text("colour,size\nred,1\n")
    with pytest.raises(RefDataError, match="cannot tell which reference data"):
        parse_refdata_file(path)


def test_a_json_array_that_is_cut_off_is_refused() -> None:
    with pytest.raises(RefDataError):
        parse_refdata_text('[{"pair": "EURUSD"', "json", "fx")


@pytest.mark.parametrize(
    "name,kind",
    [
        ("instruments.csv", "instruments"),
        ("bad-instruments.csv", "instruments"),
        ("2026-01-02_fx.json", "fx"),
        ("LIMITS.CSV", "limits"),
        ("prices.jsonl", "prices"),
        ("instrumentation.csv", None),
        ("accounts-and-limits.csv", None),
    ],
)
def test_kind_of_name_reads_a_word_of_the_file_name(name: str, kind: str | None) -> None:
    assert kind_of_name(name) == kind


def test_kind_of_columns_needs_all_required_fields_of_exactly_one_kind() -> None:
    assert kind_of_columns({"pair", "base", "quote", "rate", "time"}) == "fx"
    assert (
        kind_of_columns({"account_id", "book", "legal_entity", "base_currency", "status"})
        == "accounts"
    )
    assert kind_of_columns({"account_id"}) is None


def test_refdata_key_is_the_topic_key_of_each_kind() -> None:
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    one = Decimal(1)
    assert (
        refdata_key(Instrument(instrument_id="I", isin="X", symbol="S", currency="USD", mic="XNYS"))
        == "I"
    )
    assert (
        refdata_key(Account(account_id="A", book="B", legal_entity="L", base_currency="USD")) == "A"
    )
    assert refdata_key(Counterparty(counterparty_id="C", lei="L", name="N")) == "C"
    limits = Limits(
        account_id="A",
        gross_notional=one,
        net_notional=one,
        position_qty=one,
        single_trade_notional=one,
    )
    assert refdata_key(limits) == "A"
    assert (
        refdata_key(FxRate(pair="EURUSD", base="EUR", quote="USD", rate=one, time=now)) == "EURUSD"
    )
    assert refdata_key(Price(instrument_id="I", bid=one, ask=one, last=one, time=now)) == "I"


def test_refdata_views_the_mappings_it_is_given_without_copying() -> None:
    accounts: dict[str, Account] = {}
    view = RefData(accounts=accounts)
    accounts["A"] = Account(account_id="A", book="B", legal_entity="L", base_currency="USD")
    assert view.accounts["A"].book == "B"
    assert dict(RefData().instruments) == {}


def test_rows_beyond_their_bounds_are_left_out_with_the_bound_they_broke() -> None:
    text = (
        "instrument_id,isin,symbol,currency,mic,lot_size,tick_size,multiplier\n"
        "GOOD.XNYS,US0378331005,GOOD,USD,XNYS,1,0.01,1\n"
        "BIG LOT.XNYS,US0378331005,BIGL,USD,XNYS,1E+20,0.01,1\n"
        "FINE.XNYS,US0378331005,FINE,USD,XNYS,1,0.000000001,1\n"
        "MULT.XNYS,US0378331005,MULT,USD,XNYS,1,0.01,12345678.901\n"
    )
    parsed = parse_refdata_text(text, "csv", "instruments")
    assert [r.instrument_id for r in parsed.rows] == ["GOOD.XNYS"]  # type: ignore[union-attr]
    assert [(e.line, e.message) for e in parsed.errors] == [
        (3, "instrument_id holds the character ' '; only letters, digits and . _ : / # @ + = -; "
            "lot_size 1E+20 is not below 1E+12 in magnitude"),
        (4, "tick_size 1E-9 has 9 decimal places; at most 8"),
        (5, "multiplier 12345678.901 has 11 significant digits; at most 10"),
    ]  # fmt: skip
    rates = parse_refdata_text(
        "pair,base,quote,rate,time\nEURUSD,EUR,USD,1E-9,2026-01-02T16:00:00Z\n", "csv", "fx"
    )
    assert [e.message for e in rates.errors] == ["rate 1E-9 is below 1E-8"]
