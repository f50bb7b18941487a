"""The fault suite's own logic, without a broker: comparing runs, counting self-exits."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from tests.support import pipeline_outputs as outputs
from tests.support.fault_pipeline import topics_of
from tests.support.kafka_tools import wait_for
from tests.support.reference import ReferenceResult
from tests.support.risk import risk_input
from tests.support.risk_fold import fold_alerts
from tests.support.risk_reference import expected_alerts
from tests.support.supervisor import Instance, SelfExit, Supervisor
from tradeflux.domain.schemas import Position, RiskAlert
from tradeflux.services import SHIPPED
from tradeflux.topics import TopicSet, topic_specs


class Msg:
    """What the comparison reads of a confluent-kafka message."""

    def __init__(self, partition: int, key: bytes, value: bytes | None) -> None:
        self._p, self._k, self._v = partition, key, value

    def partition(self) -> int:
        return self._p

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes | None:
        return self._v


def _event(account: str, trade_id: str, version: int) -> bytes:
    return msgspec.json.encode({"account": account, "trade_id": trade_id, "version": version})


def test_a_record_written_twice_is_a_difference_of_one() -> None:
    copy = [Msg(0, b"A1", _event("A1", "T1", 1)), Msg(0, b"A1", _event("A1", "T2", 1))]
    faulted = [*copy, copy[0]]

    lines = outputs._counter_diff(
        "trades.enriched", outputs._records(faulted), outputs._records(copy), "faulted", "copy"
    )

    assert lines[0] == "trades.enriched: 1 record(s) only in faulted, 0 only in copy (of 2)"


def test_trades_interleaved_differently_in_a_partition_are_no_difference() -> None:
    t1v1, t1v2, t2v1 = _event("A1", "T1", 1), _event("A1", "T1", 2), _event("A1", "T2", 1)
    copy = [Msg(0, b"A1", t1v1), Msg(0, b"A1", t2v1), Msg(0, b"A1", t1v2)]
    faulted = [Msg(0, b"A1", t2v1), Msg(0, b"A1", t1v1), Msg(0, b"A1", t1v2)]

    assert (
        outputs._mapping_diff("order", outputs._trade_orders(faulted), outputs._trade_orders(copy))
        == []
    )


def test_a_trades_events_in_another_order_are_a_difference() -> None:
    t1v1, t1v2 = _event("A1", "T1", 1), _event("A1", "T1", 2)
    copy = [Msg(0, b"A1", t1v1), Msg(0, b"A1", t1v2)]
    faulted = [Msg(0, b"A1", t1v2), Msg(0, b"A1", t1v1)]

    lines = outputs._mapping_diff(
        "order", outputs._trade_orders(faulted), outputs._trade_orders(copy)
    )

    assert lines[0] == "order: 1 key(s) differ, 0 extra, 0 missing (of 1)"


class Value(msgspec.Struct, frozen=True):
    amount: Decimal


def test_a_compacted_view_is_the_last_value_per_key_and_a_tombstone_removes_it() -> None:
    messages = [
        Msg(0, b"k1", b'{"amount":"1.50"}'),
        Msg(1, b"k2", b'{"amount":"2"}'),
        Msg(0, b"k1", b'{"amount":"1.5"}'),
        Msg(1, b"k2", None),
    ]

    assert outputs._view(messages, Value) == {"k1": Value(Decimal("1.5"))}


def test_a_run_of_some_services_is_compared_on_what_they_write_and_finds_a_wrong_position() -> None:
    assert [t.name for t in outputs.written_by(("positions", "pnl"))] == [
        "trades.rejected", "positions", "pnl",
    ]  # fmt: skip
    assert outputs.written_by(SHIPPED) == outputs.OUTPUTS
    right = Position(
        account="A1", instrument="X.XNYS", currency="USD", quantity=Decimal(5),
        avg_cost=Decimal(10), realized_pnl=Decimal(0),
    )  # fmt: skip
    wrong = msgspec.structs.replace(right, quantity=Decimal(6))
    reference = ReferenceResult([], [], 0, {"A1|X.XNYS": right}, {})
    expect = outputs.Expectations(
        reference, frozenset(), (), {}, (), dt.timedelta(seconds=1), dt.timedelta(seconds=1)
    )

    def run(label: str, position: Position) -> outputs.RunOutputs:
        record = Msg(0, b"A1|X.XNYS", msgspec.json.encode(position))
        return outputs.RunOutputs(label, {"trades.rejected": [], "positions": [record], "pnl": []})

    assert outputs.differences(run("faulted", right), run("copy", right), expect) == []
    lines = outputs.differences(run("faulted", wrong), run("copy", right), expect)
    assert [line for line in lines if not line.startswith(" ")] == [
        "[faulted] positions vs the reference fold: 1 key(s) differ, 0 extra, 0 missing (of 1)",
        "positions (latest per key): 1 key(s) differ, 0 extra, 0 missing (of 1)",
    ]


def test_the_topics_of_a_deployment_are_what_its_services_touch() -> None:
    # The core set of `tradeflux topics create` is exactly what the three hops use.
    core = {t.name for t in topic_specs(TopicSet.CORE)}
    assert topics_of(("validator", "positions", "pnl")) == core
    assert topics_of(SHIPPED) == {t.name for t in topic_specs(TopicSet.ALL)}


def _alert(status: str, limit: str, trade_id: str, instrument: str = "") -> RiskAlert:
    return RiskAlert(
        account="A1", status=status, limit=limit, value=Decimal(10), threshold=Decimal(5),
        instrument=instrument, trade_id=trade_id, time=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
        base_currency="USD", message="",
    )  # fmt: skip


def test_alert_outcomes_ignore_which_trade_crossed_a_limit_but_not_where_it_ended() -> None:
    one = {"A1": [_alert("BREACHED", "gross_notional", "T1")]}
    other = {"A1": [_alert("BREACHED", "gross_notional", "T2")]}
    cleared = {"A1": [*other["A1"], _alert("CLEARED", "gross_notional", "T3")]}

    assert outputs._alert_outcome(one) == outputs._alert_outcome(other)
    assert outputs._alert_outcome(cleared) == {}
    assert outputs._alert_outcome(one) != outputs._alert_outcome(cleared)


class FakeProcess:
    """A service process that lives until it is killed or told to exit."""

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.proc = self
        self.log_path = Path("fake.log")

    def alive(self) -> bool:
        return self.returncode is None

    def kill(self) -> None:
        self.returncode = -9

    def log(self) -> str:
        return "ts=1 level=INFO msg=service started\nKafkaException: KafkaError{code=_FENCED}\n"


def test_the_supervisor_restarts_every_exit_and_counts_only_those_it_did_not_cause() -> None:
    started: list[FakeProcess] = []

    def start(client_id: str) -> Any:
        started.append(FakeProcess())
        return started[-1]

    supervisor = Supervisor([Instance("positions-1", "positions", start)], poll_s=0.01)
    supervisor.start()
    try:
        supervisor.kill("positions-1")
        wait_for(lambda: len(started) == 2, 5, "a restart after the kill", every_s=0.01)
        started[-1].returncode = 1  # exits on its own
        wait_for(lambda: len(started) == 3, 5, "a restart after the exit", every_s=0.01)
    finally:
        supervisor.kill_all()

    assert supervisor.kills == 1
    assert [(e.instance, e.returncode, e.cause) for e in supervisor.self_exits] == [
        ("positions-1", 1, "KafkaException _FENCED")
    ]
    assert supervisor.instances["positions-1"].client_id == "positions-1.3"


def test_a_self_exit_is_named_by_its_exception_and_kafka_error_code() -> None:
    lines = (
        "Traceback (most recent call last):",
        "    tradeflux.stream.changelog.StoreRestoreError: offsets of x-changelog[1]: "
        'KafkaError{code=_UNKNOWN_PARTITION,val=-190,str="Local: Unknown partition"}',
        "ts=2 level=INFO msg=bye",
    )

    exit_ = SelfExit("pnl-1", 1, 3.0, lines)

    assert exit_.cause == "StoreRestoreError _UNKNOWN_PARTITION"


def test_the_incremental_risk_fold_alerts_exactly_as_the_plain_reference() -> None:
    data = risk_input(count=2500, seed=3)
    shuffled = list(data.events)
    random.Random(5).shuffle(shuffled)  # any order is a valid input to both

    alerts = []
    for events in (data.events, shuffled):
        plain = expected_alerts(events, data.limits, data.base_currencies, data.fx_rates)
        incremental = fold_alerts(events, data.limits, data.base_currencies, data.fx_rates)
        assert incremental == plain
        alerts.append(sum(len(a) for a in plain.values()))
    assert min(alerts) >= 5 and sum(alerts) >= 20, alerts  # the rules were exercised
