"""The reference data the simulator draws from, read from the sample CSV files.

A deliberately small reader of its own (the simulator does not depend on the
refdata service's loader): each CSV has a header row naming fields of the
``Instrument`` / ``Account`` / ``Counterparty`` / ``FxRate`` structs; empty cells take
the field's default and unknown columns are ignored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import msgspec

from tradeflux.domain.schemas import Account, Counterparty, FxRate, Instrument
from tradeflux.errors import TradefluxError

T = TypeVar("T", bound=msgspec.Struct)

INSTRUMENTS_FILE = "instruments.csv"
ACCOUNTS_FILE = "accounts.csv"
COUNTERPARTIES_FILE = "counterparties.csv"
FX_FILE = "fx.csv"  # optional: where the FX walks start


class SimulationError(TradefluxError):
    """The simulator cannot run with what it was given (reference data, rates, ...)."""


@dataclass(frozen=True)
class SimRefData:
    """The instruments, accounts and counterparties trades are drawn from, in file order."""

    instruments: tuple[Instrument, ...]
    accounts: tuple[Account, ...]
    counterparties: tuple[Counterparty, ...]
    fx_rates: tuple[FxRate, ...] = ()


def read_structs(path: Path, type_: type[T]) -> list[T]:
    """Return the rows of the CSV file ``path`` as ``type_`` structs, in file order.

    Cells are converted leniently (``"100"`` to Decimal or int, ``"false"`` to bool);
    a row that does not fit the struct raises :class:`SimulationError` naming the line.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise SimulationError(
            f"cannot read {path} ({exc.strerror}); pass --refdata with a folder holding "
            f"{INSTRUMENTS_FILE}, {ACCOUNTS_FILE} and {COUNTERPARTIES_FILE}"
        ) from None
    out: list[T] = []
    for line, row in enumerate(rows, start=2):
        cells = {k.strip(): v.strip() for k, v in row.items() if k and v is not None and v.strip()}
        try:
            out.append(msgspec.convert(cells, type_, strict=False))
        except msgspec.ValidationError as exc:
            raise SimulationError(f"{path}:{line}: not a valid {type_.__name__}: {exc}") from None
    return out


def load_refdata(folder: Path) -> SimRefData:
    """Read the instruments, accounts, counterparties (and FX, if there) CSV files of ``folder``."""
    fx_path = folder / FX_FILE
    return SimRefData(
        instruments=tuple(read_structs(folder / INSTRUMENTS_FILE, Instrument)),
        accounts=tuple(read_structs(folder / ACCOUNTS_FILE, Account)),
        counterparties=tuple(read_structs(folder / COUNTERPARTIES_FILE, Counterparty)),
        fx_rates=tuple(read_structs(fx_path, FxRate)) if fx_path.exists() else (),
    )
