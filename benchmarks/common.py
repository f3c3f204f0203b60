"""Small helpers every benchmark shares: percentiles, the machine and its load, verdicts, a
logged-in user, msg/s of a way measured in rounds, and the JSON report."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bookstore.monolith.tax import sign_up

BUSY_LOAD = 1.0  # a 1-minute load average above this means other work competes for the CPUs


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list: a value that was actually observed."""
    if not ordered:
        raise ValueError("no samples")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    with contextlib.suppress(OSError, AttributeError):
        return os.getloadavg()[0]
    return None


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def bearer_headers(gateway_url: str, timeout_s: float = 10.0) -> dict[str, str]:
    """Register a fresh user and log in; the headers carry its JWT (``tax.sign_up``'s)."""
    return sign_up(gateway_url, timeout_s=timeout_s)


@dataclass
class Way:
    """One way of handling ``messages`` messages, timed once a round: msg/s is the median round's."""

    name: str
    messages: int
    seconds: list[float] = field(default_factory=list)

    @property
    def msg_per_s(self) -> float:
        return self.messages / statistics.median(self.seconds)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"msg_per_s": self.msg_per_s}


def machine(*packages: str, **details: Any) -> dict[str, Any]:
    """What a report says of the machine: CPUs, load at the start, platform, any ``details``
    (such as the processor), Python, and the installed version of each named distribution."""
    return {
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": load_average(),
        "platform": platform.platform(),
        **details,
        "python": platform.python_version(),
        **{package: version(package) for package in packages},
    }


def warn_if_busy(info: Mapping[str, Any], consequence: str, *, show_cpus: bool = True) -> None:
    """Print a warning, ending with ``consequence``, when ``machine()``'s load average at the
    start is above BUSY_LOAD; ``show_cpus`` adds how many CPUs share that load."""
    load = info["load_average_1min_at_start"]
    if load is not None and load > BUSY_LOAD:
        cpus = f" on {info['cpus']} CPUs" if show_cpus else ""
        print(f"  warning: the 1-minute load average is {load:.1f}{cpus}; {consequence}")


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    """Write ``report`` as JSON to ``path`` (making its folder) and say so with the run's seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwhole run: {report['total_seconds']:.0f} s; figures written to {path}")
