"""The query service put together: read model, Kafka follower, live hub, scraper, HTTP server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI

from tradeflux.config import Settings
from tradeflux.query.api import SCOPE_RULES, create_app
from tradeflux.query.follower import TopicFollower
from tradeflux.query.live import LiveHub
from tradeflux.query.readmodel import ReadModel
from tradeflux.query.service_metrics import ScrapeTarget, ServiceScraper
from tradeflux.security.policy import edge_policy, scrape_headers, uvicorn_tls
from tradeflux.security.tokens import SCOPE_READ
from tradeflux.stream.metrics import StreamMetrics

_GRACEFUL_S = 3


class QueryService:
    """Everything one query process holds; ``app`` is its ASGI application.

    Its HTTP security comes from ``settings`` (auth, tokens, allowed hosts and origins,
    TLS): ``read`` for the API, the stream and the dashboard (with its login link and
    session cookie), ``metrics`` for /metrics. The scraper of the services' /metrics sends
    the token of ``scrape_token_file``.
    """

    def __init__(
        self,
        settings: Settings,
        targets: Sequence[ScrapeTarget] = (),
        instance_id: str = "query",
        max_log_entries: int = 50_000,
    ) -> None:
        self.model = ReadModel(max_log_entries=max_log_entries)
        self.metrics = StreamMetrics("query", instance_id)
        self.hub = LiveHub()
        self.follower = TopicFollower(
            settings.client_config(),
            settings.topic_prefix,
            self.model,
            on_changes=self.hub.publish,
            metrics=self.metrics,
        )
        self.scraper = ServiceScraper(list(targets), headers=scrape_headers(settings))
        self.policy = edge_policy(settings, SCOPE_RULES, SCOPE_READ, sessions=True)
        self.tls: dict[str, Any] = uvicorn_tls(settings)
        self.app: FastAPI = create_app(
            self.model, self.follower, self.hub, self.scraper, self.metrics, policy=self.policy
        )


class _Server(uvicorn.Server):
    """A uvicorn server that ends open event streams first when told to stop.

    Without that, a graceful shutdown would wait for every browser's endless stream.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.end_streams()
        super().handle_exit(sig, frame)

    def end_streams(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_exit)


def _config(app: FastAPI, tls: dict[str, Any]) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=_GRACEFUL_S,
        ws="none",
        **tls,
    )


def serve(service: QueryService, host: str, port: int) -> None:
    """Serve on ``host:port`` until SIGINT/SIGTERM, then stop reading and close every stream."""
    config = _config(service.app, service.tls)
    config.host, config.port = host, port
    _Server(config, service.hub.close).run()


class BackgroundServer:
    """Serves a QueryService from a daemon thread on a free loopback port (tests, embedding)."""

    def __init__(self, service: QueryService, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"{'https' if service.tls else 'http'}://{host}:{self.port}"
        self._server = _Server(_config(service.app, service.tls), service.hub.close)
        self._thread = threading.Thread(target=self._run, name="query-http", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        """Start serving; return once the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError("the query server thread ended while starting")
            time.sleep(0.05)
        if not self._server.started:
            raise RuntimeError(f"the query server did not start within {timeout_s:g}s")
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """End the streams, stop serving and reading, and wait for the thread."""
        self._server.end_streams()
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
