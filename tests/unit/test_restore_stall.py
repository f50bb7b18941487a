"""A restore whose reader stops delivering is picked up by a fresh reader where it stood.

No broker: the restorer's reader is replaced by a fake that delivers the first records of a
changelog partition and then nothing, as the soak's reader did after a rolling restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from tradeflux.stream import restore
from tradeflux.stream.kafka import BEGINNING, TP
from tradeflux.stream.metrics import StreamMetrics
from tradeflux.stream.retry import Patience

CHANGELOG = "svc-totals-changelog"
RECORDS = 10


@dataclass
class _Msg:
    _offset: int

    def topic(self) -> str:
        return CHANGELOG

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return f"k{self._offset}".encode()

    def value(self) -> bytes:
        return str(self._offset).encode()


@dataclass
class _Reader:
    """Delivers the changelog from where it was assigned; the first one stalls after 4."""

    stalls_after: int | None
    made: list[_Reader]
    assigned: dict[TP, int] = field(default_factory=dict)
    history: list[dict[TP, int]] = field(default_factory=list)
    closed: bool = False

    def committed(self, tps: list[TP], _timeout_s: float) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    def watermarks(self, _tp: TP) -> tuple[int, int]:
        return 0, RECORDS

    def assign(self, offsets: dict[TP, int]) -> None:
        self.history.append(dict(offsets))
        self.assigned.update(offsets)

    def unassign(self, tps: Any) -> None:
        for tp in tps:
            self.assigned.pop(tp, None)

    def read(self, _max: int, timeout_s: float) -> tuple[list[_Msg], dict[TP, int]]:
        tp = (CHANGELOG, 0)
        if tp not in self.assigned:
            return [], {}
        start = max(self.assigned[tp], 0)
        end = RECORDS if self.stalls_after is None else min(RECORDS, self.stalls_after)
        if start >= end:
            time.sleep(timeout_s)  # nothing comes
            return [], {}
        self.assigned[tp] = start + 1
        return [_Msg(start)], {}

    def close(self) -> None:
        self.closed = True


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0

    def restore(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.writes += 1

    @property
    def committed_size(self) -> int:
        return len(self.data)


def test_a_reader_that_stops_delivering_is_replaced_and_the_restore_ends_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[_Reader] = []

    def new_reader(*_args: Any, **kwargs: Any) -> _Reader:
        if kwargs.get("isolation.level") == "read_uncommitted":
            return _Reader(None, [])  # asks for the log ends only
        reader = _Reader(4 if not made else None, made)
        made.append(reader)
        return reader

    monkeypatch.setattr(restore, "PartitionReader", new_reader)
    monkeypatch.setattr(restore, "_STALL_S", 0.5)
    store = _Store()
    spec = SimpleNamespace(name="totals", logged=True, codec=SimpleNamespace(decode=bytes.decode))
    task = SimpleNamespace(
        service=SimpleNamespace(name="svc", stores=[spec]), stores={"totals": store}
    )
    restorer = restore.Restorer(
        {}, "svc", {"totals": CHANGELOG}, StreamMetrics("svc", "svc-1"),
        lambda what: Patience(what, 5.0, "test"), 5.0,
    )  # fmt: skip
    restorer.start()
    try:
        restorer.submit(restore.RestoreJob(("in", 0), task))  # type: ignore[arg-type]
        deadline = time.monotonic() + 30
        done: list[restore.RestoreJob] = []
        while not done and time.monotonic() < deadline:
            done = restorer.finished()
            time.sleep(0.05)
    finally:
        restorer.stop()

    assert [j.error for j in done] == [None]
    assert len(made) == 2 and made[0].closed
    assert made[0].history == [{(CHANGELOG, 0): BEGINNING}]
    assert made[1].history == [{(CHANGELOG, 0): 4}]  # where the stalled one stood
    assert store.data == {f"k{i}": str(i) for i in range(RECORDS)}
    assert store.writes == RECORDS  # nothing read twice
