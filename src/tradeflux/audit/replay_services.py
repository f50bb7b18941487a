"""The replay's services: subprocesses started, watched until the range is done, stopped.

Subprocesses (``tradeflux run NAME --prefix INTO``), not threads of the replay: they run
the very code path of production, so the replay answers with the records the live
services produced; each owns its signal handling, logging and exit code as ``tradeflux
run`` does; and they use every core. Done: every service has committed its whole input,
in pipeline order (so its input is final), and no output topic has changed for a while.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tradeflux.audit.cuts import GroupOffsets, shipped_stages
from tradeflux.audit.logs import AuditError, Progress
from tradeflux.config import Settings
from tradeflux.demo import Component
from tradeflux.stream.kafka import PartitionReader

if TYPE_CHECKING:
    from tradeflux.audit.replay import ReplayOptions

Status = Callable[[str], None]


class ReplayError(AuditError):
    """The replay cannot be made as asked, or a service of it failed."""


def caught_up(config: Mapping[str, Any], offsets: GroupOffsets, topic: str, n: int) -> bool:
    """Tell whether the group has committed every record of ``topic`` there is now.

    A topic written in transactions ends with markers no consumer receives, so a
    committed offset below the end still counts when only markers lie beyond it.
    """
    committed = offsets.fetch()
    if all(o is None for o in committed.values()):
        return False
    reader = PartitionReader(config)
    try:
        behind = {}
        for p in range(n):
            done = committed[p] or 0
            if done < reader.watermarks((topic, p))[1]:
                behind[(topic, p)] = done
        if not behind:
            return True
        reader.assign(behind)
        at_end: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 10.0
        while len(at_end) < len(behind) and time.monotonic() < deadline:
            msgs, ends = reader.read(100, 0.05)
            if msgs:
                return False  # a record the group has not committed yet
            at_end.update(ends)
        return len(at_end) == len(behind)
    finally:
        reader.close()


class _Watch:
    """The replay's services as the replay watches them: committed input, output ends."""

    def __init__(self, config: Mapping[str, Any], options: ReplayOptions) -> None:
        self._config = config
        prefix = options.into_prefix
        self.stages = [s for s in shipped_stages() if s.name in options.services]
        self._reader = PartitionReader(config)
        self._inputs = {s.name: prefix + s.input for s in self.stages}
        self._counts = {
            name: self._reader.partitions_of(topic) or 0 for name, topic in self._inputs.items()
        }
        self._groups = {
            s.name: GroupOffsets(config, s.group(prefix), self._inputs[s.name],
                                 self._counts[s.name])
            for s in self.stages
        }  # fmt: skip
        outputs = {prefix + t for s in self.stages for t in s.outputs}
        self._outputs = {t: self._reader.partitions_of(t) or 0 for t in sorted(outputs)}

    def done(self) -> list[str]:
        """Return the services that have committed their whole, final input (in order)."""
        out: list[str] = []
        for s in self.stages:  # pipeline order: an input is final once its writers are done
            name = s.name
            if len(out) < self.stages.index(s) or not caught_up(
                self._config, self._groups[name], self._inputs[name], self._counts[name]
            ):
                break
            out.append(name)
        return out

    def show(self, progress: Progress) -> None:
        """Update each service's progress: records committed of its input's end."""
        for name, topic in self._inputs.items():
            committed = sum(o or 0 for o in self._groups[name].fetch().values())
            end = sum(self._reader.watermarks((topic, p))[1] for p in range(self._counts[name]))
            progress.update(f"{name} committing its input", min(committed, end), end, committed)

    def output_ends(self) -> dict[str, list[int]]:
        """Return the end offset of every partition of every output topic."""
        return {
            t: [self._reader.watermarks((t, p))[1] for p in range(n)]
            for t, n in self._outputs.items()
        }

    def close(self) -> None:
        """Close the clients."""
        for group in self._groups.values():
            group.close()
        self._reader.close()


def _exited(comp: Component) -> ReplayError:
    tail = comp.log_path.read_text(errors="replace")[-1500:] if comp.log_path else ""
    code = comp.proc.returncode if comp.proc is not None else "?"
    return ReplayError(
        f"replay service {comp.name} exited with code {code}; the end of its log "
        f"{comp.log_path}: {' '.join(tail.split())}"
    )


def run_services(
    settings: Settings, options: ReplayOptions, status: Status, progress: Progress | None
) -> None:
    """Run the services on the fresh prefix until they have done the range, then stop them.

    Done: every service has committed its whole input, in pipeline order (so its input is
    final), and no output topic has changed for ``settle_s``.
    """
    options.log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TRADEFLUX_BOOTSTRAP": settings.bootstrap}
    watch = _Watch(settings.client_config(), options)
    comps = [
        Component(
            s.name,
            [
                *options.cli_args,
                "run",
                s.name,
                "--prefix",
                options.into_prefix,
                "--instance-id",
                f"replay-{s.name}",
            ],
        )  # fmt: skip
        for s in watch.stages
    ]
    try:
        for comp in comps:
            comp.start(env, options.log_dir)
            status(f"started {comp.name} (log {comp.log_path})")
        deadline = time.monotonic() + options.timeout_s
        quiet_since: float | None = None
        last_ends: dict[str, list[int]] = {}
        while True:
            for comp in comps:
                if not comp.alive():
                    raise _exited(comp)
            done = watch.done()
            if progress is not None:
                watch.show(progress)
            ends = watch.output_ends()
            now = time.monotonic()
            if len(done) == len(comps) and ends == last_ends:
                quiet_since = quiet_since or now
                if now - quiet_since >= options.settle_s:
                    return
            else:
                quiet_since = None
            last_ends = ends
            if now > deadline:
                late = [c.name for c in comps if c.name not in done]
                raise ReplayError(
                    f"the replay did not finish within {options.timeout_s:g} s (not done: "
                    f"{', '.join(late) or 'outputs still changing'}); see the logs in "
                    f"{options.log_dir}, or give it longer with --timeout-s"
                )
            time.sleep(0.5)
    finally:
        for comp in reversed(comps):
            comp.stop()
        status(f"stopped {', '.join(c.name for c in comps)}")
        watch.close()
