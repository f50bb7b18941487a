"""Regulatory transaction reports: one per trade version, a subset of MiFIR RTS 22's fields.

docs/domain-rules.md, "Regulatory reports". Each accepted NEW, AMEND and CANCEL on
``trades.enriched`` gives one :class:`TradeReport`, with the fields of Commission
Delegated Regulation (EU) 2017/590 (RTS 22), Annex I, Table 2, that our trades carry:

======  ===========================================  ===========================
RTS 22  field                                        here
======  ===========================================  ===========================
1       Report status (NEWT / CANC)                  ``action`` NEW / AMEND / CANCEL
2       Transaction reference number                 ``transaction_ref`` (trade id)
4       Executing entity identification code (LEI)   ``executing_entity_lei``
7       Buyer identification code (LEI)              ``buyer_lei``
16      Seller identification code (LEI)             ``seller_lei``
28      Trading date time (UTC, microseconds)        ``execution_time``
29      Trading capacity                             ``trading_capacity`` (DEAL)
30      Quantity                                     ``quantity``
33, 34  Price, price currency                        ``price``, ``price_currency``
35      Net amount                                   ``net_amount`` (the notional)
36      Venue (MIC)                                  ``venue``
41      Instrument identification code (ISIN)        ``isin``
======  ===========================================  ===========================

plus ``side``, our own ``report_id`` and the ``ref_report_id`` of the report an AMEND or
CANCEL replaces. RTS 22 has no amend status: a firm cancels a report and sends a new one.
We send one AMEND report that names the report it replaces, as a post-trade transparency
regime does (RTS 1's ``AMND`` flag); an approved reporting mechanism turns it into CANC +
NEWT. Left out, for want of the data: 3 (venue transaction id), 5-6 (MiFID coverage,
submitting entity), 8-15 and 17-24 (branch, names, birth dates and decision makers of
buyer and seller), 25-27 (order transmission), 31-32 (quantity currency, notional change),
37-40 (branch membership, up-front payment, complex trades), 42-56 (instrument details of
non-ToTV instruments), 57-60 (investment and execution decision within the firm) and
61-65 (waiver, short-selling, OTC post-trade, commodity and SFT indicators).

The deadline: a report is due ``deadline`` after the event it reports happened. For a NEW
that is the execution (``trade_time``); for an AMEND or CANCEL, the moment the firm got the
correction (its ``ingest_time``): a correction cannot be reported before it is made. A
report's ``reported_at`` is the partition's stream time when it was issued (the largest
recorded time, an event's ``ingest_time``, seen so far in offset order), never the wall
clock, so a replay issues the same report; it is ``late`` when ``reported_at`` is past
``deadline_at``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

import msgspec

from tradeflux.domain.identifiers import is_valid_lei
from tradeflux.domain.schemas import EnrichedTrade, Side
from tradeflux.errors import ConfigError

ReportAction = Literal["NEW", "AMEND", "CANCEL"]

DEFAULT_DEADLINE = dt.timedelta(seconds=60)
"""RTS 1's post-trade deadline for equities, one minute; RTS 22 itself allows T+1."""

DEFAULT_ENTITY_LEIS: dict[str, str] = {
    "Tradeflux Securities LLC": "5493TFSECLLC0US00077",
    "Tradeflux Europe SE": "5299TFEUROPESE0DE025",
    "Tradeflux UK Ltd": "2138TFUKLTD0000GB021",
    "Tradeflux Suisse AG": "5067TFSUISSEAG0CH055",
    "Tradeflux Japan K.K.": "3538TFJAPANKK00JP095",
    "Tradeflux Asia Ltd": "2549TFASIALTD00HK070",
}
"""The LEIs of the sample data's legal entities (made up, with valid check digits)."""

_ACTION_CODE = {"NEW": "N", "AMEND": "A", "CANCEL": "C"}


class TradeReport(msgspec.Struct, frozen=True, kw_only=True):
    """A transaction report of one trade version; keyed by trade id on ``regulatory.reports``.

    ``execution_time`` is ISO 8601 UTC with six decimals (``2026-11-24T15:00:00.000250Z``),
    as RTS 22 field 28 asks. ``reported_at`` and ``deadline_at`` are aware UTC.
    """

    report_id: str
    ref_report_id: str | None
    action: ReportAction
    transaction_ref: str
    version: int
    account: str
    executing_entity_lei: str
    buyer_lei: str
    seller_lei: str
    side: Side
    trading_capacity: Literal["DEAL"] = "DEAL"
    execution_time: str
    isin: str
    quantity: Decimal
    price: Decimal
    price_currency: str
    net_amount: Decimal
    venue: str
    reported_at: dt.datetime
    deadline_at: dt.datetime
    late: bool


class ReportState(msgspec.Struct, frozen=True, array_like=True):
    """The last report of a trade in an account: its version, id, and whether it is live."""

    version: int
    report_id: str
    live: bool


def report_key(event: EnrichedTrade) -> str:
    """Return the key the last report of a trade is held under: ``account|trade_id``.

    Per account: an AMEND that moves a trade to another account reaches this topic as a
    CANCEL in the old account's partition and a NEW in the new one's, with one version.
    """
    return f"{event.account}|{event.trade_id}"


def report_id(event: EnrichedTrade) -> str:
    """Return the id of an event's report: ``trade_id-version-N|A|C``, unique per version."""
    return f"{event.trade_id}-{event.version}-{_ACTION_CODE[event.event_type]}"


def utc_micros(t: dt.datetime) -> str:
    """Return ``t`` as ISO 8601 UTC with exactly six decimals and a ``Z``."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_report(
    held: ReportState | None,
    event: EnrichedTrade,
    *,
    entity_lei: str,
    reported_at: dt.datetime,
    deadline: dt.timedelta,
) -> tuple[ReportState, TradeReport] | None:
    """Return the trade's new state and its report, or None for a version not above the held one.

    An AMEND or CANCEL names the live report it replaces (None when none is held).
    """
    if held is not None and event.version <= held.version:
        return None
    rid = report_id(event)
    ref = held.report_id if held is not None and held.live else None
    buy = event.side == "BUY"
    start = event.trade_time
    if event.event_type != "NEW" and event.ingest_time is not None:
        start = event.ingest_time
    due = start + deadline
    report = TradeReport(
        report_id=rid,
        ref_report_id=ref,
        action=event.event_type,
        transaction_ref=event.trade_id,
        version=event.version,
        account=event.account,
        executing_entity_lei=entity_lei,
        buyer_lei=entity_lei if buy else event.counterparty_lei,
        seller_lei=event.counterparty_lei if buy else entity_lei,
        side=event.side,
        execution_time=utc_micros(event.trade_time),
        isin=event.isin,
        quantity=event.quantity,
        price=event.price,
        price_currency=event.currency,
        net_amount=event.notional,
        venue=event.venue,
        reported_at=reported_at,
        deadline_at=due,
        late=reported_at > due,
    )
    return ReportState(event.version, rid, event.event_type != "CANCEL"), report


def parse_entity_leis(text: str) -> dict[str, str]:
    """Return :data:`DEFAULT_ENTITY_LEIS` with ``Legal entity=LEI;...`` entries of ``text`` on top.

    Raises ConfigError on an entry without ``=`` or with an LEI whose check digits fail.
    """
    leis = dict(DEFAULT_ENTITY_LEIS)
    for raw in text.split(";"):
        entry = raw.strip()
        if not entry:
            continue
        name, eq, lei = entry.rpartition("=")
        if not eq or not name.strip():
            raise ConfigError(
                f"entity LEI {entry!r}: write Legal entity name=LEI, entries separated by ';'"
            )
        if not is_valid_lei(lei.strip()):
            raise ConfigError(f"entity LEI {entry!r}: {lei.strip()!r} is not a valid LEI")
        leis[name.strip()] = lei.strip()
    return leis
