"""The query service's read model: what each topic becomes, filters, pages, tombstones."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from tradeflux.domain.schemas import AccountPnL, Position
from tradeflux.query.readmodel import (
    ALERTS,
    BARS,
    OBLIGATIONS,
    PNL,
    POSITIONS,
    REJECTS,
    Change,
    ReadModel,
    RejectedTrade,
)

ENCODE = msgspec.json.Encoder(decimal_format="string").encode


def pos(account: str, instrument: str, qty: str) -> Position:
    return Position(
        account=account,
        instrument=instrument,
        currency="USD",
        quantity=Decimal(qty),
        avg_cost=Decimal("10.5"),
        realized_pnl=Decimal("0"),
    )


def feed(model: ReadModel, topic: str, key: str | None, value: object) -> Change | None:
    data = value if isinstance(value, bytes) or value is None else ENCODE(value)
    return model.apply(topic, key.encode() if key is not None else None, data)  # type: ignore[arg-type]


def test_positions_keep_the_latest_value_per_key_and_list_in_key_order() -> None:
    model = ReadModel()
    feed(model, POSITIONS, "B|X", pos("B", "X", "5"))
    feed(model, POSITIONS, "A|Y", pos("A", "Y", "1"))
    change = feed(model, POSITIONS, "A|Y", pos("A", "Y", "-3"))
    assert change == Change("position", "A|Y", pos("A", "Y", "-3"))
    page = model.list_positions()
    assert page.total == 2
    assert [(p.account, p.quantity) for p in page.items] == [("A", Decimal(-3)), ("B", Decimal(5))]


def test_position_filters_open_only_and_pages() -> None:
    model = ReadModel()
    for i in range(10):
        feed(model, POSITIONS, f"A|I{i}", pos("A", f"I{i}", str(i % 3)))
    feed(model, POSITIONS, "B|I0", pos("B", "I0", "7"))
    assert model.list_positions(account="A").total == 10
    assert model.list_positions(instrument="I0").total == 2
    assert model.list_positions(account="A", open_only=True).total == 6
    page = model.list_positions(account="A", limit=3, offset=9)
    assert (page.total, [p.instrument for p in page.items]) == (10, ["I9"])
    assert model.list_positions(offset=100).items == []


def test_a_tombstone_removes_the_key_and_says_so() -> None:
    model = ReadModel()
    feed(
        model,
        PNL,
        "A",
        AccountPnL(
            account="A",
            base_currency="EUR",
            realized=Decimal(1),
            unrealized=Decimal(2),
            total=Decimal(3),
            positions=1,
        ),
    )
    assert feed(model, PNL, "A", None) == Change("pnl", "A", None)
    assert model.list_pnl().total == 0
    assert feed(model, PNL, "A", None) is None  # nothing left to remove


def test_undecodable_values_are_counted_and_change_nothing() -> None:
    model = ReadModel()
    assert feed(model, POSITIONS, "A|X", b"{not json") is None
    assert feed(model, POSITIONS, "A|X", {"account": "A"}) is None  # fields missing
    assert feed(model, ALERTS, "A", b'"a string"') is None
    assert model.bad_record_counts() == {POSITIONS: 2, ALERTS: 1}
    assert model.list_positions().total == 0


def test_alerts_are_a_log_newest_first_filtered_by_the_account_field_or_key() -> None:
    model = ReadModel(max_log_entries=3)
    feed(model, ALERTS, "A", {"account": "A", "n": 1})
    feed(model, ALERTS, "B", {"n": 2})  # no account field: the key says
    feed(model, ALERTS, "A", {"account": "A", "n": 3, "value": 1.10})
    feed(model, ALERTS, "A", {"account": "A", "n": 4})
    page = model.list_alerts()
    assert [msgspec.json.decode(a)["n"] for a in page.items] == [4, 3, 2]  # bounded: 1 went
    assert [msgspec.json.decode(a)["n"] for a in model.list_alerts(account="B").items] == [2]
    # kept as written, byte for byte: a number stays the number the producer wrote
    assert bytes(model.list_alerts(account="A").items[1]) == b'{"account":"A","n":3,"value":1.1}'


def test_bars_keep_the_latest_revision_per_window_newest_window_first() -> None:
    model = ReadModel()
    feed(
        model,
        BARS,
        "X|2026-01-01T10:01",
        {"instrument": "X", "window_start": "2026-01-01T10:01", "c": 1},
    )
    feed(
        model,
        BARS,
        "X|2026-01-01T10:00",
        {"instrument": "X", "window_start": "2026-01-01T10:00", "c": 2},
    )
    feed(model, BARS, "Y|2026-01-01T10:00", {"window_start": "2026-01-01T10:00", "c": 3})
    feed(
        model,
        BARS,
        "X|2026-01-01T10:01",
        {"instrument": "X", "window_start": "2026-01-01T10:01", "c": 4},
    )
    x = [msgspec.json.decode(b)["c"] for b in model.list_bars(instrument="X").items]
    assert x == [4, 2]
    assert model.list_bars(instrument="Y").total == 1  # instrument from the key


def test_obligations_filter_on_counterparty_currency_and_date() -> None:
    model = ReadModel()
    for cp, ccy, day in (
        ("C1", "USD", "2026-03-04"),
        ("C1", "EUR", "2026-03-05"),
        ("C2", "USD", "2026-03-04"),
    ):
        feed(model, OBLIGATIONS, f"{cp}|{ccy}|{day}", {"net": "1"})  # fields only in the key
    assert model.list_obligations(counterparty="C1").total == 2
    assert model.list_obligations(currency="USD", settlement_date="2026-03-04").total == 2
    assert model.list_obligations(counterparty="C1", settlement_date="2026-03-04").total == 1
    feed(model, OBLIGATIONS, "C1|USD|2026-03-04", None)
    assert model.list_obligations(counterparty="C1").total == 1


def test_rejects_decode_the_dead_letter_headers() -> None:
    model = ReadModel()
    headers = [
        ("origin", b"fix"),
        ("tf.stage", b"validator"),
        ("tf.reason", b"OFF_TICK"),
        ("tf.error", b""),
        ("tf.detail", b"price 1.001 is off tick 0.01"),
        ("tf.source.topic", b"trades.raw"),
        ("tf.source.partition", b"4"),
        ("tf.source.offset", b"1234"),
    ]
    change = model.apply(REJECTS, b"T1", b"x" * 5000, headers, 1_767_225_600_000, 2, 17)
    assert change is not None
    reject = change.value
    assert reject == RejectedTrade(
        trade_id="T1",
        reason="OFF_TICK",
        stage="validator",
        error="",
        detail="price 1.001 is off tick 0.01",
        source_topic="trades.raw",
        source_partition=4,
        source_offset=1234,
        rejected_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        partition=2,
        offset=17,
        value="x" * 4096,
        value_truncated=True,
    )
    model.apply(REJECTS, None, b"{}", None, None, 0, 0)  # no headers at all
    assert model.list_rejects(reason="UNKNOWN").items[0].trade_id is None
    assert model.reject_counts() == {"OFF_TICK": 1, "UNKNOWN": 1}
    assert model.list_rejects(stage="validator").total == 1
