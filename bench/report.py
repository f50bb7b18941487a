"""The tables bench/latency.py prints, and the same as Markdown for docs/benchmarks.md."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench import hops
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from bench.latency import LatencyRun
    from bench.pipeline import Capacity

console = Console(highlight=False, width=None if sys.stdout.isatty() else 250)

STAGE_TITLES = {
    "enriched": "ingest → enriched",
    "position": "ingest → position",
    "pnl": "ingest → P&L",
    "sse": "ingest → P&L via SSE",
}


def ms(value: float) -> str:
    """Format milliseconds: one decimal below 100, none above; inf and nan as such."""
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def latency_cell(values: Sequence[float] | None) -> str:
    """Return ``p50 / p90 / p99 / p99.9 / max`` of sorted values, and how many never came."""
    if not values:
        return "-"
    cell = " / ".join(ms(v) for v in hops.summary(values))
    never = sum(1 for v in values if math.isinf(v))
    return cell + (f" ({never:,} never)" if never else "")


def status(run: LatencyRun) -> str:
    """Return FAILED, WRONG, INCOMPLETE (outputs missing after the drain: not checked) or OK."""
    if run.failure:
        return "FAILED"
    return "WRONG" if run.problems else "OK" if run.complete else "INCOMPLETE"


def run_line(run: LatencyRun) -> str:
    """Return one line of progress: the run's p99s, or why it failed."""
    if run.failure:
        return f"  FAILED: {run.failure}"
    p99 = ", ".join(
        f"{stage} p99 {ms(hops.percentile(values, 0.99))} ms"
        for stage, values in run.latencies.items()
    )
    check = status(run)
    if run.problems:
        check += f" ({len(run.problems)}: {run.problems[0][:200]})"
    return f"  {p99}; send lag max {ms(run.send_lag_ms)} ms; check {check}"


def _table(title: str, head: list[str], rows: list[list[str]], left: int = 2) -> str:
    """Print a table; return it as Markdown. The first ``left`` columns align left."""
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(head):
        table.add_column(col, justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    md = [
        f"{title}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < left else "---:" for i in range(len(head))) + "|",
    ]
    md += ["| " + " | ".join(row) + " |" for row in rows]  # fmt: skip
    return "\n".join(md) + "\n"


def _cpu_cell(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in cpu.items()) or "-"


def latency_table(runs: Sequence[LatencyRun], args: argparse.Namespace) -> str:
    stages = [s for s in STAGE_TITLES if any(s in r.latencies for r in runs)]
    head = ["offered/s", "contender", "achieved/s"]
    head += [f"{STAGE_TITLES[s]} ms" for s in stages]
    head += ["CPU ms/trade", "check"]
    rows = []
    for r in runs:
        row = [f"{r.rate:,}", r.contender.label, f"{r.achieved:,.0f}" if r.achieved else "-"]
        row += [latency_cell(r.latencies.get(s)) if not r.failure else "FAILED" for s in stages]
        row += [_cpu_cell(r.cpu_ms_per_trade), status(r)]
        rows.append(row)
    title = (
        f"Latency, p50 / p90 / p99 / p99.9 / max ms, {args.seconds} s measured after "
        f"{args.warmup} s warm-up, {args.arrivals} arrivals, {args.partitions} partitions"
    )
    return _table(title, head, rows, left=2)  # fmt: skip


def ratio_table(runs: Sequence[LatencyRun]) -> str:
    """tradeflux's p99 over each Kafka Streams row's, per offered load and hop."""
    rows = []
    for tf in (r for r in runs if r.contender.key == "tradeflux"):
        for ks in (r for r in runs if r.contender.runtime == "kstreams" and r.rate == tf.rate):
            row = [f"{tf.rate:,}", f"tradeflux / {ks.contender.label}"]
            for stage in ("enriched", "position", "pnl"):
                if status(tf) != "OK" or status(ks) != "OK":
                    row.append(f"{status(tf)} / {status(ks)}")
                    continue
                mine = hops.percentile(tf.latencies[stage], 0.99)
                theirs = hops.percentile(ks.latencies[stage], 0.99)
                ratio = mine / theirs if theirs and not math.isinf(theirs) else math.nan
                row.append(f"{ms(mine)} / {ms(theirs)} = {ratio:.2f}")
            rows.append(row)
    if not rows:
        return ""
    head = ["offered/s", "p99 ratio", "enriched", "position", "P&L"]
    return _table("p99 of tradeflux / p99 of Kafka Streams (ms / ms = ratio)", head, rows)


def breakdown_tables(runs: Sequence[LatencyRun]) -> str:
    md = []
    for r in runs:
        for topic, bd in r.breakdowns.items():
            rows = [[hop, name, *(ms(v) for v in hops.summary(values)), f"{len(values):,}"]
                    for hop, name, values in bd.rows()]  # fmt: skip
            title = (f"Per hop, {r.contender.label} at {r.rate:,}/s: records of {topic} "
                     f"({bd.records:,} with tf.hop headers), ms")  # fmt: skip
            md.append(_table(title, ["hop", "interval", *hops.QUANTILE_NAMES, "records"], rows))
    with_stamps = {r.contender.runtime for r in runs if r.breakdowns}
    if "tradeflux" not in with_stamps and any(r.contender.runtime == "tradeflux" for r in runs):
        console.print("per-hop breakdown: no tf.hop headers on tradeflux's outputs; skipped")
    return "\n".join(md)


def capacity_table(cap: Capacity) -> str:
    rows = [["trades/s through validator → positions → P&L (pre-loaded)", f"{cap.rate:,.0f}"]]
    for name, seconds in cap.cpu_after_first_s.items():
        rows.append([f"CPU ms/trade of {name}, from its first output to caught up",
                     f"{seconds * 1000 / cap.trades:.3f}"])  # fmt: skip
    for name, seconds in cap.cpu_s.items():
        rows.append([f"CPU s of {name}, start-up included", f"{seconds:.1f}"])
    title = f"Capacity: {cap.trades:,} simulated trades pre-loaded (amends, cancels, bad records)"
    return _table(title, ["measure", "value"], rows, left=1)


def report(
    runs: Sequence[LatencyRun],
    cap: Capacity | None,
    args: argparse.Namespace,
    machine: str,
    command: str,
) -> str:
    """Print every table and the notes; return them as Markdown."""
    parts = [latency_table(runs, args), ratio_table(runs), breakdown_tables(runs)]
    if cap is not None:
        parts.append(capacity_table(cap))
    notes = []
    for r in runs:
        name = f"{r.contender.label} at {r.rate:,}/s"
        if r.failure:
            notes.append(f"{name}: FAILED: {r.failure}")
        for problem in r.problems[:3]:
            notes.append(f"{name}: {problem}")
        if len(r.problems) > 3:
            notes.append(f"{name}: ... {len(r.problems) - 3} more problems")
        note = f"{name}: the producer was at most {ms(r.send_lag_ms)} ms behind schedule"
        if r.pnl_no_change:
            note += f"; {r.pnl_no_change:,} trades left their account's P&L unchanged"
        if r.unmatched[1]:
            note += f"; {r.unmatched[1]:,} SSE events matched no P&L record"
        notes.append(note)
    for note in notes:
        console.print(f"  {note}", markup=False)
    console.print(f"machine: {machine}", markup=False)
    console.print(f"command: {command}", markup=False)
    body = "\n".join(p for p in parts if p)
    listed = "\n".join(f"- {n}" for n in notes)
    return f"{body}\n{listed}\n\nmachine: {machine}\n\ncommand: `{command}`\n"
