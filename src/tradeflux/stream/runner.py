"""Load a service by ``module:attribute`` and run it: the entry point of a service process."""

from __future__ import annotations

import faulthandler
import importlib
import logging
import signal
import sys
from typing import Any

from tradeflux.errors import TradefluxError
from tradeflux.stream.config import RuntimeConfig
from tradeflux.stream.loop import StreamApp
from tradeflux.stream.topology import Service


class ServiceNotFoundError(LookupError):
    """The ``module:attribute`` does not name a Service."""


def load_service(target: str, settings: Any = None) -> Service:
    """Return the Service named by ``module:attribute``, e.g. ``tests.support.jobs:RUNNING_SUM``.

    A module with a ``build(settings)`` function builds its service from ``settings`` when
    the attribute is ``SERVICE`` (the module's default build).
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ServiceNotFoundError(f"{target!r} is not module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ServiceNotFoundError(f"cannot import {module_name}: {exc}") from None
    build = getattr(module, "build", None)
    if attr == "SERVICE" and settings is not None and callable(build):
        service = build(settings)
    else:
        service = getattr(module, attr, None)
    if not isinstance(service, Service):
        raise ServiceNotFoundError(f"{target} is not a tradeflux Service")
    return service


def configure_logging(level: int = logging.INFO) -> None:
    """Log key=value lines to stderr, one per event."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        force=True,
    )
    logging.getLogger("tradeflux.kafka").setLevel(logging.WARNING)


def run_service(service: Service, config: RuntimeConfig) -> int:
    """Run ``service`` until it is stopped; return the process exit code.

    ``kill -USR1 PID`` writes every thread's stack to stderr (the log): how an operator,
    or the fault suite before a SIGKILL, sees where a stuck instance waits, also inside a
    call of the Kafka client that holds the main thread.
    """
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    app = StreamApp(service, config)
    try:
        app.run()
    except TradefluxError as exc:  # one line that says what to do; no stack trace
        logging.getLogger("tradeflux.stream").error(
            "fatal service=%s instance=%s error=%s: %s",
            service.name,
            config.instance_id,
            type(exc).__name__,
            str(exc).replace("\n", " "),
        )
        return exc.exit_code
    return 0
