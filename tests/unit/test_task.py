from collections.abc import Sequence

from tests.support.jobs import RUNNING_SUM, Number, Sum
from tradeflux.stream.codecs import JsonCodec
from tradeflux.stream.context import Context
from tradeflux.stream.harness import TestDriver
from tradeflux.stream.records import Record
from tradeflux.stream.topology import Punctuator, Service, StoreSpec, Topic


def test_running_sum_emits_each_new_sum_and_keeps_state() -> None:
    driver = TestDriver(RUNNING_SUM)
    out = driver.send(
        [("k", Number("k", 1, 5)), ("k", Number("k", 2, -2)), ("j", Number("j", 1, 7))]
    )
    assert [o.value for o in out] == [Sum("k", 1, 1, 5), Sum("k", 2, 2, 3), Sum("j", 1, 1, 7)]
    assert driver.store("sums") == {"k": (2, 3), "j": (1, 7)}


def test_a_raising_record_is_dead_lettered_and_its_neighbours_in_the_batch_still_count() -> None:
    driver = TestDriver(RUNNING_SUM)
    out = driver.send(
        [
            ("k", Number("k", 1, 5)),
            ("k", Number("k", -1, 100, poison=True)),
            ("k", Number("k", 2, 1)),
        ]
    )
    sums = [o.value for o in out if o.topic == "sums"]
    dead = [o for o in out if o.topic == "numbers.dlq"]
    assert sums == [Sum("k", 1, 1, 5), Sum("k", 2, 2, 6)]
    assert len(dead) == 1
    assert dead[0].headers["tf.reason"] == "processor_error"
    assert dead[0].headers["tf.error"] == "PoisonError"
    assert dead[0].headers["tf.source.offset"] == "1"
    assert dead[0].value == JsonCodec(Number).encode(Number("k", -1, 100, poison=True))
    assert driver.store("sums") == {"k": (2, 6)}


def test_undecodable_bytes_are_dead_lettered_with_their_original_bytes() -> None:
    driver = TestDriver(RUNNING_SUM)
    out = driver.send([("k", b"{not json"), ("k", Number("k", 1, 1))])
    assert [o.value for o in out if o.topic == "sums"] == [Sum("k", 1, 1, 1)]
    dead = [o for o in out if o.topic == "numbers.dlq"]
    assert dead[0].value == b"{not json"
    assert dead[0].headers["tf.reason"] == "decode_error"
    assert dead[0].key == "k"


def _flush_counts(ctx: Context, now_ms: int) -> None:
    store = ctx.store("counts")
    for key, count in sorted(store.items()):
        ctx.emit("counts", key, {"key": key, "count": count, "at": now_ms})
        store.delete(key)


def _count(ctx: Context, records: Sequence[Record]) -> None:
    store = ctx.store("counts")
    for r in records:
        if r.value.get("reject"):
            ctx.reject(r, "SAID_SO", "the record asked for it")
            continue
        store.put(r.key or "", store.get(r.key or "", 0) + 1)
        ctx.count("counted")


def _service(kind: str) -> Service:
    return Service(
        name="counter",
        inputs=[Topic("in")],
        outputs=[Topic("counts")],
        stores=[StoreSpec("counts")],
        process=_count,
        punctuators=[Punctuator(1000, _flush_counts, kind)],  # type: ignore[arg-type]
        dead_letter_topic="dlq",
    )


def test_wall_clock_timer_fires_after_its_interval_and_emits_throttled_output() -> None:
    driver = TestDriver(_service("wall"))
    driver.send([("a", {}), ("a", {}), ("b", {})])
    assert driver.advance(10_000) == []  # the first call arms the timer
    assert driver.advance(10_500) == []
    out = driver.advance(11_000)
    assert [o.value for o in out] == [
        {"key": "a", "count": 2, "at": 11_000},
        {"key": "b", "count": 1, "at": 11_000},
    ]
    assert driver.store("counts") == {}


def test_stream_time_timer_fires_when_record_time_crosses_a_boundary() -> None:
    driver = TestDriver(_service("stream"))
    driver.send([("a", {})], timestamp_ms=5_100)
    assert driver.advance(0) == []
    driver.send([("a", {})], timestamp_ms=5_900)
    assert driver.advance(0) == []
    driver.send([("b", {})], timestamp_ms=6_050)
    out = driver.advance(0)
    assert [o.value for o in out] == [
        {"key": "a", "count": 2, "at": 6_000},
        {"key": "b", "count": 1, "at": 6_000},
    ]


def test_reject_sends_the_original_bytes_with_a_reason_code() -> None:
    driver = TestDriver(_service("wall"))
    out = driver.send([("a", b'{"reject": true}'), ("b", {})])
    assert [(o.topic, o.value, o.headers["tf.reason"]) for o in out] == [
        ("dlq", b'{"reject": true}', "SAID_SO")
    ]
    assert out[0].headers["tf.detail"] == "the record asked for it"
    assert out[0].headers["tf.stage"] == "counter"
    assert driver.store("counts") == {"b": 1}
