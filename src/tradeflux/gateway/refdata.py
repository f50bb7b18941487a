"""``tradeflux refdata load``: reference data files into their compacted topics.

Each file is parsed and validated row by row (domain.refdata); bad rows are reported
by line number and not loaded; good rows are produced keyed by their id, and the
producer is flushed before the command reports success.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from tradeflux import topics
from tradeflux.domain.refdata import ParsedFile, RowError, parse_refdata_file, refdata_key
from tradeflux.errors import TradefluxError
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import IdempotentWriter

TOPIC_OF_KIND = {
    "instruments": topics.INSTRUMENTS.name,
    "accounts": topics.ACCOUNTS.name,
    "counterparties": topics.COUNTERPARTIES.name,
    "limits": topics.LIMITS.name,
    "prices": topics.PRICES.name,
    "fx": topics.FX.name,
}


class RefdataLoadError(TradefluxError):
    """Reference data could not be delivered to Kafka."""


@dataclass
class LoadReport:
    """What a load did, per file."""

    loaded: dict[str, int] = field(default_factory=dict)  # file -> rows produced
    errors: dict[str, list[RowError]] = field(default_factory=dict)  # file -> bad rows


def parse_files(paths: list[Path]) -> list[tuple[Path, ParsedFile]]:
    """Parse every file, raising a one-line error for a missing or unreadable one."""
    parsed = []
    for path in paths:
        if not path.is_file():
            raise RefdataLoadError(f"{path}: no such file")
        parsed.append((path, parse_refdata_file(path)))
    return parsed


def load_files(
    paths: list[Path], producer_config: dict[str, object], topic_prefix: str = ""
) -> LoadReport:
    """Produce the valid rows of ``paths`` to their topics; return what was loaded and rejected."""
    report = LoadReport()
    encoder = msgspec.json.Encoder(decimal_format="string")
    producer = IdempotentWriter(producer_config, **{"linger.ms": 10})
    failures: list[str] = []

    def on_delivery(err: str | None) -> None:
        if err is not None:
            failures.append(err)

    for path, parsed in parse_files(paths):
        topic = topic_prefix + TOPIC_OF_KIND[parsed.kind]
        for row in parsed.rows:
            try:
                producer.produce(
                    topic, refdata_key(row).encode(), encoder.encode(row), on_delivery=on_delivery
                )
            except KafkaClientError as exc:
                raise RefdataLoadError(f"reference data not delivered to Kafka: {exc}") from None
        report.loaded[str(path)] = len(parsed.rows)
        if parsed.errors:
            report.errors[str(path)] = parsed.errors
    remaining = producer.flush(30)
    if remaining or failures:
        reason = failures[0] if failures else f"{remaining} records not acknowledged in 30 s"
        raise RefdataLoadError(f"reference data not fully delivered to Kafka: {reason}")
    return report
