"""Settlement finality (domain/finality.py): FINAL at the cut-off, ADJUSTMENTs, retention."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.unit.test_netting import D1, LEI, amend, cancel, trade
from tradeflux.domain.cutoffs import CutoffCalendar
from tradeflux.domain.finality import ObligationStatement, Outcome, SettlementBook
from tradeflux.domain.schemas import EnrichedTrade, SecuritiesObligation, SettlementObligation
from tradeflux.domain.sese023 import SettlementInstruction

CALENDAR = CutoffCalendar()
# D1 (Thursday 2026-11-26, Thanksgiving) is cut off on Wednesday 19:00 New York.
CUTOFF = dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)
EXPIRY = dt.datetime(2026, 12, 4, 5, 0, tzinfo=dt.UTC)
KEY = "CP1|USD|2026-11-26"
US = dt.timedelta(microseconds=1)


class Table(dict[str, Any]):
    """A store partition as a plain dict."""

    def put(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


class Books:
    """The settlement state of one partition across batches, as the service keeps it."""

    def __init__(self) -> None:
        self.legs, self.obligations, self.marks, self.counts = Table(), Table(), Table(), Table()
        self.stream_time: dt.datetime | None = None

    def batch(self, steps: list[EnrichedTrade | dt.datetime]) -> SettlementBook:
        """Run one batch: a datetime is a tick, an event is applied at its ingest time."""
        book = SettlementBook(
            CALENDAR, self.legs, self.obligations, self.marks, self.counts, self.stream_time
        )
        for step in steps:
            if isinstance(step, dt.datetime):
                book.advance(step)
            else:
                assert step.ingest_time is not None
                book.advance(step.ingest_time)
                book.apply(step)
        self.stream_time = book.stream_time
        return book


def at(event: EnrichedTrade, when: dt.datetime) -> EnrichedTrade:
    return msgspec.structs.replace(event, ingest_time=when)


def statements(book: SettlementBook) -> list[ObligationStatement]:
    return [value for kind, _, value in book.issued if kind == "statement"]


def instructions(book: SettlementBook) -> list[SettlementInstruction]:
    return [value for kind, _, value in book.issued if kind == "instruction"]


def obligation(
    net: str, paid: str, received: str, count: int, securities: list[tuple[str, str, int]]
) -> SettlementObligation:
    isin = {"AAPL": "US0378331005", "MSFT": "US5949181045"}
    return SettlementObligation(
        counterparty="CP1",
        counterparty_lei=LEI["CP1"],
        currency="USD",
        settlement_date=D1,
        net_cash=Decimal(net),
        cash_paid=Decimal(paid),
        cash_received=Decimal(received),
        trade_count=count,
        securities=tuple(
            SecuritiesObligation(instrument=i, isin=isin[i], quantity=Decimal(q), trade_count=n)
            for i, q, n in securities
        ),
    )


def test_the_cut_off_makes_each_obligation_final_once_with_its_instructions() -> None:
    books = Books()
    t1 = trade("T1", quantity="100", price="10.00")
    t2 = trade("T2", side="SELL", quantity="40", price="10.10")
    t3 = trade("T3", side="SELL", quantity="5", price="400.10", instrument="MSFT")
    assert books.batch([t1, t2, t3, CUTOFF - US]).issued == []
    book = books.batch([CUTOFF])
    (final,) = statements(book)
    assert final == ObligationStatement(
        kind="FINAL",
        sequence=0,
        counterparty="CP1",
        currency="USD",
        settlement_date=D1,
        cutoff_at=CUTOFF,
        recorded_at=CUTOFF,
        obligation=obligation(
            "1404.50", "1000.00", "2404.50", 3, [("AAPL", "60", 2), ("MSFT", "-5", 1)]
        ),
    )
    assert [
        (i.instrument, i.movement, i.payment, i.quantity, i.amount, i.credit_debit, i.status)
        for i in instructions(book)
    ] == [
        ("AAPL", "RECE", "APMT", Decimal(60), Decimal("596.00"), "DBIT", "READY"),
        ("MSFT", "DELI", "APMT", Decimal(5), Decimal("2000.50"), "CRDT", "READY"),
    ]
    assert book.finalised == 1
    assert books.batch([CUTOFF + dt.timedelta(hours=1)]).issued == []  # once


def test_cut_off_then_a_late_amend_gives_an_adjustment_not_a_silent_change() -> None:
    books = Books()
    t1 = trade("T1", quantity="100", price="10.00")
    t2 = trade("T2", side="SELL", quantity="40", price="10.10")
    books.batch([t1, t2, CUTOFF])
    late = CUTOFF + dt.timedelta(hours=2)
    book = books.batch([at(amend(t1, 2, quantity=Decimal(120)), late)])
    (adjustment,) = statements(book)
    assert adjustment == ObligationStatement(
        kind="ADJUSTMENT",
        sequence=1,
        counterparty="CP1",
        currency="USD",
        settlement_date=D1,
        cutoff_at=CUTOFF,
        recorded_at=late,
        obligation=obligation("-796.00", "1200.00", "404.00", 2, [("AAPL", "80", 2)]),
        previous=obligation("-596.00", "1000.00", "404.00", 2, [("AAPL", "60", 2)]),
        net_cash_change=Decimal("-200.00"),
        trade_id="T1",
        version=2,
        event_type="AMEND",
    )
    assert instructions(book) == []  # an adjustment is not re-instructed
    assert book.changed[KEY] == books.obligations[KEY]  # the running figures move on
    book = books.batch([at(cancel(t2, 2), late + US)])
    (second,) = statements(book)
    assert (second.sequence, second.net_cash_change, second.obligation) == (
        2,
        Decimal("-404.00"),
        obligation("-1200.00", "1200.00", "0", 1, [("AAPL", "120", 1)]),
    )


def test_cancelling_the_last_trade_of_a_final_obligation_adjusts_it_to_nothing() -> None:
    books = Books()
    t1 = trade("T1", quantity="10", price="1.00")
    books.batch([t1, CUTOFF])
    (adjustment,) = statements(books.batch([at(cancel(t1, 2), CUTOFF + US)]))
    assert (adjustment.kind, adjustment.obligation, adjustment.net_cash_change) == (
        "ADJUSTMENT",
        None,
        Decimal("10.00"),
    )
    assert KEY not in books.obligations


def test_a_trade_of_a_date_already_cut_off_is_an_adjustment_of_an_empty_final() -> None:
    books = Books()
    books.batch([trade("T1", counterparty="CP2"), CUTOFF])
    (adjustment,) = statements(books.batch([at(trade("T2"), CUTOFF + US)]))
    assert (adjustment.sequence, adjustment.previous, adjustment.obligation) == (
        1,
        None,
        obligation("-1000.00", "1000.00", "0", 1, [("AAPL", "100", 1)]),
    )


def test_the_record_that_reaches_the_cut_off_is_applied_after_the_final() -> None:
    books = Books()
    t1 = trade("T1", quantity="10", price="1.00")
    book = books.batch([t1, at(trade("T2", quantity="5", price="1.00"), CUTOFF)])
    final, adjustment = statements(book)
    assert (final.kind, final.obligation and final.obligation.net_cash) == ("FINAL", Decimal(-10))
    assert (adjustment.kind, adjustment.net_cash_change) == ("ADJUSTMENT", Decimal("-5.00"))


def test_an_amend_that_changes_no_figure_adjusts_nothing() -> None:
    books = Books()
    t1 = trade("T1")
    books.batch([t1, CUTOFF])
    later = at(amend(t1, 2, trade_time=t1.trade_time + dt.timedelta(minutes=1)), CUTOFF + US)
    book = books.batch([later])
    assert statements(book) == []
    assert book.changed == {KEY: books.obligations[KEY]}


def test_currencies_are_cut_off_at_their_own_markets_time_in_due_order() -> None:
    books = Books()
    usd = trade("T1")
    eur = trade("T2", instrument="SAP", price="100.00")
    books.batch([usd, eur])
    # EUR (Frankfurt 18:00, 17:00 UTC) comes due seven hours before USD (New York 19:00).
    eur_cutoff = dt.datetime(2026, 11, 25, 17, 0, tzinfo=dt.UTC)
    assert [s.currency for s in statements(books.batch([eur_cutoff]))] == ["EUR"]
    books = Books()
    books.batch([usd, eur])
    assert [s.currency for s in statements(books.batch([CUTOFF]))] == ["EUR", "USD"]


def test_retention_drops_the_dates_state_and_a_later_event_of_it_is_refused() -> None:
    books = Books()
    t1 = trade("T1")
    t2 = trade("T2", settlement_date=D1 + dt.timedelta(days=1))  # Friday, stays
    books.batch([t1, t2, cancel(trade("T3"), 2), CUTOFF])
    assert books.batch([EXPIRY - US]).changed == {}
    book = books.batch([EXPIRY])
    assert book.changed == {KEY: None}  # a tombstone on the compacted topic
    assert book.expired == 1
    assert set(books.legs) == {"CP1|ACC1|AAPL|T2"}
    assert set(books.obligations) == {"CP1|USD|2026-11-27"}
    assert set(books.marks) == {"USD|2026-11-27"}
    # Friday is cut off on Wednesday too (Thursday is Thanksgiving): its FINAL stays.
    assert books.counts == {"CP1|USD|2026-11-27": 0}
    late = SettlementBook(
        CALENDAR, books.legs, books.obligations, books.marks, books.counts, books.stream_time
    )
    assert late.apply(amend(t1, 2, quantity=Decimal(1))) is Outcome.EXPIRED
    assert late.issued == [] and late.changed == {}


def test_a_version_not_above_the_held_one_changes_nothing_after_the_cut_off() -> None:
    books = Books()
    t1 = trade("T1")
    books.batch([t1, CUTOFF])
    book = SettlementBook(
        CALENDAR, books.legs, books.obligations, books.marks, books.counts, books.stream_time
    )
    assert book.apply(t1) is Outcome.STALE
    assert book.issued == []


@pytest.mark.parametrize("cuts", [[], [1], [2, 3], [1, 2, 3, 4, 5]])
def test_statements_and_instructions_do_not_depend_on_how_the_input_is_batched(
    cuts: list[int],
) -> None:
    t1 = trade("T1", quantity="100", price="10.00")
    steps: list[EnrichedTrade | dt.datetime] = [
        t1,
        trade("T2", side="SELL", quantity="40", price="10.10", counterparty="CP2"),
        CUTOFF,
        at(amend(t1, 2, quantity=Decimal(7)), CUTOFF + US),
        at(trade("T3", instrument="MSFT"), CUTOFF + 2 * US),
        EXPIRY,
    ]
    whole = Books().batch(steps).issued
    books, issued = Books(), []
    for start, end in zip([0, *cuts], [*cuts, len(steps)], strict=True):
        issued += books.batch(steps[start:end]).issued
    assert issued == whole
    assert [v.kind for k, _, v in whole if k == "statement"] == [
        "FINAL", "FINAL", "ADJUSTMENT", "ADJUSTMENT",
    ]  # fmt: skip
