"""What a PromQL expression reads, and what a /metrics page offers: for the monitoring tests.

Not a PromQL parser: enough of the grammar to find the metric names an expression
selects (string literals, label matchers, ranges, grouping clauses, functions, keywords
and numbers taken out), checked on the rules and dashboards of this repository.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.kafka_tools import REPO

RULES_FILE = REPO / "monitoring" / "rules" / "tradeflux.rules.yml"

PROMETHEUS_OWN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
"""Series Prometheus makes itself, not a service."""

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and",
     "or", "unless", "inf", "nan", "atan2"}
)  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Return the metric (and recording rule) names ``expr`` selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS:
            continue
        names.add(name)
    return names


def label_names_by_metric(expr: str) -> dict[str, set[str]]:
    """Return, for each ``metric{...}`` selector of ``expr``, the label names it matches on."""
    text = _STRING.sub('""', expr)
    found: dict[str, set[str]] = {}
    for match in re.finditer(r"([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}", text):
        labels = {m.group(1) for m in re.finditer(r"(\w+)\s*(?:=~|!~|!=|=)", match.group(2))}
        found.setdefault(match.group(1), set()).update(labels)
    return found


def exported(metrics_text: str) -> dict[str, set[str]]:
    """Return the sample names a /metrics page offers, each with the label names seen.

    Taken from its ``# TYPE`` lines, so a labelled metric that has no sample yet (a counter
    of aborts that never happened) counts as exported; histograms offer ``_bucket``,
    ``_sum`` and ``_count``.
    """
    names: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            if kind.strip() == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    names.setdefault(name + suffix, set())
            elif kind.strip() == "summary":
                for suffix in ("", "_sum", "_count"):
                    names.setdefault(name + suffix, set())
            else:
                names.setdefault(name, set())
        elif line and not line.startswith("#"):
            match = re.match(r"([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s", line)
            if match and match.group(1) in names:
                labels = {m.group(1) for m in re.finditer(r'(\w+)="', match.group(2) or "")}
                names[match.group(1)].update(labels)
    return names


def load_rules(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    """Return every rule of the rule file, each with its group's name under ``group``."""
    document = yaml.safe_load(path.read_text())
    return [{**rule, "group": g["name"]} for g in document["groups"] for rule in g["rules"]]


def recorded_names(rules: list[dict[str, Any]]) -> set[str]:
    """Return the names the recording rules define."""
    return {r["record"] for r in rules if "record" in r}


def pending_metric(rule: dict[str, Any]) -> str | None:
    """Return the metric a rule waits for (its ``pending_metric`` annotation), if any."""
    value = (rule.get("annotations") or {}).get("pending_metric")
    return str(value) if value else None
