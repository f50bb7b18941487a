"""Which output first includes each trade: from what a reader saw to a time per trade and hop.

Every hop of the chain reads its input partition in offset order and holds, at any
moment, the fold of a prefix of it. That is what makes the inclusion exact from outside:

- **enriched**: the record of the trade itself (its ``trade_id``).
- **position**: the positions hop of key ``account|instrument`` has read a prefix of the
  enriched partition of the account, so (NEW trades only, each counted once) a Position
  with ``trade_count`` c includes the first c trades of its key *in the order of that
  partition*: a trade with ordinal k there is in the first Position of its key whose
  count is >= k.
- **P&L**: the P&L hop likewise holds the last Position per key of a prefix of the
  account's records on ``positions``; its output is a function of that prefix (the
  chain's :class:`PnlModel`). Each P&L record is matched to the shortest prefix, not
  before the previous record's, that gives exactly its value, and a trade is in the
  first P&L record whose prefix holds the trade's Position. Where a trade did not change
  the value (a buy at the mark), the records cannot tell whether it was in: it counts as
  visible once a record shows the value it leaves and its own Position is visible.
- **SSE**: each event of an account is matched, in order, to the P&L record with its
  value; a trade is in the first event matched to a record at or after its own.
"""

from __future__ import annotations

import decimal
from bisect import bisect_left
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from tradeflux.domain.pnl import conversion_factor
from tradeflux.domain.schemas import AccountPnL, FxRate, Position, Price

Seen = tuple[int, int, bytes, bytes, Any, float]  # as bench/visibility.py reads them


class PnlModel(Protocol):
    """How a chain's per-account output follows from the positions its last hop has read."""

    def signatures(self, account: str, positions: Sequence[bytes]) -> list[Hashable]:
        """Return the output's value after each prefix (0 .. n records) of the account's
        Positions, in the order of its ``positions`` partition."""
        ...

    def record_signature(self, value: bytes) -> Hashable:
        """Return the value of one output record, comparable with :meth:`signatures`."""
        ...

    def finals(self, last_positions: Mapping[str, bytes]) -> dict[str, Hashable]:
        """Return every account's final value, from the last Position of each key."""
        ...


_decode_position = msgspec.json.Decoder(Position).decode
_decode_pnl = msgspec.json.Decoder(AccountPnL).decode
_CENT = Decimal("0.01")
_EXACT = decimal.Context(prec=100)  # sums of 28-digit terms, exactly


@dataclass
class TradefluxPnl:
    """tradeflux's ``pnl`` service: AccountPnL of the held positions at constant marks.

    Each position's terms are computed as ``tradeflux.domain.pnl.account_pnl`` computes
    them and summed exactly, so a prefix costs O(1); ``account_pnl`` rounds its running
    sum to 28 digits, which changes the cents only within ~1e-18 of a half cent.
    """

    base_currency: dict[str, str]  # account -> base currency (accounts outside: no P&L)
    prices: dict[str, Price]
    fx: dict[str, FxRate]

    def record_signature(self, value: bytes) -> Hashable:
        return _decode_pnl(value)

    def signatures(self, account: str, positions: Sequence[bytes]) -> list[Hashable]:
        base = self.base_currency.get(account)
        if base is None:
            return []
        terms: dict[str, tuple[Decimal, Decimal] | None] = {}
        realized = unrealized = Decimal(0)
        out: list[Hashable] = [self._pnl(account, base, realized, unrealized, terms)]
        for value in positions:
            pos = _decode_position(value)
            old = terms.get(pos.instrument)
            if old is not None:
                realized = _EXACT.subtract(realized, old[0])
                unrealized = _EXACT.subtract(unrealized, old[1])
            new = self._terms(pos, base)
            terms[pos.instrument] = new
            if new is not None:
                realized = _EXACT.add(realized, new[0])
                unrealized = _EXACT.add(unrealized, new[1])
            out.append(self._pnl(account, base, realized, unrealized, terms))
        return out

    def finals(self, last_positions: Mapping[str, bytes]) -> dict[str, Hashable]:
        by_account: dict[str, list[bytes]] = {}
        for key, value in last_positions.items():
            by_account.setdefault(key.split("|", 1)[0], []).append(value)
        out = {}
        for account, values in by_account.items():
            sigs = self.signatures(account, values)
            if sigs:
                out[account] = sigs[-1]
        return out

    def _terms(self, pos: Position, base: str) -> tuple[Decimal, Decimal] | None:
        price = self.prices.get(pos.instrument)
        factor = conversion_factor(pos.currency, base, self.fx)
        if price is None or factor is None:
            return None
        return (
            pos.realized_pnl * factor,
            (price.last - pos.avg_cost) * pos.quantity * pos.multiplier * factor,
        )

    @staticmethod
    def _pnl(
        account: str, base: str, realized: Decimal, unrealized: Decimal,
        terms: Mapping[str, tuple[Decimal, Decimal] | None],
    ) -> AccountPnL:  # fmt: skip
        realized_q = realized.quantize(_CENT, rounding=decimal.ROUND_HALF_EVEN)
        unrealized_q = unrealized.quantize(_CENT, rounding=decimal.ROUND_HALF_EVEN)
        return AccountPnL(
            account=account,
            base_currency=base,
            realized=realized_q,
            unrealized=unrealized_q,
            total=realized_q + unrealized_q,
            positions=len(terms),
            missing_marks=tuple(sorted(i for i, t in terms.items() if t is None)),
        )


class _Aggregate(msgspec.Struct):
    positions: int
    trade_count: int


class _Count(msgspec.Struct):
    trade_count: int


_decode_aggregate = msgspec.json.Decoder(_Aggregate).decode
_decode_count = msgspec.json.Decoder(_Count).decode


@dataclass
class AggregateCounts:
    """The Kafka Streams chain's aggregate, by its positions held and trades in them.

    The trade count grows with every Position, so a prefix is found without ambiguity.
    """

    def record_signature(self, value: bytes) -> Hashable:
        agg = _decode_aggregate(value)
        return (agg.positions, agg.trade_count)

    def signatures(self, account: str, positions: Sequence[bytes]) -> list[Hashable]:
        counts: dict[str, int] = {}
        total = 0
        out: list[Hashable] = [(0, 0)]
        for value in positions:
            pos = _decode_position(value)
            count = pos.trade_count
            total += count - counts.get(pos.instrument, 0)
            counts[pos.instrument] = count
            out.append((len(counts), total))
        return out

    def finals(self, last_positions: Mapping[str, bytes]) -> dict[str, Hashable]:
        out: dict[str, tuple[int, int]] = {}
        for key, value in last_positions.items():
            account = key.split("|", 1)[0]
            held, total = out.get(account, (0, 0))
            out[account] = (held + 1, total + _decode_count(value).trade_count)
        return dict(out)


class _EnrichedIds(msgspec.Struct):
    trade_id: str
    account: str
    instrument: str


_decode_ids = msgspec.json.Decoder(_EnrichedIds).decode


@dataclass
class Visibility:
    """When each trade was first visible at each hop (epoch seconds); absent: never."""

    enriched: dict[str, float] = field(default_factory=dict)
    position: dict[str, float] = field(default_factory=dict)
    pnl: dict[str, float] = field(default_factory=dict)
    sse: dict[str, float] = field(default_factory=dict)
    enriched_order: dict[str, list[str]] = field(default_factory=dict)  # key -> trade ids
    unmatched_pnl: int = 0  # P&L records that no prefix explains: the model is wrong
    unmatched_sse: int = 0  # SSE events that no P&L record explains
    no_change: int = 0  # trades that left their account's P&L as it was (see the module)


def visibility(
    records: Mapping[str, Sequence[Seen]],
    model: PnlModel,
    sse: Sequence[tuple[float, str, bytes]] = (),
) -> Visibility:
    """Return when each trade became visible at each hop, from the reader's records."""
    out = Visibility()
    ordinal = _enriched_times(out, records["enriched"])
    by_account, prefix_of = _position_times(out, records["positions"], ordinal)
    pnl_by_account: dict[str, list[tuple[Hashable, float]]] = {}
    for _, _, key_bytes, value, _, t in records["pnl"]:
        pnl_by_account.setdefault(key_bytes.decode(), []).append((model.record_signature(value), t))
    record_of = _pnl_times(out, model, pnl_by_account, by_account, prefix_of, ordinal)
    if sse:
        _sse_times(out, sse, model, pnl_by_account, record_of)
    return out


def _enriched_times(out: Visibility, records: Sequence[Seen]) -> dict[str, tuple[str, int]]:
    """Note each trade's enriched time; return its position key and ordinal there."""
    ordinal: dict[str, tuple[str, int]] = {}
    for _, _, _, value, _, t in records:
        ids = _decode_ids(value)
        if ids.trade_id in out.enriched:
            continue  # not expected (NEW trades, once each); the first one counts
        out.enriched[ids.trade_id] = t
        key = f"{ids.account}|{ids.instrument}"
        order = out.enriched_order.setdefault(key, [])
        order.append(ids.trade_id)
        ordinal[ids.trade_id] = (key, len(order))
    return ordinal


def _position_times(
    out: Visibility, records: Sequence[Seen], ordinal: Mapping[str, tuple[str, int]]
) -> tuple[dict[str, list[bytes]], dict[str, int]]:
    """Note each trade's position time; return every account's Positions in partition
    order, and per trade the length of its account's prefix that first holds it."""
    # Per key, the records whose count is a new high: (count, time, account prefix).
    highs: dict[str, tuple[list[int], list[float], list[int]]] = {}
    by_account: dict[str, list[bytes]] = {}
    for _, _, key_bytes, value, _, t in records:
        key = key_bytes.decode()
        held = by_account.setdefault(key.split("|", 1)[0], [])
        held.append(value)
        counts, times, prefixes = highs.setdefault(key, ([], [], []))
        count = _decode_count(value).trade_count
        if not counts or count > counts[-1]:
            counts.append(count)
            times.append(t)
            prefixes.append(len(held))
    prefix_of: dict[str, int] = {}
    for trade_id, (key, k) in ordinal.items():
        counts, times, prefixes = highs.get(key, ([], [], []))
        i = bisect_left(counts, k)
        if i < len(counts):
            out.position[trade_id] = times[i]
            prefix_of[trade_id] = prefixes[i]
    return by_account, prefix_of


@dataclass
class _Matched:
    """An account's P&L records that some prefix explains, in order."""

    prefix: list[int] = field(default_factory=list)  # the shortest prefix that explains it
    run_end: list[int] = field(default_factory=list)  # the last prefix of the same value
    time: list[float] = field(default_factory=list)
    index: list[int] = field(default_factory=list)  # among all the account's P&L records


def _pnl_times(
    out: Visibility,
    model: PnlModel,
    pnl_by_account: Mapping[str, list[tuple[Hashable, float]]],
    by_account: Mapping[str, list[bytes]],
    prefix_of: Mapping[str, int],
    ordinal: Mapping[str, tuple[str, int]],
) -> dict[str, tuple[str, int]]:
    """Note each trade's P&L time; return per trade (account, index of its P&L record)."""
    matched: dict[str, _Matched] = {}
    for account, pnl_records in pnl_by_account.items():
        sigs = model.signatures(account, by_account.get(account, []))
        where: dict[Hashable, list[int]] = {}
        for i, sig in enumerate(sigs):
            where.setdefault(sig, []).append(i)
        run_end = list(range(len(sigs)))
        for i in range(len(sigs) - 2, -1, -1):
            if sigs[i] == sigs[i + 1]:
                run_end[i] = run_end[i + 1]
        at, mine = 0, matched.setdefault(account, _Matched())
        for j, (sig, t) in enumerate(pnl_records):
            candidates = where.get(sig, [])
            c = bisect_left(candidates, at)
            if c == len(candidates):
                out.unmatched_pnl += 1
                continue
            at = candidates[c]
            mine.prefix.append(at)
            mine.run_end.append(run_end[at])
            mine.time.append(t)
            mine.index.append(j)
    record_of: dict[str, tuple[str, int]] = {}
    for trade_id, prefix in prefix_of.items():
        account = ordinal[trade_id][0].split("|", 1)[0]
        m = matched.get(account, _Matched())
        i = bisect_left(m.run_end, prefix)
        if i == len(m.run_end):
            continue
        if m.prefix[i] >= prefix:
            out.pnl[trade_id] = m.time[i]
        else:  # the trade left the value as it was: visible once it is and its position is
            out.pnl[trade_id] = max(m.time[i], out.position[trade_id])
            out.no_change += 1
        record_of[trade_id] = (account, m.index[i])
    return record_of


def _sse_times(
    out: Visibility,
    sse: Sequence[tuple[float, str, bytes]],
    model: PnlModel,
    pnl_by_account: Mapping[str, list[tuple[Hashable, float]]],
    record_of: Mapping[str, tuple[str, int]],
) -> None:
    where: dict[str, dict[Hashable, list[int]]] = {}
    for account, pnl_records in pnl_by_account.items():
        for j, (sig, _) in enumerate(pnl_records):
            where.setdefault(account, {}).setdefault(sig, []).append(j)
    at: dict[str, int] = {}
    events: dict[str, tuple[list[int], list[float]]] = {}
    for t, name, data in sse:
        if name != "pnl":
            continue
        sig = model.record_signature(data)
        holder = getattr(sig, "account", None)
        if holder is None:
            continue
        candidates = where.get(holder, {}).get(sig, [])
        c = bisect_left(candidates, at.get(holder, 0))
        if c == len(candidates):
            out.unmatched_sse += 1
            continue
        at[holder] = candidates[c]
        mine = events.setdefault(holder, ([], []))
        mine[0].append(candidates[c])
        mine[1].append(t)
    for trade_id, (account, j) in record_of.items():
        indexes, times = events.get(account, ([], []))
        i = bisect_left(indexes, j)
        if i < len(indexes):
            out.sse[trade_id] = times[i]
