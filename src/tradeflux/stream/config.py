"""How a service instance runs: batching, timeouts, membership (client settings: the cluster's)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tradeflux.tracing import OFF, Tracing


@dataclass(frozen=True)
class RuntimeConfig:
    """The runtime settings of one service instance (``tradeflux run`` fills them from Settings).

    Latency against throughput: a batch is what has arrived, up to ``batch_max_records``,
    and at most what ``max_batch_ms`` of processing allows at the measured cost per
    record (0: no time budget); an idle instance waits at most ``batch_max_wait_ms`` for
    its first record. ``cluster_wait_s`` is how long a transient cluster failure is waited
    out before the instance exits. ``batch_trace`` names a file that gets one line per
    committed batch (``batch committed service=S instance=I batch=N records=R
    produced_us=... commit_started_us=... commit_ended_us=...``, epoch microseconds), for
    the latency breakdown of bench/latency.py. ``tracing`` continues the traces the input
    records carry (a batch span per batch, a hop span per traced input record; off by
    default: :data:`tradeflux.tracing.OFF`).
    """

    client: dict[str, Any]
    instance_id: str = field(default_factory=socket.gethostname)
    topic_prefix: str = ""
    batch_max_records: int = 5000
    batch_max_wait_ms: int = 100
    max_batch_ms: int = 250
    fetch_wait_ms: int = 10
    session_timeout_ms: int = 10000
    static_membership: bool = False
    group_protocol: Literal["classic", "consumer"] = "classic"
    transaction_timeout_ms: int = 10000
    # Transactional producers that take turns, batch by batch (loop.StreamApp._new_producer);
    # 1 waits for the coordinator between transactions. Ids: {group}-{instance}, then #2...
    transaction_producers: int = 2
    commit_timeout_s: float = 30.0
    cluster_wait_s: float = 300.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # Who may read /metrics: called with the request's headers, returns 200 (allowed) or the
    # HTTP status to refuse with (401, 403); None: anyone who can reach the port.
    metrics_authorize: Callable[[Mapping[str, str]], int] | None = None
    changelog_replication: int | None = None
    batch_trace: str | None = None
    tracing: Tracing = OFF
    # Fault injection for tests: called before each commit with the batch number.
    before_commit: Callable[[int], None] | None = None
