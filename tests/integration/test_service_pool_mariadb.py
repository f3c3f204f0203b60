"""A service's MariaDB pool: opened at start, never larger, so clusters can count their connections.

Every process of every cluster on one server shares its ``max_connections``; a pool that opens
connections on demand under a burst also makes requests wait for the handshake, seconds on a
loaded machine. ``service_engine`` opens ``BOOKSTORE_DB_POOL_SIZE`` connections before the
service serves, and a burst wider than that waits for one of them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from bookstore.platform.database import drop_mysql_databases, service_engine
from bookstore.platform.settings import Settings

from ..databases import MARIADB_SERVER, mariadb_template

pytestmark = pytest.mark.mariadb

POOL = 3
BURST = 12


def _server_connections(schema: str) -> int:
    """Connections the server holds open on ``schema`` (from every client)."""
    server = create_engine(MARIADB_SERVER)
    try:
        with server.connect() as conn:
            query = text("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = :schema")
            return int(conn.execute(query, {"schema": schema}).scalar_one())
    finally:
        server.dispose()


def _burst(engine: Engine) -> list[int]:
    def hold_and_count(_: int) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT SLEEP(0.05)")).scalar_one()) + 1

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        return list(pool.map(hold_and_count, range(BURST)))


def test_a_service_opens_its_whole_pool_at_start_and_no_connection_beyond_it() -> None:
    template = mariadb_template("pool")
    settings = Settings(db_url_template=template, db_pool_size=POOL)
    schema = make_url(settings.database_url("inventory")).database
    assert schema is not None
    engine = service_engine(settings, "inventory")
    try:
        opened_at_start = _server_connections(schema)
        answers = _burst(engine)
        after_burst = _server_connections(schema)
        pool_status = (engine.pool.size(), engine.pool.checkedin())  # type: ignore[attr-defined]
    finally:
        engine.dispose()
        drop_mysql_databases(template, ["inventory"])

    assert answers == [1] * BURST  # every caller was served, the surplus by waiting its turn
    assert opened_at_start == POOL
    assert after_burst == POOL
    assert pool_status == (POOL, POOL)
