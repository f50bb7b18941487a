"""Activity sessions per account: bursts of trades separated by an inactivity gap.

docs/domain-rules.md, "Analytics (sessions)". A session of an account is a maximal run of
its effective trades (latest version per trade id; a CANCEL removes the trade) in which
each trade is at most ``gap`` after the one before, by ``trade_time``. A trade that comes
within ``gap`` of two sessions merges them; a cancel (or an amend that moves a trade)
that leaves a hole wider than ``gap`` splits one.

Stream time is event time: the largest ``trade_time`` seen in the partition. A session
is closed once stream time is past ``end + gap + grace`` (``end`` is its last trade's
time): its final revision goes out and its state is dropped. A NEW or AMEND whose trade
time is more than ``grace`` behind stream time is late, as is an AMEND or CANCEL of a trade
whose session is closed (or that no session holds); a late event is counted and not
applied. Such a rule keeps every applied event away from closed sessions (a trade within
``gap`` of a closed session would be more than ``grace`` behind stream time), so a closed
session never changes and the final revisions do not depend on how the input is batched.

State, per account (:class:`AccountSessions`): its open sessions' figures (start, end,
counts, notional sums per currency: no member lists, so a long session costs no more to
change than a short one), and the trades cancelled out of them. Per trade
(:class:`SessionTrade`, key ``account|trade_id``): its last version and figures. Per
account and ``gap``-long bucket of trade time (key ``account|bucket``): the trades in it,
sorted; as sessions are more than ``gap`` apart, a bucket holds trades of one session, and
the neighbours of a trade are in its bucket or the next: that is all a split needs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, Inexact
from typing import Any, Protocol, TypeVar

import msgspec

from tradeflux.domain.schemas import EnrichedTrade, Side

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ZERO = Decimal(0)
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact])
_ONE_US = dt.timedelta(microseconds=1)

V = TypeVar("V")


class Table(Protocol[V]):
    """Read and write access to one store partition (a StorePartition is one)."""

    def get(self, key: str, default: Any = None, /) -> V | None:  # noqa: D102
        ...

    def put(self, key: str, value: V, /) -> None:  # noqa: D102
        ...

    def delete(self, key: str, /) -> None:  # noqa: D102
        ...

    def items(self) -> Iterator[tuple[str, V]]:  # noqa: D102
        ...


@dataclass(frozen=True)
class SessionSpec:
    """Sessions split by ``gap`` of inactivity, closed ``grace`` after they can no longer grow."""

    gap: dt.timedelta
    grace: dt.timedelta

    def __post_init__(self) -> None:
        if self.gap <= dt.timedelta(0):
            raise ValueError(f"session gap must be positive, got {self.gap}")
        if self.grace < dt.timedelta(0):
            raise ValueError(f"grace must not be negative, got {self.grace}")

    def bucket(self, t: dt.datetime) -> int:
        """Return the number of the ``gap``-long bucket of trade time ``t``."""
        return ((t - EPOCH) // _ONE_US) // (self.gap // _ONE_US)


class CurrencyNotional(msgspec.Struct, frozen=True, kw_only=True):
    """The notional a session bought and sold in one currency (exact sums, positive)."""

    currency: str
    bought: Decimal
    sold: Decimal


class AccountSession(msgspec.Struct, frozen=True, kw_only=True):
    """One activity session of an account; keyed ``account|session_start`` (ISO UTC).

    ``session_end`` is its last trade's time. Revisions come as it changes; the one with
    ``final`` true is the last. A tombstone says the key holds no session any more (it was
    merged into another, its first trade left, or all its trades were cancelled).
    """

    account: str
    session_start: dt.datetime
    session_end: dt.datetime
    trade_count: int
    buy_count: int
    sell_count: int
    notional: tuple[CurrencyNotional, ...] = ()
    final: bool = False


class SessionTrade(msgspec.Struct, frozen=True, array_like=True):
    """What a session needs of a trade: version, whether live, time, side and notional."""

    version: int
    live: bool
    trade_time: dt.datetime
    side: Side
    currency: str
    notional: Decimal


class SessionState(msgspec.Struct, frozen=True, array_like=True):
    """The figures of one open session (no member list: see the module docstring)."""

    start: dt.datetime
    end: dt.datetime
    trades: int
    buys: int
    bought: dict[str, Decimal]
    sold: dict[str, Decimal]


class AccountSessions(msgspec.Struct, frozen=True, array_like=True):
    """The open sessions of an account, in start order, and its cancelled trades' slots."""

    sessions: tuple[SessionState, ...] = ()
    cancelled: tuple[tuple[dt.datetime, str], ...] = ()


Member = tuple[dt.datetime, str]  # (trade_time, trade_id), the sort order in a bucket


class Outcome(enum.Enum):
    """What became of one event."""

    APPLIED = "applied"
    LATE = "late"
    STALE = "stale"


def session_key(account: str, start: dt.datetime) -> str:
    """Return the key of a session on ``analytics.sessions``: ``account|2026-11-24T15:00:05Z``."""
    text = start.astimezone(dt.UTC).isoformat().removesuffix("+00:00")
    return f"{account}|{text}Z"


def _trade_key(account: str, trade_id: str) -> str:
    return f"{account}|{trade_id}"


def _bucket_key(account: str, bucket: int) -> str:
    return f"{account}|{bucket}"


@dataclass
class _Session:
    """A mutable working copy of one open session."""

    start: dt.datetime
    end: dt.datetime
    trades: int
    buys: int
    bought: dict[str, Decimal]
    sold: dict[str, Decimal]

    @classmethod
    def of(cls, state: SessionState) -> _Session:
        return cls(
            state.start, state.end, state.trades, state.buys, dict(state.bought), dict(state.sold)
        )

    def frozen(self) -> SessionState:
        return SessionState(
            self.start, self.end, self.trades, self.buys, dict(self.bought), dict(self.sold)
        )

    def add(self, trade: SessionTrade, sign: int) -> None:
        """Put ``trade``'s figures in (``sign`` 1) or take them out (-1); not its time."""
        self.trades += sign
        sums = self.bought if trade.side == "BUY" else self.sold
        if trade.side == "BUY":
            self.buys += sign
        op = _EXACT.add if sign > 0 else _EXACT.subtract
        total = op(sums.get(trade.currency, _ZERO), trade.notional)
        sums[trade.currency] = total

    def absorb(self, other: _Session) -> None:
        """Merge ``other``'s figures and time span into this one."""
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        self.trades += other.trades
        self.buys += other.buys
        for mine, theirs in ((self.bought, other.bought), (self.sold, other.sold)):
            for currency, amount in theirs.items():
                mine[currency] = _EXACT.add(mine.get(currency, _ZERO), amount)

    def summary(self, account: str, final: bool) -> AccountSession:
        currencies = sorted(c for c in set(self.bought) | set(self.sold) if self._traded(c))
        return AccountSession(
            account=account,
            session_start=self.start,
            session_end=self.end,
            trade_count=self.trades,
            buy_count=self.buys,
            sell_count=self.trades - self.buys,
            notional=tuple(
                CurrencyNotional(
                    currency=c, bought=self.bought.get(c, _ZERO), sold=self.sold.get(c, _ZERO)
                )
                for c in currencies
            ),
            final=final,
        )

    def _traded(self, currency: str) -> bool:
        return self.bought.get(currency, _ZERO) != 0 or self.sold.get(currency, _ZERO) != 0


@dataclass
class _Account:
    """A mutable working copy of an account's sessions during a batch."""

    sessions: list[_Session]
    cancelled: list[Member]
    before: dict[str, AccountSession]  # the committed sessions' summaries, by key


@dataclass(frozen=True)
class SessionResult:
    """What a batch changed: summaries (None: tombstone) to emit, and sessions closed."""

    stream_time: dt.datetime | None
    emitted: list[tuple[str, AccountSession | None]]
    closed: int


@dataclass
class SessionBatch:
    """The sessions of one input partition during one batch; :meth:`apply` then :meth:`finish`."""

    spec: SessionSpec
    stream_time: dt.datetime | None
    accounts: Table[AccountSessions]
    trades: Table[SessionTrade]
    buckets: Table[tuple[Member, ...]]
    _work: dict[str, _Account] = field(default_factory=dict, init=False)

    def _account(self, account: str) -> _Account:
        work = self._work.get(account)
        if work is None:
            state = self.accounts.get(account) or AccountSessions()
            sessions = [_Session.of(s) for s in state.sessions]
            before = {session_key(account, s.start): s.summary(account, False) for s in sessions}
            work = _Account(sessions, list(state.cancelled), before)
            self._work[account] = work
        return work

    def apply(self, event: EnrichedTrade) -> Outcome:
        """Apply one event of the partition, in offset order; return what became of it."""
        try:
            return self._apply(event)
        finally:
            if self.stream_time is None or event.trade_time > self.stream_time:
                self.stream_time = event.trade_time

    def _apply(self, event: EnrichedTrade) -> Outcome:
        key = _trade_key(event.account, event.trade_id)
        held = self.trades.get(key)
        if held is not None and event.version <= held.version:
            return Outcome.STALE
        live = event.event_type != "CANCEL"
        if event.event_type != "NEW" and (held is None or not held.live):
            return Outcome.LATE  # not in an open session: it closed, or the trade never got in
        now, spec = self.stream_time, self.spec
        if live and now is not None and event.trade_time + spec.grace < now:
            return Outcome.LATE
        work = self._account(event.account)
        if held is not None and held.live:
            session = next(s for s in work.sessions if s.start <= held.trade_time <= s.end)
            if now is not None and now > session.end + spec.gap + spec.grace:
                return Outcome.LATE  # closed in stream time, though it goes at the batch's end
            self._remove(event.account, work, event.trade_id, held, session)
        trade = SessionTrade(
            event.version, live, event.trade_time, event.side, event.currency, event.notional
        )
        self.trades.put(key, trade)
        if live:
            self._insert(event.account, work, event.trade_id, trade)
        else:
            work.cancelled.append((event.trade_time, event.trade_id))
        return Outcome.APPLIED

    # -- membership --------------------------------------------------------------------------

    def _insert(self, account: str, work: _Account, trade_id: str, trade: SessionTrade) -> None:
        t, gap = trade.trade_time, self.spec.gap
        bkey = _bucket_key(account, self.spec.bucket(t))
        members = list(self.buckets.get(bkey) or ())
        bisect.insort(members, (t, trade_id))
        self.buckets.put(bkey, tuple(members))
        joined = [s for s in work.sessions if s.start - gap <= t <= s.end + gap]
        merged = _Session(t, t, 0, 0, {}, {})
        merged.add(trade, 1)
        for session in joined:
            merged.absorb(session)
        work.sessions = sorted(
            [s for s in work.sessions if all(s is not j for j in joined)] + [merged],
            key=lambda s: s.start,
        )

    def _remove(
        self, account: str, work: _Account, trade_id: str, trade: SessionTrade, session: _Session
    ) -> None:
        t, gap = trade.trade_time, self.spec.gap
        bucket = self.spec.bucket(t)
        bkey = _bucket_key(account, bucket)
        members = [m for m in (self.buckets.get(bkey) or ()) if m != (t, trade_id)]
        if members:
            self.buckets.put(bkey, tuple(members))
        else:
            self.buckets.delete(bkey)
        session.add(trade, -1)
        if session.trades == 0:
            work.sessions.remove(session)
            return
        prev = self._neighbour(account, bucket, t, before=True)
        nxt = self._neighbour(account, bucket, t, before=False)
        if prev is None or prev[0] < session.start:
            assert nxt is not None  # noqa: S101 - a trade is left, after t
            session.start = nxt[0]
            return
        if nxt is None or nxt[0] > session.end:
            session.end = prev[0]
            return
        if nxt[0] - prev[0] <= gap:
            return  # still one run of trades
        left = self._part(account, session.start, prev[0])
        right = _Session(nxt[0], session.end, session.trades, session.buys,
                         dict(session.bought), dict(session.sold))  # fmt: skip
        for member in left:
            right.add(member, -1)
        first = _Session(session.start, prev[0], 0, 0, {}, {})
        for member in left:
            first.add(member, 1)
        index = work.sessions.index(session)
        work.sessions[index : index + 1] = [first, right]

    def _neighbour(self, account: str, bucket: int, t: dt.datetime, before: bool) -> Member | None:
        """Return the trade just before (or after) ``t`` among its bucket and the next one."""
        near = (bucket - 1, bucket) if before else (bucket, bucket + 1)
        candidates: list[Member] = []
        for b in near:
            candidates.extend(self.buckets.get(_bucket_key(account, b)) or ())
        if before:
            left = [m for m in candidates if m[0] <= t]
            return max(left) if left else None
        right = [m for m in candidates if m[0] >= t]
        return min(right) if right else None

    def _part(self, account: str, start: dt.datetime, end: dt.datetime) -> list[SessionTrade]:
        """Return the live trades of the account with trade times in [start, end]."""
        out = []
        for bucket in range(self.spec.bucket(start), self.spec.bucket(end) + 1):
            for t, trade_id in self.buckets.get(_bucket_key(account, bucket)) or ():
                if start <= t <= end:
                    trade = self.trades.get(_trade_key(account, trade_id))
                    if trade is not None and trade.live:
                        out.append(trade)
        return out

    # -- the end of the batch ----------------------------------------------------------------

    def finish(self, committed: Iterable[str]) -> SessionResult:
        """Close the sessions stream time has passed; return the revisions to emit.

        ``committed`` is every account with state in the partition. Each session that
        changed sends one revision; a closing one sends its final revision and its state
        goes (its trades, their buckets, and the slots of trades cancelled out of it); a
        key that no longer holds a session gets a tombstone.
        """
        now, spec = self.stream_time, self.spec
        emitted: list[tuple[str, AccountSession | None]] = []
        closed = 0
        for account in sorted(set(committed) | set(self._work)):
            if account not in self._work:
                state = self.accounts.get(account)
                if state is None or not self._closes(state, now):
                    continue
            work = self._account(account)
            open_sessions: list[_Session] = []
            after: dict[str, AccountSession] = {}
            for session in work.sessions:
                key = session_key(account, session.start)
                if now is not None and now > session.end + spec.gap + spec.grace:
                    emitted.append((key, session.summary(account, True)))
                    self._drop(account, session)
                    closed += 1
                    after[key] = session.summary(account, True)
                    continue
                open_sessions.append(session)
                summary = session.summary(account, False)
                after[key] = summary
                if work.before.get(key) != summary:
                    emitted.append((key, summary))
            for key in work.before:
                if key not in after:
                    emitted.append((key, None))
            horizon = None if now is None else now - spec.gap - spec.grace
            kept = []
            for t, trade_id in work.cancelled:
                if horizon is None or t >= horizon:
                    kept.append((t, trade_id))
                    continue
                tkey = _trade_key(account, trade_id)
                slot = self.trades.get(tkey)
                if slot is not None and not slot.live:  # not booked again since (a move back)
                    self.trades.delete(tkey)
            if open_sessions or kept:
                self.accounts.put(
                    account,
                    AccountSessions(tuple(s.frozen() for s in open_sessions), tuple(kept)),
                )
            elif self.accounts.get(account) is not None:
                self.accounts.delete(account)
        emitted.sort(key=lambda e: e[0])
        return SessionResult(now, emitted, closed)

    def _closes(self, state: AccountSessions, now: dt.datetime | None) -> bool:
        if now is None:
            return False
        limit = now - self.spec.gap - self.spec.grace
        return any(s.end < limit for s in state.sessions) or any(
            t < limit for t, _ in state.cancelled
        )

    def _drop(self, account: str, session: _Session) -> None:
        """Drop a closed session's trades and buckets (a bucket holds one session's trades)."""
        for bucket in range(self.spec.bucket(session.start), self.spec.bucket(session.end) + 1):
            bkey = _bucket_key(account, bucket)
            members = self.buckets.get(bkey)
            if members is None:
                continue
            for _, trade_id in members:
                self.trades.delete(_trade_key(account, trade_id))
            self.buckets.delete(bkey)
