"""The two databases every store and cluster test runs on: an SQLite file and MariaDB.

MariaDB runs use schemas named after the test (``<prefix>_<hex>_<service>``) and drop them
afterwards; they skip, saying why, when no MariaDB answers on 127.0.0.1:3306.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from bookstore.platform.cluster import GRPC_SERVICES, Cluster
from bookstore.platform.database import drop_mysql_databases, make_engine

MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"
BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]


def mariadb_unavailable_reason() -> str | None:
    """None when MariaDB answers, else why not."""
    server = create_engine(MARIADB_SERVER, connect_args={"connect_timeout": 2})
    try:
        with server.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        return f"MariaDB does not answer on 127.0.0.1:3306: {error}"
    finally:
        server.dispose()
    return None


def mariadb_template(prefix: str) -> str:
    """A fresh URL template for MariaDB, or a skip when no server answers."""
    reason = mariadb_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return f"{MARIADB_SERVER}{prefix}_{uuid.uuid4().hex[:10]}_{{service}}"


@contextmanager
def engine_on(backend: str, tmp_path: Path, service: str = "service") -> Iterator[Engine]:
    """An engine on an SQLite file in ``tmp_path``, or on a fresh MariaDB schema."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / f'{service}.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    template = mariadb_template("test")
    engine = make_engine(template.replace("{service}", service))
    try:
        yield engine
    finally:
        engine.dispose()
        drop_mysql_databases(template, [service])


@contextmanager
def cluster_on(backend: str, prefix: str = "bookstore_it", **options: Any) -> Iterator[Cluster]:
    """A started cluster whose services keep their data in SQLite files or MariaDB schemas."""
    db_url = mariadb_template(prefix) if backend == "mariadb" else ""
    running = Cluster(db_url=db_url, **options).start()
    try:
        yield running
    finally:
        running.stop()
        if db_url:
            drop_mysql_databases(db_url, list(GRPC_SERVICES))
