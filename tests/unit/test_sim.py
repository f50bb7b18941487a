"""The simulator: determinism, prices on the grid, whole lots, the mix, malformed kinds."""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.support.reference import run_reference
from tradeflux.domain.schemas import Account, Counterparty, Instrument, TradeEvent
from tradeflux.sim.malformed import EXPECTED_REJECT, Malformed
from tradeflux.sim.market import MarketModel
from tradeflux.sim.producer import SimulationPlan, run_simulation
from tradeflux.sim.refdata import SimRefData, SimulationError, load_refdata
from tradeflux.sim.trades import (
    DEFAULT_START,
    RecordKind,
    SimRecord,
    SimSession,
    TradeMix,
    epoch_ms,
    generate_session,
    generate_trades,
)

D = Decimal


def _instrument(
    iid: str, ccy: str, mic: str, lot: str, tick: str, active: bool = True
) -> Instrument:
    return Instrument(
        instrument_id=iid, isin=f"XX{iid[:9]:0>9}0", symbol=iid.split(".")[0], currency=ccy,
        mic=mic, lot_size=D(lot), tick_size=D(tick), active=active,
    )  # fmt: skip


INSTRUMENTS = [
    _instrument("AAPL.XNYS", "USD", "XNYS", "1", "0.01"),
    _instrument("VOD.XLON", "GBP", "XLON", "1", "0.05"),
    _instrument("NESN.XSWX", "CHF", "XSWX", "10", "0.5"),
    _instrument("7203.XTKS", "JPY", "XTKS", "100", "5"),
    _instrument("0005.XHKG", "HKD", "XHKG", "500", "0.05"),
    _instrument("SAP.XETR", "EUR", "XETR", "1", "0.01"),
    _instrument("OLD.XNYS", "USD", "XNYS", "1", "0.01", active=False),
]
ACCOUNTS = [
    Account(account_id="ACC-1", book="B1", legal_entity="LE-US", base_currency="USD"),
    Account(account_id="ACC-2", book="B2", legal_entity="LE-EU", base_currency="EUR"),
    Account(account_id="ACC-3", book="B3", legal_entity="LE-UK", base_currency="GBP"),
    Account(account_id="ACC-4", book="B4", legal_entity="LE-JP", base_currency="JPY"),
    Account(account_id="ACC-9", book="B9", legal_entity="LE-US", base_currency="USD",
            status="SUSPENDED"),
]  # fmt: skip
COUNTERPARTIES = [
    Counterparty(counterparty_id="CP-1", lei="5299007W3X0B5CI8IV57", name="One"),
    Counterparty(counterparty_id="CP-2", lei="969500HAJ4A1V04TDA25", name="Two"),
    Counterparty(counterparty_id="CP-9", lei="353800M1TZ21TBXGE823", name="Nine", active=False),
]
BY_ID = {i.instrument_id: i for i in INSTRUMENTS}
MIX = TradeMix(amend_rate=0.10, cancel_rate=0.04, duplicate_rate=0.03, malformed_rate=0.05)


def session(count: int, seed: int = 7, mix: TradeMix = MIX) -> SimSession:
    return generate_session(
        INSTRUMENTS, ACCOUNTS, COUNTERPARTIES, count=count, rate_per_s=2000.0, seed=seed, mix=mix
    )


@pytest.fixture(scope="module")
def big() -> SimSession:
    return session(20_000)


def valid_events(s: SimSession) -> list[tuple[SimRecord, TradeEvent]]:
    """The records meant to be accepted (duplicates included) with their events."""
    decoder = msgspec.json.Decoder(TradeEvent)
    return [(r, decoder.decode(r.value)) for r in s.records if r.kind is not RecordKind.MALFORMED]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    first = generate_trades(INSTRUMENTS, ACCOUNTS, COUNTERPARTIES, count=3000, seed=42, mix=MIX)
    again = generate_trades(INSTRUMENTS, ACCOUNTS, COUNTERPARTIES, count=3000, seed=42, mix=MIX)
    other = generate_trades(INSTRUMENTS, ACCOUNTS, COUNTERPARTIES, count=3000, seed=43, mix=MIX)
    assert first == again
    assert first != other
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v, _ in first)
    assert session(500).prices == session(500).prices


def test_arrivals_are_poisson_at_the_rate(big: SimSession) -> None:
    stamps = [r.timestamp_ms for r in big.records]
    assert stamps == sorted(stamps)
    assert stamps[0] >= epoch_ms(DEFAULT_START)
    span_s = (big.end - DEFAULT_START).total_seconds()
    assert span_s == pytest.approx(20_000 / 2000.0, rel=0.03)


def test_trade_prices_lie_on_the_tick_grid_and_sizes_are_whole_lots(big: SimSession) -> None:
    for r, e in valid_events(big):
        inst = BY_ID[e.instrument]
        assert e.price > 0 and e.price % inst.tick_size == 0, e
        assert e.quantity >= inst.lot_size and e.quantity % inst.lot_size == 0, e
        assert (e.currency, e.venue) == (inst.currency, inst.mic)
        assert inst.active
        assert e.trade_time.tzinfo is not None
        if r.kind is RecordKind.NEW:  # amends keep the original trade time
            assert 0 <= r.timestamp_ms - epoch_ms(e.trade_time) <= 2001


def test_popular_instruments_trade_more() -> None:
    counts = Counter(e.instrument for _, e in valid_events(session(5000)) if e.version == 1)
    active = [i.instrument_id for i in INSTRUMENTS if i.active]
    assert counts[active[0]] > counts[active[1]] > counts[active[-1]] > 0
    assert "OLD.XNYS" not in counts


def test_market_quotes_lie_on_the_grid_and_fx_rates_are_positive() -> None:
    market = MarketModel(INSTRUMENTS, ["USD", "EUR"], start=DEFAULT_START, seed=3)
    for minute in range(0, 600, 7):
        now = DEFAULT_START + dt.timedelta(minutes=minute)
        for p in market.prices(now):
            tick = BY_ID[p.instrument_id].tick_size
            assert 0 < p.bid < p.ask, p
            assert p.bid <= p.last <= p.ask, p
            assert all(x % tick == 0 for x in (p.bid, p.ask, p.last)), p
            assert p.time == now
        rates = {r.pair: r.rate for r in market.fx_rates(now)}
        assert set(rates) == {"EURUSD", "GBPUSD", "USDCHF", "USDJPY", "USDHKD"}
        assert all(isinstance(r, Decimal) and r > 0 for r in rates.values())
    assert D("1.0") < rates["EURUSD"] < D("1.2")


def test_market_starts_fx_from_given_rates_and_quotes_crosses_consistently() -> None:
    from tradeflux.domain.schemas import FxRate

    given = [
        FxRate(pair="EURUSD", base="EUR", quote="USD", rate=D("1.2000"), time=DEFAULT_START),
        FxRate(pair="USDJPY", base="USD", quote="JPY", rate=D("100.00"), time=DEFAULT_START),
        FxRate(pair="EURJPY", base="EUR", quote="JPY", rate=D("999"), time=DEFAULT_START),
    ]
    market = MarketModel(INSTRUMENTS[:1], (), given, start=DEFAULT_START, seed=1)
    rates = {r.pair: r.rate for r in market.fx_rates(DEFAULT_START)}
    assert rates == {"EURUSD": D("1.20000"), "USDJPY": D("100.000"), "EURJPY": D("120.000")}


def test_mix_rates_are_met_within_tolerance(big: SimSession) -> None:
    n = len(big.records)
    kinds = Counter(r.kind for r in big.records)
    observed = {
        "amend": (kinds[RecordKind.AMEND] + kinds[RecordKind.AMEND_ACCOUNT]) / n,
        "cancel": kinds[RecordKind.CANCEL] / n,
        "duplicate": kinds[RecordKind.DUPLICATE] / n,
        "malformed": kinds[RecordKind.MALFORMED] / n,
    }
    expected = {
        "amend": MIX.amend_rate,
        "cancel": MIX.cancel_rate,
        "duplicate": MIX.duplicate_rate,
        "malformed": MIX.malformed_rate,
    }
    for name, p in expected.items():
        tolerance = 4 * math.sqrt(p * (1 - p) / n)  # four standard deviations
        assert abs(observed[name] - p) <= tolerance, (name, observed[name], p)
    share = kinds[RecordKind.AMEND_ACCOUNT] / (
        kinds[RecordKind.AMEND] + kinds[RecordKind.AMEND_ACCOUNT]
    )
    assert share == pytest.approx(MIX.account_move_share, abs=0.03)
    assert big.counts == Counter(r.kind for r in big.records) + Counter(
        f"malformed:{r.malformed}" for r in big.records if r.malformed is not None
    )


def test_every_malformed_kind_appears(big: SimSession) -> None:
    seen = Counter(r.malformed for r in big.records if r.malformed is not None)
    assert set(seen) == set(Malformed)
    assert min(seen.values()) >= 10


def test_duplicates_are_the_exact_bytes_of_a_trades_latest_event(big: SimSession) -> None:
    latest: dict[bytes, bytes] = {}
    for r in big.records:
        if r.kind is RecordKind.DUPLICATE:
            assert latest[r.key] == r.value
        elif r.kind is not RecordKind.MALFORMED:
            latest[r.key] = r.value


def test_amends_change_quantity_price_or_account_and_bump_the_version(big: SimSession) -> None:
    current: dict[str, TradeEvent] = {}
    for r, e in valid_events(big):
        if r.kind is RecordKind.DUPLICATE:
            continue
        before = current.get(e.trade_id)
        if e.event_type == "NEW" and before is None:
            assert e.version == 1
        elif e.event_type == "AMEND":
            assert before is not None and before.event_type != "CANCEL"
            assert e.version == before.version + 1
            assert (e.quantity, e.price, e.account) != (
                before.quantity,
                before.price,
                before.account,
            )
            assert (e.instrument, e.side, e.trade_time) == (
                before.instrument,
                before.side,
                before.trade_time,
            )
        elif e.event_type == "CANCEL":
            assert before is not None and before.event_type != "CANCEL"
            assert e.version == before.version + 1
        current[e.trade_id] = e


def test_the_reference_model_rejects_each_malformed_record_as_intended() -> None:
    s = session(6000, seed=11)
    records = [(r.key, r.value, r.timestamp_ms) for r in s.records]
    result = run_reference(records, INSTRUMENTS, ACCOUNTS, COUNTERPARTIES, s.prices, s.fx_rates)
    expected_rejects = [(r.key, EXPECTED_REJECT[r.malformed]) for r in s.records if r.malformed]
    assert result.rejected == expected_rejects
    kinds = Counter(r.kind for r in s.records)
    assert result.duplicates == kinds[RecordKind.DUPLICATE]
    accepted = kinds[RecordKind.NEW] + kinds[RecordKind.AMEND] + kinds[RecordKind.CANCEL]
    accepted += kinds[RecordKind.AMEND_ACCOUNT]
    assert len(result.enriched) == accepted + kinds[RecordKind.AMEND_ACCOUNT]
    assert set(result.pnl) == {"ACC-1", "ACC-2", "ACC-3", "ACC-4"}
    assert all(p.missing_marks == () for p in result.pnl.values())


def test_mix_rates_must_be_shares_that_fit() -> None:
    with pytest.raises(SimulationError, match="add up to"):
        TradeMix(amend_rate=0.5, cancel_rate=0.3, duplicate_rate=0.2, malformed_rate=0.1)
    with pytest.raises(SimulationError, match="between 0 and 1"):
        TradeMix(amend_rate=-0.1)


def test_without_active_reference_data_the_generator_says_what_is_missing() -> None:
    with pytest.raises(SimulationError, match="active account"):
        generate_trades(INSTRUMENTS, ACCOUNTS[-1:], COUNTERPARTIES, count=1)


def test_refdata_csv_reader(tmp_path: Path) -> None:
    (tmp_path / "instruments.csv").write_text(
        "instrument_id,isin,symbol,currency,mic,lot_size,tick_size,active,extra\n"
        "A.XNYS,US0378331005,A,USD,XNYS,100,0.05,false,ignored\n"
        "B.XNYS,US0378331005,B,USD,XNYS,,,true,\n"
    )
    (tmp_path / "accounts.csv").write_text(
        "account_id,book,legal_entity,base_currency,status\nACC,BK,LE,EUR,CLOSED\n"
    )
    (tmp_path / "counterparties.csv").write_text("counterparty_id,lei,name\nCP,LEI,Name\n")
    data = load_refdata(tmp_path)
    a, b = data.instruments
    assert (a.lot_size, a.tick_size, a.active) == (D(100), D("0.05"), False)
    assert (b.lot_size, b.tick_size, b.active) == (D(1), D("0.01"), True)
    assert data.accounts[0].status == "CLOSED"
    assert data.counterparties[0].active
    assert data.fx_rates == ()
    (tmp_path / "accounts.csv").write_text("account_id,book\nACC,BK\n")
    with pytest.raises(SimulationError, match=r"accounts.csv:2"):
        load_refdata(tmp_path)


class ListSink:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes, int]] = []
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        self.records.append((topic, key, value, timestamp_ms))

    def poll(self) -> None:
        self.delivered = len(self.records)

    def flush(self, timeout_s: float) -> int:
        self.delivered = len(self.records)
        return 0


def test_run_simulation_paces_trades_and_sends_quotes_until_stopped() -> None:
    refdata = SimRefData(tuple(INSTRUMENTS), tuple(ACCOUNTS), tuple(COUNTERPARTIES))
    plan = SimulationPlan(rate_per_s=2000, duration_s=0.5, seed=1, topic_prefix="p-")
    sink = ListSink()
    report = run_simulation(refdata, plan, sink)
    topics = Counter(topic for topic, *_ in sink.records)
    assert topics["p-trades.raw"] == report.trades
    assert 500 <= report.trades <= 1500  # 1000 expected
    assert topics["p-marketdata.prices"] == report.prices == 2 * len(INSTRUMENTS)
    assert topics["p-marketdata.fx"] == report.fx_rates == 2 * 5
    assert report.delivered == len(sink.records) and report.unacknowledged == 0
    assert not report.interrupted

    stop = threading.Event()
    stop.set()
    stopped = run_simulation(
        refdata, SimulationPlan(rate_per_s=10, duration_s=None, seed=1), ListSink(), stop=stop
    )
    assert stopped.interrupted and stopped.trades == 0
