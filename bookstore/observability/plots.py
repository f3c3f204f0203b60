"""Plots of the week 10 notebook: a trace as a waterfall, latency as percentiles.

* ``plot_waterfall(spans)`` draws one trace the way Jaeger does: a bar per span from its
  start to its end, children under their parent, coloured by service. Gaps between a
  client span and its server span are the network and the queueing; a bar that runs past
  its parent's end is a call someone stopped waiting for.
* ``plot_latency_percentiles(series)`` compares P50, P90 and P99 of several things (modes,
  services, methods). It takes raw durations (from spans, or timed in the notebook) or
  percentiles computed elsewhere (PromQL's ``histogram_quantile``, or
  ``prometheus.histogram_quantile`` on a direct scrape).
* ``plot_quantile_timeseries(series)`` draws the result of a ``query_range`` over time.
* ``plot_dashboard(panels, query_range, start, end)`` draws a Grafana dashboard's panels
  (``observability.dashboards``) from their own PromQL, one small chart per panel, so the
  notebook shows what the team's dashboard would show, from the same queries.

Each returns the ``Axes`` it drew on; pass ``ax=`` to draw into a figure of your own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from bookstore.observability.collector import SpanRecord
from bookstore.observability.dashboards import Panel
from bookstore.observability.prometheus import Series

DEFAULT_QUANTILES = (0.5, 0.9, 0.99)


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _figure, created = plt.subplots(figsize=size)
    return created


def waterfall_order(spans: Sequence[SpanRecord]) -> list[tuple[SpanRecord, int]]:
    """Spans depth first, each with its depth: roots by start, then each span's children by start.

    A span whose parent is missing (not arrived, or in another trace) is shown as a root.
    """
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s.start_ns, s.name))
    ordered: list[tuple[SpanRecord, int]] = []

    def visit(span: SpanRecord, depth: int) -> None:
        ordered.append((span, depth))
        for child in children.get(span.span_id, ()):
            visit(child, depth + 1)

    for root in children.get(None, ()):
        visit(root, 0)
    return ordered


def service_colours(services: Sequence[str]) -> dict[str, Any]:
    """A stable colour per service name, in the order given."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    return {service: palette(index % 10) for index, service in enumerate(dict.fromkeys(services))}


def short_name(name: str) -> str:
    """``bookstore.rpc.v1.OrderService/CreateOrder`` -> ``OrderService/CreateOrder``; others as they are."""
    if "/" not in name:
        return name  # "publish order.created" keeps its dots
    service, method = name.split("/", 1)
    return f"{service.rsplit('.', 1)[-1]}/{method}"


def plot_waterfall(
    spans: Sequence[SpanRecord],
    ax: Axes | None = None,
    *,
    title: str | None = None,
    colours: dict[str, Any] | None = None,
) -> Axes:
    """One trace as horizontal bars in milliseconds from its first span's start; errors edged red.

    ``colours`` (service -> colour) keeps a service's colour the same across several waterfalls.
    """
    ordered = waterfall_order(spans)
    ax = _axes(ax, (11, 0.35 * max(len(ordered), 4) + 1.2))
    if not ordered:
        ax.set_title(title or "no spans")
        return ax
    origin = min(span.start_ns for span, _ in ordered)
    colours = {**service_colours([span.service for span, _ in ordered]), **(colours or {})}
    for row, (span, depth) in enumerate(ordered):
        start_ms = (span.start_ns - origin) / 1e6
        width_ms = max((span.end_ns - span.start_ns) / 1e6, 0.001)
        ax.barh(
            row,
            width_ms,
            left=start_ms,
            height=0.6,
            color=colours[span.service],
            edgecolor="red" if span.is_error else "none",
            linewidth=1.5,
        )
        label = f"{'  ' * depth}{span.service}: {short_name(span.name)}"
        ax.text(start_ms + width_ms, row, f" {width_ms:.2f} ms", va="center", fontsize=7)
        ax.annotate(
            label,
            (0, row),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 0),
            textcoords="offset points",
            ha="right",
            va="center",
            fontsize=8,
        )
    ax.set_yticks([])
    ax.set_ylim(len(ordered) - 0.5, -0.5)
    ax.set_xlabel("milliseconds since the trace began")
    ax.set_title(title or f"trace {ordered[0][0].trace_id[:16]}... ({len(ordered)} spans)")
    shown = dict.fromkeys(span.service for span, _ in ordered)
    ax.legend(
        handles=[Patch(color=colours[s], label=s) for s in shown],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )
    ax.set_xlim(0, max((span.end_ns - origin) / 1e6 for span, _ in ordered) * 1.15)  # room for the labels
    ax.figure.subplots_adjust(left=0.35)
    return ax


def percentiles(
    durations: Sequence[float], quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> dict[float, float]:
    """Nearest-rank percentiles of raw durations: values that were actually observed."""
    ordered = sorted(durations)
    if not ordered:
        return {q: math.nan for q in quantiles}
    return {q: ordered[max(0, math.ceil(q * len(ordered)) - 1)] for q in quantiles}


def plot_latency_percentiles(
    series: Mapping[str, Sequence[float] | Mapping[float, float]],
    ax: Axes | None = None,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    unit: str = "ms",
    title: str = "latency percentiles",
) -> Axes:
    """Grouped bars: for each series, its P50/P90/P99 (or ``quantiles``).

    A series is raw durations in seconds, or a mapping ``quantile -> seconds`` already
    computed (from PromQL or a direct scrape).
    """
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    ax = _axes(ax, (8, 4))
    names = list(series)
    width = 0.8 / max(len(quantiles), 1)
    for index, q in enumerate(quantiles):
        heights = []
        for name in names:
            values = series[name]
            table = values if isinstance(values, Mapping) else percentiles(values, quantiles)
            heights.append(table.get(q, math.nan) * scale)
        positions = [i + (index - (len(quantiles) - 1) / 2) * width for i in range(len(names))]
        ax.bar(positions, heights, width=width, label=f"P{q * 100:g}")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend()
    return ax


def plot_quantile_timeseries(
    series: Mapping[str, Sequence[tuple[float, float]]],
    ax: Axes | None = None,
    *,
    unit: str = "ms",
    title: str = "latency over time",
) -> Axes:
    """Lines of ``(unix time, seconds)`` points, e.g. one per quantile from ``query_range``."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    ax = _axes(ax, (9, 4))
    starts = [points[0][0] for points in series.values() if points]
    origin = min(starts) if starts else 0.0
    for name, points in series.items():
        ax.plot([t - origin for t, _ in points], [v * scale for _, v in points], label=name)
    ax.set_xlabel("seconds")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend()
    return ax


def plot_dashboard(
    panels: Sequence[Panel],
    query_range: Callable[[str, float, float, float], Sequence[Series]],
    start: float,
    end: float,
    *,
    step_s: float = 1.0,
    columns: int = 2,
) -> list[Axes]:
    """One chart per panel, each series labelled as Grafana would (``legendFormat``).

    ``query_range(promql, start, end, step_s)`` is Prometheus's (``MetricsBackend.query_range``);
    time is drawn in seconds from ``start``. A query that returns nothing leaves its panel
    with a "no data" note, as Grafana does: a blank panel is a finding, not a plotting error.
    """
    import matplotlib.pyplot as plt

    rows = max(1, math.ceil(len(panels) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(6.2 * columns, 2.6 * rows), squeeze=False)
    axes = list(grid.flat)
    for ax, panel in zip(axes, panels, strict=False):  # more axes than panels: the spares hide
        drawn = 0
        for query in panel.queries:
            for series in query_range(query.expr, start, end, step_s):
                finite = [(t - start, v) for t, v in series.points if math.isfinite(v)]
                if finite:
                    times, values = zip(*finite, strict=True)
                    ax.plot(times, values, label=query.label_for(series.labels)[:40])
                    drawn += 1
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(labelsize=7)
        if panel.unit:
            ax.set_ylabel(panel.unit, fontsize=8)
        if drawn == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        elif drawn <= 6:
            ax.legend(fontsize=6, loc="upper left")
    for spare in axes[len(panels) :]:
        spare.set_visible(False)
    for ax in grid[-1]:
        ax.set_xlabel("seconds", fontsize=8)
    figure.tight_layout()
    return axes[: len(panels)]
