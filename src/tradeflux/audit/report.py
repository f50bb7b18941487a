"""What a check found: its counts (a table) and its differences (expected vs found)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

_MAX_TEXT = 300
_JSON = msgspec.json.Encoder(decimal_format="string")


@dataclass(frozen=True)
class Difference:
    """One key whose expected and found values differ (either may be ``-``: none)."""

    key: str
    expected: str
    found: str


@dataclass
class CheckResult:
    """The outcome of one check: a table of counts, its differences, what it set aside.

    ``pending`` counts keys not compared because their output may not have caught up
    yet (only with ``--live``); ``skipped`` says why the check could not run at all.
    """

    check: str
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    pending: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """Tell whether the check ran and found no difference."""
        return self.skipped is None and not self.differences


def _text(value: Any) -> str:
    if isinstance(value, msgspec.Struct):
        return _JSON.encode(value).decode()
    return str(value)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def describe(value: Any) -> str:
    """Return a value as one line (JSON for a struct), ``-`` for None."""
    return "-" if value is None else _short(_text(value))


def compare(key: str, expected: Any, found: Any) -> Difference | None:
    """Return the difference of two values of one key, or None if they are equal.

    For two structs of the same type only the fields that differ are shown.
    """
    if expected == found:
        return None
    if (
        isinstance(expected, msgspec.Struct)
        and isinstance(found, msgspec.Struct)
        and type(expected) is type(found)
    ):
        names = [f for f in expected.__struct_fields__ if getattr(expected, f) != getattr(found, f)]

        def show(value: msgspec.Struct) -> str:
            return _short("; ".join(f"{f}={_text(getattr(value, f))}" for f in names))

        return Difference(key, show(expected), show(found))
    return Difference(key, describe(expected), describe(found))


def compare_maps(
    expected: dict[str, Any], found: dict[str, Any]
) -> tuple[int, int, list[Difference]]:
    """Compare two maps key by key; return (equal, differing, differences sorted by key)."""
    equal = 0
    differences = []
    for key in sorted(set(expected) | set(found)):
        diff = compare(key, expected.get(key), found.get(key))
        if diff is None:
            equal += 1
        else:
            differences.append(diff)
    return equal, len(differences), differences
