"""A supervisor for service instances, as Kubernetes would be one: it restarts what dies.

Each :class:`Instance` is one replica of a service (its id, and how to start a process
for it on its host). The supervisor polls the processes; one that is gone is started
again on the same host with the same id. An exit the test caused (:meth:`Supervisor.kill`)
is restarted at once; an exit the instance chose itself (any exit code, no signal from
us) is recorded as a :class:`SelfExit` with the last lines of its log, and restarted
after a back-off that doubles per consecutive exit (like CrashLoopBackOff, capped low
so a test does not stall). The self-exits are what a fault test counts: an instance
that survives the cluster's faults never makes one.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tests.support.kafka_tools import ServiceProcess

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 8.0
LAST_LINES = 40


@dataclass(frozen=True)
class SelfExit:
    """An instance that exited on its own: when, with what code, and why (its log's end)."""

    instance: str
    returncode: int
    after_s: float  # since the supervisor started
    last_lines: tuple[str, ...]

    @property
    def reason(self) -> str:
        """Return the most telling line: the last exception or fatal error logged."""
        for line in reversed(self.last_lines):
            if "Error" in line or "Exception" in line or "fatal" in line:
                return line.strip()
        return self.last_lines[-1].strip() if self.last_lines else "no log"

    @property
    def cause(self) -> str:
        """Return the kind of exit: the exception's class and the Kafka error code if any."""
        reason = self.reason.split("msg=", 1)[-1]  # a log line: its message
        code = _CODE.search(reason)
        kind = reason.split(":", 1)[0].rsplit(".", 1)[-1]
        if code:
            return f"{kind} {code.group(1)}"
        detail = reason.partition("(")[2][:60]  # "fatal: ... failed fatally (what)"
        return f"{kind} ({detail})" if detail else kind

    def describe(self) -> str:
        """Return one line for a failure message."""
        return f"  {self.instance} rc={self.returncode} at {self.after_s:.1f}s: {self.reason[:400]}"


_CODE = re.compile(r"code=(\w+)")


@dataclass
class Instance:
    """One replica: a name (also its instance id), its service and how to start it.

    ``start`` gets the client id of the incarnation to start (``<name>.<n>``), so that
    a group's members say which incarnation of which instance they are.
    """

    name: str
    service: str
    start: Callable[[str], ServiceProcess]
    proc: ServiceProcess | None = None
    incarnations: list[ServiceProcess] = field(default_factory=list)
    killed_by_us: bool = False
    restart_due: float | None = None  # found dead, to be started again at this time
    up_since: float = 0.0
    backoff_s: float = BACKOFF_FIRST_S

    @property
    def client_id(self) -> str:
        """Return the client id of the current incarnation."""
        return f"{self.name}.{len(self.incarnations)}"

    def launch(self) -> None:
        """Start a new process for this instance."""
        self.proc = self.start(f"{self.name}.{len(self.incarnations) + 1}")
        self.incarnations.append(self.proc)
        self.killed_by_us = False
        self.restart_due = None
        self.up_since = time.monotonic()

    def log(self) -> str:
        """Return the current incarnation's log."""
        return self.proc.log() if self.proc is not None else ""


class Supervisor:
    """Keeps every instance running; counts the exits the test did not cause."""

    def __init__(self, instances: Iterable[Instance], poll_s: float = 0.2) -> None:
        self.instances = {i.name: i for i in instances}
        self.self_exits: list[SelfExit] = []
        self.kills = 0
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._started = 0.0

    def start(self) -> None:
        """Start every instance, then watch them."""
        self._started = time.monotonic()
        with self._lock:
            for instance in self.instances.values():
                instance.launch()
        self._thread.start()

    def kill(self, name: str) -> None:
        """SIGKILL instance ``name`` (a fault of the test's); it is restarted at once."""
        with self._lock:
            instance = self.instances[name]
            assert instance.proc is not None and instance.proc.alive(), f"{name} is not running"
            instance.killed_by_us = True
            instance.proc.kill()
            self.kills += 1

    def client_ids(self) -> dict[str, str]:
        """Return {client id of the running incarnation: instance name} of the live instances."""
        with self._lock:
            return {
                i.client_id: i.name
                for i in self.instances.values()
                if i.proc is not None and i.proc.alive()
            }

    def alive(self, name: str) -> bool:
        """Tell whether instance ``name`` has a running process right now."""
        with self._lock:
            proc = self.instances[name].proc
            return proc is not None and proc.alive()

    def stop(self, timeout_s: float = 60.0) -> dict[str, int]:
        """Stop watching, SIGTERM every instance at once; return the exit codes that were not 0."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        codes: dict[str, int] = {}
        with self._lock:
            running = [i for i in self.instances.values() if i.proc is not None and i.proc.alive()]
            for instance in running:
                assert instance.proc is not None
                instance.proc.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            for instance in running:
                assert instance.proc is not None
                try:
                    code = instance.proc.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    # its stacks into its log first (faulthandler on SIGUSR1): where it hung
                    instance.proc.proc.send_signal(signal.SIGUSR1)
                    time.sleep(1.0)
                    instance.proc.kill()
                    code = -9
                if code != 0:
                    codes[instance.name] = code
        return codes

    def kill_all(self) -> None:
        """SIGKILL whatever still runs (a failed test's cleanup)."""
        self._stop.set()
        with self._lock:
            for instance in self.instances.values():
                if instance.proc is not None and instance.proc.alive():
                    instance.proc.kill()

    def report(self) -> str:
        """Return the self-exits, counted by cause, then one line each."""
        causes = Counter(e.cause for e in self.self_exits)
        counted = [f"  {n}x {cause}" for cause, n in causes.most_common()]
        return "\n".join(counted + [e.describe() for e in self.self_exits])

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            with self._lock:
                if self._stop.is_set():
                    return
                now = time.monotonic()
                for instance in self.instances.values():
                    self._check(instance, now)

    def _check(self, instance: Instance, now: float) -> None:
        proc = instance.proc
        if proc is None:
            return
        if proc.alive():
            if now - instance.up_since >= 60:
                instance.backoff_s = BACKOFF_FIRST_S  # a minute up: the crash loop is over
            return
        if instance.restart_due is None:  # just found dead: decide when it comes back
            if instance.killed_by_us:
                instance.restart_due = now
            else:
                lines = proc.log().splitlines()[-LAST_LINES:]
                self.self_exits.append(
                    SelfExit(instance.name, proc.proc.returncode, now - self._started, tuple(lines))
                )
                instance.restart_due = now + instance.backoff_s
                instance.backoff_s = min(BACKOFF_MAX_S, instance.backoff_s * 2)
        if now >= instance.restart_due:
            instance.launch()
