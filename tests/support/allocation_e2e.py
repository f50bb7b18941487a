"""The end-to-end run of block allocation and confirmation: plan, topics, outputs, reference.

A plan is a set of blocks (fills of one order on the house account) and the allocation
instructions sent for them, cycling through scenarios that exercise every rule: a
residual split, a replace, a cancel, blocks by NoExecs, a rejected then corrected
instruction, rejects, an already allocated block, and an order that has no
executions. The same plan is sent through the FIX gateway by QuickFIX/J (integration
test) or produced straight to the input topics (crash test). The expected outcome comes
from tests/support/allocation_reference.py and tests/support/reference.py, which share
nothing with the services' code.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from tests.support import allocation_reference as ref
from tests.support import reference as trade_reference
from tests.support.kafka_tools import REPO, create_topics, producer, read_all, wait_for
from tradeflux.broker.topics import TopicSet
from tradeflux.broker.topics import create_topics as create_topic_set
from tradeflux.config import Settings
from tradeflux.domain.allocation_clock import ClockTick
from tradeflux.domain.allocation_events import (
    Allocation,
    AllocationAck,
    AllocationEntry,
    AllocationInstruction,
)
from tradeflux.domain.confirmation_events import (
    AffirmationException,
    Confirmation,
    ConfirmationAck,
)
from tradeflux.domain.refdata import parse_refdata_file
from tradeflux.domain.schemas import Account, AllocationRef, Instrument, Position, TradeEvent
from tradeflux.gateway.refdata import load_files

D = Decimal
REFDATA = REPO / "data" / "refdata"
HOUSE = "ACC-0001"
CLIENTS = tuple(f"ACC-{n:04d}" for n in range(2, 12))
CLOSED = "ACC-0017"
CONTRA = "CP-001"
# (instrument, lot, tick, a price level): Tokyo (lots of 100), New York, Frankfurt
MARKETS = (
    ("3902.XTKS", 100, D(10), 2450),
    ("HO.XNYS", 1, D("0.01"), 18312),
    ("HE.XETR", 1, D("0.05"), 1731),
)
TIME_ZONES = {"XTKS": "Asia/Tokyo", "XNYS": "America/New_York", "XETR": "Europe/Berlin"}
SERVICE_ENV = {"TRADEFLUX_AFFIRM_DEADLINES": "XNYS=1@21:00"}
"""The services' environment in these tests: every deadline lies ahead of the fills.

The US rule (21:00 New York time on trade date) has passed for a fill made between 21:00
and midnight New York time, and a child born after its deadline raises UNAFFIRMED at
once (domain-rules), so on the default rules the outcome would depend on the hour the
suite runs. The next session's 21:00 is always ahead, as Tokyo's and Frankfurt's
next-session noon are; the tests move stream time past each deadline with ticks.
"""
SERVICES_WITH_STORES = {
    "validator": ("trades",),
    "positions": ("books", "fills", "index"),
    "allocation-feed": ("orders",),
    "allocations": ("orders", "clock"),
    "confirmations": ("children", "clock"),
}


@dataclass
class Plan:
    """What is sent: fills, then instructions; and what the reference expects of them."""

    fills: list[ref.Fill] = field(default_factory=list)
    instructions: list[ref.Instruction] = field(default_factory=list)
    unknown_block: str = ""  # the alloc id of the instruction whose order has no fills


def _trade_date(when: dt.datetime, instrument: str) -> dt.date:
    return when.astimezone(ZoneInfo(TIME_ZONES[instrument.split(".")[1]])).date()


def build_plan(blocks: int, now: dt.datetime, tag: str) -> Plan:
    """Return a plan of ``blocks`` blocks (scenario ``i % 8``), fills dated just before ``now``."""
    plan = Plan()
    for b in range(blocks):
        instrument, lot, tick, level = MARKETS[b % len(MARKETS)]
        order = f"{tag}-O{b:03d}"
        side = "BUY" if b % 2 == 0 else "SELL"
        when = now - dt.timedelta(seconds=60) + dt.timedelta(milliseconds=b)
        day = _trade_date(when, instrument)
        fills = []
        for n in range(3):
            fills.append(
                ref.Fill(
                    exec_id=f"{order}-E{n}",
                    order_id=order,
                    account=HOUSE,
                    instrument=instrument,
                    side=side,
                    quantity=D(lot) * (2 + n),
                    price=tick * (level + 3 * n),
                    trade_time=when + dt.timedelta(milliseconds=n),
                    trade_date=day,
                    counterparty=CONTRA,
                    currency="",
                    venue=instrument.split(".")[1],
                )
            )
        plan.fills += fills
        total = sum(f.quantity for f in fills)
        avg = ref.average(fills)
        scenario = b % 8
        clients = [CLIENTS[(b + k) % len(CLIENTS)] for k in range(4)]

        ins = functools.partial(_instruction, order, day, side, instrument, total, avg)

        # 41%, 29%, 20%, 10% of 9 lots: 3.69, 2.61, 1.8, 0.9 lots; whole lots 3, 2, 1, 0
        # and the 3 left to the largest remainders (.9, .8, .69): 4, 2, 2, 1 lots.
        shares = [total * D(p) / 100 for p in (41, 29, 20)]
        residual = [(clients[k], q) for k, q in enumerate(shares)]
        residual.append((clients[3], total - sum(shares)))
        if scenario == 0:  # residual lots by the largest remainder
            plan.instructions.append(ins("A1", residual))
        elif scenario == 1:  # replace: accounts changed, dropped and added
            plan.instructions.append(ins("A1", residual))
            replaced = [
                (clients[0], total - 2 * D(lot)),
                (clients[2], D(lot)),
                (CLIENTS[(b + 4) % len(CLIENTS)], D(lot)),
            ]
            plan.instructions.append(
                ins("A2", replaced, trans_type="REPLACE", ref_alloc_id=f"{order}-A1")
            )
        elif scenario == 2:  # cancel
            plan.instructions.append(
                ins("A1", [(clients[0], total - D(lot)), (clients[1], D(lot))])
            )
            plan.instructions.append(ins("A2", [], trans_type="CANCEL", ref_alloc_id=f"{order}-A1"))
        elif scenario == 3:  # two blocks of one order, by NoExecs
            first, rest = fills[:2], fills[2:]
            q1 = sum(f.quantity for f in first)
            plan.instructions.append(
                ins(
                    "A1",
                    [(clients[0], q1)],
                    quantity=q1,
                    avg_px=ref.average(first),
                    exec_ids=tuple(f.exec_id for f in first),
                )
            )
            q2 = sum(f.quantity for f in rest)
            plan.instructions.append(
                ins(
                    "A2",
                    [(clients[1], q2)],
                    quantity=q2,
                    avg_px=ref.average(rest),
                    exec_ids=tuple(f.exec_id for f in rest),
                )
            )
        elif scenario == 4:  # an unknown account, then the corrected instruction, same AllocID
            plan.instructions.append(
                ins("A1", [(clients[0], total - D(lot)), ("ACC-9999", D(lot))])
            )
            plan.instructions.append(
                ins("A1", [(clients[0], total - D(lot)), (clients[1], D(lot))])
            )
        elif scenario == 5:  # quantities that do not sum; an average price that is wrong
            plan.instructions.append(ins("A1", [(clients[0], total - D(lot))]))
            plan.instructions.append(ins("A2", [(clients[0], total)], avg_px=avg + tick))
            plan.instructions.append(ins("A3", [(clients[0], total)]))
        elif scenario == 6:  # a block allocated twice
            plan.instructions.append(ins("A1", [(clients[0], total)]))
            plan.instructions.append(ins("A2", [(clients[1], total)]))
        else:  # an inactive account
            plan.instructions.append(ins("A1", [(clients[0], total - D(lot)), (CLOSED, D(lot))]))
    ghost = f"{tag}-GHOST"
    plan.instructions.append(
        ref.Instruction(
            alloc_id=f"{ghost}-A1",
            order_id=ghost,
            trans_type="NEW",
            ref_alloc_id="",
            trade_date=_trade_date(now, "HO.XNYS"),
            side="BUY",
            instrument="HO.XNYS",
            quantity=D(100),
            avg_px=D("183.12"),
            allocations=((CLIENTS[0], D(100)),),
        )
    )
    plan.unknown_block = f"{ghost}-A1"
    return plan


def _instruction(
    order: str,
    day: dt.date,
    side: str,
    instrument: str,
    total: Decimal,
    avg: Decimal,
    alloc: str,
    allocs: list[tuple[str, Decimal]],
    **changes: Any,
) -> ref.Instruction:
    """An instruction of the block of ``order``: the block's figures, unless ``changes``."""
    base: dict[str, Any] = dict(
        alloc_id=f"{order}-{alloc}",
        order_id=order,
        trans_type="NEW",
        ref_alloc_id="",
        trade_date=day,
        side=side,
        instrument=instrument,
        quantity=total,
        avg_px=avg,
        allocations=tuple(allocs),
    )
    return ref.Instruction(**{**base, **changes})


def fill_event(f: ref.Fill) -> TradeEvent:
    """The NEW a fill is booked with on trades.raw (what the ExecutionReport maps to)."""
    currency = {"XTKS": "JPY", "XNYS": "USD", "XETR": "EUR"}[f.venue]
    return TradeEvent(
        event_type="NEW",
        trade_id=f.exec_id,
        version=1,
        account=f.account,
        instrument=f.instrument,
        side=f.side,
        quantity=f.quantity,
        price=f.price,  # type: ignore[arg-type]
        currency=currency,
        venue=f.venue,
        counterparty=f.counterparty,
        trade_time=f.trade_time,
        source="fix",
        order_id=f.order_id,
    )


def instruction_struct(i: ref.Instruction, source: str = "test") -> AllocationInstruction:
    """The instruction as the gateway writes it to allocations.in."""
    return AllocationInstruction(
        alloc_id=i.alloc_id,
        trans_type=i.trans_type,
        ref_alloc_id=i.ref_alloc_id,  # type: ignore[arg-type]
        order_id=i.order_id,
        trade_date=i.trade_date,
        exec_ids=i.exec_ids,
        side=i.side,  # type: ignore[arg-type]
        instrument=i.instrument,
        quantity=i.quantity,
        avg_px=i.avg_px,
        allocations=tuple(AllocationEntry(account=a, quantity=q) for a, q in i.allocations),
        source=source,
    )


# -- topics ----------------------------------------------------------------------------------


def prepare(settings: Settings, prefix: str, partitions: int = 3) -> None:
    """Create every topic under ``prefix``, the services' changelogs, and load the refdata.

    The changelogs are created here (and their leaders awaited) for the runtime race
    tests/support/settlement.py describes.
    """
    create_topic_set(replace(settings, topic_prefix=prefix, partitions=partitions), TopicSet.ALL)
    changelogs = [
        f"{prefix}{service}-{store}-changelog"
        for service, stores in SERVICES_WITH_STORES.items()
        for store in stores
    ]
    create_topics(settings, dict.fromkeys(changelogs, partitions), compacted=changelogs)
    admin = AdminClient(settings.client_config())

    def leaders_known() -> bool:
        topics = admin.list_topics(timeout=10).topics
        return all(
            name in topics and all(p.leader >= 0 for p in topics[name].partitions.values())
            for name in changelogs
        )

    wait_for(leaders_known, 60, "the changelogs' partition leaders")
    allow_future_timestamps(settings, prefix + "confirmations.in")
    files = [REFDATA / f"{kind}.csv" for kind in ("instruments", "accounts", "counterparties")]
    report = load_files(files, settings.client_config(), prefix)
    assert not report.errors


def allow_future_timestamps(settings: Settings, topic: str) -> None:
    """Let ``topic`` take records stamped up to 30 days ahead (Kafka 4 refuses > 1 hour).

    The tests move a confirmation's clock past deadlines a day or two away by writing the
    tick the ticker would write then; the broker's default (``message.timestamp.after.max.ms``
    one hour) would refuse it.
    """
    admin = AdminClient(settings.client_config())
    entry = ConfigEntry(
        "message.timestamp.after.max.ms",
        str(30 * 24 * 3600 * 1000),
        incremental_operation=AlterConfigOpType.SET,
    )
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()


def inject_tick(settings: Settings, prefix: str, topic: str, at_ms: int) -> None:
    """Write a tick stamped ``at_ms`` into every partition of ``topic`` (as the ticker would)."""
    p = producer(settings)
    name = prefix + topic
    partitions = p.list_topics(name, timeout=10).topics[name].partitions
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for partition in partitions:
        p.produce(name, msgspec.json.encode(ClockTick()), partition=partition, timestamp=at_ms,
                  on_delivery=delivered)  # fmt: skip
    assert p.flush(30) == 0 and not errors, errors


def produce(settings: Settings, prefix: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    """Produce ``(key, value)`` records to ``<prefix><topic>`` and wait for every ack."""
    p = producer(settings)
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in records:
        p.produce(prefix + topic, value, key.encode(), on_delivery=delivered)
    assert p.flush(30) == 0 and not errors, errors


def latest(settings: Settings, topic: str, decoder: msgspec.json.Decoder[Any]) -> dict[str, Any]:
    """The last value of every key of ``topic`` (read_committed); tombstones drop the key."""
    view: dict[str, Any] = {}
    for m in read_all(settings, topic):
        key = m.key().decode()
        if m.value() is None:
            view.pop(key, None)
        else:
            view[key] = decoder.decode(m.value())
    return view


def every(
    settings: Settings, topic: str, decoder: msgspec.json.Decoder[Any]
) -> list[tuple[str, Any]]:
    """Every ``(key, value)`` of ``topic`` (read_committed), in partition order."""
    return [(m.key().decode(), decoder.decode(m.value())) for m in read_all(settings, topic)]


ACKS = msgspec.json.Decoder(AllocationAck)
ALLOCATIONS = msgspec.json.Decoder(Allocation)
CONFIRMATIONS = msgspec.json.Decoder(Confirmation)
EXCEPTIONS = msgspec.json.Decoder(AffirmationException)
POSITIONS = msgspec.json.Decoder(Position)


def decided_acks(settings: Settings, prefix: str) -> dict[str, list[AllocationAck]]:
    """The decided (not PENDING) acks per AllocID, in order."""
    out: dict[str, list[AllocationAck]] = defaultdict(list)
    for _key, ack in every(settings, prefix + "allocations.acks", ACKS):
        if ack.status != "PENDING":
            out[ack.alloc_id].append(ack)
    return out


def expected_ack_count(plan: Plan) -> dict[str, int]:
    """How many decided acks each AllocID must get (a corrected resend gets a second)."""
    counts: dict[str, int] = defaultdict(int)
    for i in plan.instructions:
        counts[i.alloc_id] += 1
    return counts


# -- the reference -----------------------------------------------------------------------------


def refdata() -> tuple[list[Instrument], list[Account], list[Any]]:
    kinds = []
    for kind in ("instruments", "accounts", "counterparties"):
        parsed = parse_refdata_file(REFDATA / f"{kind}.csv")
        kinds.append(parsed.rows)
    return kinds[0], kinds[1], kinds[2]  # type: ignore[return-value]


def reference_model(plan: Plan) -> ref.AllocationModel:
    instruments, accounts, _ = refdata()
    lots = {i.instrument_id: i.lot_size for i in instruments}
    active = {a.account_id for a in accounts if a.status == "ACTIVE"}
    known = {a.account_id for a in accounts}
    return ref.run_allocations(plan.fills, plan.instructions, lots, active, known)


def expected_positions(plan: Plan, model: ref.AllocationModel) -> dict[str, Position]:
    """Positions of the fills and the bookings, by tests/support/reference.py's own rules."""
    instruments, accounts, counterparties = refdata()
    now_ms = int(time.time() * 1000)
    raw: list[tuple[bytes | None, bytes | None, int]] = []
    for f in plan.fills:
        e = fill_event(f)
        raw.append((e.trade_id.encode(), msgspec.json.encode(e), now_ms))
    for t in model.trades.values():
        fill = fill_event(t.fill)
        booked = msgspec.structs.replace(
            fill,
            trade_id=t.trade_id,
            account=t.account,
            side=t.side,  # type: ignore[arg-type]
            quantity=t.quantity if not t.cancelled else t.versions[0][1],
            price=t.price,
            source="allocation",
            allocation=AllocationRef(block_id=t.block_id, alloc_id=t.alloc_id, role=t.role),  # type: ignore[arg-type]
        )
        raw.append((t.trade_id.encode(), msgspec.json.encode(booked), now_ms))
        if t.cancelled:
            cancel = msgspec.structs.replace(booked, event_type="CANCEL", version=2)
            raw.append((t.trade_id.encode(), msgspec.json.encode(cancel), now_ms))
    enriched, rejected, _ = trade_reference.validate(raw, instruments, accounts, counterparties)
    assert rejected == []
    return trade_reference.positions_from(enriched)


def position_view(settings: Settings, prefix: str) -> dict[str, Position]:
    return latest(settings, prefix + "positions", POSITIONS)


def same_positions(got: dict[str, Position], want: dict[str, Position]) -> list[str]:
    """The keys whose quantity, average cost, realized P&L or trade count differ."""
    bad = []
    for key in sorted(set(got) | set(want)):
        g, w = got.get(key), want.get(key)
        if g is None or w is None:
            bad.append(key)
            continue
        if (g.quantity, g.avg_cost, g.realized_pnl, g.trade_count) != (
            w.quantity,
            w.avg_cost,
            w.realized_pnl,
            w.trade_count,
        ):
            bad.append(key)
    return bad


def affirmation_plan(model: ref.AllocationModel) -> tuple[dict[str, str], set[str], list[str]]:
    """Which live children are answered on time (AFFIRMED/REJECTED), late, or never.

    Returns (on_time answers, late, never) by child trade id.
    """
    live = sorted(
        t.trade_id for t in model.trades.values() if t.role == "CHILD" and not t.cancelled
    )
    on_time: dict[str, str] = {}
    late: set[str] = set()
    never: list[str] = []
    for n, trade_id in enumerate(live):
        if n % 4 in (0, 1):
            on_time[trade_id] = "AFFIRMED"
        elif n % 4 == 2:
            late.add(trade_id)
        elif n % 8 == 3:
            on_time[trade_id] = "REJECTED"
        else:
            never.append(trade_id)
    return on_time, late, never


def confirm_id(model: ref.AllocationModel, trade_id: str) -> str:
    return f"{trade_id}#{model.trades[trade_id].version}"


def ack_record(confirm: str, status: str) -> tuple[str, bytes]:
    """A ConfirmationAck as the gateway writes it (for the crash test's feed)."""
    ack = ConfirmationAck(confirm_id=confirm, affirm_status=status, source="test")  # type: ignore[arg-type]
    return confirm.rpartition("#")[0], msgspec.json.encode(ack)


def check_outcome(settings: Settings, prefix: str, plan: Plan) -> ref.AllocationModel:
    """Assert allocations, acks, children and positions equal the reference; return it."""
    model = reference_model(plan)
    acks = decided_acks(settings, prefix)
    assert {a: [(x.status, x.reason) for x in xs][-1] for a, xs in acks.items()} == model.acks
    assert {a: len(xs) for a, xs in acks.items()} == expected_ack_count(plan)
    allocations = latest(settings, prefix + "allocations.status", ALLOCATIONS)
    assert set(allocations) == set(model.chains)
    for key, chain in model.chains.items():
        got = allocations[key]
        assert (got.status, got.quantity, got.avg_px, got.last_alloc_id, got.executions) == (
            chain.status,
            chain.quantity,
            chain.avg_px,
            chain.last_alloc_id,
            chain.exec_ids,
        ), key
        assert [
            (c.account, c.quantity, c.trade_id, c.version, c.cancelled) for c in got.children
        ] == [
            (c.account, c.quantity, c.trade_id if c.version else "", c.version, c.cancelled)
            for c in chain.children.values()
        ], key
        assert got.offset_trade_id == chain.offset.trade_id
    booked: dict[str, TradeEvent] = {}
    for _k, e in every(settings, prefix + "trades.raw", msgspec.json.Decoder(TradeEvent)):
        if e.allocation is not None:
            booked[e.trade_id] = e  # the last version in its partition
    assert set(booked) == set(model.trades)
    for trade_id, t in model.trades.items():
        e = booked[trade_id]
        assert (e.version, e.event_type == "CANCEL", e.account, e.side) == (
            t.version,
            t.cancelled,
            t.account,
            t.side,
        ), trade_id
        if not t.cancelled:
            assert (e.quantity, e.price, e.trade_time) == (t.quantity, t.price, t.fill.trade_time)
    return model


def wait_all_decided(
    settings: Settings, prefix: str, plan: Plan, timeout_s: float, alive: Any
) -> None:
    """Wait until every instruction but the unknown block's has its decided acks."""
    want = expected_ack_count(plan)
    want.pop(plan.unknown_block)

    def done() -> bool:
        alive()
        got = decided_acks(settings, prefix)
        return all(len(got.get(a, [])) >= n for a, n in want.items())

    wait_for(done, timeout_s, "every instruction decided", every_s=1.0)


def wait_confirmed(
    settings: Settings, prefix: str, model: ref.AllocationModel, timeout_s: float, alive: Any
) -> dict[str, Confirmation]:
    """Wait until every child's confirmation is out: CONFIRMED at its last version, or CANCELLED."""

    def done() -> dict[str, Confirmation] | None:
        alive()
        view = latest(settings, prefix + "confirmations", CONFIRMATIONS)
        for t in model.trades.values():
            if t.role != "CHILD":
                continue
            c = view.get(t.trade_id)
            want = "CANCELLED" if t.cancelled else "CONFIRMED"
            if c is None or c.version != t.version or c.status != want:
                return None
        return view

    found: dict[str, Confirmation] = wait_for(
        done, timeout_s, "every confirmation out", every_s=1.0
    )
    return found


def wait_statuses(
    settings: Settings, prefix: str, want: dict[str, str], timeout_s: float, alive: Any
) -> None:
    """Wait until the confirmations of ``want`` (trade id -> status) have those statuses."""

    def done() -> bool:
        alive()
        view = latest(settings, prefix + "confirmations", CONFIRMATIONS)
        return all(view.get(t) is not None and view[t].status == s for t, s in want.items())

    wait_for(done, timeout_s, f"{len(want)} confirmation statuses", every_s=1.0)


def exception_view(settings: Settings, prefix: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for key, e in every(settings, prefix + "confirmations.exceptions", EXCEPTIONS):
        out[key].append((e.kind, e.resolution))
    return dict(out)


def wait_exceptions(
    settings: Settings, prefix: str, want: dict[str, int], timeout_s: float, alive: Any
) -> None:
    """Wait until each child of ``want`` has that many exception records."""

    def done() -> bool:
        alive()
        view = exception_view(settings, prefix)
        return all(len(view.get(t, [])) >= n for t, n in want.items())

    wait_for(done, timeout_s, "the affirmation exceptions", every_s=1.0)


def check_confirmations(
    settings: Settings,
    prefix: str,
    model: ref.AllocationModel,
    on_time: dict[str, str],
    late: set[str],
) -> None:
    """Assert every confirmation's final status and the exceptions equal the reference."""
    expected = ref.expected_confirmations(model, on_time, late)
    view = latest(settings, prefix + "confirmations", CONFIRMATIONS)
    assert {t: (c.status, c.version) for t, c in view.items()} == {
        t: (o.status, o.version) for t, o in expected.items()
    }
    assert exception_view(settings, prefix) == {
        t: list(o.exceptions) for t, o in expected.items() if o.exceptions
    }


def log_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir(exist_ok=True)
    return path
