"""The P&L check: each account's P&L against its consumed positions, marked.

Expected, per account: :func:`~tradeflux.domain.pnl.account_pnl` of the latest positions
the P&L service had consumed up to its cut, in the base currency of ``refdata.accounts``,
marked at the latest prices and FX rates on their topics.

The P&L service emits on a timer (throttled), at the marks of that moment, so while it
runs its latest P&L of an account may trail its inputs. With ``live``, an account whose
P&L differs is *pending*, not a difference, when

- its P&L equals the marking of an earlier state of its positions: as they were after
  one of the position records the service consumed before the cut (it is late, and
  right for that state); or
- a mark it depends on (a price of one of its instruments, any FX rate) was written
  less than :data:`MARKS_LAG_S` before its P&L or after it (it may have been computed
  at marks the topics no longer hold as latest).
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

from tradeflux.audit.cuts import Cut
from tradeflux.audit.folds import latest, map_result
from tradeflux.audit.logs import RecordLog
from tradeflux.audit.report import CheckResult, Difference
from tradeflux.domain.pnl import account_pnl
from tradeflux.domain.schemas import Account, AccountPnL, FxRate, Position, Price

MARKS_LAG_S = 5.0
"""How long a written price or FX rate may take to reach the P&L service's tables."""

MAX_STATES_BACK = 5_000
"""How many earlier states of an account a pending P&L is compared with, at most."""


def _earlier_state_matches(
    found: AccountPnL,
    base_currency: str,
    history: list[tuple[str, Position | None]],
    prices: dict[str, Price],
    fx: dict[str, FxRate],
) -> bool:
    """Tell whether ``found`` marks the account's positions after one of its records.

    ``history`` holds the account's position records in the order consumed (key, value;
    None removes the key).
    """
    state: dict[str, Position] = {}
    before: list[Position | None] = []
    for key, position in history:
        before.append(state.get(key))
        if position is None:
            state.pop(key, None)
        else:
            state[key] = position
    for (key, _), previous in list(zip(history, before, strict=True))[::-1][:MAX_STATES_BACK]:
        if previous is None:
            state.pop(key, None)
        else:
            state[key] = previous
        if not state:
            return False
        if account_pnl(found.account, base_currency, state.values(), prices, fx) == found:
            return True
    return False


def _histories(
    positions: RecordLog, cut: Cut, dead: set[tuple[int, int]]
) -> dict[str, list[tuple[str, Position | None]]]:
    """Return per account its position records before the cut, in the order consumed."""
    decoder = msgspec.json.Decoder(Position)
    histories: dict[str, list[tuple[str, Position | None]]] = defaultdict(list)
    for rec in positions.upto(cut.committed):
        if (rec.partition, rec.offset) in dead:
            continue
        key = (rec.key or b"").decode(errors="replace")
        try:
            value = None if rec.value is None else decoder.decode(rec.value)
        except msgspec.DecodeError:
            continue  # reported by the check already
        histories[key.partition("|")[0]].append((key, value))
    return histories


def check_pnl(
    cut: Cut,
    positions: RecordLog,
    pnl: RecordLog,
    dead: set[tuple[int, int]],
    accounts: RecordLog,
    prices: RecordLog,
    fx: RecordLog,
    live: bool,
) -> CheckResult:
    """P&L on the topic against the consumed positions marked (module docstring)."""
    held, _, bad = latest(positions, Position, cut.committed, dead)
    account_table, _, bad_accounts = latest(accounts, Account, None, set())
    price_table, price_at, bad_prices = latest(prices, Price, None, set())
    fx_table, fx_at, bad_fx = latest(fx, FxRate, None, set())
    found, found_at, bad_found = latest(pnl, AccountPnL, cut.ends.get(pnl.label), set())
    by_account: dict[str, list[Position]] = defaultdict(list)
    for position in held.values():
        by_account[position.account].append(position)
    expected: dict[str, AccountPnL] = {}
    for account, held_positions in by_account.items():
        refdata = account_table.get(account)
        if refdata is not None:
            expected[account] = account_pnl(
                account, refdata.base_currency, held_positions, price_table, fx_table
            )
    result = map_result(
        "pnl",
        "P&L = positions marked at the prices and FX on their topics",
        expected,
        found,
        bad + bad_accounts + bad_prices + bad_fx + bad_found,
    )
    if live:
        histories = _histories(positions, cut, dead)
        latest_fx_ms = max(fx_at.values(), default=0)
        still: list[Difference] = []
        for diff in result.differences:
            account = diff.key
            shown, refdata = found.get(account), account_table.get(account)
            if shown is None or refdata is None or account not in expected:
                pending = shown is None and account in expected
            else:
                marks_ms = max(
                    [latest_fx_ms, *(price_at.get(p.instrument, 0) for p in by_account[account])]
                )
                pending = marks_ms >= found_at[account] - MARKS_LAG_S * 1000 or (
                    _earlier_state_matches(
                        shown, refdata.base_currency, histories[account], price_table, fx_table
                    )
                )
            if pending:
                result.pending += 1
            else:
                still.append(diff)
        result.differences = still
    result.notes.append(
        f"marked at {len(price_table):,} prices and {len(fx_table):,} FX rates; "
        f"{sum(1 for p in expected.values() if p.missing_marks):,} accounts miss a mark"
    )
    return result
