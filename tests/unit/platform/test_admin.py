"""The AdminService's GetStats: who the process is, its call counters, and its circuit breakers."""

from __future__ import annotations

import contextlib
from typing import Any

from bookstore.platform.admin import AdminServicer
from bookstore.platform.faults import FaultTable
from bookstore.resilience import BreakerRegistry, BreakerSettings, CircuitOpenError
from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import admin_pb2


def get_stats(admin: AdminServicer) -> admin_pb2.GetStatsResponse:
    context: Any = None  # GetStats never touches its context unless it fails
    return admin.GetStats(admin_pb2.GetStatsRequest(), context)


def test_get_stats_reports_each_breaker_of_the_process_as_it_is_now() -> None:
    registry = BreakerRegistry(BreakerSettings(window_size=4, minimum_calls=2), clock=ManualClock())
    registry.breaker("inventory").call(lambda: None)
    registry.breaker("payment").force_open()
    admin = AdminServicer("order", 0, FaultTable(), registry.snapshots)

    first = get_stats(admin)
    with contextlib.suppress(CircuitOpenError):
        registry.breaker("payment").call(lambda: None)
    second = get_stats(admin)

    assert [
        (b.name, b.state, b.generation, b.window_calls, b.window_failures, b.rejected) for b in first.breakers
    ] == [
        ("inventory", "CLOSED", 0, 1, 0, 0),
        ("payment", "OPEN", 1, 0, 0, 0),
    ]
    # The snapshots are taken on every GetStats, so the refusal made in between shows.
    assert [b.rejected for b in second.breakers] == [0, 1]


def test_get_stats_of_a_process_without_breakers_lists_none() -> None:
    stats = get_stats(AdminServicer("payment", 2, FaultTable()))

    assert (stats.service, stats.replica) == ("payment", 2)
    assert list(stats.breakers) == []
