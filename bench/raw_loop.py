"""The limit: a plain confluent-kafka consume-then-produce loop, no transactions, no state.

Usage: python bench/raw_loop.py BOOTSTRAP INPUT OUTPUT GROUP
"""

from __future__ import annotations

import signal
import sys

from confluent_kafka import Consumer, Producer


def main() -> None:
    bootstrap, source, target, group = sys.argv[1:5]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "fetch.wait.max.ms": 10,
        }
    )
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 1, "partitioner": "murmur2_random"}
    )
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    consumer.subscribe([source])
    while running:
        # Same batching as the runtime: take what is there, else wait for the first record.
        msgs = consumer.consume(5000, 0)
        if not msgs:
            msgs = consumer.consume(1, 0.1)
        for msg in msgs:
            if msg.error() is None:
                while True:
                    try:
                        producer.produce(target, msg.value(), msg.key())
                        break
                    except BufferError:
                        producer.poll(0.05)
        producer.poll(0)
    producer.flush(10)
    consumer.close()


if __name__ == "__main__":
    main()
