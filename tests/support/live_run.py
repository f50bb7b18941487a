"""A live system on the real broker for the audit and replay tests.

Every topic of the contract under a prefix, the sample refdata, a simulated session's
marks, the services as ``tradeflux run`` processes, and a wait until every one of them
has done its whole input (and the throttled P&L shows the reference model's figures).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
from confluent_kafka.admin import AdminClient

from tests.support.kafka_tools import (
    ServiceProcess,
    assert_running,
    caught_up,
    producer,
    read_all,
    wait_for,
)
from tests.support.pipeline import REFDATA_DIR, REFDATA_FILES, pnl_matches, simulated_session
from tests.support.reference import ReferenceResult, run_reference
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.domain.schemas import AccountPnL, FxRate
from tradeflux.gateway.refdata import load_files
from tradeflux.sim.refdata import load_refdata, read_structs
from tradeflux.sim.trades import SimRecord, SimSession, TradeMix

PARTITIONS = 3
MIX = TradeMix(amend_rate=0.08, cancel_rate=0.04, duplicate_rate=0.03, malformed_rate=0.03)
INPUT = {
    "validator": "trades.raw",
    "positions": "trades.enriched",
    "pnl": "positions",
    "risk": "trades.enriched",
    "repartition": "trades.enriched",
    "settlement": "trades.by_counterparty",
}
"""Each service's input topic, in pipeline order (a service's input is final once the
services before it are done)."""


def prepare(settings: Settings, prefix: str, topic_set: TopicSet = TopicSet.ALL) -> None:
    """Create the topics under ``prefix`` and load the sample refdata (limits included)."""
    create_topics(replace(settings, topic_prefix=prefix, partitions=PARTITIONS), topic_set)
    report = load_files(REFDATA_FILES, settings.client_config(), prefix)
    assert not report.errors


def session_after_now(count: int, seed: int) -> SimSession:
    """Return a session whose records are stamped after everything produced so far."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    return simulated_session(count, seed, MIX, start=start)


def produce_records(settings: Settings, prefix: str, records: Sequence[SimRecord]) -> None:
    """Write ``records`` to trades.raw, in order, with their own timestamps."""
    prod = producer(settings)
    for rec in records:
        while True:
            try:
                prod.produce(f"{prefix}trades.raw", rec.value, rec.key, timestamp=rec.timestamp_ms)
                break
            except BufferError:
                prod.poll(0.05)
    assert prod.flush(60) == 0


def reference_of(records: Sequence[SimRecord], session: SimSession) -> ReferenceResult:
    """Return what the pipeline must produce from ``records`` (the session's final marks)."""
    ref = load_refdata(REFDATA_DIR)
    fx = {r.pair: r for r in read_structs(REFDATA_DIR / "fx.csv", FxRate)}
    fx.update({r.pair: r for r in session.fx_rates})
    return run_reference(
        [(r.key, r.value, r.timestamp_ms) for r in records],
        ref.instruments, ref.accounts, ref.counterparties, session.prices, fx.values(),
    )  # fmt: skip


def delete_prefix(settings: Settings, prefix: str) -> None:
    """Delete every topic under ``prefix`` (the shared broker carries every test's topics)."""
    admin = AdminClient(settings.client_config())
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    for future in admin.delete_topics(names, operation_timeout=60).values() if names else ():
        future.result()


def now_ms() -> int:
    """Return the wall clock in epoch milliseconds (the unit of Kafka timestamps)."""
    return time.time_ns() // 1_000_000


class Pipeline:
    """The services under a prefix as processes; stopped (SIGTERM, exit 0) on exit."""

    def __init__(
        self, settings: Settings, prefix: str, services: Sequence[str], log_dir: Path
    ) -> None:
        self.settings = settings
        self.prefix = prefix
        self.services = list(services)
        self.procs = {
            name: ServiceProcess(settings, name, prefix, f"{name}-1", log_dir) for name in services
        }

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                for name, proc in self.procs.items():
                    assert proc.terminate() == 0, f"{name} did not stop cleanly:\n{proc.log()}"
        finally:
            for proc in self.procs.values():
                if proc.alive():
                    proc.kill()

    def wait_done(self, pnl: dict[str, AccountPnL] | None = None, timeout_s: float = 240) -> None:
        """Wait until every service has committed its whole input, and the P&L is ``pnl``."""
        for name in INPUT:
            if name not in self.procs:
                continue
            group, topic = f"{self.prefix}{name}", f"{self.prefix}{INPUT[name]}"
            wait_for(
                lambda g=group, t=topic: (
                    assert_running(*self.procs.values()) or caught_up(self.settings, g, t)
                ),
                timeout_s, f"{name} to commit its input",
            )  # fmt: skip
        if pnl is not None and "pnl" in self.procs:
            wait_for(lambda: pnl_matches(self.settings, self.prefix, pnl), 60, "the final P&L")


def latest_until(
    settings: Settings, topic: str, type_: Any, until_ms: int | None = None
) -> dict[str, Any]:
    """Return the latest value per key of ``topic`` among records stamped ``<= until_ms``.

    A tombstone removes its key (a compacted topic's view at that time).
    """
    decoder = msgspec.json.Decoder(type_)
    view: dict[str, Any] = {}
    for m in read_all(settings, topic):
        if until_ms is not None and m.timestamp()[1] > until_ms:
            continue
        key = m.key().decode()
        if m.value() is None:
            view.pop(key, None)
        else:
            view[key] = decoder.decode(m.value())
    return view
