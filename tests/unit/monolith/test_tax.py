"""The arithmetic of an order run: percentiles that were observed, rates, CPU per order."""

from __future__ import annotations

from collections import Counter

import pytest

from bookstore.monolith.tax import OrderRun


def run_of(latencies_ms: list[float], *, wall_s: float = 2.0, cpu_s: float = 0.5) -> OrderRun:
    return OrderRun(
        name="side",
        clients=1,
        latencies_s=[ms / 1000 for ms in latencies_ms],
        statuses=Counter({201: len(latencies_ms)}),
        wall_s=wall_s,
        cpu_s=cpu_s,
    )


def test_percentiles_are_nearest_rank_values_that_were_observed() -> None:
    run = run_of([float(ms) for ms in range(100, 0, -1)])  # 1..100 ms, in any order
    assert run.p50_ms == pytest.approx(50)
    assert run.p99_ms == pytest.approx(99)


def test_p99_of_fewer_than_a_hundred_orders_is_the_slowest() -> None:
    assert run_of([5, 7, 30]).p99_ms == pytest.approx(30)


def test_rates_divide_by_the_orders_placed() -> None:
    run = run_of([10.0] * 50, wall_s=2.0, cpu_s=0.5)
    assert run.orders == 50
    assert run.orders_per_s == pytest.approx(25)
    assert run.cpu_ms_per_order == pytest.approx(10)
    assert "50 orders" in run.summary() and "CPU 10.0 ms/order" in run.summary()
