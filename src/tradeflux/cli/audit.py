"""``tradeflux audit`` and ``tradeflux replay``: the operator's controls (docs/audit.md)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from tradeflux.cli.app import _state, app, console, err_console
from tradeflux.errors import TradefluxError


class ReadProgress:
    """Progress of long reads: bars on a terminal, otherwise a line now and then per read."""

    def __init__(self) -> None:
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._lines: dict[str, tuple[float, int, bool]] = {}  # what: (when, records, done)
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

    def update(self, what: str, done: int, total: int, records: int) -> None:
        """Show that ``what`` is ``done`` of ``total`` offsets in, ``records`` records."""
        if total < 1:
            return
        finished = done >= total
        if self._bars is None:
            now = time.monotonic()
            last = self._lines.get(what)
            if last is not None and (last[1], last[2]) == (records, finished):
                return
            if last is None or finished or now - last[0] > 5.0:
                self._lines[what] = (now, records, finished)
                state = " (done)" if finished else ""
                err_console.print(f"{what}: {records:,} records{state}", markup=False)
            return
        task = self._tasks.get(what)
        if task is None:
            task = self._tasks[what] = self._bars.add_task(what, total=total)
        self._bars.update(task, completed=done, total=total)


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
            help="The services are running: a P&L that is right for an earlier state of its "
            "positions, or whose marks just moved, is counted as pending, not as a difference."
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
    from tradeflux.audit.logs import AuditError
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
                f"  {result.pending} account(s) pending: their P&L is right for an earlier "
                "state of their positions, or their marks just moved (the throttled P&L "
                "timer has not run since)",
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
        raise AuditError(
            "no check could run (see the reasons above); check --prefix, and that the "
            "services have committed something"
        )
    console.print(f"audit: no difference ({', '.join(ran)})", markup=False)


@app.command("replay")
def replay(
    from_time: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start of the range: ISO 8601 with a zone (2026-01-02T09:00:00Z) or epoch ms "
            "[default: the beginning of trades.raw]",
        ),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="End of the range, exclusive (same forms); the tables are copied as they "
            "were then [default: the end of trades.raw now]",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="Prefix of the live system's topics [env: TRADEFLUX_TOPIC_PREFIX]"),
    ] = None,
    into: Annotated[
        str | None,
        typer.Option(
            help="Fresh prefix to replay into; none of its topics may exist "
            "[default: <prefix>replay-<UTC time>-]"
        ),
    ] = None,
    services: Annotated[
        str,
        typer.Option(help="Services to run, comma-separated (any of the shipped ones)."),
    ] = "validator,positions,pnl,repartition,settlement",
    tables: Annotated[
        str,
        typer.Option(
            help="Reference and market data to copy: 'to' (each key's last value before "
            "--to) or 'latest' (each key's latest value)."
        ),
    ] = "to",
    timeout_s: Annotated[
        float, typer.Option(help="Longest the services may take to process the range, s.")
    ] = 600.0,
) -> None:
    """Re-run a time range of trades.raw through the services into a fresh topic prefix.

    The range is, per partition, the offsets from the first record at or after --from to
    the first at or after --to (offsets for times). The fresh prefix's topics are created
    as `tradeflux topics create` does (the source's partition count); the reference data
    and market data are copied as they were at --to (per key, the last record before it
    that the compacted topic still holds); the range's records are copied with their
    keys, headers and timestamps. The services then run as subprocesses (`tradeflux run`,
    the production code path) until they have committed everything and their outputs
    are quiet, and are stopped.

    The replay starts from nothing at --from: for positions, P&L and obligations as they
    were at a moment, replay from the beginning to that moment, then read them with
    `tradeflux query --prefix INTO` or check them with `tradeflux audit --prefix INTO`.
    """
    import datetime as dt

    from tradeflux.audit.replay import ReplayOptions, parse_time
    from tradeflux.audit.replay import replay as run_replay

    if tables not in ("to", "latest"):
        raise TradefluxError(f"--tables {tables!r}: give 'to' or 'latest'")
    settings = _state.settings(topic_prefix=prefix)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    into_prefix = into or f"{settings.topic_prefix}replay-{stamp}-"
    cli_args = ["--bootstrap", settings.bootstrap]
    if _state.config is not None:
        cli_args += ["--config", str(_state.config)]
    options = ReplayOptions(
        source_prefix=settings.topic_prefix,
        into_prefix=into_prefix,
        from_ms=None if from_time is None else parse_time(from_time),
        to_ms=None if to_time is None else parse_time(to_time),
        services=tuple(s.strip() for s in services.split(",") if s.strip()),
        tables="to" if tables == "to" else "latest",
        log_dir=settings.runtime_dir / "replay" / into_prefix.rstrip("-."),
        cli_args=tuple(cli_args),
        timeout_s=timeout_s,
    )

    def status(line: str) -> None:
        err_console.print(f"replay: {line}", markup=False)

    with ReadProgress() as progress:
        report = run_replay(settings, options, status, progress)
    copied = Table("table", "keys copied", "left out (only newer)", "removed", title="tables")
    for name, copy in report.tables.items():
        copied.add_row(name, f"{copy.copied:,}", f"{copy.newer_only:,}", f"{copy.removed:,}")
    console.print(copied)
    outputs = Table(
        "topic", "records", "keys (compacted)", title=f"replayed into {report.into_prefix}"
    )
    outputs.add_row("trades.raw", f"{report.raw_copied:,}", "")
    for name, (records, keys) in report.outputs.items():
        outputs.add_row(name, f"{records:,}", "" if keys is None else f"{keys:,}")
    console.print(outputs)
    if report.misplaced:
        detail = ", ".join(f"[{p}] {n:+}" for p, n in sorted(report.misplaced.items()))
        console.print(
            f"warning: records landed in other partitions than in the source ({detail}): "
            "keyless, or partitioned by a producer other than murmur2; their outcomes may "
            "differ from the live ones",
            markup=False,
        )
    console.print(
        f"replay done in {report.seconds:.1f} s; read it with `tradeflux query --prefix "
        f"{report.into_prefix}`, check it with `tradeflux audit --prefix {report.into_prefix}`",
        markup=False,
    )
