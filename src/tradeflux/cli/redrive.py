"""``tradeflux redrive``: dead letters' records back into the topics they came from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tradeflux.cli.app import _state, app, console, err_console


@app.command("redrive")
def redrive_command(
    reason: Annotated[
        list[str] | None,
        typer.Option(
            help="Only dead letters with this reason code (repeatable), e.g. "
            "UNKNOWN_INSTRUMENT or processor_error."
        ),  # fmt: skip
    ] = None,
    stage: Annotated[
        list[str] | None, typer.Option(help="Only those of this stage (service), repeatable.")
    ] = None,
    source_topic: Annotated[
        list[str] | None,
        typer.Option(help="Only those that came from this topic (unprefixed), repeatable."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only dead letters written at or after this ISO time.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only dead letters written before this ISO time.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be re-driven; write nothing.")
    ] = False,
    prefix: Annotated[
        str | None, typer.Option(help="Topic name prefix [env: TRADEFLUX_TOPIC_PREFIX]")
    ] = None,
) -> None:
    """Write the original records of matching dead letters back to their source topics.

    Fix the cause first (load the missing reference data, deploy the fix); then each
    record is processed as a new one. Every re-driven record carries the header
    tf.redriven=<partition>@<offset> of its dead letter. The validator drops a raw trade
    it has already accepted, so re-driving trades.raw twice is harmless; for other
    stages, re-drive once (--dry-run first).
    """
    from tradeflux.redrive import redrive, selection

    settings = _state.settings(topic_prefix=prefix)
    chosen = selection(
        reason or (),
        stage or (),
        [settings.topic_prefix + t for t in source_topic or ()],
        since,
        until,
    )

    def progress(n: int) -> None:
        err_console.print(f"read {n:,} dead letters ...", end="\r")

    report = redrive(settings.client_config(), settings.topic_prefix, chosen, dry_run, progress)
    table = Table("source topic", "reason", "dead letters")
    for (topic, why), n in sorted(report.selected.items()):
        table.add_row(topic, why, f"{n:,}")
    console.print(table)
    total = sum(report.selected.values())
    verb = "would re-drive" if dry_run else "re-drove"
    console.print(f"{verb} {total:,} of {report.read:,} dead letters", markup=False)
