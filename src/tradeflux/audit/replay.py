"""``tradeflux replay``: a time range of ``trades.raw`` re-run through the services, afresh.

1. The range: per partition of the source ``trades.raw``, from the first offset whose
   timestamp is at or after ``--from`` to the first at or after ``--to`` (Kafka's offsets
   for times; without ``--from``, the beginning, without ``--to``, the end now).
2. A fresh prefix (``--into``; no topic of the system may exist with it), its topics made
   by ``tradeflux topics create``'s code with the source ``trades.raw``'s partition count.
3. The tables copied "as they were": per key of every reference-data and market-data
   topic, the last record with a timestamp before ``--to`` that the topic still holds
   (with its key, value, headers and timestamp); a tombstone there removes the key. A
   compacted topic keeps only the latest value of a key once the log cleaner has run, so
   a key whose only surviving record is newer than ``--to`` is left out, and counted;
   ``--tables latest`` copies every key's latest value instead.
4. The range copied to the new ``trades.raw``: keys, values, headers and timestamps as
   they were (the validator's "now" is the record timestamp, so it decides the same),
   partitioned by the key as the live producers did (murmur2); records that land in
   another partition than in the source (no key, or a producer that partitioned
   otherwise) are counted.
5. The services run as subprocesses (``tradeflux run NAME --prefix INTO``), exactly as in
   production, until each has committed its whole input and their outputs are quiet,
   then they are stopped (SIGTERM: the last batch commits): :mod:`.replay_services`.

The replayed system starts from nothing at ``--from``: an AMEND or CANCEL of a trade
booked before it is UNKNOWN_TRADE there, and positions hold only the range's trades. For
the positions, P&L and obligations as they were at a moment, replay from the beginning
of ``trades.raw`` to that moment.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tradeflux import topics
from tradeflux.audit.cuts import GroupOffsets, shipped_stages
from tradeflux.audit.logs import Progress, Rec, TopicLog
from tradeflux.audit.replay_services import ReplayError, Status, run_services
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.stream.kafka import IdempotentWriter, PartitionReader
from tradeflux.stream.retry import Patience

DEFAULT_SERVICES = ("validator", "positions", "pnl", "repartition", "settlement")
"""The services a replay runs unless told otherwise: positions, P&L and obligations."""

TABLES = (
    topics.INSTRUMENTS, topics.ACCOUNTS, topics.COUNTERPARTIES, topics.LIMITS, topics.PRICES,
    topics.FX,
)  # fmt: skip
"""The compacted topics copied as they were at ``--to``."""


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay, where to, and with which services.

    ``cli_args`` are the global options the service subprocesses get (``--bootstrap``,
    ``--config``); ``settle_s`` how long every output must stay unchanged, once every
    service has committed its whole input, before the replay counts as done (longer than
    the P&L throttle, whose timer emits after the last input).
    """

    source_prefix: str
    into_prefix: str
    from_ms: int | None = None
    to_ms: int | None = None
    services: tuple[str, ...] = DEFAULT_SERVICES
    tables: Literal["to", "latest"] = "to"
    log_dir: Path = Path(".")
    cli_args: tuple[str, ...] = ()
    timeout_s: float = 600.0
    settle_s: float = 2.0


@dataclass
class TableCopy:
    """One table's copy: keys copied, left out (only newer records), removed (tombstone)."""

    copied: int = 0
    newer_only: int = 0
    removed: int = 0


@dataclass
class ReplayReport:
    """What the replay did and produced."""

    into_prefix: str
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    raw_copied: int = 0
    misplaced: dict[int, int] = field(default_factory=dict)  # partition: records more (-less)
    tables: dict[str, TableCopy] = field(default_factory=dict)
    services: tuple[str, ...] = ()
    outputs: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # records, keys
    seconds: float = 0.0


def parse_time(text: str) -> int:
    """Return an ISO 8601 time with a zone (or epoch milliseconds) as epoch milliseconds."""
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(
            f"{text!r} is not a time; give ISO 8601 with a zone, e.g. 2026-01-02T16:00:00Z, "
            "or epoch milliseconds"
        ) from None
    if when.tzinfo is None:
        raise ReplayError(f"{text!r} has no time zone; add one, e.g. {text}Z for UTC")
    return int(when.timestamp() * 1000)


def _check_fresh(present: set[str], options: ReplayOptions) -> None:
    if options.into_prefix == options.source_prefix:
        raise ReplayError("--into must differ from --prefix: a replay writes to a fresh prefix")
    taken = sorted(name for name in present if name.startswith(options.into_prefix))
    if taken:  # the system's topics, or a service's changelogs from an earlier replay
        raise ReplayError(
            f"topics exist with prefix {options.into_prefix!r} already ({', '.join(taken[:3])}"
            f"{', ...' if len(taken) > 3 else ''}); choose a new --into"
        )
    known = {s.name for s in shipped_stages()}
    unknown = [s for s in options.services if s not in known]
    if unknown:
        raise ReplayError(f"no service {', '.join(unknown)}; name some of {', '.join(known)}")


def _check_groups_fresh(config: Mapping[str, Any], options: ReplayOptions) -> None:
    """Refuse a prefix whose service groups committed before: they would not start afresh."""
    for stage in shipped_stages():
        if stage.name not in options.services:
            continue
        topic = options.into_prefix + stage.input
        reader = PartitionReader(config)
        try:
            count = reader.partitions_of(topic) or 0
        finally:
            reader.close()
        offsets = GroupOffsets(config, stage.group(options.into_prefix), topic, count)
        try:
            committed = offsets.fetch()
        finally:
            offsets.close()
        if any(o is not None for o in committed.values()):
            raise ReplayError(
                f"group {stage.group(options.into_prefix)} has committed offsets already (an "
                "earlier replay into this prefix); choose a new --into"
            )


def raw_range(
    reader: PartitionReader, topic: str, partitions: int, options: ReplayOptions
) -> dict[int, tuple[int, int]]:
    """Return per partition the offsets ``[first, stop)`` of the range (module docstring)."""
    patience = Patience("offsets for times", 60.0, f"replay topic={topic}")

    def marks(p: int) -> tuple[int, int]:
        return patience.run(lambda: reader.watermarks((topic, p)))

    ends = {p: marks(p) for p in range(partitions)}

    def offsets(at_ms: int | None, default: int) -> dict[int, int]:
        if at_ms is None:
            return {p: ends[p][default] for p in range(partitions)}
        got = patience.run(
            lambda: reader.offsets_for_times({(topic, p): at_ms for p in range(partitions)})
        )
        return {p: ends[p][1] if o is None else o for (_t, p), o in got.items()}

    first = offsets(options.from_ms, 0)
    stop = offsets(options.to_ms, 1)
    return {p: (first[p], max(first[p], stop[p])) for p in range(partitions)}


def copy_tables(
    config: Mapping[str, Any],
    writer: IdempotentWriter,
    present: set[str],
    options: ReplayOptions,
    progress: Progress | None,
) -> dict[str, TableCopy]:
    """Copy every table of the source as it was at ``--to`` (module docstring)."""
    out: dict[str, TableCopy] = {}
    cut = options.to_ms if options.tables == "to" else None
    for table in TABLES:
        source = options.source_prefix + table.name
        if source not in present:
            continue
        log = TopicLog(config, source, table.name, keep_headers=True, progress=progress)
        try:
            log.read_to_end()
        finally:
            log.close()
        kept: dict[bytes | None, Rec | None] = {}
        seen: set[bytes | None] = set()
        for rec in log.upto():
            seen.add(rec.key)
            if cut is None or rec.timestamp_ms < cut:
                kept[rec.key] = None if rec.value is None else rec
        copy = TableCopy(newer_only=len(seen - kept.keys()))
        for last in kept.values():
            if last is None:
                copy.removed += 1
                continue
            copy.copied += 1
            writer.produce(
                options.into_prefix + table.name, last.key, last.value,
                timestamp_ms=last.timestamp_ms, headers=last.headers,
            )  # fmt: skip
        out[table.name] = copy
    return out


def copy_raw(
    config: Mapping[str, Any],
    writer: IdempotentWriter,
    ranges: Mapping[int, tuple[int, int]],
    options: ReplayOptions,
    progress: Progress | None,
) -> dict[int, int]:
    """Copy the range of the source ``trades.raw`` to the fresh one; return counts per partition."""
    target = options.into_prefix + topics.RAW.name
    stops = {p: stop for p, (_first, stop) in ranges.items()}
    copied = dict.fromkeys(ranges, 0)

    def copy(rec: Rec) -> None:
        if rec.offset < stops[rec.partition]:
            writer.produce(
                target, rec.key, rec.value, timestamp_ms=rec.timestamp_ms, headers=rec.headers
            )
            copied[rec.partition] += 1
            writer.poll(0)

    log = TopicLog(
        config,
        options.source_prefix + topics.RAW.name,
        topics.RAW.name,
        keep_headers=True,
        progress=progress,
        start={p: first for p, (first, _stop) in ranges.items()},
        sink=copy,
    )
    try:
        log.read_to(stops)
    finally:
        log.close()
    return copied


def _flush(writer: IdempotentWriter) -> None:
    left = writer.flush(60.0)
    if left or writer.fatal_error:
        raise ReplayError(
            f"{left} record(s) were not written ({writer.fatal_error or 'timed out'}); "
            "check the cluster and run the replay again with a new --into"
        )


def count_outputs(
    config: Mapping[str, Any], prefix: str, names: Sequence[str]
) -> dict[str, tuple[int, int | None]]:
    """Return per output topic of the replay its records and, if compacted, its live keys."""
    out = {}
    for name in names:
        log = TopicLog(config, prefix + name, name)
        try:
            log.read_to_end()
        finally:
            log.close()
        live: dict[bytes | None, bool] = {}
        for rec in log.upto():
            live[rec.key] = rec.value is not None
        keys = sum(live.values()) if topics.topic_def(name).compacted else None
        out[name] = (log.count(), keys)
    return out


def replay(
    settings: Settings, options: ReplayOptions, status: Status, progress: Progress | None = None
) -> ReplayReport:
    """Replay the range into the fresh prefix (module docstring); return what it did."""
    started = time.monotonic()
    config = settings.client_config()
    reader = PartitionReader(config)
    try:
        present = set(Patience("metadata", 30.0, "replay").run(reader.topics))
        source = options.source_prefix + topics.RAW.name
        if source not in present:
            raise ReplayError(f"topic {source} does not exist; check --prefix and --bootstrap")
        _check_fresh(present, options)
        partitions = reader.partitions_of(source) or 0
        report = ReplayReport(options.into_prefix, services=options.services)
        report.ranges = raw_range(reader, source, partitions, options)
    finally:
        reader.close()
    total = sum(stop - first for first, stop in report.ranges.values())
    status(f"range: {total:,} offsets of {source} over {partitions} partitions")
    create_topics(replace(settings, topic_prefix=options.into_prefix, partitions=partitions),
                  TopicSet.ALL)  # fmt: skip
    status(f"created the topics with prefix {options.into_prefix!r}")
    _check_groups_fresh(config, options)
    writer = IdempotentWriter(config)
    report.tables = copy_tables(config, writer, present, options, progress)
    _flush(writer)
    copied = copy_raw(config, writer, report.ranges, options, progress)
    report.raw_copied = sum(copied.values())
    _flush(writer)
    check = PartitionReader(config)
    try:
        into = options.into_prefix + topics.RAW.name
        for p in range(partitions):
            landed = check.watermarks((into, p))[1]
            if landed != copied.get(p, 0):
                report.misplaced[p] = landed - copied.get(p, 0)
    finally:
        check.close()
    status(f"copied {report.raw_copied:,} trade records and the tables; running the services")
    run_services(settings, options, status, progress)
    wanted = [t for s in shipped_stages() if s.name in options.services for t in s.outputs]
    report.outputs = count_outputs(config, options.into_prefix, [topics.REJECTED.name, *wanted])
    report.seconds = time.monotonic() - started
    return report
