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
from sqlalchemy import Engine

from bookstore.launcher.cluster import CONSUMERS, GRPC_SERVICES, Cluster
from bookstore.platform.database import drop_mysql_databases, make_engine, mysql_unavailable_reason

MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"
BACKENDS = ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)]
DATABASE_OWNERS = (*GRPC_SERVICES, *CONSUMERS)  # every process with a database (not the gateway)


def mariadb_unavailable_reason() -> str | None:
    """None when MariaDB answers on 127.0.0.1:3306, else why not."""
    return mysql_unavailable_reason(MARIADB_SERVER)


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
    cluster = Cluster(db_url=db_url, **options)
    try:  # the schemas go also when the start fails half-way, after some services made theirs
        yield cluster.start()
    finally:
        cluster.stop()
        if db_url:
            drop_mysql_databases(db_url, [name for name in cluster.services if name in DATABASE_OWNERS])
