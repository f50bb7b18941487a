"""The analytics service's processor, driven without a broker (stream.harness.TestDriver)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

import msgspec
import pytest

from tests.unit.test_windows import T0, at, trade
from tradeflux.domain.schemas import Bar
from tradeflux.errors import ConfigError
from tradeflux.query.readmodel import ReadModel
from tradeflux.services import analytics
from tradeflux.stream.harness import Output, TestDriver

KEY0 = "AAPL.XNAS|2026-11-24T15:00:00Z"
KEY5 = "AAPL.XNAS|2026-11-24T15:00:05Z"


def bars(out: list[Output]) -> list[Output]:
    """The tumbling bars among a batch's outputs (the hopping ones go to their own topic)."""
    return [o for o in out if o.topic == "analytics.bars"]


def _driver() -> tuple[TestDriver, Counter[str]]:
    """A driver of the analytics service on partition 0, and the business events it counts."""
    driver = TestDriver(analytics.SERVICE)
    task = driver.task(0)
    counted: Counter[str] = Counter()
    take = task.take_counts

    def take_and_keep() -> dict[str, int]:
        counts = take()
        counted.update(counts)
        return counts

    task.take_counts = take_and_keep  # type: ignore[method-assign]
    return driver, counted


def test_defaults_are_five_second_windows_with_two_seconds_of_grace() -> None:
    assert analytics.SPEC.size == dt.timedelta(seconds=5)
    assert analytics.SPEC.grace == dt.timedelta(seconds=2)


def test_a_batch_emits_one_bar_per_changed_window_keyed_instrument_and_window_start() -> None:
    driver, _ = _driver()
    out = bars(
        driver.send(
            [
                ("AAPL.XNAS", trade("T1", 1, "NEW", 1, "100", "10.00")),
                ("AAPL.XNAS", trade("T2", 1, "NEW", 2, "300", "10.04")),
                ("AAPL.XNAS", trade("T3", 1, "NEW", 6, "10", "10.10")),
            ]
        )
    )
    assert [(o.topic, o.key) for o in out] == [("analytics.bars", KEY0), ("analytics.bars", KEY5)]
    assert out[0].value == Bar(
        instrument="AAPL.XNAS",
        window_start=T0,
        window_end=at(5),
        currency="USD",
        open=Decimal("10.00"),
        high=Decimal("10.04"),
        low=Decimal("10.00"),
        close=Decimal("10.04"),
        volume=Decimal(400),
        vwap=Decimal("10.030000"),
        notional=Decimal("4012.0000"),
        count=2,
        final=False,
    )


def test_bar_json_is_what_the_dashboard_reads() -> None:
    driver = TestDriver(analytics.SERVICE)
    (out,) = bars(driver.send([("AAPL.XNAS", trade("T1", 1, "NEW", 1, "100", "10.00"))]))
    bar = msgspec.json.decode(analytics.SERVICE.outputs[0].codec.encode(out.value))
    assert bar == {
        "instrument": "AAPL.XNAS",
        "window_start": "2026-11-24T15:00:00Z",
        "window_end": "2026-11-24T15:00:05Z",
        "currency": "USD",
        "open": "10.00", "high": "10.00", "low": "10.00", "close": "10.00",
        "volume": "100", "vwap": "10.000000", "notional": "1000.00",
        "count": 1,
        "final": False,
    }  # fmt: skip


def test_late_events_are_counted_as_business_events_and_change_no_bar() -> None:
    driver, counted = _driver()
    driver.send([("AAPL.XNAS", trade("T1", 1, "NEW", 1, "100", "10.00"))])
    out = bars(driver.send([("AAPL.XNAS", trade("T2", 1, "NEW", 7.5, "1", "10.00"))]))
    assert [(o.key, o.value.final) for o in out] == [(KEY0, True), (KEY5, False)]
    assert counted == Counter({"windows_closed": 1})
    out = driver.send(
        [
            ("AAPL.XNAS", trade("T1", 2, "AMEND", 1, "5", "10.00")),
            ("AAPL.XNAS", trade("T3", 1, "NEW", 4, "5", "10.00")),
            ("AAPL.XNAS", trade("T2", 1, "NEW", 7.5, "1", "10.00")),  # a redelivery
        ]
    )
    assert bars(out) == []  # the hopping windows are all open: they take both
    assert counted == Counter({"windows_closed": 1, "late": 2, "ignored_version": 1})


def test_a_closed_window_leaves_no_state_in_any_store() -> None:
    driver, _ = _driver()
    driver.send([("AAPL.XNAS", trade("T1", 1, "NEW", 1, "100", "10.00"))])
    driver.send([("MSFT.XNAS", trade("T2", 1, "NEW", 20, "1", "10.00", instrument="MSFT.XNAS"))])
    assert list(driver.store("bar_windows")) == ["MSFT.XNAS|2026-11-24T15:00:20Z"]
    assert list(driver.store("bar_trades")) == ["MSFT.XNAS|ACC-1|T2"]
    assert list(driver.store("bar_members")) == ["MSFT.XNAS|2026-11-24T15:00:20Z#0"]
    assert driver.store("clock") == {"stream_time": at(20)}


def test_a_restored_instance_carries_on_as_the_first_would_have() -> None:
    events = [
        ("AAPL.XNAS", trade("T1", 1, "NEW", 1, "100", "10.00")),
        ("AAPL.XNAS", trade("T2", 1, "NEW", 4, "100", "10.20")),
        ("AAPL.XNAS", trade("T1", 2, "AMEND", 6, "100", "10.10")),
        ("AAPL.XNAS", trade("T3", 1, "NEW", 11, "1", "10.30")),  # closes window 0
        # after the restart
        ("AAPL.XNAS", trade("T4", 1, "NEW", 2, "1", "10.30")),  # late: needs the stream time
        ("AAPL.XNAS", trade("T1", 3, "AMEND", 7, "50", "10.10")),  # needs T1's slot
        ("AAPL.XNAS", trade("T5", 1, "NEW", 13, "1", "10.40")),  # closes window 5
    ]
    straight = TestDriver(analytics.SERVICE)
    expected = straight.send(events[:4]) + straight.send(events[4:])

    first = TestDriver(analytics.SERVICE)
    got = first.send(events[:4])
    second = TestDriver(analytics.SERVICE)  # restored from what the changelogs would hold
    for spec in analytics.SERVICE.stores:
        store = second.task(0).stores[spec.name]
        for key, value in first.store(spec.name).items():
            store.restore(key, spec.codec.decode(spec.codec.encode(value)))
    after = second.send(events[4:])
    got += after
    assert [(o.key, o.value) for o in got] == [(o.key, o.value) for o in expected]
    assert [(o.key, o.value.final, o.value.volume) for o in bars(after)] == [
        (KEY5, True, Decimal(50)),
        ("AAPL.XNAS|2026-11-24T15:00:10Z", False, Decimal(2)),
    ]


def test_the_read_model_drops_a_window_whose_trades_were_all_cancelled() -> None:
    driver = TestDriver(analytics.SERVICE)
    codec = analytics.SERVICE.outputs[0].codec
    model = ReadModel()
    for batch in (
        [("AAPL.XNAS", trade("T1", 1, "NEW", 1, "100", "10.00"))],
        [("AAPL.XNAS", trade("T1", 2, "CANCEL", 1, "100", "10.00"))],
    ):
        for o in bars(driver.send(batch)):
            value = None if o.value is None else codec.encode(o.value)
            model.apply("analytics.bars", (o.key or "").encode(), value)
        if batch[0][1].event_type == "NEW":
            assert model.list_bars().total == 1
    assert model.list_bars().total == 0


def test_window_settings_come_from_the_environment_and_bad_ones_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEFLUX_BAR_SECONDS", "60")
    monkeypatch.setenv("TRADEFLUX_BAR_GRACE_SECONDS", "0")
    spec = analytics.window_spec_from_env()
    assert (spec.size, spec.grace) == (dt.timedelta(seconds=60), dt.timedelta(0))
    for bad in ("0", "1.5", "five"):
        monkeypatch.setenv("TRADEFLUX_BAR_SECONDS", bad)
        with pytest.raises(ConfigError, match="give a whole number of seconds, at least 1"):
            analytics.window_spec_from_env()
