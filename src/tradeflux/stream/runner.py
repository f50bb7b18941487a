"""Load a service by ``module:attribute`` and run it: the entry point of a service process."""

from __future__ import annotations

import faulthandler
import importlib
import logging
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
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
    watch = StallWatch(app, f"service={service.name} instance={config.instance_id}")
    watch.start()
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
    finally:
        watch.stop()
    return 0


def thread_stacks() -> list[str]:
    """Return one line per thread: its name and its stack, innermost call first."""
    names = {t.ident: t.name for t in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        calls = [
            f"{Path(f.filename).name}:{f.lineno} {f.name}"
            for f in reversed(traceback.extract_stack(frame))
        ]
        lines.append(f"thread={names.get(ident, ident)} at " + " <- ".join(calls[:12]))
    return lines


class StallWatch(threading.Thread):
    """Log once, with every thread's stack, when the loop has not turned for ``after_s``.

    A turn that long is not a wait the runtime knows about (those are bounded and logged:
    retry.py); it is a call that does not return. The stack says which, without anyone
    having to send SIGUSR1 in time. One dump per stall; a line when the loop turns again.
    """

    def __init__(self, app: StreamApp, context: str, after_s: float = 90.0) -> None:
        super().__init__(name="tradeflux-stall-watch", daemon=True)
        self._app = app
        self._context = context
        self._after_s = after_s
        self._ended = threading.Event()

    def stop(self) -> None:
        """End the watch."""
        self._ended.set()

    def run(self) -> None:
        """Look at the loop every few seconds until stopped."""
        log = logging.getLogger("tradeflux.stream")
        stalled = False
        waited_at = 0.0  # when the loop was last seen waiting out the cluster (retry.py)
        while not self._ended.wait(min(10.0, self._after_s / 3)):
            now = time.monotonic()
            if self._app.waits.current():
                waited_at = now  # a known, bounded, logged wait: not a stall
            idle = min(self._app.seconds_since_turn(), now - waited_at)
            if idle >= self._after_s and not stalled:
                stalled = True
                log.error(
                    "loop stalled %s seconds=%.0f: a call does not return; stacks follow",
                    self._context,
                    idle,
                )
                for line in thread_stacks():
                    log.error("stack %s %s", self._context, line)
            elif idle < self._after_s and stalled:
                stalled = False
                log.warning("loop turns again %s", self._context)
