"""The Grafana dashboards ask only for metrics the services export."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bookstore.observability import metrics
from bookstore.observability.dashboards import Query, all_panels, load_panels

DASHBOARDS = Path(__file__).resolve().parents[3] / "infra" / "grafana" / "dashboards"
PROMQL_WORDS = frozenset(
    {
        *("sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group"),
        *("by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"),
        *("offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "abs"),
        *("ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "sort", "sort_desc", "time", "vector"),
        *(
            "scalar",
            "label_replace",
            "absent",
            "avg_over_time",
            "max_over_time",
            "min_over_time",
            "inf",
            "nan",
        ),
    }
)


def dashboards() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers but functions, keywords and labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text
    )  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        following = text[match.end() :].lstrip()
        if word.lower() in PROMQL_WORDS or following.startswith("("):
            continue
        names.add(word)
    return names


def test_there_are_dashboards_for_services_resilience_and_messaging() -> None:
    uids = {json.loads(path.read_text())["uid"] for path in dashboards()}
    assert uids == {"bookstore-overview", "bookstore-resilience", "bookstore-messaging"}


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.stem)
def test_every_promql_expression_names_only_metrics_the_services_export(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    exported = metrics.exported_series_names() | {"up"}  # ``up`` is Prometheus's own, per target
    found = list(expressions(dashboard))
    assert found, f"{path.name} has no PromQL"
    unknown = {expr: sorted(metric_names(expr) - exported) for expr in found if metric_names(expr) - exported}
    assert unknown == {}
    assert all(metric_names(expr) for expr in found), "an expression that names no metric"


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.stem)
def test_every_panel_reads_the_provisioned_prometheus_data_source(path: Path) -> None:
    for panel in json.loads(path.read_text())["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]


def test_the_name_finder_skips_functions_labels_and_strings() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, job) "
        '(rate(grpc_server_handling_seconds_bucket{job="order"}[1m])))'
    )
    assert metric_names(expr) == {"grpc_server_handling_seconds_bucket"}
    assert metric_names("sum(a_total) / sum(b_total)") == {"a_total", "b_total"}


def test_the_panels_read_from_the_files_are_those_grafana_shows_with_their_queries_and_units() -> None:
    panels = all_panels()
    latency = next(p for p in panels if p.dashboard == "bookstore-overview" and p.title == "Gateway latency")
    assert latency.unit == "s"
    assert [q.legend for q in latency.queries] == ["P50", "P90", "P99"]
    every_expr = {expr for path in dashboards() for expr in expressions(json.loads(path.read_text()))}
    assert {q.expr for p in panels for q in p.queries} == every_expr


def test_panels_folded_inside_a_collapsed_row_are_found_and_text_panels_skipped(tmp_path: Path) -> None:
    board = {
        "uid": "folded",
        "panels": [
            {"type": "text", "title": "Read me"},
            {
                "type": "row",
                "title": "Row",
                "panels": [{"title": "Inside", "targets": [{"expr": "up", "legendFormat": "{{job}}"}]}],
            },
        ],
    }
    (tmp_path / "folded.json").write_text(json.dumps(board))
    [inside] = load_panels(tmp_path / "folded.json")
    assert (inside.dashboard, inside.title, inside.unit) == ("folded", "Inside", "")
    assert inside.queries == (Query("up", "{{job}}"),)


def test_a_legend_is_filled_from_the_series_labels_as_grafana_does() -> None:
    assert Query("x", "{{job}} {{ outcome }}").label_for({"job": "order", "outcome": "ok"}) == "order ok"
    assert Query("x", "{{missing}}!").label_for({}) == "!"
    assert Query("x").label_for({"b": "2", "a": "1"}) == "a=1, b=2"
    assert Query("x").label_for({}) == "x"
