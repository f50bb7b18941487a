"""The post-trade part of the read model: FINAL obligations, adjustments, instructions, reports.

Fed by :class:`~tradeflux.query.readmodel.ReadModel` (under its lock) with records of
``settlement.statements``, ``settlement.instructions`` and ``regulatory.reports``, decoded
into their domain structs, so the API's schemas are the domain's:

- a FINAL statement is kept per obligation key (the figures at the cut-off, as instructed);
  an ADJUSTMENT goes to the adjustments log and is counted against its obligation (both
  are on one topic keyed by obligation, so an obligation's FINAL comes before its
  adjustments);
- instructions are kept per instruction id, with their sese.023 document;
- reports are a log, newest first.

Logs and the instructions are bounded: the oldest entries go first. The listing methods
take the read model's lock, as its own do; the API calls them as ``model.posttrade.*``.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

import msgspec

from tradeflux import topics
from tradeflux.domain.finality import ObligationStatement
from tradeflux.domain.reporting import TradeReport
from tradeflux.domain.sese023 import SettlementInstruction
from tradeflux.query.pages import Page, page

STATEMENTS = topics.STATEMENTS.name
INSTRUCTIONS = topics.INSTRUCTIONS.name
REPORTS = topics.REPORTS.name
POSTTRADE_TOPICS = (STATEMENTS, INSTRUCTIONS, REPORTS)


class FinalObligation(msgspec.Struct, frozen=True, kw_only=True):
    """An obligation as made FINAL at its cut-off, and how many adjustments followed."""

    key: str
    final: ObligationStatement
    adjustments: int = 0


def _matches(item: Any, wanted: dict[str, str]) -> bool:
    return all(str(getattr(item, name)) == value for name, value in wanted.items())


def _wanted(**filters: str | None) -> dict[str, str]:
    return {k: v for k, v in filters.items() if v is not None}


class PostTradeTables:
    """The tables, guarded by the read model's ``lock`` (``apply`` is called holding it)."""

    def __init__(self, lock: threading.Lock, max_entries: int = 50_000) -> None:
        self.lock = lock
        self.max_entries = max_entries
        self.finals: dict[str, FinalObligation] = {}
        self.adjustments: collections.deque[ObligationStatement] = collections.deque(
            maxlen=max_entries
        )
        self.adjusted: collections.Counter[str] = collections.Counter()
        self.instructions: dict[str, SettlementInstruction] = {}
        self.reports: collections.deque[TradeReport] = collections.deque(maxlen=max_entries)
        self.late_reports = 0
        self._decoders: dict[str, Callable[[bytes], Any]] = {
            STATEMENTS: msgspec.json.Decoder(ObligationStatement).decode,
            INSTRUCTIONS: msgspec.json.Decoder(SettlementInstruction).decode,
            REPORTS: msgspec.json.Decoder(TradeReport).decode,
        }

    def apply(self, topic: str, key: str, value: bytes | None) -> tuple[str, str, Any] | None:
        """Apply one record; return (kind, key, value) of what changed, or None.

        Raises msgspec's errors for a value that is not the topic's struct.
        """
        if value is None:
            return None  # these topics are logs: a tombstone means nothing
        item = self._decoders[topic](value)
        if topic == STATEMENTS:
            return self._statement(key, item)
        if topic == INSTRUCTIONS:
            self.instructions.pop(item.instruction_id, None)
            self.instructions[item.instruction_id] = item
            self._bound(self.instructions)
            return "instruction", item.instruction_id, item
        self.reports.append(item)
        self.late_reports += item.late
        return "report", item.report_id, item

    def _statement(self, key: str, statement: ObligationStatement) -> tuple[str, str, Any]:
        if statement.kind == "FINAL":
            final = FinalObligation(key=key, final=statement, adjustments=self.adjusted[key])
            self.finals[key] = final
            self._bound(self.finals)
            return "final", key, final
        self.adjustments.append(statement)
        self.adjusted[key] += 1
        held = self.finals.get(key)
        if held is not None:
            self.finals[key] = msgspec.structs.replace(held, adjustments=self.adjusted[key])
        return "adjustment", key, statement

    def _bound(self, table: dict[str, Any]) -> None:
        while len(table) > self.max_entries:
            del table[next(iter(table))]

    # -- reading -----------------------------------------------------------------------------

    def list_final_obligations(
        self,
        counterparty: str | None = None,
        currency: str | None = None,
        settlement_date: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[FinalObligation]:
        """Return the FINAL obligations (figures at the cut-off) in key order, filtered."""
        wanted = _wanted(
            counterparty=counterparty, currency=currency, settlement_date=settlement_date
        )
        with self.lock:
            finals = self.finals
            matches = (finals[k] for k in sorted(finals) if _matches(finals[k].final, wanted))
            return page(matches, limit, offset)

    def list_adjustments(
        self,
        counterparty: str | None = None,
        currency: str | None = None,
        settlement_date: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[ObligationStatement]:
        """Return the ADJUSTMENTs of FINAL obligations, newest first, filtered."""
        wanted = _wanted(
            counterparty=counterparty, currency=currency, settlement_date=settlement_date
        )
        with self.lock:
            matches = (a for a in reversed(self.adjustments) if _matches(a, wanted))
            return page(matches, limit, offset)

    def list_instructions(
        self,
        counterparty: str | None = None,
        settlement_date: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[SettlementInstruction]:
        """Return the sese.023 instructions, newest first, filtered."""
        wanted = _wanted(counterparty=counterparty, settlement_date=settlement_date, status=status)
        with self.lock:
            matches = (i for i in reversed(self.instructions.values()) if _matches(i, wanted))
            return page(matches, limit, offset)

    def instruction(self, instruction_id: str) -> SettlementInstruction | None:
        """Return one instruction by its id (its TxId), or None."""
        with self.lock:
            return self.instructions.get(instruction_id)

    def list_reports(
        self,
        trade_id: str | None = None,
        late: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[TradeReport]:
        """Return the regulatory reports, newest first, filtered by trade id and lateness."""
        with self.lock:
            matches = (
                r
                for r in reversed(self.reports)
                if (trade_id is None or r.transaction_ref == trade_id)
                and (late is None or r.late == late)
            )
            return page(matches, limit, offset)

    def counts(self) -> dict[str, int]:
        """Return how many entries each table holds now (the caller holds the lock)."""
        return {
            "final_obligations": len(self.finals),
            "adjustments": len(self.adjustments),
            "instructions": len(self.instructions),
            "reports": len(self.reports),
            "late_reports": self.late_reports,
        }
