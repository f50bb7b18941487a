"""Two live instances given the same ``--instance-id`` (a misconfiguration) do not run on.

They share transactional ids, so each one's new producer fences the other's, again and
again. They must end with one line that names the fix (often both exit: each counts the
fences the other's new producers cause, and neither can tell which one is older). The
coordinator's aborts of slow transactions also fence an instance, but those are not counted
(each came after the transaction had been open past its timeout): the cluster-fault soak
had an instance exit on three of them in two minutes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import unique
from tests.support.kafka_tools import (
    ServiceProcess,
    create_topics,
    wait_assigned,
    wait_for,
)
from tests.support.running_sum import make_numbers, produce_in_background
from tradeflux.config import Settings

pytestmark = [pytest.mark.fault, pytest.mark.slow]

JOB = "tests.support.jobs:RUNNING_SUM"


def test_two_live_instances_with_one_id_end_with_one_exit_that_names_the_fix(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("twin") + "-"
    create_topics(
        kafka,
        {f"{prefix}numbers": 4, f"{prefix}sums": 4, f"{prefix}numbers.dlq": 1},
    )
    feeder = produce_in_background(
        kafka, f"{prefix}numbers", make_numbers(200_000, keys=200, seed=3), rate_per_s=2_000
    )
    first = ServiceProcess(kafka, JOB, prefix, "twin", tmp_path)
    second = None
    try:
        wait_assigned(first)
        second = ServiceProcess(kafka, JOB, prefix, "twin", tmp_path)
        procs = (first, second)
        exited = wait_for(
            lambda: [p for p in procs if not p.alive()], 240, "one of the twins to exit"
        )
        for gone in exited:
            assert gone.returncode() == 1, gone.log()[-3000:]
            fatal = [ln for ln in gone.log().splitlines() if "level=ERROR" in ln and "fatal" in ln]
            assert len(fatal) == 1, gone.log()[-3000:]
            assert "error=ReplacedError" in fatal[0]
            assert "give every instance its own --instance-id" in fatal[0]
    finally:
        for proc in (first, second):
            if proc is not None and proc.alive():
                proc.kill()
        feeder.join(5)
