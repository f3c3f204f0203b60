"""Locust's journey against a real cluster: orders land in the order service, and no process stays behind."""

from __future__ import annotations

import time

import pytest
import sqlalchemy

from bookstore.launcher.cluster import Cluster
from bookstore.launcher.locust import LoadPlan, run_locust, start_locust
from bookstore.platform.database import make_engine
from bookstore.platform.processes import pid_alive

pytestmark = pytest.mark.integration


def orders_stored(cluster: Cluster) -> int:
    """Rows in the order service's own database: what its saga wrote, whatever Locust believes."""
    engine = make_engine(cluster.database_url("order"))
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT COUNT(*) FROM orders")).scalar_one()
    finally:
        engine.dispose()


def test_the_journey_places_orders_that_the_order_service_stored_without_failures(cluster: Cluster) -> None:
    before = orders_stored(cluster)
    # Two users a second: four sign-ups (Argon2) at once may outlast the deadline on a busy machine.
    stats = run_locust(cluster, LoadPlan(users=4, duration_s=5, spawn_rate=2, pace_s=0.25))

    assert stats.failures == 0, stats.errors
    placed = [r for r in stats.requests if r.name == "POST /orders" and r.outcome == "201"]
    assert placed, stats.table()
    assert all(r.order_id for r in placed)
    assert stats.by_name["POST /orders"].requests == len(placed)
    assert orders_stored(cluster) - before == len(placed)
    # Every shopper signed up and logged in with a real token, then browsed.
    assert stats.by_name["POST /auth/login"].requests == 4
    assert stats.by_name["GET /books"].requests > 0 and stats.by_name["GET /orders"].requests > 0
    assert stats.timeline()[-1].requests == stats.total.requests


def test_leaving_the_block_early_ends_locust_by_its_pid_and_removes_its_files(cluster: Cluster) -> None:
    with start_locust(cluster, LoadPlan(users=2, duration_s=300, pace_s=0.5)) as run:
        run.started_at()
        assert pid_alive(run.pid)
        pid, folder = run.pid, run.work_dir
    assert not pid_alive(pid)
    assert not folder.exists()


def test_a_finished_run_leaves_no_process(cluster: Cluster) -> None:
    with start_locust(cluster, LoadPlan(users=1, duration_s=1, pace_s=0.5)) as run:
        stats = run.wait()
        pid = run.pid
    time.sleep(0.1)
    assert not pid_alive(pid)
    assert stats.total.requests > 0
