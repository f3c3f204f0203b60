"""Integration fixtures: a real cluster of service processes, once on SQLite and once on MariaDB.

The MariaDB run uses schemas named after this test run (``bookstore_it_<hex>_<service>``) and
drops them at the end; it skips, saying why, when no MariaDB answers on 127.0.0.1:3306.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from bookstore.platform.cluster import GRPC_SERVICES, Cluster
from bookstore.platform.database import drop_mysql_databases

MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"


def mariadb_answers() -> str | None:
    """None when MariaDB is reachable, else the reason it is not."""
    try:
        import pymysql

        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=2).close()
    except Exception as error:
        return f"MariaDB on 127.0.0.1:3306 did not answer: {error}"
    return None


@pytest.fixture(scope="session", params=["sqlite", "mariadb"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    db_url = ""
    if request.param == "mariadb":
        reason = mariadb_answers()
        if reason:
            pytest.skip(reason)
        db_url = MARIADB_SERVER + f"bookstore_it_{secrets.token_hex(4)}_{{service}}"
    running = Cluster(replicas={"inventory": 2}, db_url=db_url).start()
    try:
        yield running
    finally:
        running.stop()
        if db_url:
            drop_mysql_databases(db_url, list(GRPC_SERVICES))


@pytest.fixture
def http(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.gateway_url, timeout=10) as client:
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
