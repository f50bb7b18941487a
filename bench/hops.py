"""Where a record's time went, hop by hop: the runtime's timing headers and commit lines.

The format (a proposal to the runtime, issue 12; :func:`parse_hop` and
:func:`parse_commit_line` are the only places that know it):

- Every output record carries a ``tf.hop`` header of the hop that produced it, and may
  carry those of the hops before, oldest first (copied from the input record it derives
  from). Without the copies the benchmark joins hops by the trade a record names (a
  Position its last trade, found on ``trades.enriched``). The value is ASCII,
  ``service;instance;batch;polled_us;started_us;processed_us;produced_us``: the batch's
  number in that instance, and wall-clock microseconds since the Unix epoch of when the
  record was polled, when its batch started processing, when the batch's processing
  ended, and when this record was handed to the producer.
- A batch's commit is one line of the service's log:
  ``batch committed service=S instance=I batch=N ... commit_started_us=T0 commit_ended_us=T1``
  (other key=value pairs may come between; order does not matter).

From these, per hop of each record: *fetch* (from the previous hop's commit end, or the
trade's scheduled send for the first hop, to this hop's poll), *queue* (poll to batch
start), *processing*, *produce* (batch processed to this record produced), *commit*
(produced to commit end), and at the end the reader's *fetch* (commit end to visible).
Without commit lines, commit and the next fetch are one interval, *commit+fetch*.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

HOP_HEADER = "tf.hop"

_COMMIT_LINE = re.compile(r"\bbatch committed\b(?P<rest>.*)")
_PAIR = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class HopStamp:
    """One hop's times for one record, in wall-clock microseconds since the epoch."""

    service: str
    instance: str
    batch: int
    polled_us: int
    started_us: int
    processed_us: int
    produced_us: int


@dataclass(frozen=True)
class BatchCommit:
    """When one batch's transaction commit started and ended, microseconds since the epoch."""

    service: str
    instance: str
    batch: int
    started_us: int
    ended_us: int


def parse_hop(value: bytes | str) -> HopStamp:
    """Return the stamp in one ``tf.hop`` header value; ValueError if it is not one."""
    text = value.decode("ascii") if isinstance(value, bytes) else value
    fields = text.split(";")
    if len(fields) != 7:
        raise ValueError(f"a tf.hop header has 7 fields separated by ';', got {text!r}")
    service, instance = fields[0], fields[1]
    batch, polled, started, processed, produced = (int(f) for f in fields[2:])
    return HopStamp(service, instance, batch, polled, started, processed, produced)


def parse_commit_line(line: str) -> BatchCommit | None:
    """Return the batch commit a service log line reports, or None if it reports none."""
    found = _COMMIT_LINE.search(line)
    if found is None:
        return None
    pairs = dict(_PAIR.findall(found.group("rest")))
    try:
        return BatchCommit(
            pairs["service"],
            pairs["instance"],
            int(pairs["batch"]),
            int(pairs["commit_started_us"]),
            int(pairs["commit_ended_us"]),
        )
    except (KeyError, ValueError):
        return None


def hop_stamps(headers: Sequence[tuple[str, bytes | str | None]] | None) -> list[HopStamp]:
    """Return the ``tf.hop`` stamps of a record's headers, oldest hop first (none: [])."""
    return [parse_hop(v) for k, v in headers or () if k == HOP_HEADER and v is not None]


def read_commits(logs: Iterable[str]) -> dict[tuple[str, str, int], BatchCommit]:
    """Return every batch commit the service logs report, by (service, instance, batch)."""
    out: dict[tuple[str, str, int], BatchCommit] = {}
    for text in logs:
        for line in text.splitlines():
            commit = parse_commit_line(line)
            if commit is not None:
                out[(commit.service, commit.instance, commit.batch)] = commit
    return out


@dataclass
class Breakdown:
    """Per (hop, interval), the interval of every record that went through it, in ms."""

    intervals: dict[tuple[str, str], list[float]]
    records: int  # records with stamps

    def rows(self) -> list[tuple[str, str, list[float]]]:
        """Return (hop, interval, sorted values), in the order the hops and intervals run."""
        return [(hop, name, sorted(values)) for (hop, name), values in self.intervals.items()]


def breakdown(
    records: Iterable[tuple[Sequence[HopStamp], float | None, float]],
    commits: Mapping[tuple[str, str, int], BatchCommit],
) -> Breakdown:
    """Split each record's time into its hops' intervals.

    ``records``: per record its stamps (oldest hop first), its origin (the scheduled send
    of the trade it carries, epoch seconds; None if unknown) and when a reader saw it
    (epoch seconds). ``commits``: batch commits by (service, instance, batch).
    """
    intervals: dict[tuple[str, str], list[float]] = {}
    count = 0

    def add(hop: str, name: str, start_us: float, end_us: float) -> None:
        intervals.setdefault((hop, name), []).append((end_us - start_us) / 1000)

    for stamps, origin, visible in records:
        if not stamps:
            continue
        count += 1
        previous_end: float | None = None if origin is None else round(origin * 1e6)
        previous_known = True  # previous_end is a commit end (or the origin)
        for stamp in stamps:
            hop = stamp.service
            if previous_end is not None:
                add(hop, "fetch" if previous_known else "commit+fetch", previous_end,
                    stamp.polled_us)  # fmt: skip
            add(hop, "queue", stamp.polled_us, stamp.started_us)
            add(hop, "processing", stamp.started_us, stamp.processed_us)
            add(hop, "produce", stamp.processed_us, stamp.produced_us)
            commit = commits.get((stamp.service, stamp.instance, stamp.batch))
            if commit is not None:
                add(hop, "commit", stamp.produced_us, commit.ended_us)
                previous_end, previous_known = commit.ended_us, True
            else:
                previous_end, previous_known = stamp.produced_us, False
        assert previous_end is not None
        add("reader", "fetch" if previous_known else "commit+fetch", previous_end,
            round(visible * 1e6))  # fmt: skip
    return Breakdown(intervals, count)


QUANTILES = (0.50, 0.90, 0.99, 0.999, 1.0)
QUANTILE_NAMES = ("p50", "p90", "p99", "p99.9", "max")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile of sorted values by the nearest-rank rule (nan if none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(len(sorted_values), rank) - 1]


def summary(sorted_values: Sequence[float]) -> list[float]:
    """Return p50, p90, p99, p99.9 and max of sorted values."""
    return [percentile(sorted_values, q) for q in QUANTILES]
