"""FIX interop: QuickFIX/J (Java, from Maven Central) as the initiator, our gateway the acceptor.

The initiator (tests/support/fix_initiator, built with ``mvn -q package`` on first use)
sends the rows of a plan at a steady rate; the gateway runs as ``tradeflux gateway`` in a
process of its own, writing to a topic of this test.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import REPO, create_topics, read_all, wait_for
from tradeflux.config import Settings
from tradeflux.domain.schemas import TradeEvent
from tradeflux.gateway.fix import FAULT_KILL_AFTER_TRADES

pytestmark = pytest.mark.integration

INITIATOR = REPO / "tests" / "support" / "fix_initiator"
JAR = INITIATOR / "target" / "fix-initiator.jar"
ISINS = ["DE0007164600", "DE0007236101", "US0378331005", "GB0002634946", "FR0000120271"]


@dataclass(frozen=True)
class PlanRow:
    """One FIX message the initiator sends (the CSV columns DropCopySender reads)."""

    msg_type: str  # 8 ExecutionReport, AE TradeCaptureReport
    exec_type: str  # F fill / new report, G correct / replace, H cancel; 0 an order ack
    exec_id: str  # ExecID, or TradeReportID of an AE
    exec_ref_id: str  # ExecRefID, or TradeReportRefID of an AE: the trade's first id
    order_id: str
    account: str
    security_id: str
    symbol: str
    side: str
    qty: str
    px: str
    currency: str
    last_mkt: str
    contra: str
    transact_time: str

    @property
    def trade_id(self) -> str:
        return self.exec_ref_id or self.exec_id

    @property
    def event_type(self) -> str:
        return {"F": "NEW", "G": "AMEND", "H": "CANCEL"}[self.exec_type]


def write_plan(rows: list[PlanRow], path: Path) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(PlanRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return path


def fill(rng: random.Random, exec_id: str, msg_type: str = "8", account: str = "") -> PlanRow:
    second = rng.randrange(0, 3600)
    return PlanRow(
        msg_type=msg_type,
        exec_type="F",
        exec_id=exec_id,
        exec_ref_id="",
        order_id="O-" + exec_id,
        account=account or f"ACC-{rng.randrange(1, 6)}",
        security_id=rng.choice(ISINS),
        symbol="SYM",
        side=rng.choice("12"),
        qty=str(rng.randrange(1, 50) * 100),
        px=f"{rng.randrange(1000, 50000) / 100:.2f}",
        currency="EUR",
        last_mkt="XETR",
        contra=f"CP-{rng.randrange(1, 4)}",
        transact_time=f"20261124-{9 + second // 3600:02d}:{second // 60 % 60:02d}:"
        f"{second % 60:02d}.{rng.randrange(1000):03d}",
    )


def change(rng: random.Random, of: PlanRow, exec_type: str, exec_id: str) -> PlanRow:
    """A correction (new quantity and price) or a cancel of the trade ``of``."""
    if exec_type == "H":
        return PlanRow(**{**asdict(of), "exec_type": "H", "exec_id": exec_id,
                          "exec_ref_id": of.trade_id})  # fmt: skip
    return PlanRow(
        **{
            **asdict(of),
            "exec_type": "G",
            "exec_id": exec_id,
            "exec_ref_id": of.trade_id,
            "qty": str(rng.randrange(1, 50) * 100),
            "px": f"{rng.randrange(1000, 50000) / 100:.2f}",
        }
    )


def drop_copy_plan(fills: int = 700, seed: int = 7) -> list[PlanRow]:
    """Fills, 250 corrections (50 trades corrected twice) and 100 cancels (30 after a
    correction), each change sent 15 fills after the fill it changes: 1,050 messages."""
    rng = random.Random(seed)
    trades = [fill(rng, f"E-{i:04d}") for i in range(fills)]
    corrected = rng.sample(range(fills), 200)
    changes: dict[int, list[str]] = defaultdict(list)
    for n, i in enumerate(corrected):
        changes[i] += ["G", "G"] if n < 50 else ["G"]
    cancelled = corrected[:30] + rng.sample(sorted(set(range(fills)) - set(corrected)), 70)
    for i in cancelled:
        changes[i].append("H")
    rows: list[PlanRow] = []
    latest = list(trades)
    for k in range(fills + 15):
        if k < fills:
            rows.append(trades[k])
        j = k - 15
        for n, exec_type in enumerate(changes.get(j, [])):
            latest[j] = change(rng, latest[j], exec_type, f"{exec_type}-{j:04d}-{n}")
            rows.append(latest[j])
    return rows


def expected_event(row: PlanRow) -> dict[str, Any]:
    """The fields of the TradeEvent a plan row must become (all but version and times)."""
    return {
        "event_type": row.event_type,
        "trade_id": row.trade_id,
        "account": row.account,
        "instrument": row.security_id,
        "side": "BUY" if row.side == "1" else "SELL",
        "quantity": Decimal(row.qty),
        "price": Decimal(row.px),
        "currency": row.currency,
        "venue": row.last_mkt,
        "counterparty": row.contra,
        "trade_time": dt.datetime.strptime(row.transact_time, "%Y%m%d-%H:%M:%S.%f").replace(
            tzinfo=dt.UTC
        ),
        "source": "fix",
        "order_id": "",  # the plans send no ClOrdID
        "allocation": None,
    }


def as_expected(event: TradeEvent) -> dict[str, Any]:
    fields = msgspec.structs.asdict(event)
    return {k: v for k, v in fields.items() if k not in ("version", "ingest_time")}


# Processes --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def initiator_jar() -> Path:
    """Build the QuickFIX/J initiator once (again only when its sources changed)."""
    if shutil.which("mvn") is None:
        pytest.fail("the FIX interop test needs Maven (mvn) to build QuickFIX/J's initiator")
    sources = [INITIATOR / "pom.xml", *INITIATOR.glob("src/**/*.java")]
    if not JAR.exists() or JAR.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        subprocess.run(["mvn", "-q", "-B", "package"], cwd=INITIATOR, check=True, timeout=600)
    return JAR


class GatewayProcess:
    """``tradeflux gateway`` on fixed ports and runtime folder, its log in a file."""

    def __init__(
        self,
        settings: Settings,
        prefix: str,
        fix_port: int,
        http_port: int,
        folder: Path,
        *args: str,
        **env_extra: str,
    ) -> None:
        self.url = f"http://127.0.0.1:{http_port}"
        self.log_path = folder / f"gateway-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "TRADEFLUX_BOOTSTRAP": settings.bootstrap,
            **env_extra,
        }
        cmd = [
            sys.executable, "-m", "tradeflux.cli", "--auth", "none", "gateway", "--prefix", prefix,
            "--fix-port", str(fix_port), "--http-port", str(http_port),
            "--runtime-dir", str(folder / "runtime"), *args,
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for(self.health, 60, f"the gateway's /healthz (log {self.log_path})")

    def health(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the gateway exited: {self.log()}")
        try:
            response = httpx.get(f"{self.url}/healthz", timeout=2)
        except httpx.TransportError:
            return None
        return response.json() if response.status_code == 200 else None

    def fix(self) -> dict[str, Any]:
        health = self.health()
        assert health is not None
        return health["fix"]  # type: ignore[no-any-return]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


class InitiatorProcess:
    """QuickFIX/J's DropCopySender sending a plan; ``stop`` logs it out."""

    def __init__(
        self, jar: Path, fix_port: int, plan: Path, rate: float, folder: Path, **env: str
    ) -> None:
        """``env``: FIX_TLS_TRUSTSTORE (and FIX_TLS_KEYSTORE) for a TLS session."""
        self.out_path = folder / "initiator.out"
        self.err_path = folder / "initiator.err"
        cmd = [
            "java", "-jar", str(jar), "127.0.0.1", str(fix_port), "DROPCOPY", "TRADEFLUX",
            str(plan), str(rate), str(folder / "initiator"),
        ]  # fmt: skip
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=out, stderr=err, env={**os.environ, **env}
            )

    def lines(self) -> list[str]:
        return self.out_path.read_text(errors="replace").splitlines()

    def stop(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def raw_events(settings: Settings, topic: str) -> list[TradeEvent]:
    events = []
    for message in read_all(settings, topic):
        event = msgspec.json.decode(message.value(), type=TradeEvent)
        assert message.key() == event.trade_id.encode()
        events.append(event)
    return events


def count(lines: list[str], prefix: str) -> int:
    return sum(1 for line in lines if line.startswith(prefix))


# Tests ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.fault
@pytest.mark.parametrize("kill", ["from_outside", "right_after_kafka_ack"])
def test_execution_reports_arrive_exactly_once_across_a_gateway_sigkill(
    kafka: Settings, initiator_jar: Path, tmp_path: Path, kill: str
) -> None:
    """1,050 ExecutionReports (700 fills, 250 corrections, 100 cancels) from QuickFIX/J; the
    gateway is SIGKILLed after about 300 and restarted while the initiator goes on sending.

    ``from_outside``: the test SIGKILLs the gateway once 300 trades went through, wherever
    it is. ``right_after_kafka_ack``: the gateway SIGKILLs itself right after Kafka
    acknowledged the 300th trade, before the engine stored its sequence number (fault
    injection), the one window where a message is in Kafka but not acknowledged to FIX.

    Asserted, precisely:
    - every message of the plan is one (trade_id, version) in trades.raw, and there are no
      other (trade_id, version) pairs: nothing lost, nothing written under a second version;
    - each trade's versions are 1 for its fill, then rise in the order its corrections and
      cancel were sent, and each event carries exactly the fields of its message;
    - a (trade_id, version) with more than one record holds only exact resends (equal in
      every field but ingest_time), and there is at most one such extra record: the one
      message that can be in Kafka but not yet acknowledged in the engine's store when the
      gateway dies; with ``right_after_kafka_ack`` exactly one: the 300th message;
    - the resend path ran: the restarted gateway sent a ResendRequest and received
      PossDupFlag=Y messages (at least one, at most as many as QuickFIX/J resent); with
      ``right_after_kafka_ack`` the 300th message is among them.
    """
    prefix = unique("gwfix") + "."
    topic = prefix + "trades.raw"
    create_topics(kafka, {topic: 6})
    plan = drop_copy_plan()
    assert len(plan) == 1050
    base = free_port_block(3)  # one block: separate draws could return the same port
    fix_port, http_port = base, base + 2
    fault = {FAULT_KILL_AFTER_TRADES: "300"} if kill == "right_after_kafka_ack" else {}
    first = GatewayProcess(kafka, prefix, fix_port, http_port, tmp_path, **fault)
    initiator = InitiatorProcess(
        initiator_jar, fix_port, write_plan(plan, tmp_path / "plan.csv"), 150, tmp_path
    )
    second = None
    try:
        if fault:
            assert first.proc.wait(timeout=120) == -signal.SIGKILL
        else:
            wait_for(lambda: first.fix()["trades"] >= 300, 120, "300 trades through the gateway")
            first.kill()
        # The initiator goes on sending into its store while nobody listens (unless a slow
        # gateway let it send everything before: then its unprocessed tail is the gap).
        wait_for(
            lambda: any("session_up=false" in s or "ALL_SENT" in s for s in initiator.lines()),
            60,
            "the initiator to send 100 messages while the gateway is down",
        )
        second = GatewayProcess(kafka, prefix, fix_port, http_port, tmp_path)

        def all_versions() -> bool:
            return len({(e.trade_id, e.version) for e in raw_events(kafka, topic)}) >= len(plan)

        wait_for(all_versions, 180, "every message in trades.raw", every_s=1.0)
        assert initiator.stop() == 0
        fix_counters = second.fix()
        assert second.terminate() == 0
    finally:
        initiator.kill()
        for gateway in (first, second):
            if gateway is not None and gateway.proc.poll() is None:
                gateway.kill()

    events = raw_events(kafka, topic)
    by_version: dict[tuple[str, int], list[TradeEvent]] = defaultdict(list)
    for event in events:
        by_version[(event.trade_id, event.version)].append(event)
    assert len(by_version) == len(plan)
    extra = len(events) - len(by_version)
    assert extra <= 1, f"{extra} records beyond one per (trade_id, version)"
    for copies in by_version.values():
        assert all(as_expected(c) == as_expected(copies[0]) for c in copies)
    if fault:
        resent_in_kafka = [copies for copies in by_version.values() if len(copies) > 1]
        assert len(resent_in_kafka) == 1 and len(resent_in_kafka[0]) == 2
        assert as_expected(resent_in_kafka[0][0]) == expected_event(plan[299])

    sent_per_trade: dict[str, list[PlanRow]] = defaultdict(list)
    for row in plan:
        sent_per_trade[row.trade_id].append(row)
    got_per_trade: dict[str, list[TradeEvent]] = defaultdict(list)
    for (trade_id, _version), copies in sorted(by_version.items()):
        got_per_trade[trade_id].append(copies[0])
    assert sorted(got_per_trade) == sorted(sent_per_trade)
    for trade_id, rows in sent_per_trade.items():
        got = got_per_trade[trade_id]  # ordered by version
        assert [as_expected(e) for e in got] == [expected_event(r) for r in rows], trade_id
        assert got[0].version == 1

    initiator_lines = initiator.lines()
    resent = count(initiator_lines, "POSSDUP_SENT ")
    assert resent > 0
    assert count(initiator_lines, "RESEND_REQUEST ") >= 1
    assert "fix resend request sent" in second.log()
    # The engine drops a PossDup copy of a message it has (it may have received the
    # original just before the resend): such copies are resent, not received.
    received_again = second.log().count("poss_dup=Y")
    assert 0 < received_again == fix_counters["poss_dup"] <= resent
    if fault:  # the 300th message (MsgSeqNum 301; the Logon is 1) is the one resent first
        assert "seq=301 msg_type=8 poss_dup=Y" in second.log()
    assert "poss_dup=Y" not in first.log()
    print(
        f"\nFIX, SIGKILL {kill}: {len(events)} records for {len(plan)} messages ({extra} exact "
        f"resend(s) in Kafka), {resent} PossDup resends after the restart, {received_again} "
        "received"
    )


@pytest.mark.slow  # builds and starts the Java initiator
def test_trade_capture_reports_order_acks_and_a_refused_fill(
    kafka: Settings, initiator_jar: Path, tmp_path: Path
) -> None:
    """TradeCaptureReports new/replace/cancel become NEW/AMEND/CANCEL; an order ack is no
    trade; a fill without Account gets a BusinessMessageReject naming tag 1 and no record."""
    prefix = unique("gwfix") + "."
    topic = prefix + "trades.raw"
    create_topics(kafka, {topic: 2})
    rng = random.Random(3)
    report = fill(rng, "TR-1", msg_type="AE")
    plan = [
        report,  # seq 2 (the Logon is 1)
        change(rng, report, "G", "TR-2"),
        change(rng, report, "H", "TR-3"),
        PlanRow(**{**asdict(fill(rng, "ACK-1")), "exec_type": "0"}),  # an order ack
        fill(rng, "E-1"),
        PlanRow(**{**asdict(fill(rng, "E-2")), "account": ""}),  # seq 7: no Account
        fill(rng, "E-3"),
    ]
    base = free_port_block(3)  # one block: separate draws could return the same port
    fix_port, http_port = base, base + 2
    gateway = GatewayProcess(kafka, prefix, fix_port, http_port, tmp_path)
    initiator = InitiatorProcess(
        initiator_jar, fix_port, write_plan(plan, tmp_path / "plan.csv"), 100, tmp_path
    )
    try:
        # "received" counts a message on arrival, "trades" once Kafka acknowledged it:
        # wait until every message is accounted for, not only received.
        counters = wait_for(
            lambda: (c := gateway.fix())["received"] == 7
            and c["trades"] + c["ignored"] + c["rejected"] == 7
            and c,
            60, "7 messages at the gateway, each accounted for",
        )  # fmt: skip
        assert initiator.stop() == 0
        assert gateway.terminate() == 0
    finally:
        initiator.kill()
        if gateway.proc.poll() is None:
            gateway.kill()
    assert {k: counters[k] for k in ("received", "trades", "ignored", "rejected")} == {
        "received": 7,
        "trades": 5,
        "ignored": 1,
        "rejected": 1,
    }
    events = sorted(raw_events(kafka, topic), key=lambda e: (e.trade_id, e.version))
    assert [(e.trade_id, e.event_type) for e in events] == [
        ("E-1", "NEW"),
        ("E-3", "NEW"),
        ("TR-1", "NEW"),
        ("TR-1", "AMEND"),
        ("TR-1", "CANCEL"),
    ]
    assert [as_expected(e) for e in events[2:]] == [expected_event(r) for r in plan[:3]]
    assert (
        "BUSINESS_REJECT ref_seq=7 reason=5 text=Conditionally Required Field Missing (1)"
        in initiator.lines()
    )
    assert "fix message is no valid trade; rejected" in gateway.log()


@pytest.mark.slow
@pytest.mark.fault
def test_nothing_is_acknowledged_while_kafka_is_down(
    kafka: Settings, initiator_jar: Path, tmp_path: Path
) -> None:
    """With Kafka unreachable the gateway keeps retrying and acknowledges nothing; stopped,
    it exits 75 without acknowledging; restarted against Kafka, it gets the messages again
    by resend and writes each exactly once."""
    prefix = unique("gwfix") + "."
    topic = prefix + "trades.raw"
    create_topics(kafka, {topic: 2})
    rng = random.Random(5)
    plan = [fill(rng, f"K-{i}") for i in range(3)]
    base = free_port_block(4)  # one block: separate draws could return the same port
    fix_port, http_port, nowhere = base, base + 2, f"127.0.0.1:{base + 3}"
    down = GatewayProcess(
        kafka, prefix, fix_port, http_port, tmp_path,
        TRADEFLUX_BOOTSTRAP=nowhere, TRADEFLUX_KAFKA_DELIVERY_TIMEOUT_MS="1500",
    )  # fmt: skip
    initiator = InitiatorProcess(
        initiator_jar, fix_port, write_plan(plan, tmp_path / "plan.csv"), 50, tmp_path
    )
    up = None
    try:
        wait_for(
            lambda: (
                "not acknowledged by Kafka; retrying" in down.log() and "attempt=2" in down.log()
            ),
            60,
            "the gateway to retry the first message",
        )
        assert down.fix()["trades"] == 0
        assert down.terminate() == 75
        assert "exiting without acknowledging it" in down.log()
        up = GatewayProcess(kafka, prefix, fix_port, http_port, tmp_path)
        wait_for(lambda: up.fix()["trades"] == 3, 60, "the 3 trades after the restart")
        assert initiator.stop() == 0
        assert up.terminate() == 0
    finally:
        initiator.kill()
        for gateway in (down, up):
            if gateway is not None and gateway.proc.poll() is None:
                gateway.kill()
    events = raw_events(kafka, topic)
    assert sorted((e.trade_id, e.version) for e in events) == [("K-0", 1), ("K-1", 1), ("K-2", 1)]
    assert sorted(map(as_expected, events), key=lambda e: e["trade_id"]) == [
        expected_event(row) for row in plan
    ]
    assert "seq=2 msg_type=8 poss_dup=Y" in up.log()
