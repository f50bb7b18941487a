"""Failures that end a service instance print one line that says what to do, and exit non-zero.

Each used to end in a stack trace (a missing global-table topic, a restore that failed, an
unreachable bootstrap at ``tradeflux run``); now each is a ``fatal ...`` log line and an exit
code: 2 misconfigured, 1 otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port_block, unique
from tests.support.kafka_tools import REPO, create_topics, producer
from tradeflux.config import Settings

pytestmark = pytest.mark.integration


def _run(bootstrap: str, target: str, prefix: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRADEFLUX_BOOTSTRAP": bootstrap}
    return subprocess.run(
        [sys.executable, "-m", "tradeflux.cli", "run", target, "--prefix", prefix,
         "--instance-id", "errors-1", *extra],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _fatal(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert one fatal line and no stack trace; return the line's message."""
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "level=ERROR" in line]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def test_a_missing_global_table_topic_is_one_line_and_exit_2(kafka: Settings) -> None:
    prefix = unique("errtable") + "-"
    # The converter's input and outputs exist; its global table's topic does not.
    create_topics(
        kafka, {f"{prefix}numbers": 1, f"{prefix}converted": 1, f"{prefix}numbers.dlq": 1}
    )
    proc = _run(kafka.bootstrap, "tests.support.jobs:CONVERTER", prefix)
    line = _fatal(proc)
    assert proc.returncode == 2
    assert f"global table rates: topic {prefix}rates does not exist" in line
    assert "create it with `tradeflux topics create`" in line


def test_missing_input_topics_are_one_line_and_exit_2(kafka: Settings) -> None:
    prefix = unique("errtopics") + "-"
    proc = _run(kafka.bootstrap, "tests.support.jobs:RUNNING_SUM", prefix)
    line = _fatal(proc)
    assert proc.returncode == 2
    assert f"topics missing: {prefix}numbers" in line


def test_a_restore_that_fails_is_one_line_and_exit_1(kafka: Settings) -> None:
    prefix = unique("errrestore") + "-"
    create_topics(
        kafka,
        {f"{prefix}numbers": 1, f"{prefix}sums": 1, f"{prefix}numbers.dlq": 1,
         f"{prefix}running-sum-sums-changelog": 1},
        compacted=[f"{prefix}running-sum-sums-changelog"],
    )  # fmt: skip
    # A changelog record that is not the store's MessagePack: written by another version.
    prod = producer(kafka)
    prod.produce(f"{prefix}running-sum-sums-changelog", b"\xc1 not msgpack", b"k")
    assert prod.flush(30) == 0
    proc = _run(kafka.bootstrap, "tests.support.jobs:RUNNING_SUM", prefix)
    line = _fatal(proc)
    assert proc.returncode == 1
    assert "error=StoreRestoreError" in line
    assert f"{prefix}running-sum-sums-changelog[0]@0 does not decode" in line
    assert "delete the changelog and reset the group's offsets" in line


def test_an_unreachable_bootstrap_is_waited_out_then_one_line_and_exit_1() -> None:
    port = free_port_block(1)  # nothing listens there
    proc = _run(
        f"127.0.0.1:{port}", "tests.support.jobs:RUNNING_SUM", "nobody-", "--cluster-wait-s", "3"
    )
    line = _fatal(proc)
    assert proc.returncode == 1
    assert "error=DeadlineExceededError" in line
    assert "topic metadata failed for" in line and "past the 3 s deadline" in line
    assert "waiting for the cluster" in proc.stderr  # it said it was waiting, once
    assert proc.stderr.count("waiting for the cluster") == 1
