"""Each service owns its database: an SQLite file by default, or a MySQL/MariaDB schema.

"Database per service" is what lets a service change its tables without asking anyone:
nobody else reads them. The price is that no transaction spans two services, which is why
week 7 needs sagas.

Two engines behave differently under concurrent writers, and this module hides that:

* SQLite allows one writer. A deferred transaction that reads and then writes fails with
  "database is locked" under load, because the busy timeout cannot help a reader whose
  snapshot went stale. So every SQLite transaction that may write starts with
  ``BEGIN IMMEDIATE``: writers queue on the busy timeout instead of failing. A transaction
  that only reads (a session from ``read_session_factory``) starts with a plain deferred
  ``BEGIN``: in WAL mode it reads a snapshot and never waits for, nor blocks, the writer.
* MySQL/MariaDB (InnoDB) locks rows. We use READ COMMITTED, conditional UPDATEs and unique
  keys, and lock rows in a fixed order (sorted ids) so two orders cannot deadlock.

A MySQL connection is expensive to open (TCP, a handshake, authentication, a server thread):
about 0.1 s on a 2-core machine that others keep busy, and 2 s or more with 20 runnable
processes on it (measured). A request that has to open one under such load has spent its
whole deadline before its first statement. So a service opens its connections once, at
start, before it reports SERVING, and never opens another: ``service_engine`` keeps a pool
of ``BOOKSTORE_DB_POOL_SIZE`` connections (default 4) with no overflow. A burst wider than
the pool waits for a pooled connection, a wait of a few milliseconds, instead of paying for
a new one (``benchmarks/bench_hot_row.py`` measures both).

Why so few: every process of every cluster on one server shares its ``max_connections``
(151 by default). A cluster with messaging has eight processes with a database (five
services, three consumers), so it holds 8 x 4 = 32 connections, plus 4 per extra replica; four
such clusters at once stay below 151. The pool that grew on demand (10 kept, 20 more for a
burst, closed on return) could reach 30 per process, 240 per cluster. A larger pool opened at
start is faster still under a burst (the benchmark's pool of 20), but 20 per process is 160
per cluster: raise ``max_connections`` before you raise ``BOOKSTORE_DB_POOL_SIZE``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bookstore.platform.settings import Settings

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000
# make_engine's pool when the caller names none: 10 kept, 20 more for a burst (closed on return).
# Services use service_engine's fixed pool instead (see the module docstring).
DEFAULT_MYSQL_POOL_SIZE = 10
DEFAULT_MYSQL_MAX_OVERFLOW = 20
# The execution option that marks a connection's transactions as read-only (see _on_begin).
READ_ONLY_OPTION = "bookstore_read_only"


def make_engine(
    url: str,
    *,
    pool_size: int = DEFAULT_MYSQL_POOL_SIZE,
    max_overflow: int = DEFAULT_MYSQL_MAX_OVERFLOW,
    warm: int = 0,
) -> Engine:
    """An engine for ``url``; creates the MySQL schema or the SQLite folder if missing.

    MySQL only: ``pool_size`` connections stay open once opened, ``max_overflow`` more may be
    opened for a burst; ``warm`` connections are opened now, so that the first burst after a
    start does not pay for them (the benchmark compares; mind the server's max_connections).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        _create_mysql_database(url)
        engine = create_engine(
            url,
            isolation_level="READ COMMITTED",
            pool_pre_ping=True,
            pool_size=pool_size,
            # A burst beyond pool_size still gets connections, but they are closed on return.
            max_overflow=max_overflow,
        )
        _open_connections(engine, min(warm, pool_size))
        return engine
    return create_engine(url, pool_pre_ping=True)


def service_engine(settings: Settings, service: str | None = None) -> Engine:
    """The engine of a service's own database.

    On MySQL/MariaDB: ``settings.db_pool_size`` connections, all opened now and no more ever
    (see the module docstring). SQLite ignores the pool settings.
    """
    size = settings.db_pool_size
    return make_engine(settings.database_url(service), pool_size=size, max_overflow=0, warm=size)


def _open_connections(engine: Engine, count: int) -> None:
    """Fill the pool with ``count`` connections: all checked out at once, then returned.

    Opened side by side: each waits mostly for the server, so ``count`` of them take about
    as long as one.
    """
    if count < 1:
        return
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="db-warm") as pool:
        opening = [pool.submit(engine.connect) for _ in range(count)]
    connections = [future.result() for future in opening if future.exception() is None]
    for connection in connections:
        connection.close()
    failed = [future.exception() for future in opening if future.exception() is not None]
    if failed:
        raise failed[0]  # type: ignore[misc]


def _sqlite_engine(url: str) -> Engine:
    from pathlib import Path

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        # A read-only transaction must not take the write lock: WAL readers never block.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _create_mysql_database(url: str) -> None:
    parsed = make_url(url)
    name = parsed.database
    if not name:
        raise ValueError(f"the MySQL URL names no database: {parsed.render_as_string()}")
    server = create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4"))
    finally:
        server.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for pure reads. On SQLite their transactions begin DEFERRED, not IMMEDIATE.

    Only for code that never writes in that session: a deferred transaction that reads and
    then writes is exactly what fails with "database is locked" under load. Other engines
    treat these sessions like any other.
    """
    return sessionmaker(engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False)


def initialize(engine: Engine, metadata: MetaData, seed: Callable[[Session], None] | None = None) -> None:
    """Create the tables and seed them once, safely when several replicas start together.

    SQLite serialises the whole step in one immediate transaction; MySQL, whose DDL is not
    transactional, serialises it with a named server lock.
    """
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            metadata.create_all(conn)
            if seed is not None:
                with Session(bind=conn) as session:
                    seed(session)
                    session.flush()
        return
    lock_name = f"bookstore-init-{engine.url.database}"
    with engine.connect() as conn:
        acquired = conn.execute(text("SELECT GET_LOCK(:n, 30)"), {"n": lock_name}).scalar()
        if acquired != 1:
            raise RuntimeError(f"could not take the schema lock {lock_name} within 30 s")
        try:
            metadata.create_all(conn)
            conn.commit()
            if seed is not None:
                with Session(bind=conn) as session:
                    seed(session)
                    session.commit()
        finally:
            conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock_name})
            conn.commit()


def drop_mysql_databases(url_template: str, services: list[str]) -> None:
    """Drop the schemas a MySQL template names (tests clean up after themselves)."""
    for service in services:
        parsed = make_url(url_template.replace("{service}", service))
        server = create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
        try:
            with server.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
        finally:
            server.dispose()


def mysql_unavailable_reason(server_url: str, timeout_s: float = 2) -> str | None:
    """None when a MySQL/MariaDB server answers at ``server_url`` (an SQLAlchemy URL), else why not."""
    where = make_url(server_url).render_as_string(hide_password=True)
    server = None
    try:
        # connect_timeout bounds only the TCP connect: something that accepts the connection but
        # never greets (a proxy, a hung server) would hold the probe until the OS gives up
        bounded = {"connect_timeout": timeout_s, "read_timeout": timeout_s, "write_timeout": timeout_s}
        server = create_engine(server_url, connect_args=bounded)
        with server.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        cause = getattr(error, "orig", None) or error  # the driver's own error, on one line
        return f"no MySQL/MariaDB server answers at {where} ({type(cause).__name__}: {cause})"
    finally:
        if server is not None:
            server.dispose()
    return None


def retry_on_lock(action: Callable[[], object], *, attempts: int = 5) -> object:
    """Run ``action`` again when the database reports a lock timeout or deadlock."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except OperationalError as error:
            message = str(error.orig).lower()
            transient = "deadlock" in message or "lock wait timeout" in message or "locked" in message
            if not transient or attempt == attempts:
                raise
            log.warning("transient database error (attempt %d): %s", attempt, message)
            time.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")
