"""The ``tradeflux`` command: broker, topics, reference data, services, demo, gateway, query.

Errors a user can fix print one line and exit non-zero; ``--debug`` shows the trace.
The commands live in ``broker`` (broker, topics), ``audit`` (audit, replay) and
``services`` (the rest); importing them registers them on :data:`app`.
"""

from __future__ import annotations

import typer

from tradeflux.cli import (  # noqa: F401 - registers the commands
    audit,
    broker,
    redrive,
    security,
    services,
)
from tradeflux.cli.app import _state, app, err_console
from tradeflux.errors import TradefluxError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and a non-zero exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="tradeflux", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("tradeflux: interrupted")
        return 130
    except typer.TyperException as exc:  # usage errors; typer >= 0.26 vendors click
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help it printed is the answer
            return exc.exit_code
        err_console.print(
            f"tradeflux: error: {exc.format_message()} (see --help)", markup=False, soft_wrap=True
        )
        return exc.exit_code
    except TradefluxError as exc:
        if _state.debug:
            raise
        err_console.print(f"tradeflux: error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("tradeflux: interrupted")
        return 130
    # typer returns (not raises) the code of typer.Exit, and 130 for Ctrl-C in a command.
    if isinstance(code, int) and code != 0:
        if code == 130:
            err_console.print("tradeflux: interrupted")
        return code
    return 0
