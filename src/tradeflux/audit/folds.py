"""The content checks: outputs recomputed from their service's inputs up to its cut.

Each recomputation is the direct definition of docs/domain-rules.md, not the services'
incremental state:

- positions: per ``account|instrument``, the effective trades (the latest version of
  each trade id; a CANCEL removes it; an event whose version is not above the held one
  changes nothing) folded from flat in ``(trade_time, trade_id)`` order with
  :func:`~tradeflux.domain.positions.apply_fill`;
- P&L: :mod:`tradeflux.audit.marks`;
- obligations: the effective trades of ``trades.by_counterparty`` netted afresh
  (:func:`~tradeflux.domain.netting.add_leg` per effective trade), one obligation per
  ``counterparty|currency|settlement_date``;
- alerts: per account, limit (and instrument, for position limits) BREACHED and CLEARED
  alternate, starting with BREACHED; a BREACHED figure is over its threshold, a CLEARED
  one within it; a single-trade alert is a BREACHED over its threshold.

The outputs compared are the latest value per key on the (compacted) output topic up to
the service's cut; a tombstone removes the key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from tradeflux.audit.cuts import Cut
from tradeflux.audit.logs import Rec, RecordLog
from tradeflux.audit.report import CheckResult, Difference, compare_maps
from tradeflux.domain.netting import ObligationState, SettlementLeg, add_leg, leg_key
from tradeflux.domain.positions import (
    FLAT,
    Fill,
    PositionEvent,
    PositionState,
    apply_fill,
    fold_key,
    position_of,
)
from tradeflux.domain.schemas import (
    EnrichedTrade,
    Position,
    RiskAlert,
    SettlementObligation,
    position_key,
)

T = TypeVar("T")
_MAP_COLUMNS = ["keys expected", "keys found", "equal", "differ"]


def latest(
    log: RecordLog, type_: type[T], cut: Mapping[int, int] | None, skip: set[tuple[int, int]]
) -> tuple[dict[str, T], dict[str, int], list[Difference]]:
    """Return the latest value per key before ``cut`` (tombstones remove), with its timestamp.

    Records at ``skip`` (dead-lettered inputs) are left out; undecodable ones are differences.
    """
    decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(type_)
    values: dict[str, T] = {}
    stamps: dict[str, int] = {}
    bad: list[Difference] = []
    for rec in log.upto(cut):
        if (rec.partition, rec.offset) in skip:
            continue
        key = (rec.key or b"").decode(errors="replace")
        if rec.value is None:
            values.pop(key, None)
            stamps[key] = rec.timestamp_ms
            continue
        try:
            values[key] = decoder.decode(rec.value)
        except msgspec.DecodeError as exc:
            where = f"{log.label}[{rec.partition}]@{rec.offset}"
            bad.append(Difference(where, type_.__name__, f"undecodable ({exc})"))
            continue
        stamps[key] = rec.timestamp_ms
    return values, stamps, bad


def map_result(
    check: str, title: str, expected: dict[str, Any], found: dict[str, Any], bad: list[Difference]
) -> CheckResult:
    """Return the result of comparing two maps of values by key (a table and differences)."""
    equal, differing, differences = compare_maps(expected, found)
    result = CheckResult(check, title, list(_MAP_COLUMNS))
    result.rows.append([f"{len(expected):,}", f"{len(found):,}", f"{equal:,}", f"{differing:,}"])
    result.differences = bad + differences
    return result


def _fold(account: str, instrument: str, last: PositionEvent, fills: Iterable[Fill]) -> Position:
    state: PositionState = FLAT
    count = 0
    final: Fill | None = None
    for fill in sorted(fills, key=fold_key):
        state = apply_fill(state, fill.side, fill.quantity, fill.price, fill.multiplier)
        count += 1
        final = fill
    return position_of(account, instrument, last.currency, last.multiplier, state, count, final)


def expected_positions(
    enriched: Iterable[Rec], skip: set[tuple[int, int]]
) -> tuple[dict[str, Position], list[Difference]]:
    """Fold the effective enriched trades per position (module docstring).

    The position's currency and multiplier are those of the last event applied to it.
    """
    decoder = msgspec.json.Decoder(PositionEvent)
    held: dict[str, dict[str, Fill]] = defaultdict(dict)
    last: dict[str, PositionEvent] = {}
    bad: list[Difference] = []
    for rec in enriched:
        if (rec.partition, rec.offset) in skip:
            continue
        try:
            event = decoder.decode(rec.value or b"")
        except msgspec.DecodeError as exc:
            where = f"enriched [{rec.partition}]@{rec.offset}"
            bad.append(Difference(where, "a trade event or a dead letter", f"undecodable ({exc})"))
            continue
        key = position_key(event.account, event.instrument)
        fills = held[key]
        before = fills.get(event.trade_id)
        if before is not None and event.version <= before.version:
            continue
        fills[event.trade_id] = Fill.of(event)
        last[key] = event
    positions = {
        key: _fold(last[key].account, last[key].instrument, last[key],
                   (f for f in fills.values() if f.live))
        for key, fills in held.items()
    }  # fmt: skip
    return positions, bad


def check_positions(
    cut: Cut, enriched: RecordLog, positions: RecordLog, dead: set[tuple[int, int]]
) -> CheckResult:
    """Positions on the topic against the fold of the enriched trades up to the cut."""
    expected, bad = expected_positions(enriched.upto(cut.committed), dead)
    found, _, bad_found = latest(positions, Position, cut.ends.get(positions.label), set())
    return map_result(
        "positions",
        "positions = fold of the effective enriched trades",
        expected,
        found,
        bad + bad_found,
    )


def expected_obligations(
    trades: Iterable[Rec], skip: set[tuple[int, int]]
) -> tuple[dict[str, SettlementObligation], list[Difference]]:
    """Net the effective trades afresh, in the order each became effective."""
    decoder = msgspec.json.Decoder(EnrichedTrade)
    legs: dict[str, SettlementLeg] = {}
    bad: list[Difference] = []
    for rec in trades:
        if (rec.partition, rec.offset) in skip:
            continue
        try:
            event = decoder.decode(rec.value or b"")
        except msgspec.DecodeError as exc:
            where = f"by_counterparty [{rec.partition}]@{rec.offset}"
            bad.append(Difference(where, "a trade event or a dead letter", f"undecodable ({exc})"))
            continue
        key = leg_key(event)
        before = legs.get(key)
        if before is not None and event.version <= before.version:
            continue
        legs.pop(key, None)  # keep the order in which legs became effective
        legs[key] = SettlementLeg.of(event)
    states: dict[str, ObligationState] = {}
    for leg in legs.values():
        if leg.live:
            state = add_leg(states.get(leg.obligation_key), leg, 1)
            if state is not None:
                states[leg.obligation_key] = state
    return {key: state.obligation() for key, state in states.items()}, bad


def check_obligations(
    cut: Cut, trades: RecordLog, obligations: RecordLog, dead: set[tuple[int, int]]
) -> CheckResult:
    """Obligations on the topic against the netting of the trades up to the cut."""
    expected, bad = expected_obligations(trades.upto(cut.committed), dead)
    found, _, bad_found = latest(
        obligations, SettlementObligation, cut.ends.get(obligations.label), set()
    )
    return map_result(
        "obligations",
        "obligations = netting of the effective trades",
        expected,
        found,
        bad + bad_found,
    )


def check_alerts(alerts: RecordLog, end: Mapping[int, int] | None) -> CheckResult:
    """BREACHED and CLEARED alternate per account and limit; figures agree with the status."""
    decoder = msgspec.json.Decoder(RiskAlert)
    status: dict[tuple[str, str, str], str] = {}
    result = CheckResult(
        "alerts",
        "alerts alternate BREACHED / CLEARED per account and limit",
        ["alerts", "limits alerted", "breached now", "single-trade alerts", "out of turn"],
    )
    single = 0
    for rec in alerts.upto(end):
        here = f"{alerts.label}[{rec.partition}]@{rec.offset}"
        try:
            alert = decoder.decode(rec.value or b"")
        except msgspec.DecodeError as exc:
            result.differences.append(Difference(here, "a RiskAlert", f"undecodable ({exc})"))
            continue
        over = alert.value > alert.threshold
        what = f"{here} {alert.account} {alert.limit}"
        if alert.instrument:
            what += f" {alert.instrument}"
        if alert.limit == "single_trade_notional":
            single += 1
            if alert.status != "BREACHED" or not over:
                result.differences.append(
                    Difference(what, "BREACHED over the threshold",
                               f"{alert.status} {alert.value} vs {alert.threshold}")
                )  # fmt: skip
            continue
        key = (alert.account, alert.limit, alert.instrument)
        before = status.get(key)
        turn = "CLEARED" if before == "BREACHED" else "BREACHED"
        if alert.status != turn:
            result.differences.append(
                Difference(what, f"{turn} (after {before or 'nothing'})", alert.status)
            )
        elif over != (alert.status == "BREACHED"):
            result.differences.append(
                Difference(what, f"a figure {'over' if alert.status == 'BREACHED' else 'within'} "
                                 "the threshold", f"{alert.value} vs {alert.threshold}")
            )  # fmt: skip
        status[key] = alert.status
    count = alerts.count(end)
    breached = sum(1 for s in status.values() if s == "BREACHED")
    result.rows.append(
        [f"{count:,}", f"{len(status):,}", f"{breached:,}", f"{single:,}",
         f"{len(result.differences):,}"]
    )  # fmt: skip
    return result
