"""The two poison records of issue 11 on the real broker, the services as processes.

(a) A NEW with ``version`` 2**70, once a validator crash loop (MessagePack cannot encode it).
(b) A NEW with ``quantity`` 1E+27, once a P&L timer rolling back forever and a risk dead
letter instead of a breach.

Each is sent through the gateway's HTTP (refused: 422 naming the bound) and straight into
``trades.raw`` (rejected by the validator: OUT_OF_BOUNDS, original bytes kept). A trade as
large as the field bounds allow (notional 1E+21, passing validation because the notional
bound is widened with ``TRADEFLUX_MAX_NOTIONAL``) and the 1E+27 trade produced straight to
``trades.enriched`` must then go on through positions, P&L and risk: a breach each, never a
dead letter, while the P&L of the other accounts keeps updating. One partition per topic, so
every account shares the partition of every bad record.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support.flow import Flow, assert_conserved, produce, read_ledger, running_flow
from tests.support.kafka_tools import read_all, wait_for
from tests.support.pipeline import last_by_key
from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.schemas import AccountPnL, Position, Price, RiskAlert

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
MARKS = {"HO.XNYS": Decimal("12.00"), "FA.XNYS": Decimal("21.00")}
WIDE_NOTIONAL = "*=1E+22"  # q * p of the largest trade the field bounds allow is ~1E+21


def trade(
    trade_id: str, account: str, side: str, qty: str, price: str, **kw: Any
) -> dict[str, Any]:
    """A NEW trade event of the sample reference data, as JSON would carry it."""
    return {
        "event_type": "NEW", "trade_id": trade_id, "version": 1, "account": account,
        "instrument": kw.pop("instrument", "HO.XNYS"), "side": side, "quantity": qty,
        "price": price, "currency": "USD", "venue": "XNYS", "counterparty": "CP-001",
        "trade_time": (NOW - dt.timedelta(minutes=1)).isoformat(), **kw,
    }  # fmt: skip


def raw_bytes(event: dict[str, Any]) -> bytes:
    # ints stay JSON integers (2**70 included), decimals are strings
    return msgspec.json.encode(event)


def seed_marks(settings: Settings) -> Any:
    def seed(prefix: str) -> None:
        marks = [
            Price(instrument_id=instrument, bid=last, ask=last, last=last, time=NOW)
            for instrument, last in MARKS.items()
        ]
        produce(
            settings, prefix + topics.PRICES.name, [(m.instrument_id.encode(), m) for m in marks]
        )

    return seed


def pnl_of(flow: Flow) -> dict[str, list[AccountPnL]]:
    decoder = msgspec.json.Decoder(AccountPnL)
    out: dict[str, list[AccountPnL]] = {}
    for m in read_all(flow.settings, flow.topic(topics.PNL.name)):
        out.setdefault(m.key().decode(), []).append(decoder.decode(m.value()))
    return out


def pnl_is(flow: Flow, account: str, realized: str, unrealized: str) -> bool:
    flow.assert_running()
    history = pnl_of(flow).get(account, [])
    return bool(history) and (history[-1].realized, history[-1].unrealized) == (
        Decimal(realized),
        Decimal(unrealized),
    )


def assert_refused(flow: Flow, event: dict[str, Any], field: str, bound: str) -> None:
    """The gateway answers 422 naming ``field`` and its bound; nothing is written."""
    answer = flow.post(raw_bytes(event))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid trade events; none was written"
    assert [(e["index"], e["field"], e["bound"]) for e in body["errors"]] == [(0, field, bound)]


def test_poison_records_are_refused_or_rejected_and_the_pipeline_keeps_flowing(
    kafka: Settings, tmp_path: Path
) -> None:
    env = {"TRADEFLUX_MAX_NOTIONAL": WIDE_NOTIONAL, "TRADEFLUX_PNL_THROTTLE_MS": "0"}
    services = ["validator", "positions", "pnl", "risk"]
    with running_flow(
        kafka, tmp_path, services, partitions=1, env=env, seed=seed_marks(kafka), name="poison"
    ) as flow:
        raw = flow.topic(topics.RAW.name)
        before = trade("G-1", "ACC-0001", "BUY", "100", "10.00")
        produce(kafka, raw, [(b"G-1", raw_bytes(before))])
        wait_for(lambda: pnl_is(flow, "ACC-0001", "0.00", "200.00"), 120, "ACC-0001's first P&L")

        # (a) version 2**70
        version = trade("P-VER", "ACC-0002", "BUY", "10", "10.00", version=2**70)
        assert_refused(flow, version, "version", "1 to 2**63-1")
        # (b) quantity 1E+27, lot-aligned
        quantity = trade("P-QTY", "ACC-0002", "BUY", "1E+27", "10.00")
        bound = "finite, |x| < 1E+12, at most 18 significant digits and 8 decimal places"
        assert_refused(flow, quantity, "quantity", bound)
        # ... straight into trades.raw, then the largest trade the field bounds allow
        biggest = trade("P-BIG", "ACC-0004", "BUY", "999999999999", "999999999.99")
        produce(kafka, raw, [
            (b"P-VER", raw_bytes(version)), (b"P-QTY", raw_bytes(quantity)),
            (b"P-BIG", raw_bytes(biggest)),
        ])  # fmt: skip
        # ... and 1E+27 past the validator, as a producer with write access could
        template = wait_for(
            lambda: [e for _, e in read_ledger(kafka, flow.prefix).enriched if e.trade_id == "G-1"],
            60, "G-1 enriched",
        )[0]  # fmt: skip
        huge = msgspec.structs.replace(
            template, trade_id="P-HUGE", account="ACC-0003", quantity=Decimal("1E+27"),
            notional=Decimal("1E+28"), ingest_time=NOW,
        )  # fmt: skip
        produce(kafka, flow.topic(topics.ENRICHED.name), [(b"ACC-0003", huge)])
        # Later trades, on the same (only) partition, go on through positions and P&L.
        after = [
            trade("G-2", "ACC-0002", "BUY", "50", "20.00", instrument="FA.XNYS"),
            trade("G-3", "ACC-0001", "SELL", "40", "11.00"),
        ]
        produce(kafka, raw, [(e["trade_id"].encode(), raw_bytes(e)) for e in after])
        wait_for(lambda: pnl_is(flow, "ACC-0001", "40.00", "120.00"), 120, "ACC-0001's P&L after")
        wait_for(lambda: pnl_is(flow, "ACC-0002", "0.00", "50.00"), 60, "ACC-0002's P&L")
        wait_for(
            lambda: pnl_is(flow, "ACC-0003", "0.00", "2000000000000000000000000000.00"),
            60, "the P&L of the 1E+27 position",
        )  # fmt: skip
        flow.wait_caught_up()
        validator_events = flow.events("validator")
        flow.assert_running()

    ledger = read_ledger(kafka, flow.prefix)
    counts = assert_conserved(ledger, validator_events)
    assert counts == {"raw": 6, "enriched": 4, "rejected": 2, "duplicates": 0}
    letters = ledger.rejected_in_raw_order()
    assert [(x.key, x.value) for x in letters] == [
        (b"P-VER", raw_bytes(version)), (b"P-QTY", raw_bytes(quantity))
    ]  # fmt: skip
    assert [x.reason for x in letters] == ["OUT_OF_BOUNDS", "OUT_OF_BOUNDS"]
    assert letters[0].detail == (f"version {2**70} is not in 1..2**63-1 (bound: 1 to 2**63-1)")
    assert letters[1].detail == f"quantity 1E+27 is not below 1E+12 in magnitude (bound: {bound})"
    assert ledger.other_dead_letters == [], "a stage after the validator dead-lettered a trade"

    positions = last_by_key(read_all(kafka, flow.topic(topics.POSITIONS.name)), Position)
    figures = {k: (p.quantity, p.avg_cost, p.realized_pnl) for k, p in positions.items()}
    assert figures == {
        "ACC-0001|HO.XNYS": (Decimal(60), Decimal("10.00"), Decimal("40.00")),
        "ACC-0002|FA.XNYS": (Decimal(50), Decimal("20.00"), Decimal(0)),
        "ACC-0003|HO.XNYS": (Decimal("1E+27"), Decimal("10.00"), Decimal(0)),
        "ACC-0004|HO.XNYS": (Decimal(999999999999), Decimal("999999999.99"), Decimal(0)),
    }
    big_notional = Decimal("999999999999") * Decimal("999999999.99")
    assert big_notional == Decimal("999999999989000000000.01")
    pnl = {k: v[-1] for k, v in pnl_of(flow).items()}
    assert (pnl["ACC-0004"].realized, pnl["ACC-0004"].unrealized) == (
        Decimal("0.00"), (Decimal("12.00") - Decimal("999999999.99")) * Decimal(999999999999)
    )  # fmt: skip

    alerts = [
        msgspec.json.decode(m.value(), type=RiskAlert)
        for m in read_all(kafka, flow.topic(topics.ALERTS.name))
    ]
    seen = {(a.account, a.trade_id, a.status, a.limit, a.value, a.threshold) for a in alerts}
    huge_notional = Decimal("1E+28")
    assert {
        ("ACC-0004", "P-BIG", "BREACHED", "single_trade_notional", big_notional, Decimal(250000)),
        ("ACC-0004", "P-BIG", "BREACHED", "gross_notional", big_notional, Decimal(5000000)),
        ("ACC-0004", "P-BIG", "BREACHED", "net_notional", big_notional, Decimal(2000000)),
        ("ACC-0004", "P-BIG", "BREACHED", "position_qty", Decimal(999999999999), Decimal(100000)),
        (
            "ACC-0003",
            "P-HUGE",
            "BREACHED",
            "single_trade_notional",
            Decimal("1E+28"),
            Decimal(1000000),
        ),
        ("ACC-0003", "P-HUGE", "BREACHED", "gross_notional", huge_notional, Decimal(20000000)),
        ("ACC-0003", "P-HUGE", "BREACHED", "net_notional", huge_notional, Decimal(8000000)),
        ("ACC-0003", "P-HUGE", "BREACHED", "position_qty", Decimal("1E+27"), Decimal(250000)),
    } <= seen
