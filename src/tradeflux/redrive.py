"""Re-driving dead letters: their original records back into the topic they came from.

After the cause of a dead letter is fixed (the missing instrument loaded, a processor bug
deployed), ``tradeflux redrive`` reads ``trades.rejected`` (read_committed), picks the dead
letters that match (reason, stage, source topic, time range of the dead letter), and
writes each one's original key, bytes and headers back to its ``tf.source.topic``, with a
header ``tf.redriven`` naming the dead letter (``partition@offset``). The service reads it
as any new record: a validator that drops a (trade id, version) it has already accepted
makes a second re-drive of the same raw trade harmless; for other stages, re-drive once
(``--dry-run`` first lists what would go).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradeflux import topics
from tradeflux.errors import TradefluxError
from tradeflux.stream.deadletter import header_map
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import BEGINNING, TP, IdempotentWriter, PartitionReader

REDRIVEN_HEADER = "tf.redriven"


class RedriveError(TradefluxError):
    """Dead letters could not be read or written back."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter of the rejected topic, its headers decoded."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    meta: dict[str, str]

    @property
    def reason(self) -> str:
        """Return the dead letter's reason code."""
        return self.meta.get("tf.reason", "")

    @property
    def source_topic(self) -> str:
        """Return the topic its record came from (empty for a timer's)."""
        return self.meta.get("tf.source.topic", "")


@dataclass(frozen=True)
class Selection:
    """Which dead letters to re-drive; an empty tuple matches everything."""

    reasons: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    source_topics: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """Tell whether ``letter`` is selected (and can be re-driven: it has a source)."""
        if not letter.source_topic or letter.value is None:
            return False
        at = dt.datetime.fromtimestamp(letter.timestamp_ms / 1000, dt.UTC)
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (not self.stages or letter.meta.get("tf.stage", "") in self.stages)
            and (not self.source_topics or letter.source_topic in self.source_topics)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )


@dataclass
class RedriveReport:
    """What a re-drive found and did: counts per (source topic, reason)."""

    read: int = 0
    selected: dict[tuple[str, str], int] = field(default_factory=dict)
    written: int = 0


def dead_letters(
    client: dict[str, object], topic: str, progress: Callable[[int], None] | None = None
) -> Iterator[DeadLetter]:
    """Yield every dead letter of ``topic`` up to its end now, partition by partition order."""
    reader = PartitionReader(client)
    try:
        count = reader.partitions_of(topic)
        if count is None:
            raise RedriveError(f"no topic {topic}; is --prefix right?")
        ends: dict[TP, int] = {}
        for p in range(count):
            low, high = reader.watermarks((topic, p))
            if high > low:
                ends[(topic, p)] = high
        reader.assign(dict.fromkeys(ends, BEGINNING))
        seen = 0
        while ends:
            msgs, at_end = reader.read(5000, 1.0)
            for msg in msgs:
                tp = (topic, msg.partition() or 0)
                headers = _headers(msg.headers())
                yield DeadLetter(
                    tp[1], msg.offset() or 0, msg.timestamp()[1], msg.key(), msg.value(),
                    headers, dict(header_map(list(headers))),
                )  # fmt: skip
                if tp in ends and (msg.offset() or 0) + 1 >= ends[tp]:
                    del ends[tp]
            for tp in at_end:
                ends.pop(tp, None)
            seen += len(msgs)
            if progress is not None and msgs:
                progress(seen)
    except KafkaClientError as exc:
        raise RedriveError(f"cannot read {topic}: {exc}") from None
    finally:
        reader.close()


def _headers(raw: Any) -> list[tuple[str, bytes | None]]:
    """Return a consumed record's headers as ``(name, bytes or None)`` pairs."""
    out: list[tuple[str, bytes | None]] = []
    for name, value in raw or []:
        out.append((str(name), value.encode() if isinstance(value, str) else value))
    return out


def original_headers(letter: DeadLetter) -> list[tuple[str, bytes | None]]:
    """Return the record's own headers (not the dead letter's), plus ``tf.redriven``."""
    own = [(k, v) for k, v in letter.headers if not k.startswith("tf.") or k == "tf.hop"]
    return [*own, (REDRIVEN_HEADER, f"{letter.partition}@{letter.offset}".encode())]


def redrive(
    client: dict[str, object],
    prefix: str,
    selection: Selection,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RedriveReport:
    """Write the selected dead letters' records back to their source topics."""
    report = RedriveReport()
    chosen: list[DeadLetter] = []
    for letter in dead_letters(client, prefix + topics.REJECTED.name, progress):
        report.read += 1
        if selection.matches(letter):
            key = (letter.source_topic, letter.reason)
            report.selected[key] = report.selected.get(key, 0) + 1
            chosen.append(letter)
    if dry_run or not chosen:
        return report
    writer = IdempotentWriter(client)
    failures: list[str] = []

    def delivered(err: str | None) -> None:
        if err is not None:
            failures.append(err)

    try:
        for letter in chosen:
            writer.produce(
                letter.source_topic, letter.key, letter.value, on_delivery=delivered,
                headers=original_headers(letter),
            )  # fmt: skip
        left = writer.flush(60)
    except KafkaClientError as exc:
        raise RedriveError(f"cannot write back: {exc}") from None
    if left or failures:
        reason = failures[0] if failures else f"{left} record(s) not acknowledged in 60 s"
        raise RedriveError(f"re-drive incomplete: {reason}; re-drive the rest (see --dry-run)")
    report.written = len(chosen)
    return report


def parse_time(text: str | None) -> dt.datetime | None:
    """Return an ISO time (UTC when it names no zone), or None."""
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RedriveError(f"{text!r} is no ISO time; for example 2026-12-01T09:30:00Z") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def selection(
    reasons: Sequence[str] = (),
    stages: Sequence[str] = (),
    source_topics: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
) -> Selection:
    """Return the selection of the command's options."""
    return Selection(
        tuple(reasons), tuple(stages), tuple(source_topics), parse_time(since), parse_time(until)
    )
