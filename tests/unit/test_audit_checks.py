"""The audit's checks on in-memory records: the real services' outputs (TestDriver) audit
clean, and each seeded fault is reported exactly, at its key.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from typing import Any

import msgspec
import pytest

from tests.support.pipeline import REFDATA_DIR
from tests.support.reference import positions_from, run_reference
from tests.support.settlement import expected_obligations
from tradeflux.audit import conservation, folds, marks
from tradeflux.audit.cuts import Cut, Stage
from tradeflux.audit.logs import Rec, RecordLog
from tradeflux.audit.replay import ReplayError, parse_time
from tradeflux.audit.report import compare
from tradeflux.domain.schemas import AccountPnL, EnrichedTrade, Position, Price, RiskAlert
from tradeflux.services import repartition, validator
from tradeflux.sim.refdata import load_refdata
from tradeflux.sim.trades import TradeMix, generate_session
from tradeflux.stream.harness import Output, TestDriver

_ENCODE = msgspec.json.Encoder(decimal_format="string").encode
MIX = TradeMix(amend_rate=0.1, cancel_rate=0.05, duplicate_rate=0.05, malformed_rate=0.05)
T0 = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def _log(label: str, values: list[tuple[bytes | None, bytes | None]]) -> RecordLog:
    log = RecordLog(label, 1)
    for key, value in values:
        log.add(Rec(0, log.next_offsets[0], 0, key, value))
    return log


def _cut(stage: Stage, committed: int, ends: dict[str, int]) -> Cut:
    return Cut(stage, stage.name, {0: committed}, {t: {0: n} for t, n in ends.items()}, 1, T0)


VALIDATOR = Stage("validator", "trades.raw", ("trades.enriched",), "trades.rejected")
REPARTITION = Stage(
    "repartition", "trades.enriched", ("trades.by_instrument", "trades.by_counterparty"),
    "trades.rejected",
)  # fmt: skip


def _dead_letter(out: Output) -> Rec:
    headers = [(k, v.encode()) for k, v in out.headers.items()]
    return Rec(0, 0, 0, None if out.key is None else out.key.encode(), out.value, headers)


@cache
def _validated() -> tuple[RecordLog, list[Output]]:
    """A session's raw records, and what the validator's processor made of them."""
    ref = load_refdata(REFDATA_DIR)
    session = generate_session(  # one venue: its calendar is built once, quickly
        [i for i in ref.instruments if i.mic == "XNYS"], ref.accounts, ref.counterparties,
        count=400, rate_per_s=1000, seed=9, mix=MIX, start=T0,
    )  # fmt: skip
    tables = {
        "instruments": {i.instrument_id: i for i in ref.instruments},
        "accounts": {a.account_id: a for a in ref.accounts},
        "counterparties": {c.counterparty_id: c for c in ref.counterparties},
    }
    driver = TestDriver(validator.SERVICE, tables=tables)
    raw = RecordLog("trades.raw", 1)
    outputs: list[Output] = []
    for rec in session.records:  # one batch each: the validator's "now" is its timestamp
        raw.add(Rec(0, raw.next_offsets[0], rec.timestamp_ms, rec.key, rec.value))
        outputs += driver.send([(rec.key.decode(), rec.value)], timestamp_ms=rec.timestamp_ms)
    return raw, outputs


def _enriched() -> list[EnrichedTrade]:
    """The enriched events the validator made of the session, in order."""
    return [o.value for o in _validated()[1] if o.topic == "trades.enriched"]


def _validator_count(drop: int | None = None, change: int | None = None) -> Any:
    raw, outputs = _validated()
    enriched = RecordLog("trades.enriched", 1)
    rejected = RecordLog("trades.rejected", 1)
    n = 0
    for out in outputs:
        if out.topic == "trades.rejected":
            rec = _dead_letter(out)
            rejected.add(rec._replace(offset=rejected.next_offsets[0]))
            continue
        n += 1
        value = out.value
        if n == drop:
            continue
        if n == change:
            value = msgspec.structs.replace(value, quantity=value.quantity + 1)
        enriched.add(Rec(0, enriched.next_offsets[0], 0, b"k", _ENCODE(value)))
    cut = _cut(VALIDATOR, raw.next_offsets[0], {"trades.enriched": 10**6, "trades.rejected": 10**6})
    dead = conservation.stage_dead_letters(rejected, cut, raw, "trades.raw")
    return conservation.validator_count(cut, raw, enriched, dead), outputs


def test_validator_outputs_account_for_every_raw_record() -> None:
    count, outputs = _validator_count()
    ref = load_refdata(REFDATA_DIR)
    expected = run_reference(
        [(r.key, r.value, r.timestamp_ms) for r in _validated()[0].upto()],
        ref.instruments, ref.accounts, ref.counterparties,
    )  # fmt: skip
    assert count.differences == []
    assert (count.inputs, count.dead_letters, count.dropped) == (
        400, len(expected.rejected), expected.duplicates,
    )  # fmt: skip
    assert count.outputs == 400 - len(expected.rejected) - expected.duplicates
    assert expected.duplicates and expected.rejected
    assert sum(1 for o in outputs if o.topic == "trades.enriched") == len(expected.enriched)


def test_a_lost_enriched_event_is_its_raw_record_unexplained() -> None:
    _, outputs = _validator_count()
    lost = [o.value for o in outputs if o.topic == "trades.enriched"][4]
    count, _ = _validator_count(drop=5)
    assert [(d.expected, d.found) for d in count.differences] == [
        (f"an enriched {lost.event_type} or a dead letter", "none")
    ]
    assert count.differences[0].key.endswith(f"{lost.trade_id} v{lost.version} {lost.event_type}")
    assert (count.unexplained_inputs, count.unexplained_outputs) == (1, 0)


def test_an_enriched_event_that_changed_a_field_is_reported() -> None:
    _, outputs = _validator_count()
    changed = [o.value for o in outputs if o.topic == "trades.enriched"][2]
    count, _ = _validator_count(change=3)
    assert [(d.expected, d.found) for d in count.differences] == [
        ("the trade's fields as sent", f"quantity={changed.quantity + 1} (sent {changed.quantity})")
    ]


def test_dead_letters_beyond_the_cut_twice_or_of_another_topic_are_reported() -> None:
    raw = _log("trades.raw", [(b"T1", b"{}"), (b"T2", b"{}")])

    def headers(topic: str, offset: int) -> list[tuple[str, bytes]]:
        return [
            ("tf.stage", b"validator"), ("tf.reason", b"SCHEMA_INVALID"),
            ("tf.source.topic", topic.encode()), ("tf.source.partition", b"0"),
            ("tf.source.offset", str(offset).encode()),
        ]  # fmt: skip

    rejected = RecordLog("trades.rejected", 1)
    for topic, offset in (("trades.raw", 0), ("trades.raw", 0), ("trades.raw", 1), ("other", 1)):
        rejected.add(Rec(0, rejected.next_offsets[0], 0, None, b"x", headers(topic, offset)))
    cut = _cut(VALIDATOR, 1, {"trades.rejected": 4})
    dead = conservation.stage_dead_letters(rejected, cut, raw, "trades.raw")
    assert dead.offsets == {(0, 0)}
    assert [(d.key, d.expected, d.found) for d in dead.differences] == [
        ("trades.raw[0]@0", "one dead letter", "another at trades.rejected[0]@1"),
        ("trades.rejected[0]@2", "a source offset before the cut of validator", "trades.raw[0]@1"),
        ("trades.rejected[0]@3", "a dead letter of trades.raw", "source topic 'other'"),
    ]


def _repartitioned(events: list[EnrichedTrade]) -> tuple[RecordLog, RecordLog, RecordLog]:
    driver = TestDriver(repartition.SERVICE)
    enriched = RecordLog("trades.enriched", 1)
    by_instrument = RecordLog("trades.by_instrument", 1)
    by_cpty = RecordLog("trades.by_counterparty", 1)
    for event in events:
        value = _ENCODE(event)
        enriched.add(Rec(0, enriched.next_offsets[0], 0, event.account.encode(), value))
        for out in driver.send([(event.account, event)]):
            log = by_instrument if out.topic == "trades.by_instrument" else by_cpty
            log.add(Rec(0, log.next_offsets[0], 0, None, out.value))
    return enriched, by_instrument, by_cpty


def _repartition_count(logs: tuple[RecordLog, RecordLog, RecordLog]) -> Any:
    cut = _cut(REPARTITION, logs[0].next_offsets[0], {t.label: 10**6 for t in logs[1:]})
    return conservation.repartition_count(cut, *logs, conservation.DeadLetters())


def test_repartition_copies_and_counterparty_splits_account_for_every_input() -> None:
    events = _enriched()
    base = next(e for e in events if e.event_type == "NEW")
    moved = msgspec.structs.replace(base, event_type="AMEND", version=2, counterparty="CP-XYZ")
    logs = _repartitioned([*events, moved])
    assert logs[2].count() == len(events) + 2  # the move: a CANCEL and a NEW
    count = _repartition_count(logs)
    assert count.differences == []
    assert (count.inputs, count.outputs) == (len(events) + 1, len(events) + 1)
    logs[1].records[0].pop(7)  # a by_instrument copy lost
    count = _repartition_count(logs)
    assert [(d.key, d.expected) for d in count.differences] == [
        ("trades.enriched[0]@7", "a copy on trades.by_instrument")
    ]


def test_positions_fold_equals_the_reference_models() -> None:
    events = _enriched()
    recs = [Rec(0, i, 0, None, _ENCODE(e)) for i, e in enumerate(events)]
    expected, bad = folds.expected_positions(recs, set())
    assert bad == [] and expected == positions_from(events)
    expected, _ = folds.expected_positions(recs, {(0, 0)})  # a dead-lettered input is left out
    assert expected == positions_from(events[1:])


def test_obligations_netting_equals_an_independent_netting() -> None:
    events = _enriched()
    recs = [Rec(0, i, 0, None, _ENCODE(e)) for i, e in enumerate(events)]
    expected, bad = folds.expected_obligations(recs, set())
    assert bad == [] and expected == expected_obligations(events)


def _alert(status: str, value: int, limit: str = "gross_notional", account: str = "A1") -> bytes:
    return _ENCODE(
        RiskAlert(
            account=account, status=status, limit=limit, value=Decimal(value),  # type: ignore[arg-type]
            threshold=Decimal(100), trade_id="T1", time=T0, message="", base_currency="USD",
        )
    )  # fmt: skip


def test_alerts_out_of_turn_or_with_figures_against_their_status_are_reported() -> None:
    values = [
        _alert("BREACHED", 150), _alert("CLEARED", 90), _alert("BREACHED", 120),
        _alert("CLEARED", 50, account="A2"),  # cleared what was never breached
        _alert("BREACHED", 130), _alert("CLEARED", 110),  # breached twice; cleared while over
        _alert("BREACHED", 150, "single_trade_notional"), _alert("BREACHED", 50, "net_notional"),
    ]  # fmt: skip
    result = folds.check_alerts(_log("risk.alerts", [(b"A1", v) for v in values]), None)
    assert [(d.key, d.expected, d.found) for d in result.differences] == [
        ("risk.alerts[0]@3 A2 gross_notional", "BREACHED (after nothing)", "CLEARED"),
        ("risk.alerts[0]@4 A1 gross_notional", "CLEARED (after BREACHED)", "BREACHED"),
        ("risk.alerts[0]@5 A1 gross_notional", "a figure within the threshold", "110 vs 100"),
        ("risk.alerts[0]@7 A1 net_notional", "a figure over the threshold", "50 vs 100"),
    ]
    assert result.rows == [["8", "3", "1", "1", "4"]]


PRICE = Price(instrument_id="I1", bid=Decimal(10), ask=Decimal(10), last=Decimal(12), time=T0)
POSITION = Position(
    account="ACC-0001", instrument="I1", currency="USD", quantity=Decimal(10),
    avg_cost=Decimal(10), realized_pnl=Decimal(0),
)  # fmt: skip


def _pnl(unrealized: str) -> AccountPnL:
    amount = Decimal(unrealized)
    return AccountPnL(
        account="ACC-0001", base_currency="USD", realized=Decimal(0), unrealized=amount,
        total=amount, positions=1,
    )  # fmt: skip


def _pnl_result(shown: AccountPnL, pnl_ms: int, price_ms: int, live: bool) -> Any:
    """The P&L check of one account: 10 then 20 of I1 at 10, marked at 12 (+40 unrealized)."""
    stage = Stage("pnl", "positions", ("pnl",), "trades.rejected")
    positions = RecordLog("positions", 1)
    for n, qty in enumerate((10, 20)):
        held = msgspec.structs.replace(POSITION, quantity=Decimal(qty))
        positions.add(Rec(0, n, 100, b"ACC-0001|I1", _ENCODE(held)))
    pnl = RecordLog("pnl", 1)
    pnl.add(Rec(0, 0, pnl_ms, b"ACC-0001", _ENCODE(shown)))
    accounts = RecordLog("refdata.accounts", 1)
    accounts.add(Rec(0, 0, 0, b"ACC-0001", _ENCODE(load_refdata(REFDATA_DIR).accounts[0])))
    prices = RecordLog("marketdata.prices", 1)
    prices.add(Rec(0, 0, price_ms, b"I1", _ENCODE(PRICE)))
    fx = RecordLog("marketdata.fx", 1)
    cut = _cut(stage, 2, {"pnl": 1})
    return marks.check_pnl(cut, positions, pnl, set(), accounts, prices, fx, live)


def test_pnl_is_the_consumed_positions_marked() -> None:
    assert _pnl_result(_pnl("40.00"), 60_000, 300, live=False).differences == []
    at_rest = _pnl_result(_pnl("20.00"), 60_000, 300, live=False)  # the state before
    assert [(d.key, d.expected, d.found) for d in at_rest.differences] == [
        ("ACC-0001", "unrealized=40.00; total=40.00", "unrealized=20.00; total=20.00")
    ]


def test_a_late_pnl_is_pending_when_live_if_an_earlier_state_or_fresh_marks_explain_it() -> None:
    earlier = _pnl_result(_pnl("20.00"), 60_000, 300, live=True)  # right for the first record
    assert (earlier.differences, earlier.pending) == ([], 1)
    fresh_marks = _pnl_result(_pnl("7.00"), 60_000, 58_000, live=True)  # price 2 s before it
    assert (fresh_marks.differences, fresh_marks.pending) == ([], 1)
    wrong = _pnl_result(_pnl("7.00"), 60_000, 300, live=True)  # no state, no fresh mark
    assert ([d.key for d in wrong.differences], wrong.pending) == (["ACC-0001"], 0)


def test_compare_shows_only_the_fields_that_differ() -> None:
    other = msgspec.structs.replace(POSITION, quantity=Decimal(11), trade_count=3)
    diff = compare("k", POSITION, other)
    assert diff is not None
    assert (diff.expected, diff.found) == (
        "quantity=10; trade_count=0",
        "quantity=11; trade_count=3",
    )
    assert compare("k", POSITION, POSITION) is None
    missing = compare("k", POSITION, None)
    assert missing is not None and missing.found == "-"


def test_replay_times_take_a_zone_or_epoch_milliseconds() -> None:
    assert parse_time("2026-01-02T16:00:00Z") == 1767369600000
    assert parse_time("2026-01-02T17:00:00+01:00") == 1767369600000
    assert parse_time("1767369600000") == 1767369600000
    with pytest.raises(ReplayError, match="no time zone"):
        parse_time("2026-01-02T16:00:00")
    with pytest.raises(ReplayError, match="not a time"):
        parse_time("yesterday")


def test_the_audit_knows_every_shipped_service_by_its_definition() -> None:
    from tradeflux.audit.cuts import shipped_stages
    from tradeflux.services import SHIPPED

    stages = shipped_stages()
    assert len(stages) == len(SHIPPED)
    assert all(stage.outputs for stage in stages)
