"""Property-based fuzz of the backend's OpenAPI schema (schemathesis on hypothesis) against a real server:
no generated request, valid or not, may produce a 5xx, and the server must keep answering."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from conftest import Backend


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    backend = Backend(tmp_path_factory.mktemp("fuzz"))
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def api_schema(server: Backend):
    document = httpx.get(f"{server.url}/openapi.json", headers=server.headers).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.base_url = server.url
    return schema


STATUSES: dict[int, int] = {}


def test_no_request_makes_the_server_fail(api_schema, server: Backend) -> None:
    """Every operation of the schema, with generated (and mutated, schema-violating) requests."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
            generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=server.url, headers=server.headers, timeout=30)
            STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
            assert response.status_code < 500, (f"{case.method} {case.formatted_path}: {response.status_code} "
                                                f"{response.text[:300]}")

        check()
    assert httpx.get(f"{server.url}/health", headers=server.headers).status_code == 200
    assert {200, 201} & set(STATUSES) and {400, 404, 422} <= set(STATUSES), STATUSES  # both kinds were exercised
