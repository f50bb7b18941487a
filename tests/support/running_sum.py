"""Input generation and the independent reference for the running-sum job."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from typing import Any

import msgspec

from tests.support.jobs import Number
from tests.support.kafka_tools import Pacer, producer
from tradeflux.config import Settings

_encode = msgspec.json.Encoder().encode


def make_numbers(count: int, keys: int, seed: int, poison_every: int = 0) -> list[Number]:
    """Return ``count`` numbers over ``keys`` keys with per-key sequence numbers.

    Poison records (every ``poison_every``-th, if set) carry no sequence number of
    their own: the processor rejects them, so the key's sequence does not advance.
    """
    rng = random.Random(seed)
    seqs: dict[str, int] = defaultdict(int)
    out = []
    for i in range(count):
        key = f"k{rng.randrange(keys):04d}"
        amount = rng.randrange(-1000, 1000)
        if poison_every and i % poison_every == poison_every - 1:
            out.append(Number(key, -1, amount, poison=True))
            continue
        seqs[key] += 1
        out.append(Number(key, seqs[key], amount))
    return out


def produce_numbers(
    settings: Settings, topic: str, numbers: list[Number], rate_per_s: Pacer | float | None = None
) -> None:
    """Write ``numbers`` keyed by their key, at ``rate_per_s`` if given (paced in slices;
    a Pacer lets a crash test hold the feed)."""
    prod = producer(settings)
    pacer = Pacer.of(rate_per_s)
    for i, n in enumerate(numbers):
        while True:
            try:
                prod.produce(topic, _encode(n), n.key.encode())
                break
            except BufferError:
                prod.poll(0.05)
        if i % 500 == 0:
            pacer.wait(i)
            prod.poll(0)
    assert prod.flush(60) == 0


def produce_in_background(
    settings: Settings, topic: str, numbers: list[Number], rate_per_s: Pacer | float
) -> threading.Thread:
    """Start producing ``numbers`` at ``rate_per_s`` in a thread; join it to wait."""
    thread = threading.Thread(
        target=produce_numbers, args=(settings, topic, numbers, rate_per_s), daemon=True
    )
    thread.start()
    return thread


def expected_sums(numbers: list[Number]) -> dict[str, tuple[int, int]]:
    """Return (count, total) per key, computed directly from the input, poison left out."""
    out: dict[str, tuple[int, int]] = {}
    for n in numbers:
        if n.poison:
            continue
        count, total = out.get(n.key, (0, 0))
        out[n.key] = (count + 1, total + n.amount)
    return out


def check_sum_outputs(messages: list[Any], numbers: list[Number]) -> None:
    """Assert the outputs are exactly one per good input: no duplicate, no gap, exact totals."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for msg in messages:
        value = msgspec.json.decode(msg.value())
        by_key[value["key"]].append(value)
    amounts: dict[str, list[int]] = defaultdict(list)
    for n in numbers:
        if not n.poison:
            amounts[n.key].append(n.amount)
    assert set(by_key) == set(amounts)
    for key, outs in by_key.items():
        seqs = [o["seq"] for o in outs]
        assert seqs == list(range(1, len(amounts[key]) + 1)), f"{key}: duplicate or gap"
        running = 0
        for i, (o, amount) in enumerate(zip(outs, amounts[key], strict=True)):
            running += amount
            assert (o["count"], o["total"]) == (i + 1, running), f"{key} at seq {o['seq']}"
    final = {k: (outs[-1]["count"], outs[-1]["total"]) for k, outs in by_key.items()}
    assert final == expected_sums(numbers)
