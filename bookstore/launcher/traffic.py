"""Steady traffic to watch a change happen: a client that never stops, and a sampler beside it.

Whether a change is safe to make while a system serves (scaling, a restart, a deploy) shows
only under traffic: a change made on an idle system fails nobody. :class:`SteadyClient` keeps
one HTTP request in flight at a time against the gateway and records the outcome and time of
every answer, including the ones that never came (a refused connection is a failure too).
:class:`Sampler` calls a function every ``interval_s`` and keeps what it returned with the
time, for instance each replica's call counters, so a plot shows who served when:
:func:`served_rates` turns such counters into calls per second, and :func:`plot_served` draws
them with the moments things were changed and the client's failures.

One request at a time is a gentle load on purpose: it leaves the cores to the processes being
changed, and every failure it sees is one a real user would have seen. It is not a load test;
for that see Locust.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

if TYPE_CHECKING:
    from matplotlib.axes import Axes

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    at_s: float
    """Seconds since the client started."""
    status: int
    """The HTTP status; 0 when no answer came (refused connection, timeout)."""
    detail: str = ""


class SteadyClient:
    """Calls ``GET path`` on the gateway back to back from a thread, until the block ends."""

    def __init__(self, gateway_url: str, path: str = "/books", *, timeout_s: float = 10.0) -> None:
        self.gateway_url = gateway_url
        self.path = path
        self.timeout_s = timeout_s
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady client", daemon=True)
        self._started = 0.0

    def _run(self) -> None:
        with httpx.Client(base_url=self.gateway_url, timeout=self.timeout_s) as http:
            while not self._stop.is_set():
                try:
                    response = http.get(self.path)
                    answer = Answer(self.elapsed(), response.status_code,
                                    "" if response.is_success else response.text[:200])  # fmt: skip
                except httpx.HTTPError as error:
                    answer = Answer(self.elapsed(), 0, f"{type(error).__name__}: {error}"[:200])
                    time.sleep(0.05)  # a refused connection returns at once: do not spin
                self.answers.append(answer)

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    @property
    def ok(self) -> int:
        return sum(1 for a in self.answers if 200 <= a.status < 300)

    @property
    def failed(self) -> list[Answer]:
        return [a for a in list(self.answers) if not 200 <= a.status < 300]

    def __enter__(self) -> SteadyClient:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 5)


class Sampler(Generic[T]):
    """Calls ``sample`` every ``interval_s`` from a thread; keeps ``(seconds, value)`` pairs.

    A sample that raises is skipped (a replica may be stopping while it is asked), so the
    series has gaps rather than an exception in the middle of an experiment.
    """

    def __init__(self, sample: Callable[[], T], interval_s: float = 0.25) -> None:
        self._sample = sample
        self.interval_s = interval_s
        self.samples: list[tuple[float, T]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._started = 0.0

    def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            try:
                value = self._sample()
                # Stamped halfway through the asking: on a busy machine the answer may take a while.
                self.samples.append(((asked + time.perf_counter()) / 2 - self._started, value))
            except Exception:  # see the class docstring: a gap, not a crash
                self.errors += 1
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Sampler[T]:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def served_rates(samples: Sequence[tuple[float, Mapping[int, int]]]) -> dict[int, list[tuple[float, float]]]:
    """Calls per second each replica served between two samples, stamped at the later one.

    ``samples`` are ``(seconds, {replica: calls served so far})``, as a :class:`Sampler` of
    ``Cluster.calls_served`` keeps them. A replica missing from a sample (starting, stopping)
    is measured across the gap; a counter that went down (the replica was replaced and counts
    from zero again) gives no rate for that interval rather than a negative one.
    """
    rates: dict[int, list[tuple[float, float]]] = {}
    for replica in sorted({index for _, counts in samples for index in counts}):
        points = [(at, counts[replica]) for at, counts in samples if replica in counts]
        rates[replica] = [
            (t1, (c1 - c0) / (t1 - t0))
            for (t0, c0), (t1, c1) in itertools.pairwise(points)
            if c1 >= c0 and t1 > t0
        ]
    return rates


def plot_served(
    samples: Sequence[tuple[float, Mapping[int, int]]],
    *,
    events: Sequence[tuple[float, str]] = (),
    failures: Sequence[Answer] = (),
    service: str = "replica",
    method: str = "",
    title: str = "",
    ax: Axes | None = None,
) -> Axes:
    """Each replica's calls per second over time, a dashed line per event, an x per failure.

    ``events`` are ``(seconds, label)``, e.g. ``(3.1, "scale to 3")``; ``failures`` are the
    client's failed answers, drawn on the time axis where they happened.
    """
    import matplotlib.pyplot as plt

    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(8, 3))
    for replica, rates in served_rates(samples).items():
        times, values = [at for at, _ in rates], [rate for _, rate in rates]
        ax.plot(times, values, marker=".", label=f"{service}[{replica}]")
    ax.set_ylim(bottom=0)
    for at, label in events:
        ax.axvline(at, color="grey", linestyle="--")
        ax.annotate(label, (at, ax.get_ylim()[1] * 0.9), xytext=(3, 0), textcoords="offset points")
    for failure in failures:
        ax.plot(failure.at_s, 0, "rx")
    ax.set_xlabel("seconds")
    ax.set_ylabel(f"{method} calls/s served" if method else "calls/s served")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    if title:
        ax.set_title(title)
    if figure is not None:  # a figure of the caller's is laid out by the caller
        figure.tight_layout()
    return ax
