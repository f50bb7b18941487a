"""An independent, plain fold of the bar rules (docs/domain-rules.md, "Analytics (bars)").

End-to-end tests compare the bars the analytics service wrote with what this fold
expects, exactly. It shares nothing with ``tradeflux.domain.windows``: it replays the
events of ``trades.by_instrument`` in the order the service read them (per partition,
in offset order), keeps every trade it ever saw (it drops nothing when a window closes)
and computes each window's bar from scratch at the end.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import msgspec

from tests.support.reference import run_reference
from tradeflux.domain.schemas import Bar, EnrichedTrade
from tradeflux.sim.refdata import load_refdata
from tradeflux.sim.trades import TradeMix, generate_session

REFDATA_DIR = Path(__file__).resolve().parents[2] / "data" / "refdata"
SIZE = dt.timedelta(seconds=5)  # the service's defaults
GRACE = dt.timedelta(seconds=2)
HOP_SIZE = dt.timedelta(seconds=60)  # hopping windows: 60 s long, one every 15 s
HOP_ADVANCE = dt.timedelta(seconds=15)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NO_OFFSET = dt.timedelta(0)


def simulated_enriched(count: int, seconds: float, seed: int) -> list[EnrichedTrade]:
    """Enriched events of a simulated session on 8 instruments, as the reference validator emits.

    ``seconds`` of trade time (a window per 5 s per instrument), with amends and cancels
    (some late, some moving a trade to another account), in the validator's order.
    """
    ref = load_refdata(REFDATA_DIR)
    instruments = [i for i in ref.instruments if i.active][:200:25]
    session = generate_session(
        instruments, ref.accounts, ref.counterparties, count=count, rate_per_s=count / seconds,
        seed=seed, mix=TradeMix(amend_rate=0.12, cancel_rate=0.06, duplicate_rate=0.01,
                                malformed_rate=0.01),
    )  # fmt: skip
    records = [(r.key, r.value, r.timestamp_ms) for r in session.records]
    return run_reference(records, ref.instruments, ref.accounts, ref.counterparties).enriched


def start_of(
    t: dt.datetime, size: dt.timedelta = SIZE, offset: dt.timedelta = _NO_OFFSET
) -> dt.datetime:
    """The start of the window ``t`` is in: windows of ``size`` from the epoch plus ``offset``."""
    return EPOCH + offset + ((t - EPOCH - offset) // size) * size


def bar_key(instrument: str, start: dt.datetime) -> str:
    return f"{instrument}|{start.strftime('%Y-%m-%dT%H:%M:%SZ')}"


@dataclass
class Expected:
    """The bar every window must end with (by key), and how many events were late.

    ``late_windows``: the keys of the windows a late event fell in or would have moved
    a trade out of; only their bars depend on how late the event came.
    """

    bars: dict[str, Bar] = field(default_factory=dict)
    late: int = 0
    late_windows: set[str] = field(default_factory=set)


def fold_partition(
    events: Iterable[EnrichedTrade],
    out: Expected,
    size: dt.timedelta = SIZE,
    offset: dt.timedelta = _NO_OFFSET,
    grace: dt.timedelta = GRACE,
) -> None:
    """Fold one partition's events, in offset order, into ``out`` (windows of ``size``)."""
    now: dt.datetime | None = None  # stream time: the largest trade time seen so far
    held: dict[tuple[str, str, str], EnrichedTrade] = {}  # latest applied, cancels included

    def closed(start: dt.datetime) -> bool:
        return now is not None and now > start + size + grace

    def window(t: dt.datetime) -> dt.datetime:
        return start_of(t, size, offset)

    for e in events:
        ident = (e.instrument, e.account, e.trade_id)
        before = held.get(ident)
        if before is not None and e.version <= before.version:
            pass  # an old version: ignored
        else:
            live_before = before is not None and before.event_type != "CANCEL"
            late = (
                (live_before and closed(window(before.trade_time)))  # type: ignore[union-attr]
                or (e.event_type != "NEW" and not live_before)
                or (e.event_type != "CANCEL" and closed(window(e.trade_time)))
            )
            if late:
                out.late += 1
                out.late_windows.add(bar_key(e.instrument, window(e.trade_time)))
                if before is not None:
                    out.late_windows.add(bar_key(before.instrument, window(before.trade_time)))
            else:
                held[ident] = e
        if now is None or e.trade_time > now:
            now = e.trade_time
    windows: dict[tuple[str, dt.datetime], list[EnrichedTrade]] = {}
    for e in held.values():
        if e.event_type != "CANCEL":
            windows.setdefault((e.instrument, window(e.trade_time)), []).append(e)
    for (instrument, start), trades in windows.items():
        trades.sort(key=lambda t: (t.trade_time, t.trade_id, t.account))
        volume = sum((t.quantity for t in trades), Decimal(0))
        value = sum((t.price * t.quantity for t in trades), Decimal(0))
        out.bars[bar_key(instrument, start)] = Bar(
            instrument=instrument,
            window_start=start,
            window_end=start + size,
            currency=trades[-1].currency,
            open=trades[0].price,
            high=max(t.price for t in trades),
            low=min(t.price for t in trades),
            close=trades[-1].price,
            volume=volume,
            vwap=(value / volume).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN),
            notional=sum((t.notional for t in trades), Decimal(0)),
            count=len(trades),
            final=closed(start),
        )


def expected_from(
    by_instrument: list[Any], size: dt.timedelta = SIZE, grace: dt.timedelta = GRACE
) -> Expected:
    """The expected bars from the messages of ``trades.by_instrument`` (read_all's order),
    for windows of ``size`` that close ``grace`` after their end (default: the service's)."""
    out = Expected()
    for events in _partitions(by_instrument).values():
        fold_partition(events, out, size, grace=grace)
    return out


def expected_hopping_from(by_instrument: list[Any]) -> Expected:
    """The expected hopping bars: each window of HOP_SIZE starting every HOP_ADVANCE.

    ``late`` counts each (event, window) that could not go in, as the service counts.
    """
    out = Expected()
    for events in _partitions(by_instrument).values():
        offset = _NO_OFFSET
        while offset < HOP_SIZE:  # each series of windows aligned on offset, on its own
            fold_partition(events, out, HOP_SIZE, offset)
            offset += HOP_ADVANCE
    return out


def _partitions(messages: list[Any]) -> dict[int, list[EnrichedTrade]]:
    decode = msgspec.json.Decoder(EnrichedTrade).decode
    partitions: dict[int, list[EnrichedTrade]] = {}
    for m in messages:
        partitions.setdefault(m.partition(), []).append(decode(m.value()))
    return partitions


def bars_written(messages: list[Any]) -> tuple[dict[str, Bar], Counter[str]]:
    """The last bar per key on ``analytics.bars`` (a tombstone removes it), and finals per key."""
    decode = msgspec.json.Decoder(Bar).decode
    latest: dict[str, Bar] = {}
    finals: Counter[str] = Counter()
    for m in messages:
        key = m.key().decode()
        if m.value() is None:
            latest.pop(key, None)
            continue
        bar = decode(m.value())
        latest[key] = bar
        if bar.final:
            finals[key] += 1
    return latest, finals
