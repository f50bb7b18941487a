"""Reference data: the read-only view validation uses, and the parsing of refdata files.

Files are CSV (a header row, then one row per record) or JSON (a list of objects, or
one object per line). Their kind (instruments, accounts, counterparties, limits, fx,
prices) comes from the file name (``instruments.csv``, ``bad-instruments.csv``) or,
failing that, from the columns of its header. Each row is decoded into its schema
struct and checked against its bounds (domain/bounds.py: ISIN and LEI check digits, ISO
4217 codes, known MICs, positive sizes within their magnitude and digits, identifier
forms, ...); a bad row is reported by line number and left out, never kept.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import msgspec

from tradeflux.domain.bounds import (
    account_problems,
    counterparty_problems,
    fx_problems,
    instrument_problems,
    limits_problems,
    price_problems,
)
from tradeflux.domain.schemas import Account, Counterparty, FxRate, Instrument, Limits, Price
from tradeflux.errors import TradefluxError

RefDataKind = Literal["instruments", "accounts", "counterparties", "limits", "fx", "prices"]
RefDataRecord: TypeAlias = Instrument | Account | Counterparty | Limits | FxRate | Price

KIND_TYPES: Mapping[RefDataKind, type[RefDataRecord]] = MappingProxyType(
    {
        "instruments": Instrument,
        "accounts": Account,
        "counterparties": Counterparty,
        "limits": Limits,
        "fx": FxRate,
        "prices": Price,
    }
)
"""The schema struct of each kind of reference data file."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class RefDataError(TradefluxError):
    """A reference data file cannot be read as a whole (unknown kind, not CSV or JSON)."""


@dataclass(frozen=True, slots=True)
class RefData:
    """A read-only view of the reference data validation needs, keyed by id.

    The mappings are held, not copied: pass the live global tables and the view follows
    them. Limits are keyed by account id.
    """

    instruments: Mapping[str, Instrument] = field(default_factory=lambda: _EMPTY)
    accounts: Mapping[str, Account] = field(default_factory=lambda: _EMPTY)
    counterparties: Mapping[str, Counterparty] = field(default_factory=lambda: _EMPTY)
    limits: Mapping[str, Limits] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was left out of a file, with its 1-based line number and why."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The valid rows of a reference data file, and the rows left out."""

    kind: RefDataKind
    rows: list[RefDataRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def refdata_key(record: RefDataRecord) -> str:
    """Return the key of ``record`` on its compacted topic (ARCHITECTURE.md section 3)."""
    if isinstance(record, Instrument | Price):
        return record.instrument_id
    if isinstance(record, Account | Limits):
        return record.account_id
    if isinstance(record, Counterparty):
        return record.counterparty_id
    return record.pair


def kind_of_name(name: str) -> RefDataKind | None:
    """Return the kind a file name tells (a word of its stem, e.g. ``bad-instruments.csv``)."""
    stem = Path(name).name.split(".")[0].lower()
    words = re.split(r"[^a-z]+", stem)
    kinds = [k for k in KIND_TYPES if k in words]
    return kinds[0] if len(kinds) == 1 else None


def kind_of_columns(columns: set[str]) -> RefDataKind | None:
    """Return the one kind whose required fields are all among ``columns``, if one is."""
    matches = [k for k, t in KIND_TYPES.items() if _required_fields(t) <= columns]
    return matches[0] if len(matches) == 1 else None


def _required_fields(struct: type[msgspec.Struct]) -> set[str]:
    info = msgspec.inspect.type_info(struct)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"{struct!r} is not a msgspec Struct")
    return {f.name for f in info.fields if f.required}


def parse_refdata_file(path: str | Path, kind: RefDataKind | None = None) -> ParsedFile:
    """Read and parse a reference data file; its format is taken from the suffix.

    ``.json`` and ``.jsonl`` are JSON, anything else CSV. The kind is ``kind`` if
    given, else the file name's, else its columns'.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    fmt: Literal["csv", "json"] = "json" if path.suffix.lower() in (".json", ".jsonl") else "csv"
    return parse_refdata_text(text, fmt, kind or kind_of_name(path.name), source=str(path))


def parse_refdata_text(
    text: str,
    fmt: Literal["csv", "json"],
    kind: RefDataKind | None = None,
    source: str = "<text>",
) -> ParsedFile:
    """Parse the text of a reference data file (see :func:`parse_refdata_file`).

    Raises :class:`RefDataError` when the kind cannot be told or the text as a whole is
    not CSV or JSON; a bad row only gives a :class:`RowError`.
    """
    columns, numbered = _csv_rows(text, source) if fmt == "csv" else _json_rows(text, source)
    if kind is None:
        kind = kind_of_columns(columns)
        if kind is None:
            raise RefDataError(
                f"{source}: cannot tell which reference data this is; name the file "
                f"after its kind ({', '.join(KIND_TYPES)}) or give the kind"
            )
    struct = KIND_TYPES[kind]
    check = _CHECKS[kind]
    parsed = ParsedFile(kind)
    first_line: dict[str, int] = {}
    for line, row in numbered:
        if isinstance(row, str):
            parsed.errors.append(RowError(line, row))
            continue
        try:
            record = msgspec.convert(row, struct, strict=False)
        except msgspec.ValidationError as exc:
            parsed.errors.append(RowError(line, str(exc)))
            continue
        problems = check(record)
        key = refdata_key(record)
        if not problems and key in first_line:
            problems = [f"duplicate key {key!r}, first on line {first_line[key]}"]
        if problems:
            parsed.errors.append(RowError(line, "; ".join(problems)))
            continue
        first_line[key] = line
        parsed.rows.append(record)
    return parsed


_Rows: TypeAlias = list[tuple[int, Any]]  # (line, row object, or why the row is unreadable)


def _csv_rows(text: str, source: str) -> tuple[set[str], _Rows]:
    """Return the header columns and the (line, row) of CSV text.

    Empty cells are left out of a row, so the field's default applies. Blank lines and
    lines starting with ``#`` are skipped.
    """
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: _Rows = []
    line = 1
    try:
        for cells in reader:
            row_line, line = line, reader.line_num + 1
            if not cells or all(not c.strip() for c in cells) or cells[0].startswith("#"):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                continue
            if len(cells) != len(header):
                rows.append((row_line, f"{len(cells)} cells for {len(header)} columns"))
                continue
            cells = [c.strip() for c in cells]
            rows.append((row_line, {h: c for h, c in zip(header, cells, strict=True) if c}))
    except csv.Error as exc:
        raise RefDataError(f"{source}: not CSV at line {reader.line_num} ({exc})") from exc
    return set(header or ()), rows


def _json_rows(text: str, source: str) -> tuple[set[str], _Rows]:
    """Return the keys of the first object and the (line, object) of JSON text.

    The text is a JSON array of objects, or JSON lines; numbers stay exact (Decimal).
    """
    decoder = json.JSONDecoder(parse_float=Decimal)
    rows: _Rows = []
    if not text.lstrip().startswith("["):
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    rows.append((number, decoder.decode(raw)))
                except ValueError as exc:
                    rows.append((number, f"not JSON ({exc})"))
    else:
        index = text.index("[") + 1
        while True:
            index = _skip_space(text, index)
            if index < len(text) and text[index] == "]":
                break
            try:
                value, end = decoder.raw_decode(text, index)
            except ValueError as exc:
                raise RefDataError(f"{source}: not a JSON array of objects ({exc})") from exc
            rows.append((text.count("\n", 0, index) + 1, value))
            index = _skip_space(text, end)
            if index < len(text) and text[index] == ",":
                index += 1
            elif index >= len(text) or text[index] != "]":
                raise RefDataError(f"{source}: not a JSON array of objects at offset {index}")
    first = rows[0][1] if rows else None
    return set(first) if isinstance(first, dict) else set(), rows


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


_CHECKS: Mapping[RefDataKind, Callable[[Any], list[str]]] = MappingProxyType(
    {
        "instruments": instrument_problems,
        "accounts": account_problems,
        "counterparties": counterparty_problems,
        "limits": limits_problems,
        "fx": fx_problems,
        "prices": price_problems,
    }
)
"""The bounds of each kind (domain/bounds.py, the same a service applies to its tables)."""
