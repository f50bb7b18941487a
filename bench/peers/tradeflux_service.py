"""The shipped positions service under a per-run name, for throughput runs on one input topic.

A service's name sets its consumer group, transactional id and changelog topics, and
``--prefix`` sets every topic name, the input included. bench/compare.py loads the trades
once into ``<prefix>trades.enriched``; to run tradeflux from offset 0 with a fresh group
and fresh changelogs each round while reading that same topic, only the name changes
(``BENCH_SERVICE_NAME``). Processor, codecs, stores and topics are the shipped ones.
"""

from __future__ import annotations

import dataclasses
import os

from tradeflux.services.positions import SERVICE as SHIPPED

SERVICE = dataclasses.replace(SHIPPED, name=os.environ.get("BENCH_SERVICE_NAME", SHIPPED.name))
