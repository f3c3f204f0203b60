"""The provisioned Grafana dashboards, read as data: each panel's title, unit and PromQL queries.

**Why.** A dashboard is code that nobody runs until an incident: a renamed metric or a label
that never appears turns a panel into "No data" silently, and the first person to notice is
the one who needed it. The course therefore reads the same JSON files Grafana provisions
(``infra/grafana/dashboards/``) and runs every query against a real Prometheus scraping a live
cluster: a test fails on a query that errors or returns nothing, and week 10 draws the
overview dashboard's panels inline from exactly these queries.

**What a panel holds here.** Grafana panels carry layout, colours and options; the course
needs only what a reader needs: the title, the unit of the y axis, and the queries with their
legend (``legendFormat``: ``{{route}}`` means "the value of label route").

**Writing queries that never go blank.** A ratio such as "5xx share" divides two sums; when no
request failed, the numerator has no series at all and the whole ratio is *empty*, not 0, so
the panel says "No data" at the best of times. The dashboards write ``(... or vector(0))`` for
a single ratio and ``(... or <denominator> * 0)`` for a ratio by label, so a healthy service
shows 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "dashboards"
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel, with the legend Grafana would give its series."""

    expr: str
    legend: str = ""

    def label_for(self, labels: Mapping[str, str]) -> str:
        """The legend of one series: ``{{route}}`` filled from its labels (empty fields stay empty)."""
        if not self.legend:
            return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or self.expr
        return LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), self.legend)


@dataclass(frozen=True)
class Panel:
    """A dashboard panel as a reader sees it: what it shows, in which unit, from which queries."""

    dashboard: str
    title: str
    unit: str
    queries: tuple[Query, ...]


def dashboard_files(folder: Path = DASHBOARDS_DIR) -> list[Path]:
    """The dashboard JSON files Grafana provisions, in a stable order."""
    return sorted(folder.glob("*.json"))


def load_panels(path: Path) -> list[Panel]:
    """Every panel of one dashboard that queries Prometheus (rows and text panels have none)."""
    dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    uid = str(dashboard.get("uid") or path.stem)
    panels = []
    for raw in _all_panels(dashboard.get("panels", [])):
        queries = tuple(
            Query(str(target["expr"]), str(target.get("legendFormat", "")))
            for target in raw.get("targets", [])
            if isinstance(target.get("expr"), str) and target["expr"].strip()
        )
        if queries:
            unit = str(raw.get("fieldConfig", {}).get("defaults", {}).get("unit", ""))
            panels.append(Panel(uid, str(raw.get("title", "")), unit, queries))
    return panels


def all_panels(folder: Path = DASHBOARDS_DIR) -> list[Panel]:
    """The panels of every provisioned dashboard."""
    return [panel for path in dashboard_files(folder) for panel in load_panels(path)]


def _all_panels(panels: Sequence[Any]) -> list[dict[str, Any]]:
    """Panels, with those folded inside collapsed rows (Grafana nests them under ``panels``)."""
    found: list[dict[str, Any]] = []
    for panel in panels:
        if isinstance(panel, dict):
            found.append(panel)
            found.extend(_all_panels(panel.get("panels", [])))
    return found
