"""What a Locust run measured, read from the CSV files it leaves behind.

**What.** ``locust --csv PREFIX`` writes ``PREFIX_stats.csv`` (one row per request name and an
``Aggregated`` row: counts, requests/s, percentiles over the whole run),
``PREFIX_stats_history.csv`` (one row a second: users, cumulative counts, and percentiles over
a sliding window) and ``PREFIX_failures.csv`` (one row per distinct error). The journey's
request log (``--bookstore-request-log``) adds one row per request. ``read_run`` turns them
into one ``LocustStats``; nothing here imports ``locust``.

**Two details worth knowing before trusting a number.**

- The history's own ``Requests/s`` column is Locust's "current" rate, averaged over roughly
  the last ten seconds with the newest two left out: for a run of a few seconds it reads 0.
  ``HistoryPoint.requests_per_s`` is computed instead from the growth of the cumulative
  count between two rows, so it is right from the second row on.
- Locust's percentiles are *approximated*: response times are rounded (to 10 ms above 100 ms,
  to 100 ms above 1 s) before they are counted, so a p99 of "1100" means 1.05-1.15 s. The
  request log keeps exact latencies when that matters.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

AGGREGATED = "Aggregated"
"""Locust's name for the row that sums every request name."""
PERCENTILES = (0.5, 0.95, 0.99)
"""The percentiles kept per request name (Locust writes more: 66 %, 75 %, ... 100 %)."""


@dataclass(frozen=True)
class RequestStats:
    """One request name over the whole run (latencies in seconds)."""

    name: str
    method: str
    requests: int
    failures: int
    requests_per_s: float
    failures_per_s: float
    average_s: float
    max_s: float
    percentiles_s: Mapping[float, float]
    """``{0.5: p50, 0.95: p95, 0.99: p99}``; NaN where no request ended."""

    @property
    def p50_s(self) -> float:
        return self.percentiles_s[0.5]

    @property
    def p95_s(self) -> float:
        return self.percentiles_s[0.95]

    @property
    def p99_s(self) -> float:
        return self.percentiles_s[0.99]


@dataclass(frozen=True)
class HistoryPoint:
    """One row of the stats history: the state of one request name (or ``Aggregated``) at one second."""

    at_unix_s: float
    name: str
    users: int
    requests: int
    """Cumulative: requests ended since the run began."""
    failures: int
    requests_per_s: float
    """Over the second before this row: from the cumulative counts, not Locust's sliding rate."""
    failures_per_s: float
    percentiles_s: Mapping[float, float]
    """Locust's sliding-window percentiles at this second; NaN before any request ended."""


@dataclass(frozen=True)
class RequestRecord:
    """One request from the journey's request log."""

    start_unix_s: float
    name: str
    outcome: str
    """``"201"`` (the status), ``"200 cache"`` (the gateway's fallback), ``"timeout"``, or an error's type."""
    failed: bool
    """Counted as a failure by Locust (an unexpected status, or no answer)."""
    latency_s: float
    order_id: str
    """The order's id for a ``201`` to ``POST /orders``, else empty."""

    @property
    def end_unix_s(self) -> float:
        return self.start_unix_s + self.latency_s


@dataclass(frozen=True)
class LocustStats:
    """Everything one run measured: per name, over time, per request, and its errors."""

    by_name: Mapping[str, RequestStats]
    """Per request name, with the ``Aggregated`` row under ``AGGREGATED``."""
    history: tuple[HistoryPoint, ...]
    errors: Mapping[str, int] = field(default_factory=dict)
    """``"METHOD name: error"`` -> occurrences."""
    requests: tuple[RequestRecord, ...] = ()
    """Every request, when the run kept a request log; else empty."""

    @property
    def total(self) -> RequestStats:
        return self.by_name[AGGREGATED]

    @property
    def requests_per_s(self) -> float:
        return self.total.requests_per_s

    @property
    def failures(self) -> int:
        return self.total.failures

    def names(self) -> list[str]:
        """The request names, without ``Aggregated``, in Locust's order."""
        return [name for name in self.by_name if name != AGGREGATED]

    def timeline(self, name: str = AGGREGATED) -> list[HistoryPoint]:
        """The history of one request name (by default the sum of all)."""
        return [point for point in self.history if point.name == name]

    def rates(self, step_s: float = 0.5) -> list[tuple[float, float, float]]:
        """From the request log: ``(seconds since the first request, answers/s, failures/s)`` per step.

        Finer than the history's one row a second, which short runs need. Each request counts
        in the step in which it ended, as Locust counts it; empty without a request log.
        """
        if step_s <= 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        if not self.requests:
            return []
        origin = min(r.start_unix_s for r in self.requests)
        steps = math.floor((max(r.end_unix_s for r in self.requests) - origin) / step_s) + 1
        answered, failed = [0] * steps, [0] * steps
        for r in self.requests:
            index = min(steps - 1, math.floor((r.end_unix_s - origin) / step_s))
            answered[index] += 1
            failed[index] += r.failed
        return [((i + 1) * step_s, answered[i] / step_s, failed[i] / step_s) for i in range(steps)]

    def table(self) -> str:
        """Per request name: requests, failures, requests/s and p50/p95/p99 in ms."""
        header = f"{'request':24} {'requests':>8} {'failed':>6} {'req/s':>7}    p50 ms    p95 ms    p99 ms"
        rows = [header]
        for name in [*self.names(), AGGREGATED]:
            s = self.by_name[name]
            ms = "".join(f"{value * 1000:10.0f}" for value in (s.p50_s, s.p95_s, s.p99_s))
            rows.append(f"{name:24} {s.requests:8} {s.failures:6} {s.requests_per_s:7.1f}{ms}")
        return "\n".join(rows)


def _number(text: str) -> float:
    """A CSV cell as a float: ``N/A`` (nothing measured yet) and empty cells are NaN."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _percentiles(row: Mapping[str, str]) -> dict[float, float]:
    # Locust writes percentiles in ms under headers "50%", "95%", "99%".
    return {q: _number(row[f"{q * 100:g}%"]) / 1000 for q in PERCENTILES}


def parse_stats(rows: Iterable[Mapping[str, str]]) -> dict[str, RequestStats]:
    """The rows of ``PREFIX_stats.csv``, by request name."""
    stats = {}
    for row in rows:
        stats[row["Name"]] = RequestStats(
            name=row["Name"],
            method=row["Type"],
            requests=int(row["Request Count"]),
            failures=int(row["Failure Count"]),
            requests_per_s=_number(row["Requests/s"]),
            failures_per_s=_number(row["Failures/s"]),
            average_s=_number(row["Average Response Time"]) / 1000,
            max_s=_number(row["Max Response Time"]) / 1000,
            percentiles_s=_percentiles(row),
        )
    return stats


def parse_history(rows: Iterable[Mapping[str, str]]) -> list[HistoryPoint]:
    """The rows of ``PREFIX_stats_history.csv``, with rates from the growth of the cumulative counts."""
    points = []
    previous: dict[str, tuple[float, int, int]] = {}
    for row in rows:
        name, at = row["Name"], float(row["Timestamp"])
        requests, failures = int(row["Total Request Count"]), int(row["Total Failure Count"])
        before = previous.get(name)
        if before is None or at <= before[0]:
            rate = failure_rate = math.nan  # a rate needs two rows
        else:
            rate = (requests - before[1]) / (at - before[0])
            failure_rate = (failures - before[2]) / (at - before[0])
        previous[name] = (at, requests, failures)
        users, percentiles = int(row["User Count"]), _percentiles(row)
        points.append(HistoryPoint(at, name, users, requests, failures, rate, failure_rate, percentiles))
    return points


def parse_failures(rows: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """The rows of ``PREFIX_failures.csv``: ``"METHOD name: error"`` -> occurrences."""
    return {f"{row['Method']} {row['Name']}: {row['Error']}": int(row["Occurrences"]) for row in rows}


def parse_request_log(rows: Iterable[Mapping[str, str]]) -> list[RequestRecord]:
    """The rows of the journey's request log (``bookstore/launcher/locust/journey.py``)."""
    return [
        RequestRecord(float(row["start_unix_s"]), row["name"], row["outcome"], row["failed"] == "1",
                      float(row["latency_s"]), row["order_id"])
        for row in rows
    ]


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def read_run(csv_prefix: Path, request_log: Path | None = None) -> LocustStats:
    """Read the files ``locust --csv csv_prefix`` wrote (and the request log, if any).

    ``FileNotFoundError`` when ``PREFIX_stats.csv`` is missing: Locust did not get to the end.
    """
    stats_path = csv_prefix.with_name(csv_prefix.name + "_stats.csv")
    if not stats_path.exists():
        raise FileNotFoundError(f"{stats_path.name}: Locust wrote no statistics")
    history = parse_history(_rows(csv_prefix.with_name(csv_prefix.name + "_stats_history.csv")))
    return LocustStats(
        by_name=parse_stats(_rows(stats_path)),
        history=tuple(history),
        errors=parse_failures(_rows(csv_prefix.with_name(csv_prefix.name + "_failures.csv"))),
        requests=tuple(parse_request_log(_rows(request_log))) if request_log is not None else (),
    )
