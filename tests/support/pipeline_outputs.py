"""A whole pipeline run's outputs, read read_committed, and every way they must agree.

Two runs of the same input (a faulted one and a fault-free copy under another prefix)
must agree record for record wherever the rules make the output a function of the input
alone; where the rules make it depend on the order in which a partition received
records from several upstream partitions (a legitimate difference between any two runs,
faults or not), each run is instead checked exactly against an independent fold of
what its own service read, and the runs are compared on what that order cannot change:

- ``trades.enriched``, ``trades.by_instrument``, ``trades.by_counterparty``: the same
  records (partition, key, value bytes), as many times each, and every trade's events in
  the same order; ``trades.enriched`` also equals the reference model's validator.
- ``trades.rejected``: the same dead letters (key, original bytes, stage, reason); the
  validator's equal the reference model's.
- ``positions``, ``pnl``, ``settlement.obligations`` (compacted): the same latest value per
  key, tombstones removing it, and equal to the reference model's positions and P&L and to
  a plain netting of its enriched trades. (The records before the last depend on how
  input was cut into batches, which the rules leave free.)
- ``risk.alerts``: each run's alerts equal the rules' fold over that run's
  ``trades.enriched`` in offset order (an account's limits cross on the order of its
  trades); across runs, accounts that read the same events in the same order have the
  same alerts, and every account ends in the same breached limits with the same
  single-trade breaches.
- ``analytics.bars``: each run's bars equal the windows' fold over that run's
  ``trades.by_instrument`` in offset order; across runs, every window that no late event
  touched in either run has the same latest bar and the same final bar. (Whether an
  event near its window's close is late depends on how far its partition had run ahead
  of the others; the test's pacing keeps such windows few.)
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tests.support.bars_reference import Expected as BarsExpected
from tests.support.bars_reference import bars_written, expected_from
from tests.support.kafka_tools import read_all
from tests.support.reference import ReferenceResult
from tests.support.risk_fold import fold_alerts
from tests.support.risk_reference import comparable
from tests.support.settlement import expected_obligations
from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.clock import TICK_HEADER
from tradeflux.domain.schemas import (
    AccountPnL,
    EnrichedTrade,
    FxRate,
    Limits,
    Position,
    RiskAlert,
    SettlementObligation,
)
from tradeflux.stream.deadletter import header_map

OUTPUTS = (
    topics.ENRICHED, topics.REJECTED, topics.POSITIONS, topics.PNL, topics.ALERTS,
    topics.BY_INSTRUMENT, topics.BY_COUNTERPARTY, topics.OBLIGATIONS, topics.BARS,
)  # fmt: skip
EXAMPLES = 3  # differing records shown per topic
WRITERS = {
    topics.ENRICHED.name: "validator", topics.POSITIONS.name: "positions",
    topics.PNL.name: "pnl", topics.ALERTS.name: "risk", topics.BY_INSTRUMENT.name: "repartition",
    topics.BY_COUNTERPARTY.name: "repartition", topics.OBLIGATIONS.name: "settlement",
    topics.BARS.name: "analytics",
}  # fmt: skip
"""The service that writes each output (``trades.rejected`` has a writer in every service)."""


def written_by(services: Iterable[str]) -> tuple[topics.TopicDef, ...]:
    """Return the outputs that a run of ``services`` writes."""
    present = set(services)
    return tuple(t for t in OUTPUTS if t.name not in WRITERS or WRITERS[t.name] in present)


@dataclass(frozen=True)
class Expectations:
    """What the input alone determines: the reference model's result and the tables."""

    reference: ReferenceResult
    inputs: frozenset[tuple[bytes | None, bytes | None]]  # (key, value) of every raw record
    limits: tuple[Limits, ...]
    base_currencies: Mapping[str, str]
    fx_rates: tuple[FxRate, ...]
    bar_size: dt.timedelta
    bar_grace: dt.timedelta


@dataclass(frozen=True)
class RunOutputs:
    """Every output topic of one run, as read_all returned it (per partition, offset order)."""

    label: str
    messages: Mapping[str, list[Any]]  # unprefixed topic name -> messages, of those it wrote

    def of(self, topic: topics.TopicDef) -> list[Any]:
        """Return the messages of ``topic``."""
        return self.messages[topic.name]

    def wrote(self, *outputs: topics.TopicDef) -> bool:
        """Tell whether the run had the services that write every one of ``outputs``."""
        return all(t.name in self.messages for t in outputs)


def read_outputs(
    settings: Settings, prefix: str, label: str, services: Iterable[str]
) -> RunOutputs:
    """Read every output topic that ``services`` write under ``prefix`` to its end,
    read_committed."""
    return RunOutputs(
        label,
        {t.name: read_all(settings, prefix + t.name, timeout_s=180) for t in written_by(services)},
    )


# What each output is made from, among the outputs: to debug a difference, dump both.
_UPSTREAM = {
    topics.POSITIONS.name: topics.ENRICHED.name,
    topics.PNL.name: topics.POSITIONS.name,
    topics.ALERTS.name: topics.ENRICHED.name,
    topics.BY_INSTRUMENT.name: topics.ENRICHED.name,
    topics.BY_COUNTERPARTY.name: topics.ENRICHED.name,
    topics.BARS.name: topics.BY_INSTRUMENT.name,
    topics.OBLIGATIONS.name: topics.BY_COUNTERPARTY.name,
}


def dump(run: RunOutputs, folder: Path, diffs: list[str]) -> None:
    """Write the records of the topics ``diffs`` name, and of their inputs, to
    ``folder/<label>/<topic>.jsonl``, to debug with."""
    named = {t.name for t in OUTPUTS if any(t.name in line for line in diffs)}
    wanted = named | {_UPSTREAM[t] for t in named if t in _UPSTREAM}
    out = folder / run.label
    out.mkdir(parents=True, exist_ok=True)
    for topic, messages in run.messages.items():
        if topic not in wanted:
            continue
        with (out / f"{topic}.jsonl").open("wb") as f:
            for m in messages:
                row = {
                    "partition": m.partition(),
                    "offset": m.offset(),
                    "key": (m.key() or b"").decode(errors="replace"),
                    "value": None if m.value() is None else m.value().decode(errors="replace"),
                    "headers": {k: (v or b"").decode(errors="replace") for k, v in _headers(m)},
                }
                f.write(msgspec.json.encode(row) + b"\n")


def _headers(m: Any) -> list[tuple[str, bytes | None]]:
    return list(m.headers() or ())


def differences(faulted: RunOutputs, copy: RunOutputs, expect: Expectations) -> list[str]:
    """Return every difference found, one line each (empty: the runs agree in every way).

    Only the outputs the runs wrote are compared (a run of fewer services writes fewer).
    """
    folds = {
        r.label: expected_from(r.of(topics.BY_INSTRUMENT), expect.bar_size, expect.bar_grace)
        for r in (faulted, copy)
        if r.wrote(topics.BARS, topics.BY_INSTRUMENT)
    }
    out: list[str] = []
    for run in (faulted, copy):
        out += _against_reference(run, expect, folds.get(run.label))
    for topic in (topics.ENRICHED, topics.BY_INSTRUMENT, topics.BY_COUNTERPARTY):
        if not faulted.wrote(topic):
            continue
        a, b = _trades(faulted.of(topic)), _trades(copy.of(topic))
        out += _counter_diff(topic.name, _records(a), _records(b), faulted.label, copy.label)
        out += _mapping_diff(f"{topic.name} event order", _trade_orders(a), _trade_orders(b))
    out += _counter_diff(
        topics.REJECTED.name, _dead_letters(faulted.of(topics.REJECTED)),
        _dead_letters(copy.of(topics.REJECTED)), faulted.label, copy.label,
    )  # fmt: skip
    for topic, struct in (
        (topics.POSITIONS, Position),
        (topics.PNL, AccountPnL),
        (topics.OBLIGATIONS, SettlementObligation),
    ):
        if not faulted.wrote(topic):
            continue
        out += _mapping_diff(
            f"{topic.name} (latest per key)",
            _view(faulted.of(topic), struct),
            _view(copy.of(topic), struct),
        )
    if faulted.wrote(topics.ALERTS, topics.ENRICHED):
        out += _alerts_across_runs(faulted, copy)
    if folds:
        out += _bars_across_runs(faulted, copy, folds)
    return out


# -- each run against the independent models --------------------------------------------


def _against_reference(
    run: RunOutputs, expect: Expectations, bars: BarsExpected | None
) -> list[str]:
    ref = expect.reference
    out: list[str] = []
    tag = f"[{run.label}]"
    rejects = run.of(topics.REJECTED)
    lost = [m.key() for m in rejects if (m.key(), m.value()) not in expect.inputs]
    if lost:
        out.append(f"{tag} {len(lost)} dead letter(s) do not carry an input's bytes: {lost[:3]}")
    if run.wrote(topics.ENRICHED):
        out += _validator_against_reference(run, expect)
    views: list[tuple[topics.TopicDef, str, type[Any], dict[str, Any]]] = [
        (topics.POSITIONS, "positions vs the reference fold", Position, ref.positions),
        (topics.PNL, "pnl vs the reference P&L", AccountPnL, ref.pnl),
        (topics.OBLIGATIONS, "settlement.obligations vs a plain netting", SettlementObligation,
         dict(expected_obligations(list(ref.enriched)))),
    ]  # fmt: skip
    for topic, name, struct, wanted in views:
        if run.wrote(topic):
            out += _mapping_diff(f"{tag} {name}", _view(run.of(topic), struct), wanted)
    if run.wrote(topics.ALERTS, topics.ENRICHED):
        enriched = _decode_all(run.of(topics.ENRICHED), EnrichedTrade)
        alerts_seen = _alerts(run)
        alerts_wanted = fold_alerts(
            enriched, expect.limits, expect.base_currencies, expect.fx_rates
        )
        out += _mapping_diff(
            f"{tag} risk.alerts vs the rules' fold of its trades.enriched",
            {a: [comparable(x) for x in xs] for a, xs in alerts_seen.items()},
            {a: [comparable(x) for x in xs] for a, xs in alerts_wanted.items()},
        )
    if bars is not None:
        latest, finals = bars_written(run.of(topics.BARS))
        out += _mapping_diff(f"{tag} analytics.bars vs the windows' fold", latest, bars.bars)
        wanted_finals = {k: 1 for k, bar in bars.bars.items() if bar.final}
        out += _mapping_diff(f"{tag} final bars (once each)", dict(finals), wanted_finals)
    return out


def _validator_against_reference(run: RunOutputs, expect: Expectations) -> list[str]:
    """The validator's outputs (enriched trades and its dead letters) vs the reference's."""
    ref = expect.reference
    tag = f"[{run.label}]"
    enriched = _decode_all(run.of(topics.ENRICHED), EnrichedTrade)
    out = _counter_diff(
        f"{tag} {topics.ENRICHED.name} vs the reference validator",
        Counter(enriched), Counter(ref.enriched), run.label, "reference",
    )  # fmt: skip
    validator = Counter(
        (m.key(), header_map(m.headers()).get("tf.reason", ""))
        for m in run.of(topics.REJECTED)
        if header_map(m.headers()).get("tf.stage") == "validator"
    )
    out += _counter_diff(
        f"{tag} {topics.REJECTED.name} of the validator vs the reference",
        validator, Counter((k, str(r)) for k, r in ref.rejected), run.label, "reference",
    )  # fmt: skip
    return out


# -- across runs where the order of upstream partitions matters -------------------------


def _alerts_across_runs(faulted: RunOutputs, copy: RunOutputs) -> list[str]:
    inputs = [_account_sequences(r.of(topics.ENRICHED)) for r in (faulted, copy)]
    alerts = [_alerts(r) for r in (faulted, copy)]
    same_input = {a for a, events in inputs[0].items() if inputs[1].get(a) == events}
    out = _mapping_diff(
        "risk.alerts of accounts that read the same events in the same order",
        {a: [comparable(x) for x in xs] for a, xs in alerts[0].items() if a in same_input},
        {a: [comparable(x) for x in xs] for a, xs in alerts[1].items() if a in same_input},
    )
    out += _mapping_diff(
        "risk.alerts: limits over at the end, and single-trade breaches",
        _alert_outcome(alerts[0]),
        _alert_outcome(alerts[1]),
    )
    return out


def _alert_outcome(alerts: Mapping[str, list[RiskAlert]]) -> dict[str, Any]:
    """What no delivery order changes: which limits end over, which trades breached alone."""
    out: dict[str, Any] = {}
    for account, xs in alerts.items():
        last: dict[tuple[str, str], str] = {}
        singles = []
        for a in xs:
            if a.limit == "single_trade_notional":
                singles.append(comparable(a))
            else:
                last[(a.limit, a.instrument)] = a.status
        over = sorted(k for k, status in last.items() if status == "BREACHED")
        out[account] = (over, sorted(singles, key=repr))
    return {a: v for a, v in out.items() if v != ([], [])}


def _bars_across_runs(
    faulted: RunOutputs, copy: RunOutputs, folds: Mapping[str, BarsExpected]
) -> list[str]:
    """Compare the bars of the windows no late event touched in either run.

    Whether an event near its window's close is late depends on how far its partition had
    run ahead, which faults change; such windows are checked only against each run's own
    fold. Every other window's bars are a function of its trades alone.
    """
    touched = folds[faulted.label].late_windows | folds[copy.label].late_windows
    (a_latest, a_finals), (b_latest, b_finals) = (
        bars_written(r.of(topics.BARS)) for r in (faulted, copy)
    )

    def untouched(view: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in view.items() if k not in touched}

    out = _mapping_diff(
        "analytics.bars (latest per window no late event touched)",
        untouched(a_latest), untouched(b_latest),
    )  # fmt: skip
    out += _mapping_diff(
        "analytics.bars (final bars of windows no late event touched)",
        untouched(a_finals), untouched(b_finals),
    )  # fmt: skip
    return out


# -- decoding and diffing -----------------------------------------------------------------


class _TradeIdent(msgspec.Struct):
    account: str
    trade_id: str


_IDENT = msgspec.json.Decoder(_TradeIdent)


def _trades(messages: list[Any]) -> list[Any]:
    """The trade records of a topic: clock ticks (ticker-settlement's, at wall-clock times
    that differ from run to run) left out."""
    return [m for m in messages if header_map(m.headers()).get(TICK_HEADER) != "1"]


def _records(messages: list[Any]) -> Counter[tuple[int, bytes | None, bytes | None]]:
    return Counter((m.partition(), m.key(), m.value()) for m in messages)


def _trade_orders(messages: list[Any]) -> dict[tuple[Any, ...], list[bytes]]:
    """Each trade's events (value bytes) per partition and key, in offset order."""
    out: dict[tuple[Any, ...], list[bytes]] = defaultdict(list)
    for m in messages:
        ident = _IDENT.decode(m.value())
        out[(m.partition(), m.key(), ident.account, ident.trade_id)].append(m.value())
    return out


def _account_sequences(messages: list[Any]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for m in messages:
        out[m.key().decode()].append(m.value())
    return out


def _dead_letters(messages: list[Any]) -> Counter[tuple[Any, ...]]:
    def ident(m: Any) -> tuple[Any, ...]:
        h = header_map(m.headers())
        return (m.key(), m.value(), h.get("tf.stage"), h.get("tf.reason"))

    return Counter(ident(m) for m in messages)


def _decode_all(messages: list[Any], struct: type[Any]) -> list[Any]:
    decode = msgspec.json.Decoder(struct).decode
    return [decode(m.value()) for m in messages]


def _view(messages: list[Any], struct: type[Any]) -> dict[str, Any]:
    """The latest value per key of a compacted topic (a tombstone removes the key)."""
    decode: Callable[[bytes], Any] = msgspec.json.Decoder(struct).decode
    out: dict[str, Any] = {}
    for m in messages:
        key = m.key().decode()
        if m.value() is None:
            out.pop(key, None)
        else:
            out[key] = decode(m.value())
    return out


def _alerts(run: RunOutputs) -> dict[str, list[RiskAlert]]:
    out: dict[str, list[RiskAlert]] = defaultdict(list)
    for alert in _decode_all(run.of(topics.ALERTS), RiskAlert):
        out[alert.account].append(alert)
    return dict(out)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 600 else text[:600] + "..."


def _counter_diff(
    name: str, seen: Counter[Any], wanted: Counter[Any], seen_label: str, wanted_label: str
) -> list[str]:
    extra, missing = seen - wanted, wanted - seen
    if not extra and not missing:
        return []
    lines = [
        f"{name}: {sum(extra.values())} record(s) only in {seen_label}, "
        f"{sum(missing.values())} only in {wanted_label} (of {sum(wanted.values())})"
    ]
    lines += [f"    only in {seen_label}: {_short(r)} x{n}" for r, n in _first(extra.items())]
    lines += [f"    only in {wanted_label}: {_short(r)} x{n}" for r, n in _first(missing.items())]
    return lines


def _mapping_diff(name: str, seen: Mapping[Any, Any], wanted: Mapping[Any, Any]) -> list[str]:
    only_seen = [k for k in seen if k not in wanted]
    only_wanted = [k for k in wanted if k not in seen]
    changed = [k for k in seen if k in wanted and seen[k] != wanted[k]]
    if not (only_seen or only_wanted or changed):
        return []
    lines = [
        f"{name}: {len(changed)} key(s) differ, {len(only_seen)} extra, "
        f"{len(only_wanted)} missing (of {len(wanted)})"
    ]
    lines += [f"    differs {_short(k)}: {_how(seen[k], wanted[k])}" for k in _first(changed)]
    lines += [f"    extra {_short(k)}" for k in _first(only_seen)]
    lines += [f"    missing {_short(k)}" for k in _first(only_wanted)]
    return lines


def _how(seen: Any, wanted: Any) -> str:
    """Say how two values differ: the fields of a struct, the first item of a list."""
    if isinstance(seen, msgspec.Struct) and type(seen) is type(wanted):
        fields = [
            f"{f}={_short(getattr(seen, f))} (wanted {_short(getattr(wanted, f))})"
            for f in seen.__struct_fields__
            if getattr(seen, f) != getattr(wanted, f)
        ]
        return "; ".join(fields)
    if isinstance(seen, list | tuple) and isinstance(wanted, list | tuple):
        at = next(
            (i for i, (a, b) in enumerate(zip(seen, wanted, strict=False)) if a != b),
            min(len(seen), len(wanted)),
        )
        mine = _short(seen[at]) if at < len(seen) else "(none)"
        theirs = _short(wanted[at]) if at < len(wanted) else "(none)"
        return f"{len(seen)} vs {len(wanted)} items, first difference at {at}: {mine} != {theirs}"
    return f"{_short(seen)} != {_short(wanted)}"


def _first(items: Iterable[Any]) -> list[Any]:
    out = []
    for item in items:
        out.append(item)
        if len(out) == EXAMPLES:
            break
    return out
