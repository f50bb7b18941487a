"""A settlement day on the real broker: trades, clock ticks past the cut-offs, late corrections.

The scenario (:func:`scenario`) is a simulated session on Tuesday 2026-11-24 at 14:00 UTC
(enriched by the reference validator), then, in order: ticks at 2026-11-25 12:00 UTC
(USD, JPY and HKD obligations are cut off), late amends, cancels and new trades, ticks at
20:00 UTC (EUR, GBP, CHF cut off), more late corrections, ticks on 2026-12-03 06:00 UTC
(the USD date has expired), and corrections of both dates. Its steps are written by
:func:`produce_steps` with one producer, so each partition holds them in this order: the
trade events to ``trades.by_counterparty`` (keyed by counterparty, as repartition writes
them) and to ``trades.enriched`` (keyed by account, for reporting), and every tick to each
partition of ``trades.by_counterparty``, as the settlement ticker writes them.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace
from decimal import Decimal
from typing import Any

import msgspec
from confluent_kafka.admin import AdminClient

from tests.support.kafka_tools import Pacer, create_topics, producer, read_all, wait_for
from tests.support.pipeline import reference, simulated_session
from tradeflux.config import Settings
from tradeflux.domain.clock import TICK_HEADER, Tick
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.sim.trades import TradeMix

BASE = dt.datetime(2026, 11, 24, 14, 0, tzinfo=dt.UTC)
TICKS = (
    dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC),
)
PARTITIONS = 3
TOPICS = {
    "trades.by_counterparty": PARTITIONS,
    "trades.enriched": PARTITIONS,
    "settlement.obligations": PARTITIONS,
    "settlement.statements": PARTITIONS,
    "settlement.instructions": PARTITIONS,
    "regulatory.reports": PARTITIONS,
    "trades.rejected": 1,
}
STORES = {
    "settlement": ("legs", "obligations", "dates", "statement_counts", "clock"),
    "reporting": ("reports", "clock"),
}
Step = EnrichedTrade | dt.datetime  # a trade event, or a tick into every partition
_ENCODE = msgspec.json.Encoder(decimal_format="string").encode


def scenario(count: int, seed: int) -> list[Step]:
    """Return the steps of the settlement day (see the module docstring)."""
    mix = TradeMix(amend_rate=0.08, cancel_rate=0.04, duplicate_rate=0.01, malformed_rate=0.01)
    session = simulated_session(count, seed, mix, rate_per_s=count / 20, start=BASE)
    events = list(reference(session).enriched)
    last: dict[str, EnrichedTrade] = {}
    for e in events:
        last[e.trade_id] = e
    rng = random.Random(seed)
    steps: list[Step] = list(events)
    serial = 0
    for phase, tick in enumerate(TICKS):
        steps.append(tick)
        live = sorted(t for t, e in last.items() if e.event_type != "CANCEL")
        for n, trade_id in enumerate(rng.sample(live, min(40, len(live)))):
            e = last[trade_id]
            at = tick + dt.timedelta(milliseconds=n + 1)
            if n % 4 == 3:
                fix = msgspec.structs.replace(
                    e, event_type="CANCEL", version=e.version + 1, ingest_time=at
                )
            else:
                quantity = e.quantity + Decimal(n % 3 + 1)
                fix = msgspec.structs.replace(
                    e, event_type="AMEND", version=e.version + 1, quantity=quantity,
                    notional=quantity * e.price * e.multiplier, ingest_time=at,
                )  # fmt: skip
            last[trade_id] = fix
            steps.append(fix)
        for n in range(8):  # trades booked late: executed on the 24th, received now
            serial += 1
            base = last[rng.choice(live)]
            new = msgspec.structs.replace(
                base, event_type="NEW", trade_id=f"LATE{phase}-{serial}", version=1,
                ingest_time=tick + dt.timedelta(seconds=1, milliseconds=n),
            )  # fmt: skip
            last[new.trade_id] = new
            steps.append(new)
    return steps


def prepare(settings: Settings, prefix: str) -> None:
    """Create the topics and the services' changelogs under ``prefix``, leaders known."""
    create_topics(
        settings,
        {prefix + t: n for t, n in TOPICS.items()},
        compacted=[prefix + "settlement.obligations"],
    )
    changelogs = [
        f"{prefix}{s}-{store}-changelog" for s, stores in STORES.items() for store in stores
    ]
    create_topics(settings, dict.fromkeys(changelogs, PARTITIONS), compacted=changelogs)
    admin = AdminClient(settings.client_config())

    def leaders_known() -> bool:
        known = admin.list_topics(timeout=10).topics
        return all(
            name in known
            and all(p.leader >= 0 and p.error is None for p in known[name].partitions.values())
            for name in [*changelogs, *(prefix + t for t in TOPICS)]
        )

    wait_for(leaders_known, 30, "the partition leaders")


def produce_steps(
    settings: Settings, prefix: str, steps: list[Step], pace: Pacer | float | None = None
) -> None:
    """Write the steps in order with one producer (so each partition keeps their order)."""
    prod = producer(settings)
    pacer = Pacer.of(pace)
    for i, step in enumerate(steps):
        if i % 50 == 0:
            pacer.wait(i)
        if isinstance(step, dt.datetime):
            tick = _ENCODE(Tick(tick=step, source="test"))
            for p in range(PARTITIONS):
                _produce(prod, prefix + "trades.by_counterparty", None, tick, p, True)
            continue
        value = _ENCODE(step)
        _produce(prod, prefix + "trades.by_counterparty", step.counterparty, value)
        _produce(prod, prefix + "trades.enriched", step.account, value)
    assert prod.flush(60) == 0


def _produce(
    prod: Any, topic: str, key: str | None, value: bytes, partition: int = -1, tick: bool = False
) -> None:
    kwargs: dict[str, Any] = {"headers": [(TICK_HEADER, b"1")]} if tick else {}
    if partition >= 0:
        kwargs["partition"] = partition
    while True:
        try:
            prod.produce(topic, value, None if key is None else key.encode(), **kwargs)
            break
        except BufferError:
            prod.poll(0.05)
    prod.poll(0)


def copy_inputs(settings: Settings, source: str, target: str) -> None:
    """Write ``source``'s two input topics into ``target``'s: same partitions, order, bytes."""
    prod = producer(settings)
    for topic in ("trades.by_counterparty", "trades.enriched"):
        for m in read_all(settings, source + topic):
            _produce_raw(prod, target + topic, m)
    assert prod.flush(60) == 0


def _produce_raw(prod: Any, topic: str, m: Any) -> None:
    while True:
        try:
            prod.produce(
                topic, m.value(), m.key(), partition=m.partition(), headers=m.headers() or None
            )
            break
        except BufferError:
            prod.poll(0.05)


def inputs_of(settings: Settings, prefix: str, topic: str) -> list[tuple[int, bytes]]:
    """The records of an input topic as ``(partition, value)``, per partition in offset order."""
    return [(m.partition(), m.value()) for m in read_all(settings, prefix + topic)]


def outputs_of(settings: Settings, prefix: str, topic: str, type_: Any) -> dict[str, list[Any]]:
    """The values of an output topic, decoded, per key in offset order (read_committed)."""
    decode = msgspec.json.Decoder(type_).decode
    out: dict[str, list[Any]] = {}
    for m in read_all(settings, prefix + topic, timeout_s=120):
        out.setdefault(m.key().decode(), []).append(decode(m.value()))
    return out


def raw_outputs_of(settings: Settings, prefix: str, topic: str) -> dict[str, list[bytes]]:
    """The value bytes of an output topic per key, in offset order (read_committed)."""
    out: dict[str, list[bytes]] = {}
    for m in read_all(settings, prefix + topic, timeout_s=120):
        out.setdefault(m.key().decode(), []).append(m.value())
    return out


def with_prefix(settings: Settings, prefix: str) -> Settings:
    """``settings`` with ``prefix`` (for code that reads the prefix from the settings)."""
    return replace(settings, topic_prefix=prefix)
