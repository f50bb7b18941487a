"""``tradeflux audit``: read the topics, take each service's cut, run every check.

1. Every topic a check needs is read from the beginning to its end, read_committed.
2. Per service (the shipped ones whose input topic exists, or those named), its cut
   (:mod:`tradeflux.audit.cuts`): the committed offsets of its group at a moment when
   it committed nothing while its outputs' ends were read.
3. The checks: conservation per service (:mod:`~tradeflux.audit.conservation`), then
   positions, P&L, obligations and alerts (:mod:`~tradeflux.audit.folds`), each from
   its service's inputs and outputs up to that service's cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tradeflux import topics
from tradeflux.audit import conservation, folds, marks
from tradeflux.audit.cuts import (
    REFERENCE_TOPICS,
    Cut,
    GroupOffsets,
    Stage,
    shipped_stages,
    take_cut,
)
from tradeflux.audit.logs import AuditError, Progress, TopicLog
from tradeflux.audit.report import CheckResult, Difference
from tradeflux.stream.kafka import PartitionReader
from tradeflux.stream.retry import Patience

CHECKS = ("conservation", "positions", "pnl", "obligations", "alerts")
"""Every check, in the order the audit runs and reports them."""


@dataclass(frozen=True)
class AuditOptions:
    """What to audit and how.

    ``services`` None audits every shipped service whose input topic exists; a service
    named here must have a cut (its group must have committed). ``live``: the system is
    running, so a P&L whose inputs are newer than it is pending rather than different.
    ``cut_wait_s``: how long to look for a moment a busy service commits nothing.
    """

    prefix: str = ""
    services: tuple[str, ...] | None = None
    live: bool = False
    cut_wait_s: float = 30.0
    stall_s: float = 60.0


@dataclass
class AuditReport:
    """The cuts taken, the services without one (and why), and each check's result.

    ``counts`` holds each audited service's conservation counts.
    """

    prefix: str
    cuts: dict[str, Cut] = field(default_factory=dict)
    uncut: dict[str, str] = field(default_factory=dict)
    results: list[CheckResult] = field(default_factory=list)
    counts: dict[str, conservation.StageCount] = field(default_factory=dict)

    @property
    def differences(self) -> int:
        """Return the number of differences over every check."""
        return sum(len(r.differences) for r in self.results)


def _topics_present(config: Mapping[str, Any]) -> set[str]:
    reader = PartitionReader(config)
    try:
        return set(Patience("metadata", 30.0, "audit").run(reader.topics))
    finally:
        reader.close()


def _select(options: AuditOptions) -> list[Stage]:
    stages = shipped_stages()
    if options.services is None:
        return stages
    known = {s.name for s in stages}
    unknown = [s for s in options.services if s not in known]
    if unknown:
        raise AuditError(
            f"no service {', '.join(unknown)}; name some of {', '.join(sorted(known))}"
        )
    return [s for s in stages if s.name in options.services]


def run_audit(
    config: Mapping[str, Any], options: AuditOptions, progress: Progress | None = None
) -> AuditReport:
    """Run every check against the cluster of ``config`` (module docstring)."""
    stages = _select(options)
    prefix = options.prefix
    present = _topics_present(config)

    def has(name: str) -> bool:
        return prefix + name in present

    names: list[str] = []
    for stage in stages:
        if has(stage.input):
            names += [t for t in (stage.input, *stage.written) if has(t) and t not in names]
    if any(s.name == "pnl" for s in stages):
        names += [t for t in REFERENCE_TOPICS if has(t) and t not in names]
    if has(topics.ALERTS.name) and topics.ALERTS.name not in names:
        names.append(topics.ALERTS.name)
    if not names:
        raise AuditError(
            f"no topic of the system exists with prefix {prefix!r}; check --prefix and "
            "--bootstrap (`tradeflux topics list` shows what the cluster has)"
        )
    logs: dict[str, TopicLog] = {}
    try:
        for name in names:
            logs[name] = TopicLog(
                config,
                prefix + name,
                name,
                keep_headers=name == topics.REJECTED.name,
                progress=progress,
                stall_s=options.stall_s,
            )
            logs[name].read_to_end()
        report = AuditReport(prefix)
        for stage in stages:
            _cut(config, stage, logs, has, options, report)
        report.results = _checks(report, logs, options)
        return report
    finally:
        for log in logs.values():
            log.close()


def _cut(
    config: Mapping[str, Any],
    stage: Stage,
    logs: dict[str, TopicLog],
    has: Any,
    options: AuditOptions,
    report: AuditReport,
) -> None:
    missing = [t for t in (stage.input, *stage.written) if not has(t)]
    if missing:
        report.uncut[stage.name] = f"no topic {', '.join(options.prefix + t for t in missing)}"
        return
    group = stage.group(options.prefix)
    partitions = logs[stage.input].partitions
    offsets = GroupOffsets(config, group, options.prefix + stage.input, partitions)
    try:
        cut = take_cut(
            stage, offsets, logs[stage.input], [logs[t] for t in stage.written], options.cut_wait_s
        )
    finally:
        offsets.close()
    if cut is None:
        report.uncut[stage.name] = f"its group {group} has committed nothing"
    else:
        report.cuts[stage.name] = cut


def _checks(
    report: AuditReport, logs: dict[str, TopicLog], options: AuditOptions
) -> list[CheckResult]:
    rejected = logs.get(topics.REJECTED.name)
    dead: dict[str, conservation.DeadLetters] = {}
    counts = []
    for name, cut in report.cuts.items():
        input_log = logs[cut.stage.input]
        dead[name] = conservation.stage_dead_letters(
            rejected, cut, input_log, options.prefix + cut.stage.input
        )
        if name == "validator":
            count = conservation.validator_count(
                cut, input_log, logs[topics.ENRICHED.name], dead[name]
            )
        elif name == "repartition":
            count = conservation.repartition_count(
                cut,
                input_log,
                logs[topics.BY_INSTRUMENT.name],
                logs[topics.BY_COUNTERPARTY.name],
                dead[name],
            )
        else:
            key_of = conservation.STATEFUL_KEYS.get(name)
            count = conservation.stateful_count(cut, input_log, dead[name], key_of)
        counts.append(count)
        report.counts[name] = count
    result = CheckResult(
        "conservation",
        "input records = outputs + dead letters + dropped, per service",
        list(conservation.COUNT_COLUMNS),
        conservation.count_rows(counts),
    )
    for count in counts:
        result.differences += count.differences
        if count.timer_dead_letters:
            result.notes.append(
                f"{count.service}: {count.timer_dead_letters} dead letter(s) of failed timers"
            )
    named = set(options.services or ())
    for name, why in report.uncut.items():
        if name in named:
            result.differences.append(Difference(name, "a cut (committed offsets)", why))
        else:
            result.notes.append(f"{name} not audited: {why}")
    if not counts and not result.differences:
        result.skipped = "no service has a cut"
    results = [result]

    def skip(check: str, title: str, why: str) -> CheckResult:
        return CheckResult(check, title, skipped=why)

    def dead_of(name: str) -> set[tuple[int, int]]:
        return dead[name].offsets if name in dead else set()

    cuts = report.cuts
    if "positions" in cuts:
        results.append(
            folds.check_positions(
                cuts["positions"], logs[topics.ENRICHED.name], logs[topics.POSITIONS.name],
                dead_of("positions"),
            )
        )  # fmt: skip
    else:
        results.append(skip("positions", "positions", _why(report, "positions")))
    if "pnl" in cuts and all(t in logs for t in REFERENCE_TOPICS):
        results.append(
            marks.check_pnl(
                cuts["pnl"], logs[topics.POSITIONS.name], logs[topics.PNL.name], dead_of("pnl"),
                logs[topics.ACCOUNTS.name], logs[topics.PRICES.name], logs[topics.FX.name],
                options.live,
            )
        )  # fmt: skip
    else:
        why = _why(report, "pnl") if "pnl" not in cuts else "no refdata.accounts or market data"
        results.append(skip("pnl", "P&L", why))
    if "settlement" in cuts:
        results.append(
            folds.check_obligations(
                cuts["settlement"], logs[topics.BY_COUNTERPARTY.name],
                logs[topics.OBLIGATIONS.name], dead_of("settlement"),
            )
        )  # fmt: skip
    else:
        results.append(skip("obligations", "obligations", _why(report, "settlement")))
    alerts = logs.get(topics.ALERTS.name)
    if alerts is not None and (options.services is None or "risk" in options.services):
        end = cuts["risk"].ends.get(topics.ALERTS.name) if "risk" in cuts else None
        results.append(folds.check_alerts(alerts, end))
    else:
        results.append(skip("alerts", "alerts", f"no topic {options.prefix}risk.alerts"))
    return results


def _why(report: AuditReport, service: str) -> str:
    return f"{service} not audited: {report.uncut.get(service, 'not selected')}"
