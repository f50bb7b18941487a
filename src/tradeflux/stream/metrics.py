"""Prometheus metrics of a stream process, and its /metrics, /healthz and /readyz endpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
        labels = {"service": service, "instance": instance}
        r = self.registry
        lbl = list(labels)

        def c(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*lbl, *extra], registry=r)

        def g(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, [*lbl, *extra], registry=r)

        self.records_in = c("tradeflux_records_in_total", "Input records consumed and committed")
        self.records_out = c("tradeflux_records_out_total", "Output records committed", ("topic",))
        self.dead_letters = c("tradeflux_dead_letters_total", "Records sent to the dead letters")
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
        self._labels = labels

    def labels(self) -> dict[str, str]:
        """Return the service and instance labels."""
        return self._labels


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
