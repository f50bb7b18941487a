"""``tradeflux audit``: the operator's daily control (docs/audit.md)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradeflux.cli.app import _state, app, console, err_console
from tradeflux.errors import TradefluxError


class ReadProgress:
    """Progress of the topic reads: bars on a terminal, a line per finished read otherwise."""

    def __init__(self) -> None:
        self._bars: Progress | None = None
        self._tasks: dict[str, object] = {}
        self._last_line = 0.0
        if err_console.is_terminal:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )

    def __enter__(self) -> ReadProgress:
        if self._bars is not None:
            self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()

    def update(self, topic: str, done: int, total: int, records: int) -> None:
        """Show how far the current read of ``topic`` has got (offsets; records read)."""
        if total < 1:
            return
        if self._bars is None:
            now = time.monotonic()
            if done >= total or now - self._last_line > 5.0:
                self._last_line = now
                state = "read" if done >= total else "reading"
                err_console.print(f"{state} {topic}: {records:,} records", markup=False)
            return
        task = self._tasks.get(topic)
        if task is None:
            task = self._tasks[topic] = self._bars.add_task(f"reading {topic}", total=total)
        self._bars.update(task, completed=done, total=total)  # type: ignore[arg-type]


def _services(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    return tuple(s.strip() for s in text.split(",") if s.strip())


@app.command("audit")
def audit(
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
    services: Annotated[
        str | None,
        typer.Option(
            help="Services to audit, comma-separated; each must have committed offsets "
            "[default: every shipped service whose topics exist]"
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            help="The services are running: a P&L older than its inputs is counted as "
            "pending, not as a difference."
        ),
    ] = False,
    cut_wait_s: Annotated[
        float,
        typer.Option(help="How long to look for a moment a busy service commits nothing, s."),
    ] = 30.0,
    show: Annotated[int, typer.Option(help="Differences shown per check.")] = 10,
) -> None:
    """Reconcile the system from its topics; exit 1 on any difference.

    Everything is computed from the topics themselves, read read_committed, never from
    the services' counters. The checks:

    conservation: per service, every input record up to its cut is an output, a dead
    letter (matched by its tf.source offset) or dropped: for the validator a duplicate
    (its duplicate rule replayed over trades.raw) with every accepted record's enriched
    event(s) found by trade id and version; for the repartition both re-keyed copies;
    for the stateful services an old version ignored.

    positions: each position equals the fold of its effective enriched trades (latest
    version per trade id, cancels removed) in (trade time, trade id) order.

    pnl: each account's P&L equals its positions, as the P&L service had consumed them,
    marked at the latest prices and FX rates on their topics.

    obligations: each obligation equals the netting of the effective trades of
    trades.by_counterparty.

    alerts: BREACHED and CLEARED alternate per account and limit, with figures over and
    within the threshold.

    As of: per service, its group's committed offsets, taken at a moment when it
    committed nothing while its outputs were read to their end; its inputs are read up
    to those offsets and its outputs to those ends. Exit codes: 0 no difference, 1
    differences (the first ones shown per check, expected vs found), 2 the audit could
    not be made.
    """
    from tradeflux.audit.run import AuditOptions, run_audit

    settings = _state.settings(topic_prefix=prefix)
    options = AuditOptions(
        prefix=settings.topic_prefix,
        services=_services(services),
        live=live,
        cut_wait_s=cut_wait_s,
    )
    with ReadProgress() as progress:
        report = run_audit(settings.client_config(), options, progress)
    cuts = Table(
        "service", "group", "input", "records before the cut", "cut taken (UTC)", "reads",
        title="as of: each service's committed offsets",
    )  # fmt: skip
    for name, cut in report.cuts.items():
        count = report.counts.get(name)
        records = f"{count.inputs:,}" if count is not None else ""
        taken = cut.taken_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        cuts.add_row(name, cut.group, cut.stage.input, records, taken, str(cut.attempts))
    console.print(cuts)
    for result in report.results:
        console.print()
        if result.skipped is not None:
            console.print(f"{result.check}: skipped ({result.skipped})", markup=False)
            continue
        table = Table(*result.columns, title=f"{result.check}: {result.title}")
        for row in result.rows:
            table.add_row(*row)
        console.print(table)
        for note in result.notes:
            console.print(f"  {note}", markup=False)
        if result.pending:
            console.print(
                f"  {result.pending} pending (their P&L is older than their inputs: the "
                "throttled P&L timer has not run since)",
                markup=False,
            )
        if result.differences:
            diffs = Table(
                "key",
                "expected",
                "found",
                title=f"{result.check}: first {min(show, len(result.differences))} of "
                f"{len(result.differences)} difference(s)",
            )
            for diff in result.differences[:show]:
                diffs.add_row(diff.key, diff.expected, diff.found)
            console.print(diffs)
    console.print()
    failed = [r for r in report.results if r.differences]
    if failed:
        detail = ", ".join(f"{r.check} {len(r.differences)}" for r in failed)
        console.print(f"audit: {report.differences} difference(s) ({detail})", markup=False)
        raise typer.Exit(1)
    ran = [r.check for r in report.results if r.skipped is None]
    if not ran:
        raise TradefluxError(
            "audit: no check could run (see the reasons above); check --prefix and that the "
            "services have run"
        )
    console.print(f"audit: no difference ({', '.join(ran)})", markup=False)

