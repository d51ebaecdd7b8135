"""The OpenAPI schema fuzzed against the live server: whatever a client sends that the schema
allows, or nearly allows, the server never answers with a 5xx, and its 2xx answers match the
schema. Runs on SQLite and on PostgreSQL (which is stricter about text and integer ranges)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from harness import OPERATOR_KEY, Api, Server, new_merchant
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from support import module_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    """A server with one merchant, a few items and a campaign, and that merchant's key."""
    with module_server(request, tmp_path_factory.mktemp("fuzz")) as server:
        operator = Api(server.url, OPERATOR_KEY)
        shop = new_merchant(operator, server.url)
        for n in range(3):
            item = shop.post(
                "/v1/items", {"title": f"thing {n}", "price": 10.0 + n, "category": "c"}
            )
            shop.post(
                "/v1/campaigns",
                {"item_id": item.json()["id"], "daily_budget": 5.0, "target_roi": 2.0},
            )
        key = shop.client.headers["Authorization"].removeprefix("Bearer ")
        yield server, key
        operator.close()


_MERCHANT_PATHS = ("/v1/items", "/v1/campaigns")


def test_no_server_errors(fuzzed: tuple[Server, str]) -> None:
    """Every operation of the published schema, with cases that fit it and cases that break it
    (schemathesis's strategies, driven by hypothesis directly: its pytest fixture loader does
    not run under this pytest)."""
    server, merchant_key = fuzzed
    api_schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12, "the schema lost operations"
    for operation in operations:
        key = merchant_key if operation.path.startswith(_MERCHANT_PATHS) else OPERATOR_KEY
        _fuzz(operation, GenerationMode.POSITIVE, server.url, key)
        with contextlib.suppress(Unsatisfiable):  # an operation without inputs has no bad ones
            _fuzz(operation, GenerationMode.NEGATIVE, server.url, key)


def _fuzz(operation: Any, mode: GenerationMode, base_url: str, key: str) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            checks=[not_a_server_error, response_schema_conformance],
        )

    fuzz()
