"""Reading Locust's CSV files: a sample of a real run (40 readers, 4 s) is committed beside this test."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bookstore.launcher.locust.stats import AGGREGATED, read_run

SAMPLE = Path(__file__).with_name("locust_sample")


@pytest.fixture
def stats():
    return read_run(SAMPLE / "run", SAMPLE / "requests.csv")


def test_per_name_rows_give_counts_rates_and_percentiles_in_seconds(stats) -> None:
    assert stats.names() == ["GET /books/{book_id}", "GET /orders"]
    page = stats.by_name["GET /books/{book_id}"]
    assert (page.method, page.requests, page.failures) == ("GET", 188, 0)
    assert page.requests_per_s == pytest.approx(71.52, abs=0.01)
    assert (page.p50_s, page.p95_s, page.p99_s) == pytest.approx((0.095, 0.140, 0.140))
    assert page.max_s == pytest.approx(0.14536, abs=1e-5)


def test_the_aggregated_row_is_the_total(stats) -> None:
    assert stats.total.name == AGGREGATED
    assert stats.total.requests == 240 == sum(stats.by_name[name].requests for name in stats.names())
    assert stats.requests_per_s == pytest.approx(91.31, abs=0.01)
    assert stats.failures == 0


def test_history_rates_come_from_the_growth_of_the_cumulative_counts(stats) -> None:
    total = stats.timeline()
    assert [p.requests for p in total] == [0, 80, 160]
    assert math.isnan(total[0].requests_per_s)  # a rate needs two rows
    # Locust's own Requests/s column reads 0 this early; the counts grew by 80 a second.
    assert [p.requests_per_s for p in total[1:]] == [80.0, 80.0]
    assert [p.users for p in total] == [0, 40, 40]
    orders = stats.timeline("GET /orders")
    assert [p.requests_per_s for p in orders[1:]] == [15.0]


def test_history_percentiles_not_yet_measured_are_nan(stats) -> None:
    first, *_, last = stats.timeline()
    assert math.isnan(first.percentiles_s[0.5])
    assert last.percentiles_s == pytest.approx({0.5: 0.076, 0.95: 0.110, 0.99: 0.130})


def test_failures_are_keyed_by_method_name_and_error(stats) -> None:
    error = 'HTTP 504: {"detail": "catalog did not answer in time"}'
    assert stats.errors == {f"GET GET /books/{{book_id}}: {error}": 3}


def test_the_request_log_keeps_every_request_with_its_order_id(stats) -> None:
    assert len(stats.requests) == 4
    first = stats.requests[0]
    assert (first.name, first.outcome, first.failed, first.order_id) == (
        "GET /books/{book_id}", "200", False, ""
    )
    assert [r.failed for r in stats.requests] == [False, False, True, False]
    assert first.end_unix_s == pytest.approx(1796279445.044945 + 0.077291)
    placed = [r.order_id for r in stats.requests if r.name == "POST /orders"]
    assert placed == ["6f1c1a8e-3f7c-4f5e-9a55-1d2f0c3b7a10"]


def test_rates_from_the_request_log_count_each_request_in_the_step_it_ended(stats) -> None:
    # Ends 0.08 s, 0.12 s, 1.02 s (a failed 504) and 1.38 s after the first request began.
    assert stats.rates(step_s=0.5) == [(0.5, 4.0, 0.0), (1.0, 0.0, 0.0), (1.5, 4.0, 2.0)]
    assert stats.rates(step_s=2.0) == [(2.0, 2.0, 0.5)]
    with pytest.raises(ValueError):
        stats.rates(step_s=0)


def test_the_table_lists_each_name_then_the_total(stats) -> None:
    lines = stats.table().splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["GET", "GET", AGGREGATED]
    assert lines[-1].split()[1:4] == ["240", "0", "91.3"]


def test_a_run_without_statistics_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no statistics"):
        read_run(tmp_path / "run")


def test_missing_optional_files_read_as_empty(tmp_path: Path) -> None:
    (tmp_path / "run_stats.csv").write_text((SAMPLE / "run_stats.csv").read_text())
    stats = read_run(tmp_path / "run")
    assert (stats.history, stats.errors, stats.requests) == ((), {}, ())
