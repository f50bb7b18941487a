"""An independent, plain fold of the settlement cut-off and reporting rules (docs/domain-rules.md).

It shares nothing with ``tradeflux.domain.cutoffs``, ``finality``, ``netting``, ``sese023``
or ``reporting``: only the event and output structs, msgspec, and exchange_calendars for
the markets' sessions. It replays each input partition in offset order, as the services
read it, recomputing every obligation from scratch from the effective trades whenever it
needs one (no running sums, no stores), so each rule can be read against the document.

Settlement input: the records of ``trades.by_counterparty`` (trade events and clock ticks).
Reporting input: the records of ``trades.enriched``. Both as ``(partition, value bytes)``
in read_all's order (per partition, in offset order).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import exchange_calendars  # type: ignore[import-untyped]
import msgspec

from tradeflux.domain.finality import ObligationStatement
from tradeflux.domain.reporting import TradeReport
from tradeflux.domain.schemas import EnrichedTrade, SecuritiesObligation, SettlementObligation

# docs/domain-rules.md, "Settlement cut-off": the defaults, written out again.
CUTOFFS = {
    "USD": ("XNYS", dt.time(19, 0)),
    "EUR": ("XETR", dt.time(18, 0)),
    "GBP": ("XLON", dt.time(18, 0)),
    "CHF": ("XSWX", dt.time(18, 0)),
    "JPY": ("XTKS", dt.time(18, 0)),
    "HKD": ("XHKG", dt.time(18, 0)),
}
RETENTION_DAYS = 7
MINOR_UNITS = {"JPY": 0}  # of the sample currencies; the others have 2
REPORT_DEADLINE = dt.timedelta(seconds=60)
ENTITY_LEIS = {  # docs/domain-rules.md, "Regulatory reports": the sample entities' LEIs
    "Tradeflux Securities LLC": "5493TFSECLLC0US00077",
    "Tradeflux Europe SE": "5299TFEUROPESE0DE025",
    "Tradeflux UK Ltd": "2138TFUKLTD0000GB021",
    "Tradeflux Suisse AG": "5067TFSUISSEAG0CH055",
    "Tradeflux Japan K.K.": "3538TFJAPANKK00JP095",
    "Tradeflux Asia Ltd": "2549TFASIALTD00HK070",
}
ZERO = Decimal(0)


@functools.cache
def _sessions(mic: str) -> tuple[ZoneInfo, list[dt.date]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = exchange_calendars.get_calendar(mic, start="2025-01-01", end="2027-12-31")
    return ZoneInfo(str(cal.tz)), [s.date() for s in cal.sessions]


def cutoff(currency: str, day: dt.date) -> dt.datetime:
    """The market's cut-off time on its last session before ``day``, in UTC."""
    mic, local = CUTOFFS[currency]
    tz, sessions = _sessions(mic)
    before = max(s for s in sessions if s < day)
    return dt.datetime.combine(before, local, tzinfo=tz).astimezone(dt.UTC)


def expiry(currency: str, day: dt.date) -> dt.datetime:
    """Midnight, market time, at the end of ``day`` + the retention."""
    tz, _ = _sessions(CUTOFFS[currency][0])
    end = day + dt.timedelta(days=RETENTION_DAYS + 1)
    return dt.datetime.combine(end, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


@dataclass
class SettlementExpected:
    """What settlement must write: statements per obligation key, instructions, dead letters."""

    statements: dict[str, list[ObligationStatement]] = field(default_factory=dict)
    instructions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by instruction id
    expired: int = 0  # events refused as SETTLEMENT_DATE_EXPIRED


def _ob_key(t: EnrichedTrade) -> str:
    return f"{t.counterparty}|{t.currency}|{t.settlement_date.isoformat()}"


def _net(key: str, live: list[EnrichedTrade], lei: str) -> SettlementObligation | None:
    """The obligation of ``key`` netted afresh from its live trades (None: none)."""
    trades = [t for t in live if _ob_key(t) == key]
    if not trades:
        return None
    paid = sum((t.notional for t in trades if t.side == "BUY"), ZERO)
    received = sum((t.notional for t in trades if t.side == "SELL"), ZERO)
    quantity: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    isin: dict[str, str] = {}
    for t in trades:
        quantity[t.instrument] += t.quantity if t.side == "BUY" else -t.quantity
        count[t.instrument] += 1
        isin[t.instrument] = t.isin
    first = trades[0]
    return SettlementObligation(
        counterparty=first.counterparty,
        counterparty_lei=lei,
        currency=first.currency,
        settlement_date=first.settlement_date,
        net_cash=received - paid,
        cash_paid=paid,
        cash_received=received,
        trade_count=len(trades),
        securities=tuple(
            SecuritiesObligation(instrument=i, isin=isin[i], quantity=q, trade_count=count[i])
            for i, q in sorted(quantity.items())
        ),
    )


def _instruction(key: str, instrument: str, trades: list[EnrichedTrade]) -> dict[str, Any]:
    """The fields of one instrument's sese.023 instruction, from its live trades."""
    qty = sum((t.quantity if t.side == "BUY" else -t.quantity for t in trades), ZERO)
    cash = sum((-t.notional if t.side == "BUY" else t.notional for t in trades), ZERO)
    first = trades[0]
    places = MINOR_UNITS.get(first.currency, 2)
    amount = abs(cash.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))
    digest = hashlib.sha256(f"{key}|{instrument}".encode()).hexdigest()[:20].upper()
    return {
        "instruction_id": f"TF{first.settlement_date:%Y%m%d}{digest}",
        "obligation_key": key,
        "instrument": instrument,
        "isin": first.isin,
        "movement": "RECE" if qty > 0 else "DELI",
        "payment": "APMT" if amount else "FREE",
        "quantity": abs(qty),
        "amount": amount if amount else None,
        "credit_debit": ("CRDT" if cash > 0 else "DBIT") if amount else None,
        "status": "READY",
    }


_TICK = msgspec.json.Decoder(dict[str, Any])
_TRADE = msgspec.json.Decoder(EnrichedTrade)


def _decode(value: bytes) -> EnrichedTrade | dt.datetime:
    try:
        return _TRADE.decode(value)
    except msgspec.ValidationError:
        return dt.datetime.fromisoformat(_TICK.decode(value)["tick"])


def expected_settlement(records: list[tuple[int, bytes]]) -> SettlementExpected:
    """Fold each partition of ``trades.by_counterparty`` as the rules say."""
    out = SettlementExpected()
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for partition, value in records:
        by_partition[partition].append(value)
    for values in by_partition.values():
        _fold_settlement([_decode(v) for v in values], out)
    return out


def _fold_settlement(items: list[EnrichedTrade | dt.datetime], out: SettlementExpected) -> None:
    now: dt.datetime | None = None
    held: dict[str, EnrichedTrade] = {}  # per cpty|account|instrument|trade_id, cancels too
    lei: dict[str, str] = {}  # per obligation key: the LEI of the last live event applied
    dates: set[tuple[str, dt.date]] = set()  # dates with state, not yet dropped
    final: set[tuple[str, dt.date]] = set()
    counts: dict[str, int] = {}

    def live() -> list[EnrichedTrade]:
        return [t for t in held.values() if t.event_type != "CANCEL"]

    def due() -> tuple[dt.datetime, bool, str, dt.date] | None:
        assert now is not None
        times = [(cutoff(c, d), False, c, d) for c, d in dates - final if cutoff(c, d) <= now]
        times += [(expiry(c, d), True, c, d) for c, d in final if expiry(c, d) <= now]
        return min(times) if times else None

    for item in items:
        t = item if isinstance(item, dt.datetime) else item.ingest_time
        assert t is not None
        if now is None or t > now:
            now = t
            while (next_due := due()) is not None:
                _, expiring, currency, day = next_due
                if expiring:
                    held = {
                        k: e for k, e in held.items()
                        if (e.currency, e.settlement_date) != (currency, day)
                    }  # fmt: skip
                    counts = {
                        k: n for k, n in counts.items()
                        if not k.endswith(f"|{currency}|{day.isoformat()}")
                    }  # fmt: skip
                    dates.discard((currency, day))
                    final.discard((currency, day))
                    continue
                final.add((currency, day))
                trades = [e for e in live() if (e.currency, e.settlement_date) == (currency, day)]
                for key in sorted({_ob_key(e) for e in trades}):
                    obligation = _net(key, trades, lei[key])
                    assert obligation is not None
                    out.statements.setdefault(key, []).append(
                        ObligationStatement(
                            kind="FINAL", sequence=0, counterparty=obligation.counterparty,
                            currency=currency, settlement_date=day,
                            cutoff_at=cutoff(currency, day), recorded_at=now,
                            obligation=obligation,
                        )
                    )  # fmt: skip
                    counts[key] = 0
                    for line in obligation.securities:
                        if line.quantity != 0:
                            mine = [e for e in trades if _ob_key(e) == key and
                                    e.instrument == line.instrument]  # fmt: skip
                            item_ = _instruction(key, line.instrument, mine)
                            out.instructions[item_["instruction_id"]] = item_
        if isinstance(item, dt.datetime):
            continue
        e = item
        assert now is not None
        if expiry(e.currency, e.settlement_date) <= now:
            out.expired += 1
            continue
        ident = f"{e.counterparty}|{e.account}|{e.instrument}|{e.trade_id}"
        before_event = held.get(ident)
        if before_event is not None and e.version <= before_event.version:
            continue
        keys = [_ob_key(x) for x in (before_event, e) if x is not None and x.event_type != "CANCEL"]
        before = {k: _net(k, live(), lei.get(k, "")) for k in keys}
        held[ident] = e
        dates.add((e.currency, e.settlement_date))
        if e.event_type != "CANCEL":
            lei[_ob_key(e)] = e.counterparty_lei
        for key in dict.fromkeys(keys):
            after = _net(key, live(), lei.get(key, ""))
            _, currency, day = key.rsplit("|", 2)
            settles = dt.date.fromisoformat(day)
            if cutoff(currency, settles) > now or before[key] == after:
                continue
            counts[key] = counts.get(key, 0) + 1
            change = (ZERO if after is None else after.net_cash) - (
                ZERO if before[key] is None else before[key].net_cash  # type: ignore[union-attr]
            )
            out.statements.setdefault(key, []).append(
                ObligationStatement(
                    kind="ADJUSTMENT", sequence=counts[key], counterparty=key.rsplit("|", 2)[0],
                    currency=currency, settlement_date=settles,
                    cutoff_at=cutoff(currency, settles), recorded_at=now, obligation=after,
                    previous=before[key], net_cash_change=change, trade_id=e.trade_id,
                    version=e.version, event_type=e.event_type,
                )
            )  # fmt: skip


def expected_reports(records: list[tuple[int, bytes]]) -> dict[str, list[TradeReport]]:
    """The reports per trade id (in report id order), folding each partition of trades.enriched."""
    out: dict[str, list[TradeReport]] = defaultdict(list)
    by_partition: dict[int, list[EnrichedTrade]] = defaultdict(list)
    for partition, value in records:
        by_partition[partition].append(_TRADE.decode(value))
    for events in by_partition.values():
        now: dt.datetime | None = None
        held: dict[str, tuple[int, str, bool]] = {}
        for e in events:
            assert e.ingest_time is not None
            now = e.ingest_time if now is None or e.ingest_time > now else now
            key = f"{e.account}|{e.trade_id}"
            h = held.get(key)
            if h is not None and e.version <= h[0]:
                continue
            rid = f"{e.trade_id}-{e.version}-{e.event_type[0]}"
            ours = ENTITY_LEIS[e.legal_entity]
            start = e.trade_time if e.event_type == "NEW" else e.ingest_time
            held[key] = (e.version, rid, e.event_type != "CANCEL")
            out[e.trade_id].append(
                TradeReport(
                    report_id=rid, ref_report_id=h[1] if h is not None and h[2] else None,
                    action=e.event_type, transaction_ref=e.trade_id, version=e.version,
                    account=e.account, executing_entity_lei=ours,
                    buyer_lei=ours if e.side == "BUY" else e.counterparty_lei,
                    seller_lei=e.counterparty_lei if e.side == "BUY" else ours,
                    side=e.side, execution_time=e.trade_time.astimezone(dt.UTC).strftime(
                        "%Y-%m-%dT%H:%M:%S.%fZ"),
                    isin=e.isin, quantity=e.quantity, price=e.price, price_currency=e.currency,
                    net_amount=e.notional, venue=e.venue, reported_at=now,
                    deadline_at=start + REPORT_DEADLINE, late=now > start + REPORT_DEADLINE,
                )
            )  # fmt: skip
    return {k: sorted(v, key=lambda r: r.report_id) for k, v in out.items()}
