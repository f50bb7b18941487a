"""An independent, plain fold of the session rules (docs/domain-rules.md, "Analytics (sessions)").

It shares nothing with ``tradeflux.domain.sessions``: it replays the events of
``trades.enriched`` per partition in offset order, keeps every trade it applied (it drops
nothing when a session closes), recomputes an account's sessions from scratch whenever it
needs them (sort the live trades by time, cut where the gap is wider), and computes every
session's last revision at the end.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.domain.sessions import AccountSession, CurrencyNotional

ZERO = Decimal(0)


@dataclass
class Expected:
    """The last revision of every session key, and how many events were late."""

    sessions: dict[str, AccountSession] = field(default_factory=dict)
    late: int = 0


def _runs(trades: list[EnrichedTrade], gap: dt.timedelta) -> list[list[EnrichedTrade]]:
    runs: list[list[EnrichedTrade]] = []
    for t in sorted(trades, key=lambda t: (t.trade_time, t.trade_id)):
        if runs and t.trade_time - runs[-1][-1].trade_time <= gap:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def fold_partition(
    events: list[EnrichedTrade], gap: dt.timedelta, grace: dt.timedelta, out: Expected
) -> None:
    """Fold one partition's events, in offset order, into ``out``."""
    now: dt.datetime | None = None
    held: dict[tuple[str, str], EnrichedTrade] = {}  # latest applied, cancels included

    def live(account: str) -> list[EnrichedTrade]:
        return [e for (a, _), e in held.items() if a == account and e.event_type != "CANCEL"]

    def closed_with(trade: EnrichedTrade) -> bool:
        run = next(r for r in _runs(live(trade.account), gap) if trade in r)
        return now is not None and now > run[-1].trade_time + gap + grace

    for e in events:
        ident = (e.account, e.trade_id)
        before = held.get(ident)
        if before is None or e.version > before.version:
            live_before = before is not None and before.event_type != "CANCEL"
            late = (
                (e.event_type != "NEW" and not live_before)
                or (e.event_type != "CANCEL" and now is not None and e.trade_time + grace < now)
                or (live_before and closed_with(before))  # type: ignore[arg-type]
            )
            if late:
                out.late += 1
            else:
                held[ident] = e
        if now is None or e.trade_time > now:
            now = e.trade_time
    for account in sorted({a for a, _ in held}):
        for run in _runs(live(account), gap):
            bought: dict[str, Decimal] = defaultdict(Decimal)
            sold: dict[str, Decimal] = defaultdict(Decimal)
            for t in run:
                (bought if t.side == "BUY" else sold)[t.currency] += t.notional
            buys = sum(1 for t in run if t.side == "BUY")
            start, end = run[0].trade_time, run[-1].trade_time
            key = f"{account}|{start.astimezone(dt.UTC).isoformat().removesuffix('+00:00')}Z"
            out.sessions[key] = AccountSession(
                account=account, session_start=start, session_end=end, trade_count=len(run),
                buy_count=buys, sell_count=len(run) - buys,
                notional=tuple(
                    CurrencyNotional(currency=c, bought=bought.get(c, ZERO), sold=sold.get(c, ZERO))
                    for c in sorted(set(bought) | set(sold))
                ),
                final=now is not None and now > end + gap + grace,
            )  # fmt: skip


def expected_from(enriched: list[Any], gap: dt.timedelta, grace: dt.timedelta) -> Expected:
    """The expected sessions from the messages of ``trades.enriched`` (read_all's order)."""
    decode = msgspec.json.Decoder(EnrichedTrade).decode
    partitions: dict[int, list[EnrichedTrade]] = defaultdict(list)
    for m in enriched:
        partitions[m.partition()].append(decode(m.value()))
    out = Expected()
    for events in partitions.values():
        fold_partition(events, gap, grace, out)
    return out


def sessions_written(messages: list[Any]) -> tuple[dict[str, AccountSession], dict[str, int]]:
    """The last session per key on ``analytics.sessions`` (tombstones remove), finals per key."""
    decode = msgspec.json.Decoder(AccountSession).decode
    latest: dict[str, AccountSession] = {}
    finals: dict[str, int] = defaultdict(int)
    for m in messages:
        key = m.key().decode()
        if m.value() is None:
            latest.pop(key, None)
            continue
        session = decode(m.value())
        latest[key] = session
        finals[key] += session.final
    return latest, {k: n for k, n in finals.items() if n}
