"""The settlement ticker moves quiet partitions past a cut-off, and survives SIGKILLs.

Trades of a USD settlement date whose cut-off has passed (in real time) are written with
recorded times before it; nothing else comes. Only the ticker's ticks can move settlement's
stream time on: the FINAL statements appear once it runs. It is SIGKILLed twice; each
incarnation goes on ticking every partition, and the ticks are exactly what the registry
says a tick is (the header, a Tick value, times rising per partition).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.conftest import unique
from tests.support.kafka_tools import (
    ServiceProcess,
    assert_running,
    caught_up,
    end_offsets,
    producer,
    read_all,
    wait_assigned,
    wait_for,
)
from tests.support.posttrade import PARTITIONS, prepare
from tests.unit.test_netting import trade
from tradeflux.config import Settings
from tradeflux.domain.clock import TICK_HEADER, Tick
from tradeflux.domain.cutoffs import CutoffCalendar
from tradeflux.stream.deadletter import header_map

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

_ENCODE = msgspec.json.Encoder(decimal_format="string").encode
_TICK = msgspec.json.Decoder(Tick)


def a_date_cut_off_a_while_ago(now: dt.datetime) -> tuple[dt.date, dt.datetime]:
    """The latest USD settlement date whose cut-off is past and whose state has not expired."""
    calendar = CutoffCalendar()
    for back in range(0, 10):
        day = now.date() - dt.timedelta(days=back)
        cutoff = calendar.cutoff_at("USD", day)
        if cutoff < now - dt.timedelta(minutes=2) and calendar.expires_at("USD", day) > now:
            return day, cutoff
    raise AssertionError("no USD settlement date in the last 10 days")


def read_to_now(kafka: Settings, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Read ``topic`` read_committed up to the end offsets it has now (a ticker keeps writing)."""
    ends = end_offsets(kafka, topic)
    consumer = Consumer(
        kafka.client_config(
            **{"group.id": f"to-now-{time.monotonic_ns()}", "isolation.level": "read_committed",
               "enable.auto.commit": False}
        )
    )  # fmt: skip
    try:
        tps = [TopicPartition(topic, p, 0) for p in ends]
        consumer.assign(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while True:
            out += [m for m in consumer.consume(1000, 0.2) if m.error() is None]
            done = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in done):
                return [m for m in out if m.offset() < ends[m.partition()]]
            assert time.monotonic() < deadline, f"reading {topic} to {ends} took {timeout_s}s"
    finally:
        consumer.close()


def ticks_per_partition(kafka: Settings, prefix: str) -> Counter[int]:
    return Counter(
        m.partition()
        for m in read_to_now(kafka, f"{prefix}trades.by_counterparty")
        if header_map(m.headers()).get(TICK_HEADER) == "1"
    )


def test_ticks_make_quiet_partitions_final_and_the_ticker_survives_sigkills(
    kafka: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEFLUX_TICK_MS", "200")
    prefix = unique("ticker") + "-"
    prepare(kafka, prefix)
    day, cutoff = a_date_cut_off_a_while_ago(dt.datetime.now(dt.UTC))
    before = cutoff - dt.timedelta(hours=1)
    events = [
        msgspec.structs.replace(
            trade(f"T{n}", counterparty=cpty, settlement_date=day), ingest_time=before
        )
        for n, cpty in enumerate(["CP1", "CP2", "CP1"])
    ]
    prod = producer(kafka)
    for e in events:
        prod.produce(f"{prefix}trades.by_counterparty", _ENCODE(e), e.counterparty.encode())
    assert prod.flush(30) == 0
    settlement = ServiceProcess(kafka, "settlement", prefix, "s1", tmp_path)
    ticker_args = (kafka, "ticker-settlement", prefix, "t1", tmp_path, "--static-membership")
    ticker: ServiceProcess | None = None
    try:
        wait_for(
            lambda: assert_running(settlement)
            or caught_up(kafka, f"{prefix}settlement", f"{prefix}trades.by_counterparty"),
            90, "settlement to read the trades",
        )  # fmt: skip
        assert read_all(kafka, f"{prefix}settlement.statements") == []  # time stands still
        ticker = ServiceProcess(*ticker_args)
        keys = {f"CP1|USD|{day.isoformat()}", f"CP2|USD|{day.isoformat()}"}

        def finals() -> set[str]:
            return {m.key().decode() for m in read_all(kafka, f"{prefix}settlement.statements")}

        wait_for(lambda: assert_running(settlement, ticker) or finals() == keys, 90, "FINALs")
        for _ in range(2):
            seen = ticks_per_partition(kafka, prefix)
            ticker.kill()
            ticker = ServiceProcess(*ticker_args)
            wait_assigned(ticker)
            wait_for(
                lambda s=seen, t=ticker: assert_running(settlement, t)
                or all(ticks_per_partition(kafka, prefix)[p] > s[p] for p in range(PARTITIONS)),
                60, "ticks in every partition after the restart",
            )  # fmt: skip
        assert ticker.terminate() == 0, ticker.log()
        assert settlement.terminate() == 0, settlement.log()
    finally:
        for proc in (settlement, ticker):
            if proc is not None and proc.alive():
                proc.kill()
    statements = read_all(kafka, f"{prefix}settlement.statements")
    assert sorted(m.key().decode() for m in statements) == sorted(keys)  # once each
    last: dict[int, dt.datetime] = {}
    for m in read_to_now(kafka, f"{prefix}trades.by_counterparty"):
        if header_map(m.headers()).get(TICK_HEADER) != "1":
            continue
        tick = _TICK.decode(m.value())
        assert tick.source == f"ticker-settlement[{m.partition()}]"
        assert tick.tick >= last.get(m.partition(), tick.tick)
        last[m.partition()] = tick.tick
    assert sorted(last) == list(range(PARTITIONS))
