"""Integration fixtures: a real cluster of service processes, once on SQLite and once on MariaDB.

The MariaDB run uses schemas named after this test run (``bookstore_it_<hex>_<service>``) and
drops them at the end; it skips, saying why, when no MariaDB answers on 127.0.0.1:3306.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.messaging.broker import BrokerUnavailable, broker_answers, resolve_rabbitmq_url

from ..databases import cluster_on


@pytest.fixture(scope="session", params=["sqlite", "mariadb"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with cluster_on(request.param, replicas={"inventory": 2}) as running:
        yield running


@pytest.fixture
def http(cluster: Cluster) -> Iterator[httpx.Client]:
    """A client of the gateway of the ``cluster`` fixture nearest the test (a module may have its own)."""
    with httpx.Client(base_url=cluster.gateway_url, timeout=15) as client:
        yield client


@pytest.fixture
def auth_headers(http: httpx.Client) -> dict[str, str]:
    """A freshly registered user's bearer token."""
    username = f"reader_{secrets.token_hex(4)}"
    assert (
        http.post("/auth/register", json={"username": username, "password": "correct horse"}).status_code
        == 201
    )
    login = http.post("/auth/login", json={"username": username, "password": "correct horse"})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """The broker, found as everywhere (``bookstore.messaging.broker``); a skip saying why if none."""
    try:
        url = resolve_rabbitmq_url()
    except BrokerUnavailable as error:
        pytest.skip(f"RabbitMQ is needed: {error}")
    if not broker_answers(url):
        pytest.skip(f"RabbitMQ is needed, but none answers at BOOKSTORE_RABBITMQ_URL ({url})")
    return url
