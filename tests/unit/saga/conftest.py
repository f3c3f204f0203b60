"""Fixtures for the saga tests: a fake clock and sleep, fake participants, and databases.

The ``engine`` fixture runs a test twice, on an SQLite file and on a fresh MariaDB schema
(dropped afterwards); the MariaDB run skips, saying why, when no server answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from bookstore.platform.database import drop_mysql_databases, make_engine

from .fakes import FakeClock, FakeSleep

MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306"


def mariadb_unavailable_reason() -> str | None:
    server = create_engine(f"{MARIADB_SERVER}/", connect_args={"connect_timeout": 2})
    try:
        with server.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        return f"MariaDB does not answer on 127.0.0.1:3306: {error}"
    finally:
        server.dispose()
    return None


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'order.db'}")
        yield engine
        engine.dispose()
        return
    reason = mariadb_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    template = f"{MARIADB_SERVER}/test_saga_{{service}}_{uuid.uuid4().hex[:12]}"
    engine = make_engine(template.replace("{service}", "order"))
    try:
        yield engine
    finally:
        engine.dispose()
        drop_mysql_databases(template, ["order"])


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'order.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)
