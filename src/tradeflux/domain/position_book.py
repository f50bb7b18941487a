"""Position books: a position folded incrementally, in state that stays small.

State of one ``account|instrument``, sized so that the common case costs the same
whatever the number of trades (the service changelogs every changed value each batch):

- :class:`PositionBook`: a checkpoint (the fold of every live fill up to some point in
  fold order), the ids of the live fills after it (the tail: at least
  :data:`TAIL_FILLS` once there are as many, fewer than twice as many), the fold of both,
  the fold up to the tail's first :data:`TAIL_FILLS` fills (the next checkpoint), the
  last fill, and the ids of recent trades not yet in an index chunk;
- one :class:`Fill` per trade id (its latest version, a cancel as a tombstone), kept by
  the caller under the trade id;
- sealed index chunks of :data:`INDEX_CHUNK` trade ids, kept by the caller.

A change after the checkpoint (a NEW that sorts last or a little before, an AMEND or
CANCEL of a recent trade) re-folds only the tail from the checkpoint; a change before
it re-folds every live fill, read back through the index. Both give the fold of the
effective trades, by construction and by test. The tail is long enough for the
reordering the pipeline itself makes: the validator's partitions (by trade id) reach a
position's partition one after another, so a NEW often lands a few fills early.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

import msgspec

from tradeflux.domain.positions import (
    FLAT,
    Fill,
    FoldEvent,
    PositionState,
    apply_fill,
    fold_key,
    position_of,
)
from tradeflux.domain.schemas import Position

TAIL_FILLS = 16
"""Live fills after the checkpoint, at least (once there are as many) and fewer than twice
as many: how early in fold order a change may land and still re-fold only the tail.

A tail that reaches twice this length moves its first half into the checkpoint at no
cost, since the book holds the fold up to that point (``mid``): appending in fold order
never reads a fill back."""

INDEX_CHUNK = 8
"""Trade ids per sealed index chunk."""

CACHE_ALL_FILLS_UP_TO = 20_000
"""A position with more live fills than this keeps only its tail in the :class:`TailCache`."""


class PositionBook(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    """One ``account|instrument``'s fold state; a value of the positions service's store.

    Invariants: ``checkpoint`` is the fold of every live fill up to and including
    ``checkpoint_last`` in fold order (``checkpoint_count`` of them); ``tail_ids`` are
    the trade ids of the live fills after it, in fold order (their fills are the
    caller's), fewer than ``2 * TAIL_FILLS``; ``state`` is ``checkpoint`` with the tail
    folded on;
    ``mid`` is ``checkpoint`` with the tail's first ``TAIL_FILLS`` fills folded on and
    ``mid_last`` the last of those, both None when the tail is shorter; ``last`` is the
    last live fill. ``open_ids`` are the trade ids (live or not) not in the ``chunks`` sealed
    index chunks. ``currency`` and ``multiplier`` (reported on the position) are those of
    the last event applied. Immutable: :func:`apply_event` returns a new book.
    """

    account: str
    instrument: str
    currency: str
    multiplier: Decimal
    checkpoint: PositionState = FLAT
    checkpoint_count: int = 0
    checkpoint_last: Fill | None = None
    tail_ids: tuple[str, ...] = ()
    state: PositionState = FLAT
    last: Fill | None = None
    chunks: int = 0
    open_ids: tuple[str, ...] = ()
    # last, so that books written before they existed still decode (as None: see apply_event)
    mid: PositionState | None = None
    mid_last: Fill | None = None

    @classmethod
    def open(
        cls, account: str, instrument: str, currency: str, multiplier: Decimal
    ) -> PositionBook:
        """Return an empty (flat) book."""
        return cls(account=account, instrument=instrument, currency=currency, multiplier=multiplier)

    @classmethod
    def empty(cls, trade: FoldEvent) -> PositionBook:
        """Return an empty book for the position of ``trade``."""
        return cls.open(trade.account, trade.instrument, trade.currency, trade.multiplier)

    @property
    def trade_count(self) -> int:
        """Return the number of effective (live) trades."""
        return self.checkpoint_count + len(self.tail_ids)

    @property
    def position(self) -> Position:
        """Return the position this book folds to."""
        return position_of(
            self.account,
            self.instrument,
            self.currency,
            self.multiplier,
            self.state,
            self.trade_count,
            self.last,
        )


class BookChange(NamedTuple):
    """What one event did: the new book and position, and what the caller must store.

    ``fill`` is the trade's new latest version (store it under its trade id); ``sealed``
    is ``(chunk number, trade ids)`` when an index chunk was sealed (store it), else None.
    When the event changed nothing (an old version) ``book`` is the same object and
    ``fill`` is None.
    """

    book: PositionBook
    fill: Fill | None
    sealed: tuple[int, tuple[str, ...]] | None
    path: str = "unchanged"  # unchanged, append, tail / cached / full (re-fold from where)

    @property
    def position(self) -> Position:
        """Return the position after the event, made on demand (a batch emits one)."""
        return self.book.position


FillLookup = Callable[[str], Fill | None]
"""The held fill of a trade id of this position, or None."""

ChunkLookup = Callable[[int], tuple[str, ...]]
"""The trade ids of a sealed index chunk of this position."""


class TailCache:
    """Per position, live fills in fold order and the fold state after each: derived data.

    An entry holds either the book's tail (``complete`` False) or, once a change before
    the checkpoint made the service read every live fill, all of them (``complete``
    True, for positions of up to :data:`CACHE_ALL_FILLS_UP_TO` live fills): then any
    later change re-folds only from where it lands. Never stored or
    changelogged: an entry is used only with the very book object it was computed for,
    so after an aborted batch (the store hands back an older book), a restore (new
    objects) or an eviction it is missed, and the fills are read from the store again.
    """

    def __init__(self, max_positions: int = 50_000) -> None:
        self.max_positions = max_positions
        self._entries: dict[str, tuple[PositionBook, _Fold]] = {}

    def take(self, key: str, book: PositionBook) -> _Fold | None:
        """Remove and return the entry of ``key`` if it was computed for ``book``."""
        entry = self._entries.pop(key, None)
        if entry is None or entry[0] is not book:
            return None
        return entry[1]

    def put(self, key: str, book: PositionBook, fold: _Fold) -> None:
        """Keep the fold of ``book``; the least recently used position goes when full."""
        self._entries[key] = (book, fold)
        if len(self._entries) > self.max_positions:
            del self._entries[next(iter(self._entries))]


class _Fold(NamedTuple):
    fills: list[Fill]  # live, in fold order: the tail, or every live fill
    states: list[PositionState]  # the state after each
    complete: bool


def _states_from(state: PositionState, fills: list[Fill]) -> list[PositionState]:
    states = []
    for f in fills:
        state = apply_fill(state, f.side, f.quantity, f.price, f.multiplier)
        states.append(state)
    return states


def _replace(fold: _Fold, old: Fill | None, new: Fill | None, base: PositionState) -> int:
    """Take ``old`` out of ``fold`` and put ``new`` in, re-folding from the first change.

    ``base`` is the state before the first fill of ``fold``. Return where the change began.
    """
    fills, states = fold.fills, fold.states
    start = len(fills)
    if old is not None:
        j = bisect.bisect_left(fills, fold_key(old), key=fold_key)
        del fills[j], states[j]
        start = j
    if new is not None:
        i = bisect.bisect_right(fills, fold_key(new), key=fold_key)
        fills.insert(i, new)
        states.insert(i, FLAT)
        start = min(start, i)
    states[start:] = _states_from(states[start - 1] if start else base, fills[start:])
    return start


class _Settled(NamedTuple):
    """A book's fold figures: the checkpoint, the tail after it, and the state after both."""

    checkpoint: PositionState
    checkpoint_count: int
    checkpoint_last: Fill | None
    tail_ids: tuple[str, ...]
    state: PositionState
    last: Fill | None
    mid: PositionState | None
    mid_last: Fill | None


def _settle(
    fills: list[Fill],
    states: list[PositionState],
    skip: int,
    base: tuple[PositionState, int, Fill | None],
    long_tail: bool,
) -> tuple[_Settled, int]:
    """Return a book's figures from live fills in fold order and the state after each.

    ``fills[skip:]`` follow the checkpoint ``base`` (its state, count and last fill);
    ``fills[:skip]``, if any, are those folded into it. The tail keeps its length unless
    it reached ``2 * TAIL_FILLS`` or, when ``long_tail`` is False, exceeds
    ``TAIL_FILLS``: then all but the last ``TAIL_FILLS`` move into the checkpoint.
    Returns the figures and the index of the first tail fill in ``fills``.
    """
    checkpoint, count, checkpoint_last = base
    n = len(fills) - skip
    if n >= 2 * TAIL_FILLS or (n > TAIL_FILLS and not long_tail):
        moved = n - TAIL_FILLS
        skip += moved
        checkpoint, checkpoint_last, count = states[skip - 1], fills[skip - 1], count + moved
        n = TAIL_FILLS
    mid, mid_last = None, None
    if n >= TAIL_FILLS:
        mid, mid_last = states[skip + TAIL_FILLS - 1], fills[skip + TAIL_FILLS - 1]
    settled = _Settled(
        checkpoint,
        count,
        checkpoint_last,
        tuple(f.trade_id for f in fills[skip:]),
        states[-1] if n else checkpoint,
        fills[-1] if n else checkpoint_last,
        mid,
        mid_last,
    )
    return settled, skip


def _append(book: PositionBook, new: Fill, current: FillLookup, long_tail: bool) -> _Settled:
    """Return the figures of ``book`` with ``new`` folded on last, reading no fill if it can.

    A tail that reaches ``2 * TAIL_FILLS`` moves its first half into the checkpoint, whose
    fold the book holds (``mid``). Only a book written before ``mid`` existed
    (``long_tail`` False) reads the fills it moves, as every book once did, through
    ``current`` (the held fill of a trade id, this event's own included).
    """
    state = apply_fill(book.state, new.side, new.quantity, new.price, new.multiplier)
    tail_ids = (*book.tail_ids, new.trade_id)
    checkpoint, count, checkpoint_last = (
        book.checkpoint,
        book.checkpoint_count,
        book.checkpoint_last,
    )
    mid, mid_last = book.mid, book.mid_last
    n = len(tail_ids)
    if long_tail and n >= 2 * TAIL_FILLS and mid is not None:
        checkpoint, checkpoint_last, count = mid, mid_last, count + TAIL_FILLS
        tail_ids = tail_ids[TAIL_FILLS:]
        mid, mid_last = state, new  # the tail is TAIL_FILLS long now
    elif n > TAIL_FILLS and not long_tail:
        for trade_id in tail_ids[: n - TAIL_FILLS]:
            f = current(trade_id)
            if f is None:  # a tail id always has its fill: the caller stores every fill
                raise LookupError(f"no fill held for trade {trade_id} of {book.instrument}")
            checkpoint = apply_fill(checkpoint, f.side, f.quantity, f.price, f.multiplier)
            checkpoint_last = f
        count += n - TAIL_FILLS
        tail_ids = tail_ids[n - TAIL_FILLS :]
        mid, mid_last = state, new
    elif n == TAIL_FILLS:
        mid, mid_last = state, new
    return _Settled(checkpoint, count, checkpoint_last, tail_ids, state, new, mid, mid_last)


def _after_checkpoint(book: PositionBook, old: Fill | None, new: Fill | None) -> bool:
    """Return whether the change from ``old`` to ``new`` lies after the book's checkpoint."""
    if book.checkpoint_last is None:
        return True
    mark = fold_key(book.checkpoint_last)
    return all(fold_key(f) > mark for f in (old, new) if f is not None)


def apply_event(
    book: PositionBook,
    event: FoldEvent,
    fill_of: FillLookup,
    chunk_of: ChunkLookup,
    cache: TailCache | None = None,
) -> BookChange:
    """Apply ``event`` (its trade's position is ``book``'s) and return what changed.

    An event whose version is not above the held version of its trade id changes
    nothing. Otherwise the fold is updated from the checkpoint when the change lies
    after it, else re-folded from every live fill (``fill_of`` and ``chunk_of`` read
    the caller's store; the event's own trade is taken from the event). ``cache`` only
    saves work: the result, books included, is the same with or without it.
    """
    held = fill_of(event.trade_id)
    if held is not None and event.version <= held.version:
        return BookChange(book, None, None)
    fill = Fill.of(event)

    def current(trade_id: str) -> Fill | None:
        return fill if trade_id == fill.trade_id else fill_of(trade_id)

    key = f"{book.account}|{book.instrument}"
    cached = cache.take(key, book) if cache is not None else None
    chunks, open_ids = book.chunks, book.open_ids
    sealed = None
    if held is None:
        open_ids = (*open_ids, fill.trade_id)
        if len(open_ids) >= INDEX_CHUNK:
            sealed = (chunks, open_ids)
            chunks, open_ids = chunks + 1, ()
    old = held if held is not None and held.live else None
    new = fill if fill.live else None
    base = (book.checkpoint, book.checkpoint_count, book.checkpoint_last)
    # A book written before it held ``mid`` keeps its tail at TAIL_FILLS, as then.
    long_tail = book.mid is not None or len(book.tail_ids) < TAIL_FILLS
    path = "tail"
    if old is None and new is None:
        path = "unchanged"
        settled = _Settled(*base, book.tail_ids, book.state, book.last, book.mid, book.mid_last)
    elif cached is not None and cached.complete:  # every live fill at hand
        start = _replace(cached, old, new, FLAT)
        path = "append" if start == len(cached.fills) - 1 and old is None else "cached"
        # a change after the checkpoint keeps it, as it would without the cache
        if _after_checkpoint(book, old, new):
            settled, _ = _settle(
                cached.fills, cached.states, book.checkpoint_count, base, long_tail
            )
        else:
            settled, _ = _settle(cached.fills, cached.states, 0, (FLAT, 0, None), False)
    elif (
        old is None
        and new is not None
        and (book.last is None or fold_key(new) > fold_key(book.last))
    ):
        path = "append"
        if cached is None:
            settled = _append(book, new, current, long_tail)
        else:
            state = apply_fill(book.state, new.side, new.quantity, new.price, new.multiplier)
            cached.fills.append(new)
            cached.states.append(state)
            settled, skip = _settle(cached.fills, cached.states, 0, base, long_tail)
            del cached.fills[:skip], cached.states[:skip]
    elif _after_checkpoint(book, old, new):
        if cached is None:  # read the tail, then fold it whole
            tail = [
                f for i in book.tail_ids if i != fill.trade_id and (f := fill_of(i)) is not None
            ]
            if new is not None:
                tail.append(new)
            tail.sort(key=fold_key)
            cached = _Fold(tail, _states_from(book.checkpoint, tail), complete=False)
        else:  # take the old version out, put the new one in, fold from the first change
            _replace(cached, old, new, book.checkpoint)
        settled, skip = _settle(cached.fills, cached.states, 0, base, long_tail)
        del cached.fills[:skip], cached.states[:skip]
    else:  # the change lies at or before the checkpoint: fold every live fill again
        path = "full"
        ids = [i for n in range(book.chunks) for i in chunk_of(n)]
        ids.extend(open_ids if sealed is None else sealed[1])
        live = [f for i in ids if (f := current(i)) is not None and f.live]
        live.sort(key=fold_key)
        cached = _Fold(live, _states_from(FLAT, live), complete=True)
        settled, skip = _settle(live, cached.states, 0, (FLAT, 0, None), False)
        if len(live) > CACHE_ALL_FILLS_UP_TO:  # bound the memory: keep the tail only
            cached = _Fold(live[skip:], cached.states[skip:], complete=False)
    changed = PositionBook(
        account=book.account,
        instrument=book.instrument,
        currency=event.currency,
        multiplier=event.multiplier,
        checkpoint=settled.checkpoint,
        checkpoint_count=settled.checkpoint_count,
        checkpoint_last=settled.checkpoint_last,
        tail_ids=settled.tail_ids,
        state=settled.state,
        last=settled.last,
        chunks=chunks,
        open_ids=open_ids,
        mid=settled.mid,
        mid_last=settled.mid_last,
    )
    if cache is not None and cached is not None:
        cache.put(key, changed, cached)
    return BookChange(changed, fill, sealed, path)


class PositionLedger:
    """The whole state of a set of positions in plain dicts, for tests and benchmarks.

    The positions service keeps the same three maps in its changelogged stores.
    """

    def __init__(self, cache: TailCache | None = None) -> None:
        self.books: dict[str, PositionBook] = {}
        self.fills: dict[str, Fill] = {}
        self.chunks: dict[str, tuple[str, ...]] = {}
        self.cache = cache

    def apply(self, event: FoldEvent) -> BookChange:
        """Apply ``event`` to its position and keep what changed."""
        key = f"{event.account}|{event.instrument}"
        book = self.books.get(key) or PositionBook.empty(event)
        change = apply_event(
            book,
            event,
            lambda trade_id: self.fills.get(f"{key}|{trade_id}"),
            lambda n: self.chunks[f"{key}#{n}"],
            self.cache,
        )
        if change.fill is not None:
            self.books[key] = change.book
            self.fills[f"{key}|{change.fill.trade_id}"] = change.fill
        if change.sealed is not None:
            self.chunks[f"{key}#{change.sealed[0]}"] = change.sealed[1]
        return change
