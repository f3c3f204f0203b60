"""Steady traffic to watch a change happen: a client that never stops, and a sampler beside it.

Whether a change is safe to make while a system serves (scaling, a restart, a deploy) shows
only under traffic: a change made on an idle system fails nobody. :class:`SteadyClient` keeps
one HTTP request in flight at a time against the gateway and records the outcome and time of
every answer, including the ones that never came (a refused connection is a failure too).
:class:`Sampler` calls a function every ``interval_s`` and keeps what it returned with the
time, for instance each replica's call counters, so a plot shows who served when.

One request at a time is a gentle load on purpose: it leaves the cores to the processes being
changed, and every failure it sees is one a real user would have seen. It is not a load test;
for that see Locust.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

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
