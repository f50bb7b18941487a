"""Sends the simulator's trades, prices and FX rates to Kafka, paced in real time.

Trades go to ``trades.raw`` keyed by trade id, as the bytes the generator made
(duplicates are the same bytes again); quotes go to ``marketdata.prices`` (key:
instrument id) and ``marketdata.fx`` (key: pair) every ``quote_interval_s``. With a
block rate, blocks (``sim.blocks``) arrive too: their fills on ``trades.raw``, their
allocation instructions on ``allocations.in`` and the affirmations on
``confirmations.in``, each at its scheduled time. The
producer is idempotent with ``acks=all`` and the Java client's partitioner
(murmur2_random), so records land where a Kafka Streams peer would put them.

Pacing: arrivals follow the generator's Poisson schedule against a monotonic clock;
if sending falls behind, records go out as fast as the producer takes them until the
schedule is met again. A stop event (Ctrl-C) ends the run cleanly: the last quotes
are sent, the producer is flushed and the counts are reported.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Protocol

import msgspec
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.sim.blocks import ALLOCATIONS_IN, CONFIRMATIONS_IN, BlockFlow, Scheduled
from tradeflux.sim.market import MarketModel
from tradeflux.sim.refdata import SimRefData, SimulationError, load_refdata
from tradeflux.sim.trades import RecordKind, TradeGenerator, TradeMix, epoch_ms, utc_now
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import IdempotentWriter

TRADES_TOPIC = topics.RAW.name
PRICES_TOPIC = topics.PRICES.name
FX_TOPIC = topics.FX.name

_FLUSH_TIMEOUT_S = 30.0
_MAX_BURST = 10_000  # records sent before serving delivery reports and progress again


class RecordSink(Protocol):
    """Where simulated records go: Kafka (:class:`KafkaSink`) or a test's list."""

    delivered: int
    failed: int
    last_error: str | None

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        """Queue one record (blocking while the queue is full)."""
        ...

    def poll(self) -> None:
        """Serve delivery reports without waiting."""
        ...

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every queued record; return how many are left."""
        ...


class KafkaSink:
    """An idempotent ``acks=all`` producer that counts delivered and failed records."""

    def __init__(self, settings: Settings) -> None:
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self._bootstrap = settings.bootstrap
        self._producer = IdempotentWriter(
            settings.client_config(),
            **{"client.id": "tradeflux-sim", "linger.ms": 5},
        )

    def check_topics(self, topics: list[str], timeout_s: float = 10.0) -> None:
        """Raise :class:`SimulationError` unless the cluster answers and has ``topics``."""
        try:
            existing = self._producer.topics(timeout_s)
        except KafkaClientError as exc:
            raise SimulationError(
                f"cannot reach Kafka at {self._bootstrap} ({exc}); start a local "
                "broker with `tradeflux broker start` or point --bootstrap at a cluster"
            ) from None
        missing = [t for t in topics if t not in existing]
        if missing:
            raise SimulationError(
                f"topics {', '.join(missing)} do not exist on {self._bootstrap}; "
                "create them with `tradeflux topics create` (same --prefix)"
            )

    def _on_delivery(self, err: str | None) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.last_error = err

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        """Queue one record; while librdkafka's queue is full, serve reports and retry."""
        self._producer.produce(
            topic, key, value, on_delivery=self._on_delivery, timestamp_ms=timestamp_ms
        )

    def poll(self) -> None:
        """Serve delivery reports without waiting."""
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every queued record; return how many are left."""
        return self._producer.flush(timeout_s)


@dataclass(frozen=True)
class SimulationPlan:
    """What to simulate: rate, length (None: until stopped), seed, mix, topics."""

    rate_per_s: float
    duration_s: float | None
    seed: int
    mix: TradeMix = field(default_factory=TradeMix)
    topic_prefix: str = ""
    id_prefix: str = "T"
    quote_interval_s: float = 1.0
    block_rate_per_s: float = 0.0  # blocks to allocate per second (0: none)


@dataclass
class SimulationReport:
    """What a run sent, by kind, and what Kafka acknowledged."""

    seed: int
    counts: Counter[str] = field(default_factory=Counter)  # trade records by kind
    prices: int = 0
    fx_rates: int = 0
    delivered: int = 0
    failed: int = 0
    undelivered: int = 0  # still queued when the final flush gave up
    last_error: str | None = None
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def trades(self) -> int:
        """Return the number of ``trades.raw`` records sent (every kind)."""
        return sum(self.counts[kind] for kind in RecordKind)

    @property
    def post_trade(self) -> int:
        """Return the block records sent: fills, instructions, affirmations."""
        return sum(n for kind, n in self.counts.items() if kind.startswith("block:"))

    @property
    def unacknowledged(self) -> int:
        """Return how many records were sent but not acknowledged (yet)."""
        sent = self.trades + self.post_trade + self.prices + self.fx_rates
        return sent - self.delivered - self.failed


def run_simulation(
    refdata: SimRefData,
    plan: SimulationPlan,
    sink: RecordSink,
    *,
    stop: threading.Event | None = None,
    on_progress: Callable[[SimulationReport], None] | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> SimulationReport:
    """Send trades at ``plan.rate_per_s`` and quotes every interval until the end or ``stop``.

    ``on_progress`` is called about five times a second with a snapshot of the counts.
    Returns after the final flush; delivery failures are counted, not raised.
    """
    if plan.rate_per_s <= 0:
        raise SimulationError(f"the rate must be positive, got {plan.rate_per_s}")
    stop = stop or threading.Event()
    prefix = plan.topic_prefix
    currencies = {a.base_currency for a in refdata.accounts}
    market = MarketModel(
        refdata.instruments, currencies, refdata.fx_rates, start=clock(), seed=plan.seed
    )
    generator = TradeGenerator(
        refdata.instruments,
        refdata.accounts,
        refdata.counterparties,
        market,
        seed=plan.seed,
        mix=plan.mix,
        clock=clock,
        id_prefix=plan.id_prefix,
    )
    report = SimulationReport(seed=plan.seed, counts=generator.counts)
    encoder = msgspec.json.Encoder(decimal_format="string")
    blocks: BlockFlow | None = None
    scheduled: list[Scheduled] = []
    if plan.block_rate_per_s > 0:
        blocks = BlockFlow(
            refdata.instruments, refdata.accounts,
            [c.counterparty_id for c in refdata.counterparties if c.active], market,
            seed=plan.seed, id_prefix=plan.id_prefix + "B",
        )  # fmt: skip

    def send_quotes() -> None:
        now = clock()
        for price in market.prices(now):
            sink.send(
                prefix + PRICES_TOPIC, price.instrument_id.encode(), encoder.encode(price),
                epoch_ms(now),
            )  # fmt: skip
            report.prices += 1
        for rate in market.fx_rates(now):
            sink.send(prefix + FX_TOPIC, rate.pair.encode(), encoder.encode(rate), epoch_ms(now))
            report.fx_rates += 1

    def snapshot() -> SimulationReport:
        report.delivered, report.failed = sink.delivered, sink.failed
        report.last_error = sink.last_error
        report.elapsed_s = monotonic() - started
        return replace(report, counts=Counter(report.counts))

    end_s = plan.duration_s if plan.duration_s else None
    started = monotonic()
    next_arrival_s = generator.next_gap_s(plan.rate_per_s)
    next_block_s = blocks.next_gap_s(plan.block_rate_per_s) if blocks is not None else float("inf")
    next_quote_s = 0.0
    next_progress_s = 0.0
    while not stop.is_set():
        elapsed_s = monotonic() - started
        if end_s is not None and elapsed_s >= end_s:
            break
        if elapsed_s >= next_quote_s:
            send_quotes()
            next_quote_s = max(next_quote_s + plan.quote_interval_s, elapsed_s)
        burst = 0
        while next_arrival_s <= elapsed_s and burst < _MAX_BURST:
            record = generator.next_record()
            sink.send(prefix + TRADES_TOPIC, record.key, record.value, record.timestamp_ms)
            next_arrival_s += generator.next_gap_s(plan.rate_per_s)
            burst += 1
        if blocks is not None:
            while next_block_s <= elapsed_s:
                for item in blocks.block(clock()):
                    heapq.heappush(scheduled, item)
                next_block_s += blocks.next_gap_s(plan.block_rate_per_s)
            now = clock()
            while scheduled and scheduled[0].due <= now:
                item = heapq.heappop(scheduled)
                sink.send(prefix + item.topic, item.key, item.value, epoch_ms(item.due))
                report.counts[f"block:{item.kind}"] += 1
        sink.poll()
        if on_progress is not None and elapsed_s >= next_progress_s:
            on_progress(snapshot())
            next_progress_s = elapsed_s + 0.2
        due_s = min(
            next_arrival_s, next_quote_s, next_block_s, elapsed_s + 0.05 if scheduled else 1e18
        )
        if end_s is not None:
            due_s = min(due_s, end_s)
        wait_s = due_s - (monotonic() - started)
        if wait_s > 0:
            stop.wait(min(wait_s, 0.1))
    report.interrupted = stop.is_set()
    send_quotes()  # the market as it stood at the end
    report.undelivered = sink.flush(_FLUSH_TIMEOUT_S)
    return snapshot()


# -- the `tradeflux simulate` command ------------------------------------------------------


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Set the yielded event on Ctrl-C or SIGTERM; a second Ctrl-C interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _progress_line(report: SimulationReport, plan: SimulationPlan) -> str:
    """Return one line of counts: trades (rate), kinds, quotes, unacknowledged."""
    c = report.counts
    rate = report.trades / report.elapsed_s if report.elapsed_s > 0 else 0.0
    end = f"/{plan.duration_s:g}s" if plan.duration_s else "s (Ctrl-C stops)"
    return (
        f"{report.elapsed_s:.0f}{end}  trades {report.trades:,} ({rate:,.0f}/s)  "
        f"amends {c[RecordKind.AMEND] + c[RecordKind.AMEND_ACCOUNT]:,}  "
        f"cancels {c[RecordKind.CANCEL]:,}  duplicates {c[RecordKind.DUPLICATE]:,}  "
        f"malformed {c[RecordKind.MALFORMED]:,}  quotes {report.prices + report.fx_rates:,}  "
        f"blocks {c['block:allocation'] + c['block:rejected_allocation']:,}  "
        f"unacked {report.unacknowledged:,}"
    )


def summary_table(report: SimulationReport) -> Table:
    """Return the end-of-run summary: records by kind, quotes, delivery, rate."""
    table = Table("sent", "records", title=f"simulation summary (seed {report.seed})")
    for kind in RecordKind:
        table.add_row(kind.value, f"{report.counts[kind]:,}")
    malformed = sorted(
        (k.removeprefix("malformed:"), n) for k, n in report.counts.items() if ":" in k
    )
    for name, n in malformed:
        table.add_row(f"  {name}", f"{n:,}")
    table.add_row("trades.raw total", f"{report.trades:,}")
    for name, n in sorted(report.counts.items()):
        if name.startswith("block:"):
            table.add_row(f"blocks: {name.removeprefix('block:')}", f"{n:,}")
    table.add_row("marketdata.prices", f"{report.prices:,}")
    table.add_row("marketdata.fx", f"{report.fx_rates:,}")
    table.add_row("acknowledged", f"{report.delivered:,}")
    table.add_row("failed", f"{report.failed + report.undelivered:,}")
    rate = report.trades / report.elapsed_s if report.elapsed_s > 0 else 0.0
    table.add_row("elapsed", f"{report.elapsed_s:.1f} s ({rate:,.0f} trades/s)")
    return table


def simulate_to_kafka(
    settings: Settings,
    *,
    refdata_dir: Path,
    rate_per_s: float,
    duration_s: float,
    seed: int | None,
    mix: TradeMix,
    console: Console,
    block_rate_per_s: float = 0.0,
) -> SimulationReport:
    """Run ``tradeflux simulate``: check the cluster, send with a progress line, summarize.

    Raises :class:`SimulationError` (after the summary) if any record was not delivered.
    """
    if duration_s < 0:
        raise SimulationError(f"--duration must be 0 (until Ctrl-C) or more, got {duration_s}")
    refdata = load_refdata(refdata_dir)
    plan = SimulationPlan(
        rate_per_s=rate_per_s,
        duration_s=duration_s or None,
        seed=secrets.randbelow(1_000_000) if seed is None else seed,
        mix=mix,
        topic_prefix=settings.topic_prefix,
        id_prefix=f"SIM{dt.datetime.now(dt.UTC):%y%m%d%H%M%S}-",
        block_rate_per_s=block_rate_per_s,
    )
    sink = KafkaSink(settings)
    prefix = settings.topic_prefix
    wanted = [TRADES_TOPIC, PRICES_TOPIC, FX_TOPIC]
    if block_rate_per_s > 0:
        wanted += [ALLOCATIONS_IN, CONFIRMATIONS_IN]
    sink.check_topics([prefix + t for t in wanted])
    console.print(
        f"simulating {rate_per_s:g} trades/s "
        f"{f'for {duration_s:g} s' if duration_s else 'until Ctrl-C'} to {settings.bootstrap} "
        f"(seed {plan.seed}, {len(refdata.instruments)} instruments, "
        f"{len(refdata.accounts)} accounts)"
    )
    with _stop_on_signals() as stop:
        if console.is_terminal:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("starting")

                def show(report: SimulationReport) -> None:
                    progress.update(task, description=_progress_line(report, plan))

                report = run_simulation(refdata, plan, sink, stop=stop, on_progress=show)
        else:  # a log: a plain line every 5 seconds
            last_line_s = [0.0]

            def log(report: SimulationReport) -> None:
                if report.elapsed_s - last_line_s[0] >= 5.0:
                    last_line_s[0] = report.elapsed_s
                    console.print(_progress_line(report, plan), markup=False)

            report = run_simulation(refdata, plan, sink, stop=stop, on_progress=log)
    console.print(summary_table(report))
    lost = report.failed + report.undelivered
    if lost:
        raise SimulationError(
            f"{lost:,} records were not delivered (last error: {report.last_error}); "
            "check the broker and the topics"
        )
    return report
