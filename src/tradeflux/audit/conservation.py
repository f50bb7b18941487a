"""Conservation: per service, every input record up to its cut became exactly one outcome.

Outcomes: an output, a dead letter, or dropped (a duplicate the validator drops, an old
version a stateful service ignores). Dead letters carry ``tf.stage`` and
``tf.source.topic/partition/offset``, so they are matched to their input offsets. The
validator's and the repartition's outputs are matched to their inputs too:

- validator: the duplicate rule is replayed over ``trades.raw`` in offset order per
  partition (a record repeats the last *accepted* version of its trade id; accepted means
  neither dead-lettered nor a duplicate), and every accepted record must have its
  enriched event(s) by trade id and version: the same event type, or for an AMEND a
  CANCEL and a NEW (a move), with the trade's fields as sent;
- repartition: every input's bytes on ``trades.by_instrument``, and on
  ``trades.by_counterparty`` the same bytes or, for an AMEND that moves counterparty, a
  CANCEL and a NEW of it.

For the stateful services (positions, P&L, risk, settlement, analytics) what an input
became is a fold: the content checks (:mod:`tradeflux.audit.folds`) prove it; here their
dead letters are matched to input offsets and old versions are counted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from tradeflux import topics
from tradeflux.audit.cuts import Cut
from tradeflux.audit.logs import Rec, RecordLog
from tradeflux.audit.report import Difference
from tradeflux.domain.schemas import EventType, Side, TradeEvent
from tradeflux.stream.deadletter import header_map

RAW_DECODER = msgspec.json.Decoder(TradeEvent)

_TRADE_FIELDS = (
    "account", "instrument", "side", "quantity", "price", "currency", "venue", "counterparty",
    "trade_time",
)  # fmt: skip
"""The fields of a trade event the validator passes on as they were sent."""


class TradeCore(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of an enriched trade event the conservation checks read."""

    event_type: EventType
    trade_id: str
    version: int
    account: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    currency: str
    venue: str
    counterparty: str
    trade_time: dt.datetime


CORE_DECODER = msgspec.json.Decoder(TradeCore)


@dataclass
class StageCount:
    """One service's conservation: input records up to its cut and what they became.

    ``inputs == outputs + dead_letters + dropped + unexplained_inputs`` always; the
    check passes when nothing is unexplained, on either side.
    """

    service: str
    input: str
    inputs: int = 0
    outputs: int = 0
    dead_letters: int = 0
    dropped: int | None = 0  # None: not counted for this service
    unexplained_inputs: int = 0
    unexplained_outputs: int = 0
    timer_dead_letters: int = 0
    differences: list[Difference] = field(default_factory=list)


def where(log: RecordLog, rec: Rec) -> str:
    """Return a record's place as ``topic[partition]@offset``."""
    return f"{log.label}[{rec.partition}]@{rec.offset}"


@dataclass
class DeadLetters:
    """A service's dead letters up to its cut, by the input record they stand for."""

    offsets: set[tuple[int, int]] = field(default_factory=set)
    timer: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)


def stage_dead_letters(
    rejected: RecordLog | None, cut: Cut, input_log: RecordLog, source_topic: str
) -> DeadLetters:
    """Match the service's dead letters (``tf.stage``) up to its cut to its input records.

    A dead letter must name the service's input (``source_topic``, prefixed), an offset
    before the cut that holds a record (unless the input is compacted: the cleaner may
    have removed it since), and no offset twice. A timer's dead letter has no source
    record: counted apart.
    """
    found = DeadLetters()
    if rejected is None:
        return found
    stage = cut.stage.name
    compacted = topics.topic_def(cut.stage.input).compacted
    for rec in rejected.upto(cut.ends.get(rejected.label)):
        meta = header_map(rec.headers)
        if meta.get("tf.stage") != stage:
            continue
        here = where(rejected, rec)
        found.reasons[meta.get("tf.reason", "")] += 1
        topic = meta.get("tf.source.topic", "")
        if topic == "" and meta.get("tf.source.offset") == "-1":
            found.timer += 1
            continue
        try:
            partition = int(meta.get("tf.source.partition", ""))
            offset = int(meta.get("tf.source.offset", ""))
        except ValueError:
            found.differences.append(
                Difference(here, "tf.source.partition/offset headers", "missing or not numbers")
            )
            continue
        source = f"{input_log.label}[{partition}]@{offset}"
        if topic != source_topic:
            found.differences.append(
                Difference(here, f"a dead letter of {source_topic}", f"source topic {topic!r}")
            )
        elif offset >= cut.committed.get(partition, 0):
            found.differences.append(
                Difference(here, f"a source offset before the cut of {stage}", source)
            )
        elif not compacted and input_log.find(partition, offset) is None:
            found.differences.append(Difference(here, f"a source record {source}", "none"))
        elif (partition, offset) in found.offsets:
            found.differences.append(Difference(source, "one dead letter", f"another at {here}"))
        else:
            found.offsets.add((partition, offset))
    return found


def _match(event: TradeEvent, outputs: list[tuple[Rec, TradeCore]]) -> list[TradeCore] | None:
    """Take the enriched event(s) of one accepted raw event out of ``outputs``, or None."""

    def take(event_type: str) -> int | None:
        return next((i for i, (_, o) in enumerate(outputs) if o.event_type == event_type), None)

    wanted = take(event.event_type)
    if wanted is not None:
        return [outputs.pop(wanted)[1]]
    if event.event_type != "AMEND":
        return None
    cancel, new = take("CANCEL"), take("NEW")
    if cancel is None or new is None:
        return None
    pair = [outputs[cancel][1], outputs[new][1]]
    for i in sorted((cancel, new), reverse=True):
        del outputs[i]
    return pair


def _content(event: TradeEvent, made: list[TradeCore]) -> str | None:
    """Return the fields a NEW or AMEND's enriched event changed, or None."""
    if event.event_type == "CANCEL":
        return None
    booked = made[-1]  # the AMEND, the NEW, or the NEW of a move
    wrong = [f for f in _TRADE_FIELDS if getattr(event, f) != getattr(booked, f)]
    if not wrong:
        return None
    return "; ".join(f"{f}={getattr(booked, f)} (sent {getattr(event, f)})" for f in wrong)


def validator_count(cut: Cut, raw: RecordLog, enriched: RecordLog, dead: DeadLetters) -> StageCount:
    """Match every raw record up to the validator's cut to its outcome (module docstring)."""
    count = StageCount(cut.stage.name, raw.label)
    state: dict[tuple[int, str], int] = {}  # (partition, trade id): last accepted version
    expected: dict[tuple[str, int], list[tuple[Rec, TradeEvent]]] = defaultdict(list)
    for rec in raw.upto(cut.committed):
        count.inputs += 1
        if (rec.partition, rec.offset) in dead.offsets:
            count.dead_letters += 1
            continue
        try:
            event = RAW_DECODER.decode(rec.value or b"")
        except msgspec.DecodeError as exc:
            count.unexplained_inputs += 1
            count.differences.append(
                Difference(where(raw, rec), "a dead letter (not a trade event)", f"none ({exc})")
            )
            continue
        held = state.get((rec.partition, event.trade_id))
        if held == event.version:
            count.dropped = (count.dropped or 0) + 1
            continue
        state[(rec.partition, event.trade_id)] = event.version
        expected[(event.trade_id, event.version)].append((rec, event))
    found: dict[tuple[str, int], list[tuple[Rec, TradeCore]]] = defaultdict(list)
    for rec in enriched.upto(cut.ends.get(enriched.label)):
        try:
            core = CORE_DECODER.decode(rec.value or b"")
        except msgspec.DecodeError as exc:
            count.unexplained_outputs += 1
            count.differences.append(
                Difference(where(enriched, rec), "an enriched trade event", f"undecodable ({exc})")
            )
            continue
        found[(core.trade_id, core.version)].append((rec, core))
    for key in sorted(expected.keys() | found.keys()):
        outputs = found.get(key, [])
        for rec, event in expected.get(key, []):
            made = _match(event, outputs)
            label = f"{where(raw, rec)} {event.trade_id} v{event.version} {event.event_type}"
            if made is None:
                count.unexplained_inputs += 1
                count.differences.append(
                    Difference(label, f"an enriched {event.event_type} or a dead letter", "none")
                )
                continue
            count.outputs += 1
            wrong = _content(event, made)
            if wrong is not None:
                count.differences.append(Difference(label, "the trade's fields as sent", wrong))
        for rec, core in outputs:
            count.unexplained_outputs += 1
            count.differences.append(
                Difference(
                    f"{where(enriched, rec)} {core.trade_id} v{core.version} {core.event_type}",
                    "an accepted raw record it comes from",
                    "none",
                )
            )
    count.differences[:0] = dead.differences
    count.unexplained_outputs += len(dead.differences)
    count.timer_dead_letters = dead.timer
    return count


def repartition_count(
    cut: Cut,
    enriched: RecordLog,
    by_instrument: RecordLog,
    by_counterparty: RecordLog,
    dead: DeadLetters,
) -> StageCount:
    """Match every enriched record up to the repartition's cut to its re-keyed copies."""
    count = StageCount(cut.stage.name, enriched.label)
    inputs: list[Rec] = []
    for rec in enriched.upto(cut.committed):
        count.inputs += 1
        if (rec.partition, rec.offset) in dead.offsets:
            count.dead_letters += 1
        else:
            inputs.append(rec)
    first: dict[bytes | None, Rec] = {}
    for rec in inputs:
        first.setdefault(rec.value, rec)
    sent = Counter(rec.value for rec in inputs)
    instrument_records = list(by_instrument.upto(cut.ends.get(by_instrument.label)))
    instrument_found = Counter(r.value for r in instrument_records)
    cpty_records = list(by_counterparty.upto(cut.ends.get(by_counterparty.label)))
    cpty_found = Counter(r.value for r in cpty_records)
    missing_instrument = sent - instrument_found
    missing_cpty = sent - cpty_found
    extra_cpty = cpty_found - sent
    # An AMEND that moved counterparty is on trades.by_counterparty as a CANCEL and a NEW.
    splits: dict[tuple[str, int, str], list[str]] = defaultdict(list)
    split_recs: dict[tuple[str, int, str], Rec] = {}
    for rec in cpty_records:
        if rec.value in extra_cpty:
            try:
                core = CORE_DECODER.decode(rec.value or b"")
            except msgspec.DecodeError:
                continue
            ident = (core.trade_id, core.version, core.account)
            splits[ident].append(core.event_type)
            split_recs.setdefault(ident, rec)
    unexplained: Counter[bytes | None] = Counter()
    for value, n in missing_cpty.items():
        try:
            core = CORE_DECODER.decode(value or b"")
        except msgspec.DecodeError:
            unexplained[value] += n
            continue
        ident = (core.trade_id, core.version, core.account)
        for _ in range(n):
            kinds = splits.get(ident, [])
            if core.event_type == "AMEND" and "CANCEL" in kinds and "NEW" in kinds:
                kinds.remove("CANCEL")
                kinds.remove("NEW")
            else:
                unexplained[value] += 1
    for value in missing_instrument.keys() | unexplained.keys():
        n = max(missing_instrument[value], unexplained[value])
        count.unexplained_inputs += n
        rec = first[value]
        lost = [
            t.label
            for t, missing in ((by_instrument, missing_instrument), (by_counterparty, unexplained))
            if missing[value]
        ]
        count.differences.append(
            Difference(where(enriched, rec), f"a copy on {' and '.join(lost)}", "none")
        )
    count.outputs = count.inputs - count.dead_letters - count.unexplained_inputs
    extra_instrument = instrument_found - sent
    for rec in instrument_records:
        n = extra_instrument.pop(rec.value, 0)
        if not n:
            continue
        count.unexplained_outputs += n
        count.differences.append(
            Difference(where(by_instrument, rec), "an enriched record it copies", "none")
        )
    for ident, kinds in splits.items():
        if kinds:
            count.unexplained_outputs += len(kinds)
            count.differences.append(
                Difference(
                    where(by_counterparty, split_recs[ident]),
                    "an enriched record it copies or splits",
                    f"none for {ident[0]} v{ident[1]} {', '.join(kinds)}",
                )
            )
    count.differences[:0] = dead.differences
    count.unexplained_outputs += len(dead.differences)
    count.timer_dead_letters = dead.timer
    count.dropped = 0
    return count


class _Versioned(msgspec.Struct, frozen=True):
    """The fields that decide whether a stateful service applies or ignores an event."""

    trade_id: str
    version: int
    account: str = ""
    instrument: str = ""
    counterparty: str = ""


_VERSIONED = msgspec.json.Decoder(_Versioned)
KeyOf = Callable[[_Versioned], str]

TRADE_KEY: KeyOf = lambda e: f"{e.account}|{e.instrument}|{e.trade_id}"  # noqa: E731
"""How positions and risk hold a trade (``account|instrument|trade_id``)."""
LEG_KEY: KeyOf = lambda e: f"{e.counterparty}|{e.account}|{e.instrument}|{e.trade_id}"  # noqa: E731
"""How settlement holds a trade (domain/netting.py ``leg_key``)."""

STATEFUL_KEYS: dict[str, KeyOf | None] = {
    "positions": TRADE_KEY,
    "risk": TRADE_KEY,
    "settlement": LEG_KEY,
    "pnl": None,
    "analytics": None,
}
"""Per stateful service, how it holds a trade's version (None: old versions not counted)."""


def stateful_count(
    cut: Cut, input_log: RecordLog, dead: DeadLetters, key_of: KeyOf | None
) -> StageCount:
    """Count a stateful service's inputs up to its cut: dead letters and old versions."""
    count = StageCount(cut.stage.name, input_log.label, dropped=None if key_of is None else 0)
    held: dict[str, int] = {}
    for rec in input_log.upto(cut.committed):
        count.inputs += 1
        if (rec.partition, rec.offset) in dead.offsets:
            count.dead_letters += 1
            continue
        if key_of is not None:
            try:
                event = _VERSIONED.decode(rec.value or b"")
            except msgspec.DecodeError:
                count.unexplained_inputs += 1
                count.differences.append(
                    Difference(where(input_log, rec), "a dead letter (undecodable)", "none")
                )
                continue
            key = key_of(event)
            if held.get(key, 0) >= event.version:
                count.dropped = (count.dropped or 0) + 1
                continue
            held[key] = event.version
        count.outputs += 1
    count.differences[:0] = dead.differences
    count.unexplained_outputs += len(dead.differences)
    count.timer_dead_letters = dead.timer
    return count


def count_rows(counts: Iterable[StageCount]) -> list[list[str]]:
    """Return the conservation table's rows."""
    rows = []
    for c in counts:
        dropped = "-" if c.dropped is None else f"{c.dropped:,}"
        balanced = c.inputs == c.outputs + c.dead_letters + (c.dropped or 0) + c.unexplained_inputs
        ok = balanced and not c.unexplained_inputs and not c.unexplained_outputs
        rows.append(
            [
                c.service, c.input, f"{c.inputs:,}", f"{c.outputs:,}", f"{c.dead_letters:,}",
                dropped, f"{c.unexplained_inputs:,}", f"{c.unexplained_outputs:,}",
                "ok" if ok else "DIFFERS",
            ]
        )  # fmt: skip
    return rows


COUNT_COLUMNS = [
    "service", "input", "records in", "→ output", "→ dead letter", "→ dropped",
    "unexplained in", "unexplained out", "",
]  # fmt: skip

ENRICHED = topics.ENRICHED.name
