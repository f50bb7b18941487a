"""Describe consumer groups from a process of its own, and read the answer as JSON.

librdkafka aborts the whole process (``rd_kafka_enq_once_del_source_return: Assertion
eonce->refcnt > 0``, confluentinc/librdkafka#4605) when the connection of an admin
request to a group coordinator drops, which is what a fault test does all day. So the
test process never describes groups itself: a short-lived child does, and a child
that dies is only a failed look.

Run as ``python -m tests.support.group_probe BOOTSTRAP GROUP...``; prints
``{group: {"state": ..., "members": [[client_id, host, partitions], ...]}}``, where a
group whose coordinator did not answer is ``{group: {"error": ...}}``; a probe that failed
as a whole is ``{"error": ...}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.support.kafka_tools import REPO


def describe_groups(bootstrap: str, groups: list[str]) -> dict[str, Any]:
    """Return each group's state and members, asked by a child process (or {"error": ...})."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.support.group_probe", bootstrap, *groups],
            capture_output=True, text=True, timeout=40, cwd=REPO, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": "the probe did not answer within 40 s"}
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the probe exited with {done.returncode}: {tail}"}
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _describe(bootstrap: str, groups: list[str]) -> dict[str, Any]:
    import logging

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    logging.basicConfig(level=logging.CRITICAL)
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": logging.getLogger("probe")})
    # Each group has a coordinator of its own: one that does not answer (its broker was just
    # killed, its offsets partition is loading) is that group's answer, not every group's.
    futures = admin.describe_consumer_groups(groups, request_timeout=10)
    out: dict[str, Any] = {}
    for group, future in futures.items():
        try:
            d = future.result(timeout=15)
        except KafkaException as exc:
            out[group] = {"error": exc.args[0].str() if exc.args else str(exc)}
            continue
        except Exception as exc:  # noqa: BLE001 - a future that timed out is a failed look too
            out[group] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        out[group] = {
            "state": d.state.name,
            "members": [
                [m.client_id, m.host.lstrip("/"), len(m.assignment.topic_partitions)]
                for m in d.members
            ],
        }
    return out


if __name__ == "__main__":
    print(json.dumps(_describe(sys.argv[1], sys.argv[2:])))
