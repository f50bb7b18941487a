"""Issue 11, "What must be shown" 1: fuzzed trade events, bytes and reference data through
the pipeline on the real broker, the services as processes.

Validator, positions, P&L, risk, repartition, analytics and settlement run as processes
(tests/support/flow.py), with the HTTP gateway (auth off, loopback). The extreme reference
data of tests/fuzz/refdata.py is in its topics before they start (and sent again while the
trades flow); then hypothesis draws ``TRADEFLUX_FUZZ_EXAMPLES`` cases (tests/fuzz/cases.py,
a fixed seed) and sends each through the gateway's HTTP, straight into ``trades.raw`` with
a Kafka producer, or both. A control account trades steadily all along on the same (only)
partition. Afterwards:

- every process is alive and every service has committed its input to the end;
- every record of ``trades.raw`` is exactly one of enriched, rejected or dropped
  duplicate, and no stage after the validator dead-lettered anything;
- the control account's P&L advanced while the bad records flowed, and ends exact;
- every trade beyond its account's single-trade limit raised a breach (one surely does);
- the gateway never answered 5xx, every error body is JSON, and each trade event got the
  answer tests/fuzz/answers.py derives from the rules.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.fuzz import refdata
from tests.fuzz.answers import gateway_problems
from tests.fuzz.cases import BytesCase, TradeCase, cases
from tests.support.flow import (
    INPUT_OF,
    Flow,
    assert_conserved,
    produce,
    read_ledger,
    running_flow,
)
from tests.support.kafka_tools import caught_up, producer, read_all, wait_for
from tests.support.pipeline import REFDATA_DIR
from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.bounds import refdata_problems
from tradeflux.domain.codes import RejectReason
from tradeflux.domain.refdata import refdata_key
from tradeflux.domain.schemas import AccountPnL, Limits, RiskAlert
from tradeflux.sim.refdata import load_refdata, read_structs

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("TRADEFLUX_FUZZ_EXAMPLES", "600"))
"""How many cases hypothesis draws (the CI default fits the test in about 3 minutes)."""
SEED = int(os.environ.get("TRADEFLUX_FUZZ_SEED", "112026"))
"""The hypothesis seed: fixed, so that CI sends the same cases every run."""
SERVICES = ["validator", "positions", "pnl", "risk", "repartition", "analytics", "settlement"]
CONTROL_EVERY_S = 0.1
"""The pace of the control account's trades (a steady stream, not a synchronisation)."""
CONTROL_PRICE = Decimal("11.00")  # below the control mark 12.00: each trade adds 1.00
BREACH_TRADE = "FZ-BREACH-1"
ENCODE = msgspec.json.Encoder(decimal_format="string").encode
CENT = Decimal("0.01")
ERROR_STATUSES = {400, 413, 415, 422}
REJECT_REASONS = {str(r) for r in RejectReason}
LATER_DEAD_LETTERS = {("settlement", "SETTLEMENT_DATE_EXPIRED")}
"""The only dead letters a stage after the validator may write: a business rule's (an
event of a settlement date already dropped needs a person, docs/domain-rules.md); a
runtime reason (a processor, encode, produce or timer error) is a bug."""

EXTREMES = [
    *refdata.INSTRUMENTS, *refdata.ACCOUNTS, *refdata.COUNTERPARTIES, *refdata.LIMITS,
    *refdata.PRICES, *refdata.FX_RATES,
]  # fmt: skip
TOPIC_OF = {
    "Instrument": topics.INSTRUMENTS.name, "Account": topics.ACCOUNTS.name,
    "Counterparty": topics.COUNTERPARTIES.name, "Limits": topics.LIMITS.name,
    "Price": topics.PRICES.name, "FxRate": topics.FX.name,
}  # fmt: skip


def test_extreme_reference_data_is_labelled_as_the_domain_checks_it() -> None:
    wrong = [
        (refdata_key(e.record), e.why, refdata_problems(e.record))
        for e in EXTREMES
        if e.valid != (not refdata_problems(e.record))
    ]
    assert wrong == []


def send_refdata(settings: Settings, prefix: str) -> None:
    """Produce every extreme reference record, and the junk, to their topics."""
    by_topic: dict[str, list[tuple[bytes | None, Any]]] = {}
    for e in EXTREMES:
        topic = prefix + TOPIC_OF[type(e.record).__name__]
        by_topic.setdefault(topic, []).append((refdata_key(e.record).encode(), e.record))
    for name, junk in refdata.JUNK.items():
        by_topic.setdefault(prefix + name, []).append((b"FZ-JUNK", junk))
    for topic, records in by_topic.items():
        produce(settings, topic, records)


def control_event(i: int, now: dt.datetime) -> dict[str, Any]:
    """The i-th trade of the control account: BUY 1 at 11.00, a second old."""
    return {
        "event_type": "NEW", "trade_id": f"CTRL-T{i}", "version": 1,
        "account": refdata.CONTROL_ACCOUNT, "instrument": refdata.CONTROL_INSTRUMENT,
        "side": "BUY", "quantity": "1", "price": str(CONTROL_PRICE), "currency": "USD",
        "venue": "XNYS", "counterparty": "CP-001",
        "trade_time": (now - dt.timedelta(seconds=1)).isoformat(),
    }  # fmt: skip


class ControlFeed:
    """A thread that sends the control account's trades into trades.raw at a steady pace."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.sent = 0
        self._settings, self._topic = settings, topic
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="control-feed", daemon=True)

    def __enter__(self) -> ControlFeed:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending (every trade sent is acknowledged); re-raise the thread's error."""
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the control feed did not stop"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            prod = producer(self._settings)
            while not self._stop.is_set():
                event = control_event(self.sent, dt.datetime.now(dt.UTC))
                prod.produce(self._topic, ENCODE(event), event["trade_id"].encode())
                assert prod.flush(30) == 0, "a control trade was not acknowledged"
                self.sent += 1
                self._stop.wait(CONTROL_EVERY_S)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread by stop()
            self._error = exc


@dataclass
class Answer:
    """A case sent through the gateway and what it answered."""

    case: TradeCase | BytesCase
    status: int
    body: Any


@dataclass
class Sender:
    """Sends each case by its route; keeps the gateway's answers."""

    flow: Flow
    answers: list[Answer] = field(default_factory=list)
    raw_sent: int = 0

    def __post_init__(self) -> None:
        self._producer = producer(self.flow.settings)
        self._raw = self.flow.topic(topics.RAW.name)

    def send(self, case: TradeCase | BytesCase) -> None:
        """Send ``case`` through HTTP and/or into trades.raw, checking the gateway's answer."""
        if case.route in ("http", "both"):
            self._post(case)
        if case.route in ("raw", "both"):
            now_ms = int(time.time() * 1000)
            now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
            value = case.encode(now) if isinstance(case, TradeCase) else case.body
            self._producer.produce(self._raw, value, _key(case), timestamp=now_ms)
            self._producer.poll(0)
            self.raw_sent += 1

    def flush(self) -> None:
        """Wait until every record sent into trades.raw is acknowledged."""
        assert self._producer.flush(60) == 0, "a fuzzed record was not acknowledged"

    def _post(self, case: TradeCase | BytesCase) -> None:
        written_at = dt.datetime.now(dt.UTC)
        if isinstance(case, TradeCase):
            body = case.encode(written_at)
            body = b"[" + body + b"]" if case.as_list else body
        else:
            body = case.body
        response = self.flow.post(body)
        answered_at = dt.datetime.now(dt.UTC)
        assert response.status_code < 500, f"{response.status_code}: {response.text[:2000]}"
        assert response.headers.get("content-type", "").startswith("application/json")
        answer = msgspec.json.decode(response.content)  # an error body is JSON, too
        self.answers.append(Answer(case, response.status_code, answer))
        if response.status_code != 202:
            assert response.status_code in ERROR_STATUSES, response.text[:2000]
            assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
        if isinstance(case, TradeCase):
            _assert_answer(case, written_at, answered_at, response.status_code, answer)
        else:
            assert response.status_code != 202 or _is_trade_list(body), answer


def _is_trade_list(body: bytes) -> bool:
    """Tell whether bytes drawn as "no trade event" happen to be an empty list of them."""
    return bool(msgspec.json.decode(body) == [])


def _key(case: TradeCase | BytesCase) -> bytes | None:
    if case.key == "none":
        return None
    if case.key == "other":
        return b"FZ-OTHER-KEY"
    if case.key == "not_utf8":
        return b"\xff\xfe\x00key"
    trade_id = case.fields.get("trade_id") if isinstance(case, TradeCase) else "FZ-T0"
    return str(trade_id).encode()


def _assert_answer(
    case: TradeCase, written_at: dt.datetime, answered_at: dt.datetime, status: int, body: Any
) -> None:
    """The gateway refuses exactly the fields the rules say (a time on the edge of its window
    may fall either side between writing the request and its answer)."""
    possible = {gateway_problems(case, written_at, t) for t in (written_at, answered_at)}
    if status == 202:
        assert any(not r.fields for r in possible), (body, possible)
        assert body == {"accepted": 1}
        return
    assert status == 422, body
    errors = body["errors"]
    named = frozenset(e["field"] for e in errors)
    matching = [r for r in possible if r.fields and r.fields == named]
    assert matching, (errors, possible)
    assert body["error_count"] == len(errors) and {e["index"] for e in errors} == {0}
    if all(r.bounds for r in matching):
        assert all(e.get("bound") for e in errors), errors


def fuzz(sender: Sender, resend_refdata_at: int) -> None:
    """Draw the cases (a fixed seed, no shrinking: each case is sent once) and send them."""
    drawn = 0

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES, database=None, deadline=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck), print_blob=False,
    )  # fmt: skip
    @given(cases)
    def send_one(case: TradeCase | BytesCase) -> None:
        nonlocal drawn
        drawn += 1
        if drawn == resend_refdata_at:  # the global tables take updates while trades flow
            send_refdata(sender.flow.settings, sender.flow.prefix)
        sender.send(case)

    send_one()
    sender.flush()


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def single_trade_limits() -> dict[str, tuple[str, Decimal]]:
    """account -> (base currency, single-trade limit) of every account with valid limits."""
    base = {a.account_id: a.base_currency for a in load_refdata(REFDATA_DIR).accounts}
    base |= {e.record.account_id: e.record.base_currency for e in refdata.ACCOUNTS if e.valid}
    limits = {x.account_id: x for x in read_structs(REFDATA_DIR / "limits.csv", Limits)}
    limits |= {e.record.account_id: e.record for e in refdata.LIMITS}
    valid = {
        k: v for k, v in limits.items() if not refdata_problems(v) and isinstance(base.get(k), str)
    }
    return {k: (base[k], v.single_trade_notional) for k, v in valid.items()}


@pytest.mark.slow
@pytest.mark.integration
def test_fuzzed_records_never_stop_the_pipeline(kafka: Settings, tmp_path: Path) -> None:
    env = {"TRADEFLUX_PNL_THROTTLE_MS": "0"}
    with running_flow(
        kafka, tmp_path, SERVICES, partitions=1, env=env,
        seed=lambda prefix: send_refdata(kafka, prefix), name="fuzz",
    ) as flow:  # fmt: skip
        raw = flow.topic(topics.RAW.name)
        sender = Sender(flow)
        with ControlFeed(kafka, raw) as control:
            wait_for(lambda: _control_pnl(flow), 120, "the control account's first P&L")
            # A trade far beyond its account's single-trade limit (250,000 USD).
            breach = control_event(0, dt.datetime.now(dt.UTC)) | {
                "trade_id": BREACH_TRADE, "account": refdata.LIMITED_ACCOUNT,
                "quantity": "100000", "price": "10.00",
            }  # fmt: skip
            answer = flow.post(ENCODE(breach))
            assert answer.status_code == 202, answer.text
            produce(kafka, raw, [(BREACH_TRADE.encode(), ENCODE(breach))])  # a duplicate
            fuzz_start = time.time()
            fuzz(sender, resend_refdata_at=EXAMPLES // 2)
            fuzz_sent = time.time()
            # Control trades k+1 and on are in trades.raw after every fuzzed record: once the
            # P&L counts them, every bad record went through validator, positions and P&L.
            after = Decimal(control.sent + 2)
            wait_for(
                lambda: _control_pnl(flow)[-1][1][1] >= after, 180,
                "the control P&L to count a trade sent after the fuzzed records",
            )  # fmt: skip
            fuzz_end = time.time()
            control.stop()
        wait_for(lambda: _every_service_caught_up(flow), 180, "every service to catch up", 0.5)
        validator_events = flow.events("validator")
        history = _control_pnl(flow)
        flow.assert_running()

    statuses = Counter(a.status for a in sender.answers)
    print(  # shown when the test fails, and with -rP
        f"fuzz: {EXAMPLES} cases (seed {SEED}) in {fuzz_sent - fuzz_start:.1f} s, through "
        f"every service in {fuzz_end - fuzz_start:.1f} s; {sender.raw_sent} into trades.raw, "
        f"HTTP answers {dict(sorted(statuses.items()))}; {control.sent} control trades"
    )
    logged = {
        name: [line for line in proc.log().splitlines() if _is_error(line)]
        for name, proc in flow.procs.items()
    }
    assert {k: v for k, v in logged.items() if v} == {}, "a process logged an error"
    ledger = read_ledger(kafka, flow.prefix)
    counts = assert_conserved(ledger, validator_events)
    print(f"fuzz: {counts}, reasons {Counter(x.reason for x in ledger.rejects.values())}")
    runtime = [
        (x.key, x.reason, x.headers.get("tf.error"))
        for x in ledger.rejects.values()
        if x.reason not in REJECT_REASONS and not (x.reason == "decode_error" and _not_utf8(x.key))
    ]
    assert runtime == [], "the validator's runtime dead-lettered records (not a rule's reject)"
    later = [(x.headers.get("tf.stage"), x.reason) for x in ledger.other_dead_letters]
    assert set(later) <= LATER_DEAD_LETTERS, f"a stage after the validator dead-lettered {later}"
    accepted = sum(a.body.get("accepted", 0) for a in sender.answers if a.status == 202)
    assert counts["raw"] == sender.raw_sent + accepted + 2 + control.sent
    assert counts["duplicates"] >= 1, counts

    # The control account: only its own trades, all of them in its P&L, which moved all along.
    controls = {e.trade_id for _, e in ledger.enriched if e.account == refdata.CONTROL_ACCOUNT}
    assert controls == {f"CTRL-T{i}" for i in range(control.sent)}
    assert history[-1][1] == (Decimal("0.00"), to_cents(Decimal(control.sent)), 1)
    during = [pnl for t, pnl in history if fuzz_start <= t <= fuzz_end]
    values = [unrealized for _, unrealized, _ in during]
    assert values == sorted(values), "the control account's P&L went back"
    assert len(set(values)) >= 3, (
        f"the control P&L took {len(set(values))} values while the bad records flowed "
        f"({fuzz_sent - fuzz_start:.1f} s of sending, {fuzz_end - fuzz_start:.1f} s in all)"
    )

    # Every trade beyond its account's single-trade limit raised its breach.
    alerts = [
        msgspec.json.decode(m.value(), type=RiskAlert)
        for m in read_all(kafka, flow.topic(topics.ALERTS.name))
    ]
    breaches = {
        (a.account, a.trade_id, a.value)
        for a in alerts
        if a.status == "BREACHED" and a.limit == "single_trade_notional"
    }
    limits = single_trade_limits()
    expected = {
        (e.account, e.trade_id, to_cents(abs(e.notional)))
        for _, e in ledger.enriched
        if e.event_type != "CANCEL"
        and e.account in limits
        and e.currency == limits[e.account][0]  # no FX: the figure is the notional
        and to_cents(abs(e.notional)) > limits[e.account][1]
    }
    assert (refdata.LIMITED_ACCOUNT, BREACH_TRADE, Decimal("1000000.00")) in expected
    assert expected <= breaches, sorted(expected - breaches)

    # The services after them worked on the same flow: the control's position, bars, netting.
    outputs = {
        name: {m.key().decode() for m in read_all(kafka, flow.topic(name))}
        for name in (topics.POSITIONS.name, topics.BARS.name, topics.OBLIGATIONS.name)
    }
    control_key = f"{refdata.CONTROL_ACCOUNT}|{refdata.CONTROL_INSTRUMENT}"
    assert control_key in outputs[topics.POSITIONS.name]
    assert any(k.startswith(refdata.CONTROL_INSTRUMENT) for k in outputs[topics.BARS.name])
    assert any(k.startswith("CP-001|USD|") for k in outputs[topics.OBLIGATIONS.name])


def read_committed_to_end(settings: Settings, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Read a one-partition topic read_committed up to its end as it is now.

    ``read_all`` waits for the consumer's end-of-partition event, which a topic that a
    service writes in a transaction every few milliseconds may not give for a long time;
    this also stops once the position passes the end offset taken at the start (the
    transaction open then commits or aborts within a batch).
    """
    consumer = Consumer(
        settings.client_config(
            **{
                "group.id": f"fuzz-reader-{time.monotonic_ns()}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
    )
    try:
        part = TopicPartition(topic, 0, 0)
        end = consumer.get_watermark_offsets(part, timeout=10)[1]
        consumer.assign([part])
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        eof = False
        while not eof and consumer.position([TopicPartition(topic, 0)])[0].offset < end:
            for msg in consumer.consume(10000, 0.2):
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    eof = True
                    continue
                assert error is None, f"reading {topic}: {error}"
                out.append(msg)
            assert time.monotonic() < deadline, f"reading {topic} to {end} took {timeout_s}s"
        return out
    finally:
        consumer.close()


def _every_service_caught_up(flow: Flow) -> bool:
    """Tell whether every service of SERVICES has committed its input to the end (and every
    process is alive): one never started, or stuck, is not."""
    flow.assert_running()
    return all(
        caught_up(flow.settings, flow.topic(name), flow.topic(INPUT_OF[name])) for name in SERVICES
    )


def _not_utf8(key: bytes | None) -> bool:
    try:
        (key or b"").decode()
    except UnicodeDecodeError:
        return True
    return False


def _is_error(line: str) -> bool:
    return "level=ERROR" in line or "level=CRITICAL" in line or line.startswith("Traceback")


def _control_pnl(flow: Flow) -> list[tuple[float, tuple[Decimal, Decimal, int]]]:
    """The control account's P&L records: (time written, (realized, unrealized, positions))."""
    flow.assert_running()
    decoder = msgspec.json.Decoder(AccountPnL)
    out = []
    for m in read_committed_to_end(flow.settings, flow.topic(topics.PNL.name)):
        if m.key() == refdata.CONTROL_ACCOUNT.encode():
            pnl = decoder.decode(m.value())
            out.append((m.timestamp()[1] / 1000, (pnl.realized, pnl.unrealized, pnl.positions)))
    return out
