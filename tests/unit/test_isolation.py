"""No single record stops a partition: one test per stage where a record can fail.

Each failing record is dead-lettered with its stage and reason, its store changes are
undone, and the rest of the batch commits. The same Task code runs in the runtime.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from tests.support.jobs import RUNNING_SUM, Number, Sum
from tradeflux.stream.checkpoint import Checkpoint
from tradeflux.stream.codecs import JsonCodec, MsgpackCodec
from tradeflux.stream.context import Context
from tradeflux.stream.errors import RecordRefusedError, TransientKafkaError
from tradeflux.stream.harness import TestDriver
from tradeflux.stream.kafka import Refusal
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Punctuator, Service, StoreSpec, Topic

BIG = 2**70  # a valid JSON integer that MessagePack cannot hold


def _sums(out: list) -> list[Sum]:  # type: ignore[type-arg]
    return [o.value for o in out if o.topic == "sums"]


def _dead(out: list) -> list:  # type: ignore[type-arg]
    return [o for o in out if o.topic == "numbers.dlq"]


def test_a_record_whose_store_value_cannot_be_encoded_is_dead_lettered_and_the_rest_commits() -> (
    None
):
    driver = TestDriver(RUNNING_SUM)
    out = driver.send(
        [
            ("k", Number("k", 1, 5)),
            ("k", Number("k", 2, BIG)),  # the sum's MessagePack changelog value overflows
            ("k", Number("k", 3, 1)),
            ("j", Number("j", 1, 7)),
        ]
    )
    assert _sums(out) == [Sum("k", 1, 1, 5), Sum("k", 3, 2, 6), Sum("j", 1, 1, 7)]
    [dead] = _dead(out)
    assert dead.headers["tf.reason"] == "store_encode_error"
    assert dead.headers["tf.stage"] == "running-sum"
    assert dead.headers["tf.source.offset"] == "1"
    assert dead.value == JsonCodec(Number).encode(Number("k", 2, BIG))  # the original bytes
    assert driver.store("sums") == {"k": (2, 6), "j": (1, 7)}


class Total(msgspec.Struct, frozen=True):
    key: str
    total: int


def _totals(ctx: Context, records: Sequence[Record]) -> None:
    store = ctx.store("totals")
    for record in records:
        number: Number = record.value
        total = store.get(number.key, 0) + number.amount
        store.put(number.key, total)
        ctx.emit("totals", number.key, Total(number.key, total))
        if number.seq == 99:
            ctx.emit("totals", number.key, Total("x" * 1_100_000, 0))  # over the topic's limit


TOTALS = Service(
    name="totals",
    inputs=[Topic("numbers", JsonCodec(Number))],
    outputs=[Topic("totals", MsgpackCodec(Total))],  # MessagePack output: 64-bit ints
    stores=[StoreSpec("totals", JsonCodec(int))],  # JSON store: any int
    process=_totals,
    dead_letter_topic="dlq",
)


def test_a_record_whose_output_cannot_be_encoded_is_dead_lettered_and_the_rest_commits() -> None:
    driver = TestDriver(TOTALS)
    out = driver.send(
        [("k", Number("k", 1, 5)), ("k", Number("k", 2, BIG)), ("k", Number("k", 3, 1))]
    )
    assert [o.value for o in out if o.topic == "totals"] == [Total("k", 5), Total("k", 6)]
    [dead] = [o for o in out if o.topic == "dlq"]
    assert (dead.headers["tf.reason"], dead.headers["tf.source.offset"]) == ("encode_error", "1")
    assert driver.store("totals") == {"k": 6}  # the bad record's change was undone


def test_a_record_whose_output_is_larger_than_the_topic_accepts_is_dead_lettered() -> None:
    driver = TestDriver(TOTALS)
    out = driver.send(
        [("k", Number("k", 1, 5)), ("k", Number("k", 99, 1)), ("k", Number("k", 3, 1))]
    )
    assert [o.value for o in out if o.topic == "totals"] == [Total("k", 5), Total("k", 6)]
    [dead] = [o for o in out if o.topic == "dlq"]
    assert dead.headers["tf.reason"] == "record_too_large"
    assert "over the" in dead.headers["tf.detail"]
    assert driver.store("totals") == {"k": 6}


def _refused(checkpoint: Checkpoint, seq: int) -> Refusal:
    """The producer's report that it refused the output for input ``seq``."""
    [rec] = [r for _, r in checkpoint.records if JsonCodec(Sum).decode(r.value or b"").seq == seq]
    error = RecordRefusedError("delivery: MSG_SIZE_TOO_LARGE", "MSG_SIZE_TOO_LARGE")
    return Refusal(rec.topic, None, rec.key, rec.value, error)


def test_a_record_the_producer_refused_is_pinned_on_its_input_and_dead_lettered() -> None:
    driver = TestDriver(RUNNING_SUM)
    numbers = [("k", Number("k", 1, 5)), ("k", Number("k", 2, 6)), ("k", Number("k", 3, 7))]

    def attempt() -> Checkpoint:
        task = driver.process(numbers)
        return Checkpoint(1, [task], {}, "running-sum;i;1", 0, 0, 0)

    # 1st attempt, one call for the batch: the outputs do not know their input records, so
    # a refusal makes the task re-run its next batch one record at a time ...
    first = attempt()
    transient = Refusal("sums", None, b"k", b"x", TransientKafkaError("timed out"))
    assert first.pin_refusals([transient]) == 0  # not the record's fault: nothing pinned
    assert first.pin_refusals([_refused(first, 2)]) == 1
    task = driver.task(0)
    assert task.suspect and not task.poisoned
    task.rollback()  # the transaction aborted
    driver.rewind(3)
    # ... 2nd attempt, one record at a time: the refusal is pinned on its input record ...
    second = attempt()
    assert [rec.source.offset for _, rec in second.records if rec.source] == [0, 1, 2]
    second.pin_refusals([_refused(second, 2)])
    assert set(task.poisoned) == {1}
    task.rollback()
    driver.rewind(3)
    # ... 3rd attempt: that record is dead-lettered, untouched, and the rest commits.
    driver.process(numbers)
    out = driver.commit()
    assert _sums(out) == [Sum("k", 1, 1, 5), Sum("k", 3, 2, 12)]
    [dead] = _dead(out)
    assert dead.headers["tf.reason"] == "produce_refused"
    assert dead.headers["tf.error"] == "MSG_SIZE_TOO_LARGE"
    assert dead.headers["tf.source.offset"] == "1"
    assert dead.value == JsonCodec(Number).encode(Number("k", 2, 6))
    assert driver.store("sums") == {"k": (2, 12)}
    assert not task.poisoned and not task.suspect  # committed: the pin is spent


def _flush(ctx: Context, now_ms: int, key: str) -> None:
    if key == "bad":
        raise ArithmeticError("cannot mark bad")
    ctx.emit("totals", key, Total(key, ctx.store("totals").get(key)))


def _keys(ctx: Context) -> Iterable[str]:
    return [k for k, _ in ctx.store("totals").items()]


def _keep(ctx: Context, records: Sequence[Record]) -> None:
    for record in records:
        ctx.store("totals").put(record.value.key, record.value.amount)


KEYED = Service(
    name="keyed",
    inputs=[Topic("numbers", JsonCodec(Number))],
    outputs=[Topic("totals", MsgpackCodec(Total))],
    stores=[StoreSpec("totals", JsonCodec(int))],
    process=_keep,
    punctuators=[Punctuator(100, _flush, "wall", keys=_keys)],
    dead_letter_topic="dlq",
)


def test_a_timer_that_fails_for_one_key_is_isolated_to_that_key_and_reported_once() -> None:
    driver = TestDriver(KEYED)
    driver.send([("a", Number("a", 1, 1)), ("bad", Number("bad", 1, 2)), ("c", Number("c", 1, 3))])
    assert driver.advance(1_000) == []  # arms the timer
    out = driver.advance(1_100)
    assert [o.value for o in out if o.topic == "totals"] == [Total("a", 1), Total("c", 3)]
    [dead] = [o for o in out if o.topic == "dlq"]
    assert dead.key == "bad"
    assert (dead.headers["tf.reason"], dead.headers["tf.error"]) == (
        "timer_error",
        "ArithmeticError",
    )
    # Still failing: the other keys go on, and the failure is not reported again.
    out = driver.advance(1_200)
    assert [o.value for o in out if o.topic == "totals"] == [Total("a", 1), Total("c", 3)]
    assert [o for o in out if o.topic == "dlq"] == []
    assert driver.task(0).timers.failures == 2
