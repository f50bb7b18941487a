"""Settlement on the real broker: input from the reference model, an independent netting.

The input is the reference model's enriched events (what the validator must emit for a
simulated session, tests/support/reference.py) plus a few hand-made ones that move a
trade's settlement date and cancel every trade of an obligation, so that tombstones
are exercised. The expected obligations are netted here by a plain fold that shares
nothing with ``tradeflux.domain.netting``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from typing import Any

import msgspec
from confluent_kafka.admin import AdminClient

from tests.support.kafka_tools import create_topics as create_changelogs
from tests.support.kafka_tools import read_all, wait_for
from tests.support.pipeline import reference, simulated_session
from tests.support.reference import in_rules_context
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.domain.schemas import EnrichedTrade, SecuritiesObligation, SettlementObligation
from tradeflux.sim.trades import TradeMix

_ENCODE = msgspec.json.Encoder(decimal_format="string").encode


def prepare_topics(settings: Settings, prefix: str, partitions: int = 6) -> None:
    """Create every topic of the contract under ``prefix``, and settlement's changelogs.

    The changelogs are created here, and the test waits until every partition has a
    leader, because the runtime restores right after creating them: a restore that asks
    a brand-new changelog for its offsets before its leader is known fails with
    NOT_LEADER_FOR_PARTITION and the service exits (a runtime race, not settlement's).
    """
    create_topics(replace(settings, topic_prefix=prefix, partitions=partitions), TopicSet.ALL)
    stores = ("legs", "obligations", "dates", "statement_counts", "clock")
    changelogs = [f"{prefix}settlement-{store}-changelog" for store in stores]
    create_changelogs(settings, dict.fromkeys(changelogs, partitions), compacted=changelogs)
    admin = AdminClient(settings.client_config())

    def leaders_known() -> bool:
        topics = admin.list_topics(timeout=10).topics
        return all(
            name in topics
            and len(topics[name].partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in topics[name].partitions.values())
            for name in changelogs
        )

    wait_for(leaders_known, 30, "the changelogs' partition leaders")


def enriched_events(count: int, seed: int) -> tuple[list[EnrichedTrade], set[str]]:
    """Return the enriched events of a simulated session, plus hand-made date moves and cancels.

    The events are in the order the validator emits them (the order per trade id is what
    matters); the set holds the obligation keys the hand-made events must leave as
    tombstones.
    """
    mix = TradeMix(amend_rate=0.08, cancel_rate=0.04, duplicate_rate=0.01, malformed_rate=0.01)
    session = simulated_session(count, seed, mix)
    events = list(reference(session).enriched)
    firsts = [e for e in events if e.event_type == "NEW"][:40]
    extra: list[EnrichedTrade] = []
    emptied: set[str] = set()
    for n, base in enumerate(firsts):
        # A trade alone on a date of its own: NEW, AMEND to another date of its own, and
        # (for half of them) a CANCEL; every obligation it leaves is a tombstone.
        day = dt.date(2031, 1, 6) + dt.timedelta(days=n)
        new = replace_struct(base, trade_id=f"X{n}", version=1, settlement_date=day)
        moved = replace_struct(
            new, event_type="AMEND", version=2, settlement_date=day + dt.timedelta(days=100)
        )
        extra += [new, moved]
        emptied.add(_key(new))
        if n % 2 == 0:
            extra.append(replace_struct(moved, event_type="CANCEL", version=3))
            emptied.add(_key(moved))
    return events + extra, emptied


def _key(t: EnrichedTrade) -> str:
    return f"{t.counterparty}|{t.currency}|{t.settlement_date.isoformat()}"


def replace_struct(event: EnrichedTrade, **changes: Any) -> EnrichedTrade:
    """Return ``event`` with ``changes`` (no notional change: quantity and price stay)."""
    return msgspec.structs.replace(event, **changes)


@in_rules_context
def expected_obligations(events: list[EnrichedTrade]) -> dict[str, SettlementObligation]:
    """Net the effective trades of ``events`` (in validator order) plainly.

    Effective: the last NEW/AMEND per trade id, unless a CANCEL came after it (an AMEND
    that moves a trade is a CANCEL then a NEW, so the trade id ends where it went).
    Cash from our side: a BUY pays its notional, a SELL receives it; securities: a BUY
    receives its quantity, a SELL delivers it.
    """
    effective: dict[str, EnrichedTrade] = {}
    for e in events:
        if e.event_type == "CANCEL":
            effective.pop(e.trade_id, None)
        else:
            effective[e.trade_id] = e
    paid: dict[str, Decimal] = defaultdict(Decimal)
    received: dict[str, Decimal] = defaultdict(Decimal)
    count: dict[str, int] = defaultdict(int)
    qty: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    per_instrument: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    first: dict[str, EnrichedTrade] = {}
    isin: dict[str, str] = {}
    for t in effective.values():
        key = _key(t)
        first.setdefault(key, t)
        isin[t.instrument] = t.isin
        if t.side == "BUY":
            paid[key] += t.notional
            qty[key][t.instrument] += t.quantity
        else:
            received[key] += t.notional
            qty[key][t.instrument] -= t.quantity
        count[key] += 1
        per_instrument[key][t.instrument] += 1
    return {
        key: SettlementObligation(
            counterparty=t.counterparty,
            counterparty_lei=t.counterparty_lei,
            currency=t.currency,
            settlement_date=t.settlement_date,
            net_cash=received[key] - paid[key],
            cash_paid=paid[key],
            cash_received=received[key],
            trade_count=count[key],
            securities=tuple(
                SecuritiesObligation(
                    instrument=i, isin=isin[i], quantity=q, trade_count=per_instrument[key][i]
                )
                for i, q in sorted(qty[key].items())
            ),
        )
        for key, t in first.items()
    }


def read_obligations(
    settings: Settings, prefix: str
) -> tuple[dict[str, SettlementObligation], set[str]]:
    """Return the compacted view of settlement.obligations (read_committed) and the keys
    whose last record is a tombstone."""
    decoder = msgspec.json.Decoder(SettlementObligation)
    view: dict[str, SettlementObligation] = {}
    tombstoned: set[str] = set()
    for m in read_all(settings, f"{prefix}settlement.obligations", timeout_s=120):
        key = m.key().decode()
        if m.value() is None:
            view.pop(key, None)
            tombstoned.add(key)
        else:
            view[key] = decoder.decode(m.value())
            tombstoned.discard(key)
    return view, tombstoned
