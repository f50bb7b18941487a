"""What a Kafka transaction per HTTP request costs the gateway's writes (docs/benchmarks.md).

Writes the same trade events to a fresh ``trades.raw`` through the two writers of
``gateway/writer.py``: ``TradeWriter`` (idempotent, each call waits for its acks: what
HTTP used before) and ``TransactionalTradeWriter`` (one transaction per call: what HTTP
uses now), with THREADS callers at once (as concurrent requests are), for requests of
1 and of 100 records. No HTTP server: the difference is the writers'.

Usage: python bench/http_ingest.py BOOTSTRAP [SECONDS_PER_CASE] [THREADS]
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import threading
import time
import uuid
from decimal import Decimal

from confluent_kafka.admin import AdminClient, NewTopic

from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.writer import TradeWriter, TransactionalTradeWriter


def events(n: int, tag: str) -> list[TradeEvent]:
    now = dt.datetime.now(dt.UTC)
    return [
        TradeEvent(
            event_type="NEW", trade_id=f"{tag}-{i}", version=1, account="ACC-0001",
            instrument="HO.XNYS", side="BUY", quantity=Decimal(100), price=Decimal("101.25"),
            currency="USD", venue="XNYS", counterparty="CP-001", trade_time=now,
            source="http", ingest_time=now,
        )
        for i in range(n)
    ]  # fmt: skip


def run_case(writer: object, per_request: int, seconds: float, threads: int) -> tuple[float, float]:
    """Return (records/s, p50 request latency ms) of THREADS callers for ``seconds``."""
    latencies: list[float] = []
    written = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def caller(n: int) -> None:
        batch = events(per_request, f"{n}")
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            writer.write(batch)  # type: ignore[attr-defined]
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed * 1000)
                written[0] += per_request

    started = time.monotonic()
    workers = [threading.Thread(target=caller, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return written[0] / (time.monotonic() - started), statistics.median(latencies)


def main() -> None:
    bootstrap = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    prefix = f"bench-ingest-{uuid.uuid4().hex[:8]}."
    client = {"bootstrap.servers": bootstrap}
    admin = AdminClient(client)
    for future in admin.create_topics([NewTopic(prefix + "trades.raw", 6, 1)]).values():
        future.result()
    idempotent = TradeWriter(client, prefix)
    transactional = TransactionalTradeWriter(client, prefix + "bench", prefix, producers=threads)
    try:
        print("| writer | records/request | callers | records/s | p50 ms/request |")
        print("|---|---|---|---|---|")
        for per_request in (1, 100):
            for name, writer in (("idempotent", idempotent), ("transactional", transactional)):
                rate, p50 = run_case(writer, per_request, seconds, threads)
                print(f"| {name} | {per_request} | {threads} | {rate:,.0f} | {p50:.1f} |")
    finally:
        transactional.close()
        idempotent.close()
        for future in admin.delete_topics([prefix + "trades.raw"]).values():
            future.result()


if __name__ == "__main__":
    main()
