"""Write the shipped sample reference data: instruments, accounts, counterparties, limits, FX.

Deterministic: the same seed gives the same files, byte for byte. The companies,
counterparties and codes are invented; ISINs, CUSIPs, SEDOLs and LEIs carry correct
check digits so that the refdata loader accepts every row.

    python scripts/make_sample_refdata.py [--out data/refdata] [--seed 20260102]
"""

from __future__ import annotations

import argparse
import csv
import random
import string
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tradeflux.domain.identifiers import make_isin, make_lei

FX_TIME = "2026-01-02T16:00:00Z"
ALNUM = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Market:
    """How the instruments of one venue look."""

    mic: str
    currency: str
    country: str  # ISIN prefix
    count: int
    symbols: str  # "alpha" or "numeric"
    lots: tuple[int, ...]
    ticks: tuple[str, ...]
    settlement_days: int
    suffixes: tuple[str, ...]


MARKETS = (
    Market("XNYS", "USD", "US", 60, "alpha", (1,), ("0.01",), 1, ("Inc.", "Corp.", "Co.")),
    Market("XNAS", "USD", "US", 55, "alpha", (1,), ("0.01",), 1, ("Inc.", "Holdings Inc.")),
    Market("XLON", "GBP", "GB", 40, "alpha", (1,), ("0.01", "0.05", "0.5"), 2, ("plc",)),
    Market("XETR", "EUR", "DE", 35, "alpha", (1,), ("0.01", "0.05"), 2, ("AG", "SE")),
    Market("XPAR", "EUR", "FR", 35, "alpha", (1,), ("0.01", "0.05"), 2, ("SA", "SE")),
    Market("XTKS", "JPY", "JP", 35, "numeric", (100,), ("1", "5", "10"), 2, ("Corp.", "K.K.")),
    Market("XHKG", "HKD", "HK", 30, "numeric", (100, 500, 1000), ("0.01", "0.05"), 2, ("Ltd",)),
    Market("XSWX", "CHF", "CH", 25, "alpha", (1, 10), ("0.01", "0.05", "0.5"), 2, ("AG", "SA")),
)

NAME_HEADS = (
    "Atlas", "Northwind", "Meridian", "Granite", "Silverline", "Bluewater", "Redwood",
    "Summit", "Harbor", "Crescent", "Evergreen", "Ironbridge", "Lakeshore", "Pinnacle",
    "Sterling", "Clearview", "Falcon", "Horizon", "Keystone", "Lumen", "Orion", "Polaris",
    "Quarry", "Riverton", "Sapphire", "Tidewater", "Vantage", "Westfield", "Aurora",
    "Beacon", "Cobalt", "Delta", "Ember", "Fairmont", "Glacier", "Helix", "Ivory", "Juniper",
    "Kestrel", "Lighthouse", "Monarch", "Nimbus", "Oakridge", "Prairie", "Ridgeline",
    "Solstice", "Trident", "Unity", "Vertex", "Willow", "Zenith", "Alder", "Brightstone",
    "Cedar", "Driftwood", "Eastgate", "Foxglove", "Greystone", "Highland", "Islay",
)  # fmt: skip
NAME_SECTORS = (
    "Energy", "Pharmaceuticals", "Bank", "Logistics", "Semiconductors", "Foods",
    "Insurance", "Motors", "Telecom", "Chemicals", "Software", "Mining", "Retail",
    "Utilities", "Biotech", "Aerospace", "Media", "Steel", "Airlines", "Shipping",
    "Robotics", "Healthcare", "Materials", "Real Estate", "Brewing", "Electronics",
)  # fmt: skip
ETF_NAMES = ("Large Cap UCITS ETF", "Dividend Leaders ETF", "Small Cap Index ETF")


def cusip(rng: random.Random) -> str:
    """Return an invented 9-character CUSIP (issuer, issue, check digit)."""
    base = "".join(rng.choice(string.digits) for _ in range(3))
    base += "".join(rng.choice(ALNUM) for _ in range(3)) + "10"
    total = 0
    for i, ch in enumerate(base):
        value = int(ch, 36)
        value = value * 2 if i % 2 == 1 else value
        total += value // 10 + value % 10
    return base + str((10 - total % 10) % 10)


def sedol(rng: random.Random) -> str:
    """Return an invented 7-character SEDOL (6 characters and its check digit)."""
    base = "B" + "".join(rng.choice("0123456789BCDFGHJKLMNPQRSTVWXYZ") for _ in range(5))
    total = sum(int(ch, 36) * w for ch, w in zip(base, (1, 3, 1, 7, 3, 9), strict=True))
    return base + str((10 - total % 10) % 10)


def national_number(market: Market, rng: random.Random) -> str:
    """Return the 9-character national part of an ISIN, shaped like the country's."""
    digits = "".join(rng.choice(string.digits) for _ in range(7))
    match market.country:
        case "US":
            return cusip(rng)
        case "GB":
            return "00" + sedol(rng)
        case "DE":
            return "000" + "".join(rng.choice(ALNUM) for _ in range(6))
        case "JP":
            return "3" + digits[:6] + "00"
        case _:
            return "00" + digits


def alpha_symbol(name: str, taken: set[str], rng: random.Random, max_len: int) -> str:
    """Return an unused ticker made of letters of ``name`` (then random letters)."""
    letters = [c for c in name.upper() if c.isalpha()]
    candidates = [letters[0] + "".join(letters[1:n]) for n in range(2, max_len + 1)]
    for _ in range(50):
        candidates.append(letters[0] + "".join(rng.choice(letters[1:]) for _ in range(max_len - 1)))
    for candidate in candidates:
        if len(candidate) >= 2 and candidate not in taken:
            return candidate
    raise RuntimeError(f"no free symbol for {name}")


def instruments(rng: random.Random) -> list[dict[str, str]]:
    """Return the instrument rows of every market."""
    names = [f"{h} {s}" for h in NAME_HEADS for s in NAME_SECTORS]
    rng.shuffle(names)
    rows: list[dict[str, str]] = []
    symbols: dict[str, set[str]] = {}
    isins: set[str] = set()
    codes = rng.sample(range(1301, 9984), 200)
    for market in MARKETS:
        taken = symbols.setdefault(market.currency, set())
        for i in range(market.count):
            stem = names.pop()
            etf = i >= market.count - 2
            if etf:
                name = f"{stem.split()[0]} {market.country} {ETF_NAMES[i % len(ETF_NAMES)]}"
            else:
                name = f"{stem} {rng.choice(market.suffixes)}"
            if market.symbols == "numeric":
                code = codes.pop()
                symbol = f"{code:04d}" if market.mic == "XTKS" else f"{code % 4000:04d}"
                if symbol in taken:
                    symbol = f"{code:04d}"
            else:
                symbol = alpha_symbol(stem, taken, rng, 4 if market.mic != "XPAR" else 3)
            taken.add(symbol)
            isin = make_isin(market.country, national_number(market, rng))
            while isin in isins:
                isin = make_isin(market.country, national_number(market, rng))
            isins.add(isin)
            rows.append(
                {
                    "instrument_id": f"{symbol}.{market.mic}",
                    "isin": isin,
                    "symbol": symbol,
                    "name": name,
                    "currency": market.currency,
                    "mic": market.mic,
                    "lot_size": str(rng.choice(market.lots)),
                    "tick_size": rng.choice(market.ticks),
                    "multiplier": "1",
                    "settlement_days": str(market.settlement_days),
                    "asset_class": "ETF" if etf else "EQUITY",
                    "active": "true",
                }
            )
    for row in rng.sample(rows, 6):
        row["active"] = "false"  # delisted, still referenced by old trades
    return rows


ENTITIES = {
    "USD": "Tradeflux Securities LLC",
    "EUR": "Tradeflux Europe SE",
    "GBP": "Tradeflux UK Ltd",
    "JPY": "Tradeflux Japan K.K.",
    "CHF": "Tradeflux Suisse AG",
    "HKD": "Tradeflux Asia Ltd",
}
ACCOUNT_BASES = ("USD",) * 16 + ("EUR",) * 10 + ("GBP",) * 8 + ("JPY",) * 5
ACCOUNT_BASES += ("CHF",) * 4 + ("HKD",) * 5
UNITS_PER_USD = {"USD": 1, "EUR": 1, "GBP": 1, "JPY": 150, "CHF": 1, "HKD": 8}
DESKS = ("FLOW", "PROP", "ARB", "DELTA1", "CLIENT", "PT")


def accounts(rng: random.Random) -> list[dict[str, str]]:
    """Return the account rows: several base currencies, a few suspended, one closed."""
    rows = []
    for i, base in enumerate(ACCOUNT_BASES, start=1):
        region = {"USD": "US", "EUR": "EU", "GBP": "UK", "JPY": "JP", "CHF": "CH"}.get(base, "HK")
        rows.append(
            {
                "account_id": f"ACC-{i:04d}",
                "book": f"EQ-{rng.choice(DESKS)}-{region}-{rng.randrange(1, 5)}",
                "legal_entity": ENTITIES[base],
                "base_currency": base,
                "status": "ACTIVE",
            }
        )
    for row in rng.sample(rows, 4):
        row["status"] = "SUSPENDED"
    next(r for r in rows if r["status"] == "ACTIVE" and r["base_currency"] == "EUR")["status"] = (
        "CLOSED"
    )
    return rows


def limits(rng: random.Random, account_rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Return one limits row per account, in its base currency."""
    rows = []
    for account in account_rows:
        units = UNITS_PER_USD[account["base_currency"]]
        # small enough that the demo's simulated flow crosses some limits within a minute
        gross = rng.choice((5, 10, 20, 50)) * 1_000_000 * units
        rows.append(
            {
                "account_id": account["account_id"],
                "gross_notional": str(gross),
                "net_notional": str(gross * 2 // 5),
                "position_qty": str(rng.choice((50_000, 100_000, 250_000, 1_000_000))),
                "single_trade_notional": str(gross // 20),
            }
        )
    return rows


CP_HEADS = (
    "Harbourview", "Kingsbridge", "Alderney", "Bellhaven", "Castlegate", "Dunmore",
    "Eastcliff", "Fenwick", "Galloway", "Hartwell", "Inverness", "Jardine Street",
    "Kensal", "Larkspur", "Marlowe", "Newhaven", "Oldfield", "Pemberton", "Queensway",
    "Rosemount", "Saltmarsh", "Thornbury", "Upminster", "Valemont", "Whitcombe",
    "Yarrow", "Ashcombe", "Brightwater", "Coldharbour", "Dovecote",
)  # fmt: skip
CP_FORMS = (
    ("Securities LLC", "DTC participant"),
    ("Capital Markets plc", "CREST member"),
    ("Bank AG", "Clearstream account"),
    ("Brokerage SA", "Euroclear account"),
    ("Securities Co., Ltd.", "JASDEC participant"),
    ("Asia Limited", "CCASS participant"),
)
LOU_PREFIXES = ("5493", "2138", "5299", "9695", "3538", "8156")


def counterparties(rng: random.Random) -> list[dict[str, str]]:
    """Return the counterparty rows with valid LEIs; a few inactive."""
    rows = []
    for i, head in enumerate(CP_HEADS, start=1):
        form, place = rng.choice(CP_FORMS)
        prefix = rng.choice(LOU_PREFIXES) + "00" + "".join(rng.choice(ALNUM) for _ in range(12))
        rows.append(
            {
                "counterparty_id": f"CP-{i:03d}",
                "lei": make_lei(prefix),
                "name": f"{head} {form}",
                "settlement_instructions": f"{place} {rng.randrange(1000, 99999):05d}",
                "active": "true",
            }
        )
    for row in rng.sample(rows, 3):
        row["active"] = "false"
    return rows


# Mid rates: quote units per base unit, market convention pairs and a few crosses.
FX_RATES = {
    "EURUSD": "1.0842", "GBPUSD": "1.2695", "USDJPY": "151.37", "USDCHF": "0.8853",
    "USDHKD": "7.8125", "EURGBP": "0.8541", "EURCHF": "0.9598", "EURJPY": "164.12",
    "GBPJPY": "192.16", "GBPCHF": "1.1239", "CHFJPY": "170.98", "EURHKD": "8.4703",
}  # fmt: skip


def fx() -> list[dict[str, str]]:
    """Return the FX rows: every currency against USD, and the common crosses."""
    return [
        {
            "pair": pair,
            "base": pair[:3],
            "quote": pair[3:],
            "rate": str(Decimal(rate)),
            "time": FX_TIME,
        }
        for pair, rate in FX_RATES.items()
    ]


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """Write ``rows`` (same keys each) as CSV with a header row and Unix line ends."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    """Write the sample files into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/refdata"))
    parser.add_argument("--seed", type=int, default=20260102)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 (sample data, not security)
    args.out.mkdir(parents=True, exist_ok=True)
    account_rows = accounts(rng)
    files = {
        "instruments.csv": instruments(rng),
        "accounts.csv": account_rows,
        "counterparties.csv": counterparties(rng),
        "limits.csv": limits(rng, account_rows),
        "fx.csv": fx(),
    }
    for name, rows in files.items():
        write_csv(args.out / name, rows)
        print(f"{args.out / name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
