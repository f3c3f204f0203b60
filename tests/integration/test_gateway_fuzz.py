"""Fuzz the live gateway's OpenAPI document: against the real services, no request gets a 5xx.

The unit suite fuzzes the ASGI app with fakes; this one sends schemathesis' generated requests
over HTTP to the gateway of a real cluster, so the services' own validation is exercised too
(an INVALID_ARGUMENT that escaped as INTERNAL would show up here as a 502). No fault is
injected, so any 5xx is a bug.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from bookstore.platform.cluster import Cluster

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def bearer(cluster: Cluster) -> dict[str, str]:
    name = f"fuzz_{secrets.token_hex(4)}"
    with httpx.Client(base_url=cluster.gateway_url, timeout=10) as client:
        client.post("/auth/register", json={"username": name, "password": "fuzzing-password"})
        token = client.post("/auth/login", json={"username": name, "password": "fuzzing-password"})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_no_generated_request_gets_a_server_error_from_the_live_gateway(
    cluster: Cluster, bearer: dict[str, str]
) -> None:
    # The schema only exists once the cluster runs, so operations are walked here rather than
    # parametrised at collection time.
    schema = schemathesis.openapi.from_url(f"{cluster.gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=bearer, checks=[not_a_server_error], timeout=30)

        fuzz()
