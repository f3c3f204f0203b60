"""Locust's statistics, drawn: requests and failures per second over time, and percentiles per request.

``plot_load({"label": stats, ...})`` draws one column per run, so that two runs (without and
with breakers, one user against many) read side by side on the same scales. The top row:
requests answered and failed per second, from the request log in half seconds when the run
kept one, else from the stats history (one point a second, as Locust writes it). The bottom
row: the p50/p95/p99 of each request name over the whole run, on a log scale, because a
cached page and a timed-out one differ a thousandfold. The figure is made with pyplot: end
the cell with ``plt.show()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bookstore.launcher.locust.stats import AGGREGATED, PERCENTILES, LocustStats

_BAR_WIDTH = 0.8
_RATE_STEP_S = 0.5


def plot_load(runs: Mapping[str, LocustStats] | LocustStats, *, title: str | None = None) -> Figure:
    """One column per run: requests/s and failures/s over time above p50/p95/p99 per request name."""
    named = {"Locust": runs} if isinstance(runs, LocustStats) else dict(runs)
    if not named:
        raise ValueError("nothing to plot: no run given")
    fig, axes = plt.subplots(2, len(named), figsize=(6 * len(named), 6.5), squeeze=False)
    for column, (label, stats) in enumerate(named.items()):
        _plot_rates(axes[0][column], stats, label)
        _plot_percentiles(axes[1][column], stats)
    for row in axes:  # one scale per row, so that runs compare at a glance
        top = max(ax.get_ylim()[1] for ax in row)
        bottom = min(ax.get_ylim()[0] for ax in row)
        for ax in row:
            ax.set_ylim(0 if row is axes[0] else bottom, top)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _plot_rates(ax: Axes, stats: LocustStats, label: str) -> None:
    if stats.requests:  # the request log: finer than the history's one row a second
        series = stats.rates(_RATE_STEP_S)
        xlabel = f"seconds since the first request (each point: the {_RATE_STEP_S:g} s before it)"
    else:
        points = [p for p in stats.timeline(AGGREGATED) if not math.isnan(p.requests_per_s)]
        origin = stats.history[0].at_unix_s if stats.history else 0.0
        series = [(p.at_unix_s - origin, p.requests_per_s, p.failures_per_s) for p in points]
        xlabel = "seconds since Locust started (each point: the second before it)"
    seconds = [t for t, _, _ in series]
    ax.plot(seconds, [r for _, r, _ in series], marker="o", markersize=3, label="requests/s")
    ax.plot(seconds, [f for _, _, f in series], marker="x", markersize=4, color="tab:red", label="failures/s")
    ax.set(title=f"{label}: {stats.requests_per_s:.0f} requests/s, {stats.failures} failed",
           xlabel=xlabel, ylabel="per second")
    ax.legend(fontsize=8, loc="lower right")


def _plot_percentiles(ax: Axes, stats: LocustStats) -> None:
    names = stats.names()
    width = _BAR_WIDTH / len(PERCENTILES)
    for index, q in enumerate(PERCENTILES):
        values = [stats.by_name[name].percentiles_s[q] * 1000 for name in names]
        offsets = [position + (index - 1) * width for position in range(len(names))]
        ax.bar(offsets, values, width=width, label=f"p{q * 100:g}")
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set(ylabel="ms (whole run)", yscale="log")
    ax.legend(fontsize=8)
