"""The whole pipeline as supervised ``tradeflux run`` processes, each on a host of its own.

A :class:`Deployment` is every shipped service at ``replicas`` instances under one topic
prefix, each instance in a network namespace of the test network (so a test can cut it
off), kept running by a :class:`~tests.support.supervisor.Supervisor`. A :class:`Feeder`
writes a simulated session's raw records at a steady rate until told to stop, so the
input lasts exactly as long as the faults need and the fault-free copy can be given the
very same records.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Producer

from tests.support.group_probe import describe_groups
from tests.support.kafka_tools import ServiceProcess, caught_up, producer, read_all
from tests.support.netns import Host, Network
from tests.support.pipeline import REFDATA_DIR, REFDATA_FILES, last_by_key, produce_marks
from tests.support.pipeline_outputs import Expectations
from tests.support.reference import run_reference
from tests.support.supervisor import Instance, Supervisor
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.domain.schemas import AccountPnL, FxRate, Limits
from tradeflux.gateway.refdata import load_files
from tradeflux.services import SHIPPED, service_target
from tradeflux.sim.refdata import load_refdata, read_structs
from tradeflux.sim.trades import SimRecord, SimSession
from tradeflux.stream.runner import load_service
from tradeflux.topics import topic_specs

PARTITIONS = 6
_KAFKA_LOG = logging.getLogger("tests.kafka")
# Bars of 1 s that close 2 s (of trade time) after their end. The session is generated
# at TRADE_TIME_SPEEDUP times the feed's rate, so trade time advances 1/25 s per second of
# feed: a partition may fall 2 * 25 = 50 s of wall time behind another before one of its
# events is late (a late event would make the runs' bars differ legitimately), and a
# two-minute feed still closes a few windows per instrument.
BAR_SIZE = dt.timedelta(seconds=1)
BAR_GRACE = dt.timedelta(seconds=2)
TRADE_TIME_SPEEDUP = 25
SERVICE_ENV = {
    "TRADEFLUX_BAR_SECONDS": str(BAR_SIZE.seconds),
    "TRADEFLUX_BAR_GRACE_SECONDS": str(BAR_GRACE.seconds),
}
SESSION_TIMEOUT_S = 6.0  # what ServiceProcess passes as --session-timeout-ms


def input_topic(service: str) -> str:
    """Return the (unprefixed) topic a shipped service reads."""
    return load_service(service_target(service)).inputs[0].name


INPUTS = {service: input_topic(service) for service in SHIPPED}
# Services run below the brokers' CPU priority (``nice`` execs: the pid stays the
# service's). In a deployment brokers have cores of their own; here twelve or more
# instances share two cores with the three nodes, and a node starved of CPU took minutes
# to start again in a rolling restart (its JVM printed its first line 50 s after launch),
# which tests the machine, not the services.
SERVICE_NICE = ("nice", "-n", "10")
CHECKED = ("validator", "positions", "pnl", "risk", "repartition", "analytics", "settlement")
"""The services whose every output the comparison checks against a model of its rules (the
short form deploys these; the post-trade services add load, compared run against run)."""


def topics_of(services: Sequence[str]) -> set[str]:
    """Return the (unprefixed) topics that ``services`` read, write or load, and the refdata."""
    names = {t.name for t in topic_specs(TopicSet.REFDATA)}
    for service in services:
        s = load_service(service_target(service))
        names |= {t.name for t in (*s.inputs, *s.outputs)} | {g.topic for g in s.global_tables}
        if s.dead_letter_topic:
            names.add(s.dead_letter_topic)
    return names


def prepare_prefix(
    settings: Settings, prefix: str, session: SimSession, services: Sequence[str] = SHIPPED
) -> None:
    """Create the topics of ``services`` under ``prefix`` (fewer partitions for the brokers
    to carry through every fault); load the sample refdata and the session's marks."""
    create_topics(
        replace(settings, topic_prefix=prefix, partitions=PARTITIONS), TopicSet.ALL,
        only=topics_of(services),
    )  # fmt: skip
    report = load_files(REFDATA_FILES, settings.client_config(), prefix)
    assert not report.errors
    produce_marks(settings, prefix, session)


def expectations(session: SimSession, records: Sequence[SimRecord]) -> Expectations:
    """What the services must make of ``records`` (a prefix of the session's), by the models."""
    ref = load_refdata(REFDATA_DIR)
    fx = {r.pair: r for r in read_structs(REFDATA_DIR / "fx.csv", FxRate)}
    fx.update({r.pair: r for r in session.fx_rates})  # the session's rates come last
    result = run_reference(
        [(r.key, r.value, r.timestamp_ms) for r in records],
        ref.instruments, ref.accounts, ref.counterparties, session.prices, fx.values(),
    )  # fmt: skip
    return Expectations(
        reference=result,
        inputs=frozenset((r.key, r.value) for r in records),
        limits=tuple(read_structs(REFDATA_DIR / "limits.csv", Limits)),
        base_currencies={a.account_id: a.base_currency for a in ref.accounts},
        fx_rates=tuple(fx.values()),
        bar_size=BAR_SIZE,
        bar_grace=BAR_GRACE,
    )


@dataclass
class Deployment:
    """The services at ``replicas`` instances under ``prefix``, supervised."""

    settings: Settings
    prefix: str
    replicas: int
    supervisor: Supervisor
    hosts: dict[str, Host]  # instance name -> its host
    services: tuple[str, ...] = SHIPPED

    def group(self, service: str) -> str:
        """Return the consumer group (and transactional id stem) of ``service``."""
        return self.prefix + service

    def service_of(self, instance: str) -> str:
        """Return the service an instance runs."""
        return self.supervisor.instances[instance].service

    def unready(self) -> list[str]:
        """Return why the deployment is not fully up (empty: every group is whole)."""
        live = self.supervisor.client_ids()
        reasons = [f"{n} is down" for n in self.supervisor.instances if n not in live.values()]
        expected: dict[str, set[str]] = {self.group(s): set() for s in self.services}
        for client_id, name in live.items():
            expected[self.group(self.service_of(name))].add(client_id)
        return reasons + group_problems(self.settings, expected)

    def behind(self) -> list[str]:
        """Return the services whose group has not committed its input to the end."""
        out = []
        for service in self.services:
            try:
                done = caught_up(self.settings, self.group(service), self.prefix + INPUTS[service])
            except KafkaException:  # a leader moved while the test looked (soak, 2026-12-02)
                done = False  # look again
            if not done:
                out.append(service)
        return out


def deploy(
    settings: Settings, net: Network, prefix: str, replicas: int, log_dir: Path, label: str,
    services: tuple[str, ...] = SHIPPED,
) -> Deployment:  # fmt: skip
    """Start ``services`` at ``replicas`` instances, each on a new host of ``net``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    instances = []
    hosts = {}
    for service in services:
        for i in range(1, replicas + 1):
            name = f"{service}-{i}"
            host = net.add_host(f"{label}-{name}")
            hosts[name] = host

            start = functools.partial(_start, settings, service, prefix, name, log_dir, host)
            instances.append(Instance(name, service, start))
    supervisor = Supervisor(instances)
    supervisor.start()
    return Deployment(settings, prefix, replicas, supervisor, hosts, services)


def _start(
    settings: Settings, service: str, prefix: str, name: str, log_dir: Path, host: Host,
    client_id: str,
) -> ServiceProcess:  # fmt: skip
    env = {**SERVICE_ENV, "TRADEFLUX_KAFKA_CLIENT_ID": client_id}
    launcher = (*host.launcher, *SERVICE_NICE)
    return ServiceProcess(settings, service, prefix, name, log_dir, launcher=launcher, env=env)


def group_problems(
    settings: Settings, groups: Mapping[str, set[str]], partitions: int = PARTITIONS
) -> list[str]:
    """Return what keeps each group from being whole (empty: every group is).

    ``groups``: {group: the client ids its members must be}. Whole: stable, exactly
    those members (a dead incarnation still listed, or a new one not yet joined, is not
    whole), each holding at least one partition, all ``partitions`` held.
    """
    described = describe_groups(settings.bootstrap, list(groups))
    if "error" in described:
        return [f"groups not described: {described['error']}"]
    problems = []
    for group, d in described.items():
        if "error" in d:
            problems.append(f"{group}: not described: {d['error']}")
            continue
        members = sorted(client_id for client_id, _, _ in d["members"])
        held = [n for _, _, n in d["members"]]
        whole = (
            d["state"] == "STABLE"
            and members == sorted(groups[group])
            and min(held, default=0) > 0
            and sum(held) == partitions
        )
        if not whole:
            problems.append(f"{group}: {d['state']}, members {members} holding {held}")
    return problems


def group_members(settings: Settings, group: str) -> list[tuple[str, int]]:
    """Return (client address, partitions held) of each member of a stable ``group``."""
    d = describe_groups(settings.bootstrap, [group]).get(group)
    if d is None or d.get("state") != "STABLE":
        return []
    return [(host, n) for _, host, n in d["members"]]


PRODUCER_LIFE_S = 10.0
"""How long the feeder keeps one producer (see :class:`Feeder`)."""


class Feeder(threading.Thread):
    """Writes the session's raw records to ``trades.raw`` at ``rate_per_s`` until stopped.

    Steady: after the producer was held up by a broker fault it catches up at most a
    second's worth. :attr:`fed` is how many records it wrote, in order; once it ends,
    every one of them was acknowledged (idempotent producer: once each), or it says so.

    Every :data:`PRODUCER_LIFE_S` it flushes its producer and takes a new one. In the soak,
    after broker restarts, the broker threads of one long-lived idempotent producer spun
    (polls with 0-5 ms timeouts) at 1.5 cores of the machine's two, starving brokers and
    services alike (librdkafka 2.16; as confluentinc/librdkafka#3692 describes). A flush
    waits for every acknowledgement, so the order of the records is kept.
    """

    def __init__(
        self, settings: Settings, prefix: str, records: Sequence[SimRecord], rate_per_s: float
    ) -> None:
        super().__init__(name="feeder", daemon=True)
        self.settings = settings
        self.topic = prefix + "trades.raw"
        self.records = records
        self.rate_per_s = rate_per_s
        self.fed = 0
        self.unsent = -1
        self.failed: list[str] = []
        self._stopping = threading.Event()

    def stop_feeding(self) -> int:
        """Stop at the next record, wait until everything written is acknowledged; return fed."""
        self._stopping.set()
        self.join(180)
        assert not self.is_alive(), "the feeder did not finish flushing within 180 s"
        assert self.unsent == 0, f"{self.unsent} raw record(s) were never acknowledged"
        assert self.failed == [], f"{len(self.failed)} raw record(s) failed: {self.failed[:3]}"
        return self.fed

    @property
    def exhausted(self) -> bool:
        """Tell whether every record of the session was written (the input ran out)."""
        return self.fed == len(self.records)

    def run(self) -> None:
        prod = self._producer()
        born = time.monotonic()
        step = 1 / self.rate_per_s
        due = time.monotonic()
        for rec in self.records:
            if self._stopping.is_set():
                break
            if time.monotonic() - born >= PRODUCER_LIFE_S:
                self.unsent = prod.flush(300)
                if self.unsent:
                    return  # stop_feeding says how many were never acknowledged
                prod, born = self._producer(), time.monotonic()
            wait = due - time.monotonic()
            if wait > 0:
                self._stopping.wait(wait)
            due = max(due + step, time.monotonic() - 1.0)  # never more than 1 s of catch-up
            while True:
                try:
                    prod.produce(
                        self.topic, rec.value, rec.key, timestamp=rec.timestamp_ms,
                        on_delivery=self._delivered,
                    )  # fmt: skip
                    break
                except BufferError:
                    prod.poll(0.05)
            prod.poll(0)
            self.fed += 1
        self.unsent = prod.flush(300)

    def _producer(self) -> Producer:
        return producer(self.settings, **{"message.timeout.ms": 300_000, "logger": _KAFKA_LOG})

    def _delivered(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.failed.append(err.str())


def feed_all(settings: Settings, prefix: str, records: Sequence[SimRecord], rate: float) -> None:
    """Write ``records`` at ``rate`` per second and wait until they are all acknowledged."""
    feeder = Feeder(settings, prefix, records, rate)
    feeder.start()
    deadline = time.monotonic() + len(records) / rate + 120
    while feeder.fed < len(records) and feeder.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert feeder.stop_feeding() == len(records)


def drain(
    deployment: Deployment, expected_pnl: dict[str, AccountPnL], timeout_s: float
) -> list[str]:
    """Wait until every service has committed its input to the end, then for the final P&L.

    Returns what did not get there in time (empty: all of it did); what is missing then
    shows up in the comparison too.
    """
    deadline = time.monotonic() + timeout_s
    while (behind := deployment.behind()) and time.monotonic() < deadline:
        time.sleep(1.0)
    if behind:
        return [f"{s} did not consume its input within {timeout_s:g}s" for s in behind]
    deadline = time.monotonic() + 60  # the throttled P&L follows within a second or so
    while time.monotonic() < deadline:
        seen = last_by_key(read_all(deployment.settings, deployment.prefix + "pnl"), AccountPnL)
        if seen == expected_pnl:
            return []
        time.sleep(1.0)
    return ["the P&L did not reach the reference model's final values within 60s"]
