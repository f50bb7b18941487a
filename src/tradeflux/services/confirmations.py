"""Confirmations: ``confirmations.in`` → ``confirmations`` and ``confirmations.exceptions``.

The input is keyed by child trade id: the allocations service's children, their
bookings (allocation feed, from ``trades.enriched``), the clients' affirmations
(gateway) and the ticker's clock ticks. State: each child's confirmation
(``children``, domain/confirmation_book.py) and the partition's stream time with the
deadlines still to pass (``clock``). Time moves first, record by record: when stream
time passes a deadline, every child of that deadline still unaffirmed raises one
exception (in trade id order); then the record applies. Deadlines come from the
market's rule (``TRADEFLUX_AFFIRM_DEADLINES``, domain/confirmation_deadlines.py), in
the market's time zone. A ConfirmationAck that answers no open confirmation is
dead-lettered with its reason. Rules: docs/domain-rules.md, "Confirmation and
affirmation".
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence

import msgspec

from tradeflux import topics
from tradeflux.config import Settings
from tradeflux.domain.allocation_clock import ClockTick
from tradeflux.domain.confirmation_book import AckRefused, ChildState, ConfirmationBook
from tradeflux.domain.confirmation_deadlines import AffirmationRules, parse_rules
from tradeflux.domain.confirmation_events import (
    ChildAllocated,
    ChildBooked,
    ConfirmationAck,
    parse_confirm_id,
)
from tradeflux.errors import ConfigError
from tradeflux.stream.codecs import MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.records import Record
from tradeflux.stream.stores import StorePartition
from tradeflux.stream.topology import Service, StoreSpec

CONFIRMATIONS = topics.CONFIRMATIONS.name
EXCEPTIONS = topics.AFFIRMATION_EXCEPTIONS.name
CLOCK = "clock"  # the one key of the clock store

log = logging.getLogger("tradeflux.services.confirmations")


def affirmation_rules(settings: Settings) -> AffirmationRules:
    """Return the affirmation deadlines of ``settings`` (``affirm_deadlines`` over the rules)."""
    try:
        return parse_rules(settings.affirm_deadlines)
    except ValueError as exc:
        raise ConfigError(f"affirm_deadlines: {exc}") from None


class ConfirmationClock(msgspec.Struct, frozen=True, kw_only=True):
    """A partition's stream time, and the deadlines (ms) of its children not passed yet."""

    stream_time_ms: int = -1
    due: tuple[int, ...] = ()  # sorted, distinct


def confirm(ctx: Context, records: Sequence[Record], rules: AffirmationRules) -> None:
    """Apply each record to its child in offset order; deadlines pass first, then the record."""
    children = ctx.store("children")
    clocks = ctx.store("clock")
    clock: ConfirmationClock = clocks.get(CLOCK) or ConfirmationClock()
    for record in records:
        book = ConfirmationBook(rules)
        now_ms = max(clock.stream_time_ms, record.timestamp_ms)
        clock = msgspec.structs.replace(clock, stream_time_ms=now_ms)
        clock = _pass_deadlines(children, clock, book, now_ms)
        value = record.value
        if isinstance(value, ClockTick):
            ctx.count("ticks")
            _send(ctx, book)
            continue
        if isinstance(value, ChildAllocated):
            trade_id = value.event.trade_id
            state = book.allocated(children.get(trade_id), value, now_ms)
        elif isinstance(value, ChildBooked):
            trade_id = value.trade.trade_id
            state = book.booked(children.get(trade_id), value.trade, now_ms)
        else:
            assert isinstance(value, ConfirmationAck)  # noqa: S101 - the topic's union
            parsed = parse_confirm_id(value.confirm_id)
            trade_id = parsed[0] if parsed is not None else record.key or ""
            try:
                state = book.acknowledged(children.get(trade_id), value, now_ms)
            except AckRefused as refused:
                _send(ctx, book)
                ctx.reject(record, refused.reason, refused.detail)
                continue
        state = book.overdue(state, now_ms)  # allocated, or re-opened, past its deadline
        children.put(trade_id, state)
        deadline_ms = state.deadline_ms
        if state.open and not state.exception_raised and deadline_ms is not None:
            clock = _add_deadline(clock, deadline_ms)
        _send(ctx, book)
    clocks.put(CLOCK, clock)


def _pass_deadlines(
    children: StorePartition, clock: ConfirmationClock, book: ConfirmationBook, now_ms: int
) -> ConfirmationClock:
    """Raise the exceptions of every deadline stream time has passed, earliest first."""
    passed = [d for d in clock.due if d < now_ms]
    if not passed:
        return clock
    due_now = set(passed)
    overdue = sorted(
        (state.deadline_ms, trade_id)
        for trade_id, state in children.items()
        if state.deadline_ms in due_now and state.open and not state.exception_raised
    )
    for _deadline, trade_id in overdue:
        children.put(trade_id, book.overdue(children.get(trade_id), now_ms))
    return msgspec.structs.replace(clock, due=clock.due[len(passed) :])


def _add_deadline(clock: ConfirmationClock, deadline_ms: int) -> ConfirmationClock:
    if deadline_ms < clock.stream_time_ms or deadline_ms in clock.due:
        return clock
    due = list(clock.due)
    bisect.insort(due, deadline_ms)
    return msgspec.structs.replace(clock, due=tuple(due))


def _send(ctx: Context, book: ConfirmationBook) -> None:
    effects = book.effects
    for confirmation in effects.confirmations:
        ctx.emit(CONFIRMATIONS, confirmation.trade_id, confirmation)
    for exception in effects.exceptions:
        ctx.emit(EXCEPTIONS, exception.trade_id, exception)
    for event, n in effects.counts.items():
        ctx.count(event, n)
    book.effects = type(effects)()


def build(settings: Settings | None = None) -> Service:
    """Return the confirmations service with the affirmation deadlines of ``settings``."""
    rules = affirmation_rules(settings or Settings())

    def process(ctx: Context, records: Sequence[Record]) -> None:
        confirm(ctx, records, rules)

    return Service(
        name="confirmations",
        inputs=[topics.CONFIRMATIONS_IN.topic()],
        outputs=[topics.CONFIRMATIONS.topic(), topics.AFFIRMATION_EXCEPTIONS.topic()],
        stores=[
            StoreSpec("children", MsgpackCodec(ChildState)),
            StoreSpec("clock", MsgpackCodec(ConfirmationClock)),
        ],
        process=process,
        dead_letter_topic=topics.REJECTED.name,
    )


SERVICE = build()  # the defaults; `tradeflux run confirmations` builds from Settings
RULES = affirmation_rules(Settings())
