"""Prometheus metrics of a stream process, and its /metrics, /healthz and /readyz endpoint."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from tradeflux.stream.checkpoint import Checkpoint
    from tradeflux.stream.kafka import TP, GroupConsumer
    from tradeflux.stream.records import KafkaMessage
    from tradeflux.stream.task import Task

_LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class StreamMetrics:
    """The counters, gauges and histograms of one service instance."""

    def __init__(self, service: str, instance: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_* : memory, CPU, open files
        labels = {"service": service, "instance": instance}
        r = self.registry
        lbl = list(labels)

        def c(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*lbl, *extra], registry=r)

        def g(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, [*lbl, *extra], registry=r)

        self.records_in = c("tradeflux_records_in_total", "Input records consumed and committed")
        self.records_out = c("tradeflux_records_out_total", "Output records committed", ("topic",))
        self.dead_letters = c(
            "tradeflux_dead_letters_total",
            "Records the runtime sent to the dead letters (decode, processing, encoding, "
            "size, produce failures), per reason",
            ("reason",),
        )
        self.events = c(
            "tradeflux_events_total", "Business events a processor counted, committed", ("event",)
        )
        self.aborts = c("tradeflux_transaction_aborts_total", "Batches whose transaction aborted")
        self.batch_size = Histogram(
            "tradeflux_batch_records",
            "Records per batch",
            lbl,
            registry=r,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
        )
        self.process_s = Histogram(
            "tradeflux_batch_process_seconds",
            "Processor time per batch",
            lbl,
            registry=r,
            buckets=_LATENCY_BUCKETS_S,
        )
        self.commit_s = Histogram(
            "tradeflux_batch_commit_seconds",
            "Produce and transaction commit time per batch",
            lbl,
            registry=r,
            buckets=_LATENCY_BUCKETS_S,
        )
        self.latency_s = Histogram(
            "tradeflux_end_to_end_latency_seconds",
            "From an input record's timestamp to the commit of its batch",
            lbl,
            registry=r,
            buckets=_LATENCY_BUCKETS_S,
        )
        self.lag = g(
            "tradeflux_consumer_lag_records", "High watermark minus position", ("partition",)
        )
        self.store_keys = g(
            "tradeflux_store_keys", "Keys in a store partition", ("store", "partition")
        )
        self.restore_done = g(
            "tradeflux_restore_records",
            "Changelog records applied while restoring",
            ("store", "partition"),
        )
        self.restore_total = g(
            "tradeflux_restore_records_total_expected",
            "Changelog offsets to read for a restore",
            ("store", "partition"),
        )
        self.assigned = g("tradeflux_assigned_partitions", "Input partitions assigned and restored")
        self.restoring = g(
            "tradeflux_restoring_partitions", "Input partitions whose stores are being restored"
        )
        self.restore_seconds = Histogram(
            "tradeflux_restore_seconds",
            "Time to restore the stores of one input partition",
            lbl,
            registry=r,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.timer_failures = c(
            "tradeflux_timer_failures_total", "Timer calls that failed and were rolled back"
        )
        self.producer_restarts = c(
            "tradeflux_producer_restarts_total",
            "Transactional producers replaced after a fatal error (fenced, invalid state)",
            ("reason",),
        )
        self.cluster_waiting = g(
            "tradeflux_cluster_waiting",
            "1 while the instance waits out an unavailable cluster for an operation",
            ("operation",),
        )
        self.ready = g("tradeflux_ready", "1 when the instance is ready (restored, not waiting)")
        self._labels = labels

    def labels(self) -> dict[str, str]:
        """Return the service and instance labels."""
        return self._labels

    def forget_partition(self, partition: int, stores: Sequence[str]) -> None:
        """Drop the per-partition series of a partition this instance no longer holds."""
        values = tuple(self._labels.values())
        p = str(partition)
        with contextlib.suppress(KeyError):
            self.lag.remove(*values, p)
        for store in stores:
            for gauge in (self.store_keys, self.restore_done, self.restore_total):
                with contextlib.suppress(KeyError):
                    gauge.remove(*values, store, p)


def record_batch(
    metrics: StreamMetrics,
    checkpoint: Checkpoint,
    by_tp: Mapping[TP, list[KafkaMessage]],
    count: int,
) -> None:
    """Count a committed batch: records in and out, events, dead letters, latency."""
    labels = metrics.labels()
    committed_us = checkpoint.committed_us
    metrics.commit_s.labels(**labels).observe((committed_us - checkpoint.produced_us) / 1e6)
    for topic, n in checkpoint.out_counts.items():
        metrics.records_out.labels(**labels, topic=topic).inc(n)
    if count:
        metrics.records_in.labels(**labels).inc(count)
        metrics.batch_size.labels(**labels).observe(count)
        wall_ms = committed_us / 1000
        latency = metrics.latency_s.labels(**labels)
        for msgs in by_tp.values():
            step = max(1, len(msgs) // 20)  # a sample keeps this off the hot path
            for msg in msgs[::step]:
                latency.observe(max(0.0, (wall_ms - msg.timestamp()[1]) / 1000))
    tasks: list[Task] = checkpoint.tasks
    for task in tasks:
        for event, n in task.take_counts().items():
            metrics.events.labels(**labels, event=event).inc(n)
        for reason, n in task.take_dead_letters().items():
            metrics.dead_letters.labels(**labels, reason=reason).inc(n)
        failures = task.timers.failures
        if failures:
            metrics.timer_failures.labels(**labels).inc(failures)
            task.timers.failures = 0


_WAITED_FOR = (
    "topic metadata", "init transactions", "send offsets", "commit", "abort",
    "committed offsets", "changelog offsets",
)  # fmt: skip


def publish_gauges(
    metrics: StreamMetrics,
    consumer: GroupConsumer,
    active: Mapping[TP, Task],
    ready: bool,
    waiting: Sequence[str],
) -> None:
    """Set consumer lag (high watermark - position), store sizes, readiness, waits."""
    labels = metrics.labels()
    metrics.ready.labels(**labels).set(1 if ready else 0)
    for what in _WAITED_FOR:
        metrics.cluster_waiting.labels(**labels, operation=what).set(1 if what in waiting else 0)
    for tp, position in consumer.positions(list(active)).items():
        high = consumer.high_watermark(tp)
        if position is not None and high is not None:
            metrics.lag.labels(**labels, partition=str(tp[1])).set(max(0, high - position))
    for (_topic, partition), task in active.items():
        for name, store in task.stores.items():
            metrics.store_keys.labels(**labels, store=name, partition=str(partition)).set(
                store.committed_size
            )


class HealthServer:
    """Serves /metrics, /healthz (the loop turns) and /readyz (restored and caught up).

    ``authorize``, if given, decides who may read /metrics: called with the request's
    headers, it returns 200 to allow or the status to refuse with (401, 403). /healthz and
    /readyz stay open: probes carry no credentials.
    """

    def __init__(
        self,
        metrics: StreamMetrics,
        port: int,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        host: str = "127.0.0.1",
        authorize: Callable[[Mapping[str, str]], int] | None = None,
    ) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                refused = 200
                if self.path.startswith("/metrics") and authorize is not None:
                    refused = authorize(dict(self.headers.items()))
                if refused != 200:
                    body, ctype, code = (
                        b"metrics need a bearer token with the metrics scope\n",
                        "text/plain",
                        refused,
                    )
                elif self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz"):
                    ok = alive()
                    body, ctype, code = (
                        (b"ok\n" if ok else b"stalled\n"),
                        "text/plain",
                        (200 if ok else 503),
                    )
                elif self.path.startswith("/readyz"):
                    ok = ready()
                    body, ctype, code = (
                        (b"ready\n" if ok else b"not ready\n"),
                        "text/plain",
                        (200 if ok else 503),
                    )
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                if code == 401:
                    self.send_header("WWW-Authenticate", 'Bearer realm="tradeflux"')
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def monotonic_ms() -> int:
    """Return a monotonic clock in milliseconds."""
    return int(time.monotonic() * 1000)
