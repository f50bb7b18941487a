"""Schemathesis against the gateway and the query API: no 5xx, every error body JSON.

Each API's own OpenAPI document drives the requests (valid ones and, schemathesis's
negative phase, invalid ones); both services run for real on the session's broker. The
number of examples is bounded (``EXAMPLES``) so the module runs in about
a minute or two. The query API's live stream (``/v1/stream``, endless by design) is left
out.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.conftest import unique
from tests.support.kafka_tools import create_query_topics, create_topics, wait_for
from tradeflux.config import Settings
from tradeflux.gateway.runner import Gateway, GatewayConfig
from tradeflux.query.server import BackgroundServer, QueryService

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.openapi]

EXAMPLES = 40


@schemathesis.check
def error_bodies_are_json(_ctx: Any, response: Any, _case: Any) -> bool | None:
    """An answer of 400 or more carries a JSON body."""
    if response.status_code < 400:
        return None
    try:
        json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} with a body that is not JSON: {response.content[:200]!r}"
        ) from None
    return None


@pytest.fixture(scope="module")
def gateway_url(kafka: Settings) -> Iterator[str]:
    prefix = unique("fuzzgw") + "."
    # every topic the gateway writes: trades, allocation instructions, confirmation acks
    create_topics(
        kafka, {prefix + t: 3 for t in ("trades.raw", "allocations.in", "confirmations.in")}
    )
    gateway = Gateway(GatewayConfig(kafka.client_config(), prefix, http_port=0))
    try:
        yield f"http://127.0.0.1:{gateway.http_port}"
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def query_url(kafka: Settings) -> Iterator[str]:
    prefix = unique("fuzzq") + "."
    create_query_topics(kafka, prefix)
    service = QueryService(dataclasses.replace(kafka, topic_prefix=prefix, auth="none"))
    with BackgroundServer(service) as running:
        import httpx

        with httpx.Client(base_url=running.url, timeout=10) as client:
            wait_for(lambda: client.get("/readyz").status_code == 200, 60, "the query API ready")
        yield running.url


def fuzz(schema: Any, base_url: str, mode: GenerationMode, examples: int) -> dict[int, int]:
    """Send ``examples`` generated requests over every operation; fail on the first bad answer.

    Return how many answers came per status code. (Schemathesis's hypothesis strategy,
    not its pytest plugin: the plugin's lazy fixture loader does not work with pytest 9.2.)
    """
    statuses: dict[int, int] = {}

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(
            base_url=base_url, checks=[not_a_server_error, error_bodies_are_json], timeout=30
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    run()
    return statuses


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_the_gateway_answers_no_5xx_and_json_errors(gateway_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    statuses = fuzz(schema, gateway_url, mode, EXAMPLES * 2)
    assert sum(statuses.values()) >= EXAMPLES, statuses
    if mode is GenerationMode.NEGATIVE:
        assert set(statuses) - {200, 202} <= {400, 405, 413, 422}, statuses


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_the_query_api_answers_no_5xx_and_json_errors(query_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{query_url}/openapi.json").exclude(path="/v1/stream")
    statuses = fuzz(schema, query_url, mode, EXAMPLES * 8)
    assert sum(statuses.values()) >= EXAMPLES * 4, statuses
