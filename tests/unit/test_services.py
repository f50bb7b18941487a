"""The shipped services' processors, driven without a broker (stream.harness.TestDriver)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import msgspec

from tradeflux.domain.positions import fold_position
from tradeflux.domain.refdata import parse_refdata_file, refdata_key
from tradeflux.domain.schemas import AccountPnL, FxRate, Position, Price, TradeEvent
from tradeflux.services import pnl, positions, repartition, validator
from tradeflux.stream.harness import TestDriver

DATA = Path(__file__).resolve().parents[2] / "data" / "refdata"
T0 = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)


def _table(name: str) -> dict[str, object]:
    parsed = parse_refdata_file(DATA / f"{name}.csv")
    assert not parsed.errors
    return {refdata_key(row): row for row in parsed.rows}


INSTRUMENTS = _table("instruments")
ACCOUNTS = _table("accounts")
COUNTERPARTIES = _table("counterparties")
INSTRUMENT = next(i for i in INSTRUMENTS.values() if i.active and i.currency == "USD")  # type: ignore[attr-defined]
ACCOUNT = next(a for a in ACCOUNTS.values() if a.status == "ACTIVE")  # type: ignore[attr-defined]
CPTY = next(c for c in COUNTERPARTIES.values() if c.active)  # type: ignore[attr-defined]


def _trade(
    trade_id: str,
    version: int,
    event: str,
    side: str,
    qty: int,
    price: str,
    counterparty: str = CPTY.counterparty_id,
) -> bytes:
    return msgspec.json.encode(
        TradeEvent(
            event_type=event,  # type: ignore[arg-type]
            trade_id=trade_id,
            version=version,
            account=ACCOUNT.account_id,
            instrument=INSTRUMENT.instrument_id,
            side=side,  # type: ignore[arg-type]
            quantity=Decimal(qty) * INSTRUMENT.lot_size,
            price=Decimal(price),
            currency=INSTRUMENT.currency,
            venue=INSTRUMENT.mic,
            counterparty=counterparty,
            trade_time=T0 - dt.timedelta(seconds=1),
        )
    )


def _validator() -> TestDriver:
    return TestDriver(
        validator.SERVICE,
        tables={"instruments": INSTRUMENTS, "accounts": ACCOUNTS, "counterparties": COUNTERPARTIES},
    )


def test_validator_enriches_drops_the_duplicate_and_rejects_with_original_bytes() -> None:
    driver = _validator()
    new = _trade("T1", 1, "NEW", "BUY", 3, "10.00")
    bad = _trade("T2", 1, "NEW", "BUY", 3, "10.001")  # off the tick grid
    out = driver.send([("T1", new), ("T1", new), ("T2", bad)], timestamp_ms=T0_MS)
    enriched = [o for o in out if o.topic == "trades.enriched"]
    rejected = [o for o in out if o.topic == "trades.rejected"]
    assert len(enriched) == 1
    assert enriched[0].key == ACCOUNT.account_id
    assert enriched[0].value.notional == 3 * INSTRUMENT.lot_size * Decimal("10.00")
    assert [(r.key, r.value, r.headers["tf.reason"]) for r in rejected] == [("T2", bad, "OFF_TICK")]
    assert driver.store("trades")["T1"].version == 1
    assert "T2" not in driver.store("trades")


def test_validator_state_survives_batches_so_an_amend_follows_its_new() -> None:
    driver = _validator()
    driver.send([("T1", _trade("T1", 1, "NEW", "BUY", 3, "10.00"))], timestamp_ms=T0_MS)
    out = driver.send([("T1", _trade("T1", 2, "AMEND", "BUY", 5, "10.00"))], timestamp_ms=T0_MS)
    assert [(o.value.event_type, o.value.version) for o in out] == [("AMEND", 2)]
    stale = driver.send([("T1", _trade("T1", 1, "AMEND", "BUY", 9, "10.00"))], timestamp_ms=T0_MS)
    assert [o.headers["tf.reason"] for o in stale] == ["STALE_VERSION"]


def test_positions_reflect_an_amend_as_if_booked_right_first_time() -> None:
    v = _validator()
    p = TestDriver(positions.SERVICE)
    trades = [
        ("T1", _trade("T1", 1, "NEW", "BUY", 10, "10.00")),
        ("T2", _trade("T2", 1, "NEW", "SELL", 4, "12.00")),
        ("T1", _trade("T1", 2, "AMEND", "BUY", 10, "11.00")),
    ]
    enriched = [o for o in v.send(trades, timestamp_ms=T0_MS) if o.topic == "trades.enriched"]
    out = p.send([(o.key, o.value) for o in enriched], partition=3)
    assert len(out) == 1  # one position, its last value in the batch
    position: Position = out[0].value
    lot = INSTRUMENT.lot_size
    assert out[0].partition == 3  # the account's partition, for the P&L service
    assert position.quantity == 6 * lot
    assert position.avg_cost == Decimal("11.00")
    assert position.realized_pnl == (Decimal("12.00") - Decimal("11.00")) * 4 * lot


def _pnl_world(last: str = "12.05") -> tuple[TestDriver, dict[str, Price]]:
    fx = {
        f"{INSTRUMENT.currency}{ACCOUNT.base_currency}": FxRate(
            pair=f"{INSTRUMENT.currency}{ACCOUNT.base_currency}", base=INSTRUMENT.currency,
            quote=ACCOUNT.base_currency, rate=Decimal("1"), time=T0,
        )
    }  # fmt: skip
    prices = {
        INSTRUMENT.instrument_id: Price(
            instrument_id=INSTRUMENT.instrument_id, bid=Decimal("12.00"), ask=Decimal("12.10"),
            last=Decimal(last), time=T0,
        )
    }  # fmt: skip
    driver = TestDriver(pnl.SERVICE, tables={"accounts": ACCOUNTS, "prices": prices, "fx": fx})
    return driver, prices


def _pnl_position(quantity: int) -> tuple[str, Position]:
    account = ACCOUNT.account_id
    return f"{account}|{INSTRUMENT.instrument_id}", Position(
        account=account, instrument=INSTRUMENT.instrument_id, currency=INSTRUMENT.currency,
        quantity=Decimal(quantity), avg_cost=Decimal("11.00"), realized_pnl=Decimal("4.00"),
    )  # fmt: skip


def _account_pnl(unrealized: str) -> AccountPnL:
    return AccountPnL(
        account=ACCOUNT.account_id, base_currency=ACCOUNT.base_currency, realized=Decimal("4.00"),
        unrealized=Decimal(unrealized), total=Decimal("4.00") + Decimal(unrealized), positions=1,
    )  # fmt: skip


def test_pnl_goes_out_when_a_position_changes_at_most_once_per_throttle_interval() -> None:
    driver, _prices = _pnl_world()
    throttle = pnl.THROTTLE_MS
    out = driver.send([_pnl_position(100)], now_ms=1_000)
    assert [o.value for o in out] == [_account_pnl("105.00")]  # at once, no timer
    assert out[0].partition == 0
    assert driver.advance(1_000) == []  # arms the timers
    # A second change within the interval is held, and sent when the interval is over.
    assert driver.send([_pnl_position(200)], now_ms=1_000 + throttle // 2) == []
    assert driver.advance(1_000 + throttle - 1) == []
    assert [o.value for o in driver.advance(1_000 + throttle)] == [_account_pnl("210.00")]
    # Nothing changed: nothing goes out, on change or on the re-mark timer.
    assert driver.send([_pnl_position(200)], now_ms=5_000) == []
    assert driver.advance(10_000) == []


def test_pnl_held_back_by_the_throttle_goes_out_when_the_instance_stops() -> None:
    driver, _prices = _pnl_world()
    throttle = pnl.THROTTLE_MS
    driver.send([_pnl_position(100)], now_ms=1_000)
    driver.advance(1_000)  # arms the timers
    assert driver.send([_pnl_position(200)], now_ms=1_000 + throttle // 2) == []  # held
    # Stopping before the interval is over sends it at once, and only it.
    stopped = driver.stop(1_000 + throttle // 2 + 1)
    assert [o.value for o in stopped] == [_account_pnl("210.00")]
    assert driver.store("held") == {}
    assert driver.stop(1_000 + throttle // 2 + 2) == []  # nothing held: nothing sent


def test_pnl_is_re_marked_when_only_the_price_moved() -> None:
    driver, prices = _pnl_world()
    driver.send([_pnl_position(100)], now_ms=1_000)
    driver.advance(1_000)  # arms the timers
    prices[INSTRUMENT.instrument_id] = msgspec.structs.replace(
        prices[INSTRUMENT.instrument_id], last=Decimal("13.05")
    )
    out = driver.advance(1_000 + pnl.SERVICE.punctuators[1].every_ms)
    assert [o.value for o in out] == [_account_pnl("205.00")]


def test_repartition_rekeys_the_original_bytes_by_instrument_and_by_counterparty() -> None:
    v = _validator()
    r = TestDriver(repartition.SERVICE)
    trades = [
        ("T1", _trade("T1", 1, "NEW", "BUY", 10, "10.00")),
        ("T1", _trade("T1", 2, "CANCEL", "BUY", 10, "10.00")),
    ]
    enriched = [o for o in v.send(trades, timestamp_ms=T0_MS) if o.topic == "trades.enriched"]
    raws = [validator.SERVICE.outputs[0].codec.encode(o.value) for o in enriched]
    out = r.send([(o.key, raw) for o, raw in zip(enriched, raws, strict=True)])
    by_instrument = [(o.key, o.value) for o in out if o.topic == "trades.by_instrument"]
    by_counterparty = [(o.key, o.value) for o in out if o.topic == "trades.by_counterparty"]
    assert by_instrument == [(INSTRUMENT.instrument_id, raw) for raw in raws]
    assert by_counterparty == [(CPTY.counterparty_id, raw) for raw in raws]


def test_repartition_splits_a_counterparty_move_on_the_counterparty_topic_only() -> None:
    other = next(
        c
        for c in COUNTERPARTIES.values()
        if c.active and c.counterparty_id != CPTY.counterparty_id  # type: ignore[attr-defined]
    )
    v = _validator()
    r = TestDriver(repartition.SERVICE)
    trades = [
        ("T1", _trade("T1", 1, "NEW", "BUY", 10, "10.00")),
        ("T1", _trade("T1", 2, "AMEND", "BUY", 12, "10.00", other.counterparty_id)),  # type: ignore[attr-defined]
        ("T1", _trade("T1", 3, "AMEND", "BUY", 14, "10.00", other.counterparty_id)),  # type: ignore[attr-defined]
    ]
    enriched = [o.value for o in v.send(trades, timestamp_ms=T0_MS) if o.topic == "trades.enriched"]
    assert [e.event_type for e in enriched] == ["NEW", "AMEND", "AMEND"]  # in place upstream
    out = r.send([(e.account, e) for e in enriched])
    by_instrument = [o.value for o in out if o.topic == "trades.by_instrument"]
    by_counterparty = [
        (o.key, msgspec.json.decode(o.value)) for o in out if o.topic == "trades.by_counterparty"
    ]
    assert len(by_instrument) == 3
    moved = [(key, e["event_type"], e["version"], e["counterparty"], e["quantity"])
             for key, e in by_counterparty]  # fmt: skip
    old, new = CPTY.counterparty_id, other.counterparty_id  # type: ignore[attr-defined]
    lot = INSTRUMENT.lot_size
    assert moved == [
        (old, "NEW", 1, old, str(10 * lot)),
        (old, "CANCEL", 2, old, str(10 * lot)),  # the state it cancels, the amend's version
        (new, "NEW", 2, new, str(12 * lot)),
        (new, "AMEND", 3, new, str(14 * lot)),  # no move any more: as is
    ]


def test_positions_apply_a_batch_in_fold_order_and_emit_its_last_position_per_key() -> None:
    v = _validator()
    trades = [(f"T{i}", _trade(f"T{i}", 1, "NEW", "BUY" if i % 3 else "SELL", 1 + i, "10.00"))
              for i in range(8)]  # fmt: skip
    enriched = [(o.key, o.value) for o in v.send(trades, timestamp_ms=T0_MS)
                if o.topic == "trades.enriched"]  # fmt: skip
    in_order = TestDriver(positions.SERVICE).send(enriched)
    reversed_batch = TestDriver(positions.SERVICE).send(enriched[::-1])
    assert len(in_order) == len(reversed_batch) == 1
    assert in_order[0].value == reversed_batch[0].value
    assert in_order[0].value.trade_count == 8


def test_positions_refold_from_restored_stores_equals_the_fold_of_the_effective_trades() -> None:
    """An AMEND of a position's first trade, after a restore, re-folds from the stores.

    60 trades put most of the position behind its checkpoint and into sealed index
    chunks. A second driver gets the first one's stores as a restore would give them
    (each value through its store's codec, as read back from the changelog): it has no
    derived cache, so the AMEND reads every fill and chunk back from their bytes.
    """
    v = _validator()
    trades = [(f"T{i:02d}", _trade(f"T{i:02d}", 1, "NEW", "SELL" if i % 4 == 3 else "BUY",
                                   1 + i % 5, f"{10 + i % 7}.{i % 10}0"))
              for i in range(60)]  # fmt: skip
    amend = ("T00", _trade("T00", 2, "AMEND", "SELL", 2, "13.50"))
    enriched = [(o.key, o.value) for o in v.send([*trades, amend], timestamp_ms=T0_MS)
                if o.topic == "trades.enriched"]  # fmt: skip
    history, last = enriched[:-1], enriched[-1:]
    live = positions.SERVICE
    first = TestDriver(live)
    for n in range(0, len(history), 7):
        first.send(history[n : n + 7])
    restored = TestDriver(live)
    for spec in live.stores:
        target = restored.task().stores[spec.name]
        for key, value in first.store(spec.name).items():
            target.restore(key, spec.codec.decode(spec.codec.encode(value)))
    assert len(first.store("index")) >= 6  # most trade ids are in sealed chunks

    final = [e for e in enriched if e[1].trade_id != "T00"] + last  # T00 as amended
    expected = fold_position(
        ACCOUNT.account_id, INSTRUMENT.instrument_id, INSTRUMENT.currency,
        INSTRUMENT.multiplier, [e for _, e in final],
    )  # fmt: skip
    assert [o.value for o in restored.send(last)] == [expected]
    assert [o.value for o in first.send(last)] == [expected]
