"""The gateway process: the FIX acceptor and the HTTP ingest side by side, one producer.

With FIX on, an outbound follower (``gateway.outbound``) sends the allocations and
confirmations services' answers to the sessions (35=P, 35=AK), in a consumer group of
its own (``<prefix>gateway-outbound-<SenderCompID>``).

Start order: Kafka producer, FIX acceptor (engine threads), HTTP server (a thread of
its own, on a socket bound here so a busy port fails at once). Stop order, on SIGTERM
or Ctrl-C: HTTP first (requests in flight finish and are answered), then FIX (sessions
logged out; a message still waiting for Kafka ends the process unacknowledged, see
``gateway.fix``), then the producer is flushed.
"""

from __future__ import annotations

import logging
import secrets
import signal
import socket
import threading
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tradeflux.domain.bounds import NotionalBounds
from tradeflux.errors import TradefluxError
from tradeflux.gateway.fix import FixAcceptor, FixSettings
from tradeflux.gateway.fix_door import FixDoorSettings, FixFrontDoor
from tradeflux.gateway.http import DEFAULT_MAX_BODY_BYTES, create_app
from tradeflux.gateway.outbound import OutboundFollower
from tradeflux.gateway.writer import DeliveryError, TradeWriter, TransactionalTradeWriter
from tradeflux.security.http import EdgePolicy
from tradeflux.tracing import OFF, Tracing

log = logging.getLogger("tradeflux.gateway")


class GatewayError(TradefluxError):
    """The gateway cannot start (port in use, ...)."""


@dataclass(frozen=True)
class GatewayConfig:
    """Everything ``run_gateway`` needs; ``fix`` None runs HTTP only.

    ``instance_id`` names this gateway's transactional producers (default: host name and
    HTTP port); keep it across restarts, and give each gateway its own.
    """

    client: dict[str, Any]
    topic_prefix: str = ""
    host: str = "127.0.0.1"
    http_port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    fix: FixSettings | None = None
    instance_id: str | None = None
    http_producers: int = 4
    notional_bounds: NotionalBounds = field(default_factory=NotionalBounds)  # the validator's
    fix_door: FixDoorSettings | None = None  # how callers reach the engine (needed with fix)
    http_policy: EdgePolicy | None = None  # None: no auth, no Host/Origin checks (tests only)
    http_tls: dict[str, Any] = field(default_factory=dict)  # uvicorn ssl_* settings
    tracing: Tracing = OFF  # each trade written starts a trace (tradeflux.tracing)


def _bind(host: str, port: int) -> socket.socket:
    """Bind the HTTP socket here, so a busy port is a one-line error, not a thread's death."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise GatewayError(
            f"cannot listen for HTTP on {host}:{port} ({exc.strerror}); choose another --http-port"
        ) from None
    sock.listen(1024)
    return sock


class Gateway:
    """A running gateway; ``stop`` ends it. ``run_gateway`` drives it from signals."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.writer = TradeWriter(config.client, config.topic_prefix, config.tracing)
        self.http_writer: TransactionalTradeWriter | None = None
        self.fix: FixAcceptor | None = None
        self.outbound: OutboundFollower | None = None
        self.fix_door: FixFrontDoor | None = None
        self._http_thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self.http_port = config.http_port
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        sock = _bind(self.config.host, self.config.http_port)
        self.http_port = sock.getsockname()[1]
        instance = self.config.instance_id or f"{socket.gethostname()}-{self.http_port}"
        try:
            self.http_writer = TransactionalTradeWriter(
                self.config.client,
                f"{self.config.topic_prefix}tradeflux-gateway-{instance}-http",
                self.config.topic_prefix,
                producers=self.config.http_producers,
                tracing=self.config.tracing,
            )
        except DeliveryError as exc:
            sock.close()
            raise GatewayError(str(exc)) from None
        if self.config.fix is not None:
            secret = secrets.token_hex(24).encode()  # proves a Logon came through the door
            door = self.config.fix_door or FixDoorSettings()
            door = replace(door, engine_port=self.config.fix.engine_port(), logon_secret=secret)
            self.fix_door = FixFrontDoor(door)  # TLS files checked before the engine starts
            self.fix = FixAcceptor(self.config.fix, self.writer, logon_secret=secret)
            self.fix.start()
            self.fix_door.start()
            group = f"{self.config.topic_prefix}gateway-outbound-{self.config.fix.sender_comp_id}"
            self.outbound = OutboundFollower(
                self.config.client, self.config.topic_prefix, group, self.fix.application.send
            )
            self.outbound.start()
        app = create_app(
            self.http_writer,
            self.config.max_body_bytes,
            health=self._health,
            metrics=self._metrics,
            notional_bounds=self.config.notional_bounds,
            post_trade=self.writer,
            policy=self.config.http_policy,
        )
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", lifespan="off", access_log=False, **self.config.http_tls
            )
        )
        self._http_thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )
        self._http_thread.start()
        log.info(
            "gateway ready http=%s:%d fix=%s topic=%s",
            self.config.host,
            self.http_port,
            f"{self.fix_door.settings.host}:{self.fix_door.port}" if self.fix_door else "off",
            self.writer.topic,
        )

    def http_alive(self) -> bool:
        """Tell whether the HTTP server thread is still running."""
        return self._http_thread is not None and self._http_thread.is_alive()

    def _health(self) -> dict[str, Any]:
        if self.fix is None:
            return {"fix": None}
        counters = self.fix.application.counters
        door = self.fix_door.counters if self.fix_door else None
        return {
            "fix": {
                "connections_open": door.open if door else 0,
                "connections_closed": dict(door.closed) if door else {},
                "sessions": dict(counters.sessions),
                "received": counters.received,
                "trades": counters.trades,
                "ignored": counters.ignored,
                "rejected": counters.rejected,
                "poss_dup": counters.poss_dup,
                "resend_requests": counters.resend_requests,
                "allocations": counters.allocations,
                "confirmation_acks": counters.confirmation_acks,
                "sent": counters.sent,
                "outbound_unsent": self.outbound.unsent if self.outbound else 0,
            }
        }

    def _metrics(self) -> Any:
        if self.fix is None:
            return
        counters = self.fix.application.counters
        messages = CounterMetricFamily(
            "tradeflux_gateway_fix_messages",
            "FIX application messages received, by outcome",
            labels=["outcome"],
        )
        for outcome in ("trades", "ignored", "rejected", "poss_dup", "allocations",
                        "confirmation_acks"):  # fmt: skip
            messages.add_metric([outcome], getattr(counters, outcome))
        yield messages
        sessions = GaugeMetricFamily(
            "tradeflux_gateway_fix_session_logged_on", "1 if the session is logged on",
            labels=["session"],
        )  # fmt: skip
        for name, state in sorted(counters.sessions.items()):
            sessions.add_metric([name], 1 if state == "logged_on" else 0)
        yield sessions
        if self.fix_door is not None:
            door = self.fix_door.counters
            yield GaugeMetricFamily(
                "tradeflux_gateway_fix_connections_open", "FIX connections open at the door",
                value=door.open,
            )  # fmt: skip
            closed = CounterMetricFamily(
                "tradeflux_gateway_fix_connections_refused",
                "FIX connections the door closed, by reason",
                labels=["reason"],
            )
            for reason, count in sorted(door.closed.items()):
                closed.add_metric([reason], count)
            yield closed

    def stop(self) -> None:
        """Stop HTTP, then the outbound follower and FIX, then flush the producer."""
        if self._server is not None and self._http_thread is not None:
            self._server.should_exit = True
            self._http_thread.join(timeout=30)
        if self.fix_door is not None:
            self.fix_door.stop()
        if self.outbound is not None:
            self.outbound.stop()
        if self.fix is not None:
            self.fix.stop()
        if self.http_writer is not None:
            self.http_writer.close()
        remaining = self.writer.close()
        if remaining:
            log.error("gateway stopped with %d record(s) not acknowledged by Kafka", remaining)
        self.config.tracing.shutdown()
        log.info("gateway stopped")


def run_gateway(config: GatewayConfig) -> int:
    """Run a gateway until SIGTERM or SIGINT; return the process exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("gateway stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        gateway = Gateway(config)
        try:
            while not stop.wait(0.5):
                if not gateway.http_alive():
                    log.error("gateway HTTP server ended unexpectedly; stopping")
                    return 1
                if gateway.writer.fatal_error:  # a new process gets a new producer
                    log.error("gateway stopping: the Kafka producer cannot go on")
                    return 1
        finally:
            gateway.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
