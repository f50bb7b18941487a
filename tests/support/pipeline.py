"""Running the core pipeline (validator → positions → P&L) as processes on the real broker,
and comparing what it wrote with the independent reference model.
"""

from __future__ import annotations

import datetime as dt
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from tests.support.kafka_tools import Pacer, producer, read_all
from tests.support.reference import ReferenceResult, run_reference
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.domain.schemas import AccountPnL, EnrichedTrade, FxRate, Position
from tradeflux.gateway.refdata import load_files
from tradeflux.sim.refdata import load_refdata, read_structs
from tradeflux.sim.trades import SimSession, TradeMix, generate_session
from tradeflux.stream.deadletter import header_map

REFDATA_DIR = Path(__file__).resolve().parents[2] / "data" / "refdata"
REFDATA_FILES = sorted(p for p in REFDATA_DIR.glob("*.csv") if not p.name.startswith("bad-"))


def prepare(settings: Settings, prefix: str, count: int, seed: int) -> SimSession:
    """Create the topics, load the sample refdata and final marks, generate the trades."""
    with_prefix = replace(settings, topic_prefix=prefix, partitions=6)
    create_topics(with_prefix, TopicSet.CORE)
    report = load_files(REFDATA_FILES, settings.client_config(), prefix)
    assert not report.errors
    mix = TradeMix(amend_rate=0.06, cancel_rate=0.03, duplicate_rate=0.02, malformed_rate=0.02)
    session = simulated_session(count, seed, mix)
    produce_marks(settings, prefix, session)
    return session


def simulated_session(
    count: int,
    seed: int,
    mix: TradeMix | None = None,
    rate_per_s: float = 5_000,
    start: dt.datetime | None = None,
) -> SimSession:
    """Generate a session over the sample refdata, from 5 s ago unless ``start`` is given.

    Timestamps from about now: the broker keeps them (retention is by timestamp).
    """
    ref = load_refdata(REFDATA_DIR)
    if start is None:
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=5)
    return generate_session(
        ref.instruments, ref.accounts, ref.counterparties, count=count,
        rate_per_s=rate_per_s, seed=seed, mix=mix, start=start,
    )  # fmt: skip


def produce_marks(settings: Settings, prefix: str, session: SimSession) -> None:
    """Produce the session's final prices and FX rates to their market-data topics."""
    prod = producer(settings)
    encode = msgspec.json.Encoder(decimal_format="string").encode
    for price in session.prices:
        prod.produce(f"{prefix}marketdata.prices", encode(price), price.instrument_id.encode())
    for rate in session.fx_rates:
        prod.produce(f"{prefix}marketdata.fx", encode(rate), rate.pair.encode())
    assert prod.flush(30) == 0


def produce_trades(
    settings: Settings, prefix: str, session: SimSession, rate_per_s: Pacer | float | None = None
) -> None:
    """Write the session's raw records to trades.raw with their own timestamps.

    ``rate_per_s`` (a rate, or a Pacer a crash test can hold) paces the writes, in
    slices of 500, for tests that need a stream.
    """
    prod = producer(settings)
    pacer = Pacer.of(rate_per_s)
    for i, rec in enumerate(session.records):
        if i % 500 == 0:
            pacer.wait(i)
        while True:
            try:
                prod.produce(f"{prefix}trades.raw", rec.value, rec.key, timestamp=rec.timestamp_ms)
                break
            except BufferError:
                prod.poll(0.05)
    assert prod.flush(60) == 0


def reference(session: SimSession) -> ReferenceResult:
    """Compute what the pipeline must produce, independently."""
    ref = load_refdata(REFDATA_DIR)
    # The FX topic holds the sample file's rates, then the session's: the last per pair wins.
    fx = {r.pair: r for r in read_structs(REFDATA_DIR / "fx.csv", FxRate)}
    fx.update({r.pair: r for r in session.fx_rates})
    return run_reference(
        [(r.key, r.value, r.timestamp_ms) for r in session.records],
        ref.instruments, ref.accounts, ref.counterparties, session.prices, fx.values(),
    )  # fmt: skip


def last_by_key(messages: list[Any], type_: type[Any]) -> dict[str, Any]:
    """Return the last value per key (a compacted topic's view), decoded."""
    decoder = msgspec.json.Decoder(type_)
    return {m.key().decode(): decoder.decode(m.value()) for m in messages}


def scrape_events(port: int) -> dict[str, float]:
    """Return the committed business-event counters of a service's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tradeflux_events_total":
                out[sample.labels["event"]] = sample.value
    return out


def pnl_matches(settings: Settings, prefix: str, expected: dict[str, AccountPnL]) -> bool:
    """Tell whether the latest P&L per account equals ``expected``."""
    return last_by_key(read_all(settings, f"{prefix}pnl"), AccountPnL) == expected


def check_outputs(
    settings: Settings, prefix: str, session: SimSession, expected: ReferenceResult
) -> dict[str, int]:
    """Assert every output equals the reference exactly; return the counts seen."""
    enriched = [
        msgspec.json.decode(m.value(), type=EnrichedTrade)
        for m in read_all(settings, f"{prefix}trades.enriched", timeout_s=120)
    ]
    order = lambda e: (e.trade_id, e.version, e.event_type, e.account)  # noqa: E731
    assert len(enriched) == len(expected.enriched)
    assert sorted(enriched, key=order) == sorted(expected.enriched, key=order)

    rejects = read_all(settings, f"{prefix}trades.rejected")
    seen = Counter((m.key(), header_map(m.headers())["tf.reason"]) for m in rejects)
    assert seen == Counter((k, str(r)) for k, r in expected.rejected)
    inputs = {(r.key, r.value) for r in session.records}
    assert all((m.key(), m.value()) in inputs for m in rejects), "a reject lost its bytes"

    positions = last_by_key(read_all(settings, f"{prefix}positions", timeout_s=120), Position)
    assert positions == expected.positions
    assert last_by_key(read_all(settings, f"{prefix}pnl"), AccountPnL) == expected.pnl
    return {"enriched_events": len(enriched), "rejected": len(rejects)}


def produce_enriched(
    settings: Settings,
    prefix: str,
    events: list[EnrichedTrade],
    rate_per_s: Pacer | float | None = None,
) -> None:
    """Write ``events`` to trades.enriched keyed by account, in order, as the validator does.

    ``rate_per_s`` (a rate, or a Pacer a crash test can hold) paces the writes, checked
    every 100 records, for tests that need a stream.
    """
    prod = producer(settings)
    encode = msgspec.json.Encoder(decimal_format="string").encode
    pacer = Pacer.of(rate_per_s)
    for i, event in enumerate(events):
        if i % 100 == 0:
            pacer.wait(i)
        while True:
            try:
                prod.produce(f"{prefix}trades.enriched", encode(event), event.account.encode())
                break
            except BufferError:
                prod.poll(0.05)
        prod.poll(0)
    assert prod.flush(60) == 0
