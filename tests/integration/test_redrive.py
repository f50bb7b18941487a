"""Re-driving dead letters after their cause is fixed: the records go through as new ones."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.conftest import unique
from tests.support.kafka_tools import REPO, ServiceProcess, caught_up, producer, read_all, wait_for
from tests.support.pipeline import REFDATA_FILES
from tradeflux.broker.topics import TopicSet, create_topics
from tradeflux.config import Settings
from tradeflux.domain.schemas import EnrichedTrade, Instrument, TradeEvent
from tradeflux.gateway.refdata import load_files
from tradeflux.redrive import REDRIVEN_HEADER
from tradeflux.stream.deadletter import header_map

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NEW_INSTRUMENT = Instrument(
    instrument_id="NEWCO.XNYS", isin="US0378331005", symbol="NEWCO", currency="USD", mic="XNYS"
)


def _trade(trade_id: str, instrument: str) -> TradeEvent:
    return TradeEvent(
        event_type="NEW", trade_id=trade_id, version=1, account="ACC-0001",
        instrument=instrument, side="BUY", quantity=Decimal(100), price=Decimal("10.00"),
        currency="USD", venue="XNYS", counterparty="CP-001",
        trade_time=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5),
    )  # fmt: skip


def _redrive(settings: Settings, prefix: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tradeflux.cli", "--bootstrap", settings.bootstrap, "redrive",
         "--prefix", prefix, *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dead_letters_of_an_unknown_instrument_go_through_once_it_is_loaded(
    kafka: Settings, tmp_path: Path
) -> None:
    prefix = unique("redrive") + "-"
    create_topics(replace(kafka, topic_prefix=prefix, partitions=3), TopicSet.CORE)
    assert not load_files(REFDATA_FILES, kafka.client_config(), prefix).errors
    encode = msgspec.json.Encoder(decimal_format="string").encode
    prod = producer(kafka)
    trades = [_trade(f"RD-{i}", "NEWCO.XNYS") for i in range(5)]
    trades.append(_trade("RD-OK", "HO.XNYS"))
    for t in trades:
        prod.produce(f"{prefix}trades.raw", encode(t), t.trade_id.encode())
    assert prod.flush(30) == 0
    validator = ServiceProcess(kafka, "validator", prefix, "v1", tmp_path)
    try:
        group = f"{prefix}validator"
        wait_for(lambda: caught_up(kafka, group, f"{prefix}trades.raw"), 90, "the first pass")
        rejected = read_all(kafka, f"{prefix}trades.rejected")
        reasons = sorted(header_map(m.headers())["tf.reason"] for m in rejected)
        assert reasons == ["UNKNOWN_INSTRUMENT"] * 5
        assert "would re-drive 5 of 5 dead letters" in _redrive(
            kafka, prefix, "--reason", "UNKNOWN_INSTRUMENT", "--dry-run"
        )
        # The cause fixed: the instrument loaded. Probe trades show when the validator has it.
        prod.produce(f"{prefix}refdata.instruments", encode(NEW_INSTRUMENT), b"NEWCO.XNYS")
        probes: list[str] = []

        def enriched() -> list[EnrichedTrade]:
            codec = msgspec.json.Decoder(EnrichedTrade)
            return [codec.decode(m.value()) for m in read_all(kafka, f"{prefix}trades.enriched")]

        def probe_went_through() -> bool:
            probe = _trade(f"RD-PROBE-{len(probes)}", "NEWCO.XNYS")
            probes.append(probe.trade_id)
            prod.produce(f"{prefix}trades.raw", encode(probe), probe.trade_id.encode())
            assert prod.flush(30) == 0
            wait_for(lambda: caught_up(kafka, group, f"{prefix}trades.raw"), 60, "a probe")
            return any(e.trade_id.startswith("RD-PROBE") for e in enriched())

        wait_for(probe_went_through, 60, "the validator to see the new instrument", every_s=1.0)
        unknown = [
            m for m in read_all(kafka, f"{prefix}trades.rejected")
            if header_map(m.headers())["tf.reason"] == "UNKNOWN_INSTRUMENT"
        ]  # fmt: skip
        out = _redrive(kafka, prefix, "--reason", "UNKNOWN_INSTRUMENT")
        assert f"re-drove {len(unknown)} of {len(unknown)} dead letters" in out
        expected = sorted([*(t.trade_id for t in trades), *probes])
        wait_for(lambda: len(enriched()) == len(expected), 90, "the re-driven trades enriched")
        assert sorted(e.trade_id for e in enriched()) == expected
        raw = read_all(kafka, f"{prefix}trades.raw")
        redriven = [m for m in raw if any(k == REDRIVEN_HEADER for k, _ in m.headers() or [])]
        assert len(redriven) == len(unknown)
        # A second re-drive of the same raw trades is harmless: the validator drops them.
        _redrive(kafka, prefix, "--reason", "UNKNOWN_INSTRUMENT")
        wait_for(lambda: caught_up(kafka, group, f"{prefix}trades.raw"), 90, "the second pass")
        assert len(enriched()) == len(expected)
        assert validator.terminate() == 0
    finally:
        if validator.alive():
            validator.kill()
