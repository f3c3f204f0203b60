"""The week 10 plots draw without a display (Agg backend)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from bookstore.observability.collector import SpanRecord
from bookstore.observability.plots import (
    percentiles,
    plot_latency_percentiles,
    plot_quantile_timeseries,
    plot_waterfall,
    short_name,
    waterfall_order,
)


def span(
    span_id: str, parent: str | None, service: str, start_ms: float, end_ms: float, status: str = "UNSET"
) -> SpanRecord:
    return SpanRecord(
        trace_id="ab" * 16,
        span_id=span_id,
        parent_id=parent,
        name=f"op-{span_id}",
        service=service,
        kind="SERVER",
        start_ns=int(start_ms * 1e6),
        end_ns=int(end_ms * 1e6),
        status=status,
    )


TRACE = [
    span("c2", "b", "payment", 6, 8),
    span("a", None, "gateway", 0, 10),
    span("c1", "b", "inventory", 2, 4, status="ERROR"),
    span("b", "a", "order", 1, 9),
    span("orphan", "missing", "analytics", 12, 13),
]


@pytest.fixture(autouse=True)
def close_figures() -> None:
    yield
    plt.close("all")


def test_the_waterfall_lists_spans_depth_first_children_by_start() -> None:
    order = [(s.span_id, depth) for s, depth in waterfall_order(TRACE)]
    assert order == [("a", 0), ("b", 1), ("c1", 2), ("c2", 2), ("orphan", 0)]


def test_the_waterfall_draws_a_bar_per_span_and_edges_errors_in_red() -> None:
    ax = plot_waterfall(TRACE)
    bars = ax.patches
    assert len(bars) == len(TRACE)
    assert bars[0].get_x() == pytest.approx(0.0) and bars[0].get_width() == pytest.approx(10.0)
    failed = bars[2]  # c1, third in waterfall order
    assert matplotlib.colors.to_hex(failed.get_edgecolor()) == "#ff0000"
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "gateway",
        "order",
        "inventory",
        "payment",
        "analytics",
    }


def test_an_empty_trace_still_draws_an_empty_plot() -> None:
    assert plot_waterfall([]).get_title() == "no spans"


def test_percentiles_are_nearest_rank_values_that_were_observed() -> None:
    durations = [i / 1000 for i in range(1, 101)]
    assert percentiles(durations) == {0.5: 0.05, 0.9: 0.09, 0.99: 0.099}
    assert all(math.isnan(v) for v in percentiles([]).values())


def test_latency_percentiles_plot_takes_raw_durations_or_ready_quantiles() -> None:
    ax = plot_latency_percentiles(
        {"off": [0.001, 0.002, 0.003], "lean": {0.5: 0.002, 0.9: 0.003, 0.99: 0.004}}
    )
    heights = sorted(round(bar.get_height(), 6) for bar in ax.patches)
    assert len(ax.patches) == 6
    assert heights[-1] == pytest.approx(4.0)  # 0.004 s in ms
    assert [label.get_text() for label in ax.get_xticklabels()] == ["off", "lean"]


def test_quantile_timeseries_plot_draws_a_line_per_series() -> None:
    ax = plot_quantile_timeseries(
        {"P50": [(100.0, 0.001), (101.0, 0.002)], "P99": [(100.0, 0.01), (101.0, 0.02)]}
    )
    assert len(ax.get_lines()) == 2
    assert list(ax.get_lines()[1].get_ydata()) == pytest.approx([10.0, 20.0])


def test_waterfall_labels_drop_only_the_package_of_a_grpc_method() -> None:
    assert short_name("bookstore.rpc.v1.OrderService/CreateOrder") == "OrderService/CreateOrder"
    assert short_name("publish order.created") == "publish order.created"
    assert short_name("POST /orders") == "POST /orders"


def test_a_dashboard_draws_one_chart_per_panel_with_grafanas_legends_and_says_no_data_where_empty() -> None:
    from bookstore.observability.dashboards import Panel, Query
    from bookstore.observability.plots import plot_dashboard
    from bookstore.observability.prometheus import Series

    panels = [
        Panel("d", "Requests", "reqps", (Query("rate_by_route", "{{route}}"),)),
        Panel("d", "Failures", "", (Query("nothing"),)),
        Panel("d", "Latency", "s", (Query("p50", "P50"), Query("p99", "P99"))),
    ]
    answers = {
        "rate_by_route": [
            Series({"route": "GET /books"}, [(100.0, 1.0), (101.0, 2.0)]),
            Series({"route": "POST /orders"}, [(100.0, 0.5), (101.0, math.nan)]),
        ],
        "p50": [Series({}, [(100.0, 0.01), (101.0, 0.02)])],
        "p99": [Series({}, [(101.0, 0.2)])],
    }
    asked = []

    def query_range(expr: str, start: float, end: float, step_s: float) -> list[Series]:
        asked.append((expr, start, end, step_s))
        return answers.get(expr, [])

    axes = plot_dashboard(panels, query_range, start=100.0, end=102.0)
    assert len(axes) == 3 and [ax.get_title() for ax in axes] == ["Requests", "Failures", "Latency"]
    assert [line.get_label() for line in axes[0].get_lines()] == ["GET /books", "POST /orders"]
    assert list(axes[0].get_lines()[0].get_xdata()) == [0.0, 1.0]  # seconds from start
    assert list(axes[0].get_lines()[1].get_xdata()) == [0.0]  # NaN points are left out
    assert [t.get_text() for t in axes[1].texts] == ["no data"]
    assert [line.get_label() for line in axes[2].get_lines()] == ["P50", "P99"]
    assert {(start, end, step) for _, start, end, step in asked} == {(100.0, 102.0, 1.0)}
    assert not axes[0].figure.axes[3].get_visible()  # 3 panels on a 2 x 2 grid: the spare hides
    plt.close("all")
