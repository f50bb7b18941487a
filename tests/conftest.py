"""Session fixtures: one real Kafka broker for the whole test session.

The broker starts only when a test asks for it (unit tests never do), on free loopback
ports in a temporary runtime folder, and is stopped at the end of the session. Under
pytest-xdist (``./dev test`` runs two workers) each worker is a session of its own,
with its own broker. With
``TRADEFLUX_BOOTSTRAP`` set, the tests use that cluster instead and start nothing.
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradeflux.broker import local
from tradeflux.config import Settings, load_settings


def free_port_block(count: int) -> int:
    """Return a port p such that p .. p+count-1 are all free on loopback.

    Drawn below Linux's ephemeral range (32768-60999): a port in it can be taken
    by any outgoing connection's local end between this check and the listen.
    """
    for _ in range(200):
        base = random.randint(20000, 32700 - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block found")


def unique(prefix: str) -> str:
    """Return a name unique to this test run, for topics and groups."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a running Kafka: TRADEFLUX_BOOTSTRAP's, or one this session starts."""
    if os.environ.get("TRADEFLUX_BOOTSTRAP"):
        yield load_settings()
        return
    runtime = tmp_path_factory.mktemp("kafka-runtime")
    settings = load_settings(env={}, runtime_dir=runtime, cache_dir=_cache_dir())
    cluster = local.start_cluster(settings, nodes=1, port=free_port_block(2))
    try:
        yield load_settings(env={}, bootstrap=cluster.bootstrap, runtime_dir=runtime)
    finally:
        local.stop_cluster(settings)


def _cache_dir() -> Path:
    return load_settings().cache_dir
