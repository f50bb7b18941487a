"""A slice of the system as processes on the real broker, and the ledger of what became of
every ``trades.raw`` record: for tests/integration/test_poison_cases.py and tests/fuzz/.

``running_flow`` creates every topic under a fresh prefix, loads the sample reference data
(and whatever ``seed`` produces before the services start, so their global tables hold it
from the first batch), then runs the named services (``tradeflux run``) and the HTTP gateway
(``tradeflux gateway --no-fix``, auth off on loopback) as processes. ``read_ledger`` reads
the topics back read_committed; ``assert_conserved`` checks, record by record (dead letters
carry ``tf.source.partition``/``tf.source.offset``), that every raw record is in exactly one
of enriched, rejected or dropped duplicate.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import REPO, caught_up, producer, read_all, wait_for
from tests.support.pipeline import REFDATA_FILES, scrape_events
from tests.support.system import Proc, get_text
from tradeflux import topics
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.domain.codes import RejectReason
from tradeflux.domain.schemas import EnrichedTrade
from tradeflux.gateway.refdata import load_files
from tradeflux.stream.deadletter import header_map
from tradeflux.stream.records import HOP_HEADER

INPUT_OF = {
    "validator": topics.RAW.name,
    "positions": topics.ENRICHED.name,
    "pnl": topics.POSITIONS.name,
    "risk": topics.ENRICHED.name,
    "repartition": topics.ENRICHED.name,
    "analytics": topics.BY_INSTRUMENT.name,
    "settlement": topics.BY_COUNTERPARTY.name,
}
"""The input topic of each service a flow can run (its group commits offsets on it)."""

ENCODE = msgspec.json.Encoder(decimal_format="string").encode


@dataclass
class Flow:
    """Services and the gateway running under one topic prefix."""

    settings: Settings
    prefix: str
    procs: dict[str, Proc] = field(default_factory=dict)
    gateway_port: int = 0

    def topic(self, name: str) -> str:
        """Return the prefixed name of a registry topic."""
        return self.prefix + name

    def assert_running(self) -> None:
        """Fail with the end of its log if a process has exited."""
        for name, proc in self.procs.items():
            assert proc.alive(), f"{name} exited:\n{proc.log()[-4000:]}"

    def events(self, service: str) -> dict[str, float]:
        """Return the business-event counters (committed) of ``service``'s /metrics."""
        return scrape_events(self.procs[service].port)

    def post(self, body: bytes, content_type: str = "application/json") -> httpx.Response:
        """POST ``body`` to the gateway's /v1/trades and return its answer."""
        return httpx.post(
            f"http://127.0.0.1:{self.gateway_port}/v1/trades",
            content=body,
            headers={"Content-Type": content_type},
            timeout=30,
        )

    def caught_up(self) -> bool:
        """Tell whether every service has committed its input to the end (all alive)."""
        self.assert_running()
        return all(
            caught_up(self.settings, self.topic(name), self.topic(INPUT_OF[name]))
            for name in self.procs
            if name in INPUT_OF
        )

    def wait_caught_up(self, timeout_s: float = 180.0) -> None:
        """Wait until every service has caught up (failing at once if one exited)."""
        wait_for(self.caught_up, timeout_s, "every service to catch up", every_s=0.5)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tradeflux.cli", *args]


@contextmanager
def running_flow(
    settings: Settings,
    log_dir: Path,
    services: Sequence[str],
    *,
    partitions: int,
    env: dict[str, str] | None = None,
    seed: Callable[[str], None] | None = None,
    name: str = "flow",
) -> Iterator[Flow]:
    """Run ``services`` and the gateway on fresh topics; stop them all at the end.

    ``env`` goes to every process (``TRADEFLUX_MAX_NOTIONAL``, say); ``seed(prefix)``
    produces reference data after the sample files and before any process starts. Yields
    once every service has partitions and the gateway answers.
    """
    prefix = unique(name) + "-"
    create_topics(replace(settings, topic_prefix=prefix, partitions=partitions), TopicSet.ALL)
    report = load_files(REFDATA_FILES, settings.client_config(), prefix)
    assert not report.errors, report.errors
    if seed is not None:
        seed(prefix)
    base_env = {
        **os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}",
        "TRADEFLUX_BOOTSTRAP": settings.bootstrap,
        "TRADEFLUX_AUTH": "none", **(env or {}),
    }  # fmt: skip
    ports = free_port_block(len(services) + 1)
    flow = Flow(settings, prefix, gateway_port=ports)
    for i, service in enumerate(services, start=1):
        argv = _cli(
            "run", service, "--prefix", prefix, "--instance-id", f"{service}-1",
            "--metrics-port", str(ports + i), "--session-timeout-ms", "6000",
        )  # fmt: skip
        flow.procs[service] = Proc(service, argv, ports + i, log_dir, base_env)
    gateway = _cli(
        "gateway", "--no-fix", "--http-port", str(ports), "--prefix", prefix,
        "--runtime-dir", str(log_dir / "gateway-state"),
    )  # fmt: skip
    flow.procs["gateway"] = Proc("gateway", gateway, ports, log_dir, base_env)
    try:
        for proc in flow.procs.values():
            proc.start()
        for service in services:
            wait_for(
                lambda s=service: flow.assert_running() or "partitions assigned"
                in flow.procs[s].log(),
                120, f"{service} to get partitions",
            )  # fmt: skip
        wait_for(
            lambda: flow.assert_running() or get_text(f"http://127.0.0.1:{ports}/healthz"),
            120, "the gateway to answer",
        )  # fmt: skip
        yield flow
    finally:
        for proc in flow.procs.values():
            proc.stop()


@dataclass(frozen=True)
class RawRecord:
    """One record of trades.raw as the validator saw it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(frozen=True)
class DeadLetter:
    """One record of trades.rejected: what it carries and the tf.* headers."""

    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def reason(self) -> str:
        """The reason code."""
        return self.headers.get("tf.reason", "")

    @property
    def detail(self) -> str:
        """The detail sentence."""
        return self.headers.get("tf.detail", "")


@dataclass(frozen=True)
class Ledger:
    """trades.raw, its dead letters by source offset, the validator's trades.enriched, every
    other dead letter."""

    raw: list[RawRecord]  # partition by partition, in offset order
    rejects: dict[tuple[int, int], DeadLetter]  # of trades.raw, by (partition, offset)
    enriched: list[tuple[int, EnrichedTrade]]  # (partition, event), in offset order
    other_dead_letters: list[DeadLetter]  # of any other topic, or of a timer

    def rejected_in_raw_order(self) -> list[DeadLetter]:
        """Return the validator's dead letters in the order of their raw records."""
        return [
            self.rejects[(r.partition, r.offset)]
            for r in self.raw
            if (r.partition, r.offset) in self.rejects
        ]


def read_ledger(settings: Settings, prefix: str) -> Ledger:
    """Read trades.raw, trades.rejected and trades.enriched back (read_committed)."""
    raw_topic = prefix + topics.RAW.name
    raw = sorted(
        (
            RawRecord(m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])
            for m in read_all(settings, raw_topic, timeout_s=120)
        ),
        key=lambda r: (r.partition, r.offset),
    )
    rejects: dict[tuple[int, int], DeadLetter] = {}
    others: list[DeadLetter] = []
    for m in read_all(settings, prefix + topics.REJECTED.name, timeout_s=120):
        letter = DeadLetter(m.key(), m.value(), dict(header_map(m.headers())))
        if letter.headers.get("tf.source.topic") != raw_topic:
            others.append(letter)
            continue
        source = (
            int(letter.headers["tf.source.partition"]),
            int(letter.headers["tf.source.offset"]),
        )
        assert source not in rejects, f"raw record {source} dead-lettered twice"
        rejects[source] = letter
    decoder = msgspec.json.Decoder(EnrichedTrade)
    enriched = [
        (m.partition(), decoder.decode(m.value()))
        for m in read_all(settings, prefix + topics.ENRICHED.name, timeout_s=120)
        if _last_hop(m.headers()) == "validator"  # not what a test produced there itself
    ]
    return Ledger(raw, rejects, enriched, others)


def _last_hop(headers: list[tuple[str, bytes]] | None) -> str:
    """Return the service of a record's last ``tf.hop`` header ("" if it has none)."""
    hops = [v for k, v in headers or () if k == HOP_HEADER]
    return hops[-1].decode().partition(";")[0] if hops else ""


class _TradeVersion(msgspec.Struct):
    trade_id: str
    version: int


def _trade_version(value: bytes | None) -> tuple[str, int]:
    event = msgspec.json.decode(value or b"", type=_TradeVersion)
    return event.trade_id, event.version


def assert_conserved(ledger: Ledger, validator_events: dict[str, float]) -> dict[str, int]:
    """Assert every raw record is exactly one of enriched, rejected or dropped duplicate.

    Rejected: a dead letter names its source offset and carries the record's key and bytes.
    The others: each (trade id, version) is enriched once (by its first record; an account
    move emits a CANCEL and a NEW of the version), any later record of it is a duplicate.
    The validator's counters must say the same. Returns the counts.
    """
    raw_at = {(r.partition, r.offset): r for r in ledger.raw}
    for source, letter in ledger.rejects.items():
        assert source in raw_at, f"a dead letter names {source}, which is not in trades.raw"
        record = raw_at[source]
        assert (letter.key, letter.value) == (record.key, record.value), f"{source} lost its bytes"
        assert letter.reason, f"the dead letter of {source} has no reason"
    passed = [r for r in ledger.raw if (r.partition, r.offset) not in ledger.rejects]
    versions = Counter(_trade_version(r.value) for r in passed)
    enriched = Counter((e.trade_id, e.version) for _, e in ledger.enriched)
    assert set(enriched) == set(versions), "enriched events and accepted raw records differ"
    for trade_version, n in enriched.items():
        assert n in (1, 2), f"{trade_version} enriched {n} times"
        if n == 2:  # an amend that moved the trade: the CANCEL of the old, the NEW
            kinds = sorted(
                e.event_type for _, e in ledger.enriched if (e.trade_id, e.version) == trade_version
            )
            assert kinds == ["CANCEL", "NEW"], f"{trade_version} enriched as {kinds}"
    counts = {
        "raw": len(ledger.raw),
        "enriched": len(versions),
        "rejected": len(ledger.rejects),
        "duplicates": len(passed) - len(versions),
    }
    assert counts["enriched"] + counts["rejected"] + counts["duplicates"] == counts["raw"]
    reasons = {str(r) for r in RejectReason}
    counted = {
        "enriched": int(validator_events.get("enriched", 0)),
        "duplicates": int(validator_events.get("duplicates", 0)),
        "rejected": int(sum(v for k, v in validator_events.items() if k.startswith("rejected_"))),
    }
    expected = {
        **{k: counts[k] for k in ("enriched", "duplicates")},
        "rejected": sum(1 for letter in ledger.rejects.values() if letter.reason in reasons),
    }  # the others are the runtime's (decode_error: a key that is not UTF-8)
    assert counted == expected, f"the validator counted {counted}"
    return counts


def produce(settings: Settings, topic: str, records: Sequence[tuple[bytes | None, Any]]) -> None:
    """Produce ``(key, value)`` records to ``topic`` (a struct value is JSON-encoded), flushed."""
    prod = producer(settings)
    for key, value in records:
        data = value if value is None or isinstance(value, bytes) else ENCODE(value)
        prod.produce(topic, data, key)
    assert prod.flush(30) == 0
