"""Run Locust headless against a cluster's gateway, as a process of its own, and read what it measured.

**What.** ``start_locust(cluster, LoadPlan(users=..., duration_s=...))`` starts
``python -m locust -f journey.py --headless ...`` against the gateway and returns a
``LocustRun``: a context manager that ends the process by its PID on any exit (an exception,
an interrupted cell), whose ``wait()`` returns the parsed ``LocustStats``. ``run_locust`` does
both in one call. ``started_at()`` tells when the first request was sent, so that an
experiment can act at a moment of the load (clear a fault 2.5 s in).

**Why a subprocess.** Locust runs its users as gevent greenlets, and importing ``locust``
monkey-patches sockets, threads and ``time.sleep`` of the whole process. In a notebook kernel
or a test process, which also run gRPC channels and threads of their own, that breaks them in
ways that are hard to trace. So the kernel never imports ``locust``: it starts it, like the
services, tied to its parent (``bookstore.platform.child``: it gets SIGTERM when the kernel
dies) and in its own process group, and reads its CSV files afterwards.

**A load generator competes for the machine.** On two cores, Locust's own CPU is taken from
the services it measures. The journey uses ``FastHttpUser`` (geventhttpclient), several times
cheaper per request than ``HttpUser`` (requests); still, read a saturated run's figures with
the load average beside them. Production load tests run the generator on other machines
(``--processes``, or a master with workers).

**When not to.** A scripted sequence, where *which* request comes *when* is the lesson (one
slow call while two others fail), is clearer as a loop in the notebook: Locust chooses the
tasks at random and starts them when its users are ready.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from bookstore.launcher.locust.stats import LocustStats, read_run
from bookstore.platform.processes import pid_alive, spawn, terminate

LOCUSTFILE = Path(__file__).with_name("journey.py")
"""The locustfile: run by Locust, never imported (see its docstring)."""
STARTUP_ALLOWANCE_S = 30.0
"""How long Locust may take to start (import gevent, parse the locustfile) and to write its files."""
_FIRST_REQUEST_POLL_S = 0.02


class LocustError(RuntimeError):
    """Locust ended without its statistics; the message quotes the end of its log."""


class HasGateway(Protocol):
    @property
    def gateway_url(self) -> str: ...


def gateway_of(target: str | HasGateway) -> str:
    """The base URL to load: a URL as given, or a cluster's ``gateway_url``."""
    return target if isinstance(target, str) else target.gateway_url


@dataclass(frozen=True)
class LoadPlan:
    """What Locust runs: how many users of which kind (``journey.py``), how fast, for how long."""

    users: int
    duration_s: float
    spawn_rate: float | None = None
    """Users started per second; by default all of them within the first second."""
    user_class: str = "Shopper"
    pace_s: float = 1.0
    """Each user starts a task every ``pace_s`` (later if the last one took longer)."""
    request_timeout_s: float = 3.0
    """A request without an answer by then fails; the run's end waits as long for those in flight."""
    username: str = ""
    """With ``password``: the one account every ``Shopper`` logs in to (else each signs up)."""
    password: str = ""
    token: str = ""
    """The bearer token every ``PageReader`` sends."""
    steps: tuple[str, ...] = ()
    """``Shopper``: only these steps of ``journey.JOURNEY`` (``("browse", "open_book")``); all by default."""

    def __post_init__(self) -> None:
        for name in ("users", "duration_s", "pace_s", "request_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.spawn_rate is not None and not self.spawn_rate > 0:
            raise ValueError(f"spawn_rate must be positive, got {self.spawn_rate}")

    @property
    def offered_per_s(self) -> float:
        """Tasks a second once every user runs, while each task takes less than the pace."""
        return self.users / self.pace_s

    def arguments(self, host: str) -> list[str]:
        """Locust's command line for this plan, without the files (secrets go in ``environment``)."""
        return [
            "-f", str(LOCUSTFILE), self.user_class, "--headless", "--only-summary", "--csv-full-history",
            "--host", host, "--users", str(self.users),
            "--spawn-rate", f"{self.spawn_rate or self.users:g}", "--run-time", f"{self.duration_s:g}s",
            "--stop-timeout", f"{self.request_timeout_s:g}",
            "--bookstore-pace-s", f"{self.pace_s:g}", "--bookstore-timeout-s", f"{self.request_timeout_s:g}",
            "--bookstore-username", self.username, "--bookstore-steps", ",".join(self.steps),
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        return {"LOCUST_BOOKSTORE_PASSWORD": self.password, "LOCUST_BOOKSTORE_TOKEN": self.token}


class LocustRun:
    """One Locust process: ``wait()`` for its statistics; leaving the ``with`` block ends it by PID."""

    def __init__(self, target: str | HasGateway, plan: LoadPlan, work_dir: Path | None = None) -> None:
        self.plan = plan
        self._remove_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="bookstore-locust-")) if work_dir is None else work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.csv_prefix = self.work_dir / "locust"
        self.request_log = self.work_dir / "requests.csv"
        self.log_path = self.work_dir / "locust.log"
        command = [
            sys.executable, "-m", "locust", *plan.arguments(gateway_of(target)),
            "--csv", str(self.csv_prefix), "--bookstore-request-log", str(self.request_log),
        ]  # fmt: skip
        env = {**os.environ, **plan.environment()}
        self._process = spawn("locust", env, self.log_path, command=command)
        self.pid = self._process.pid

    def __enter__(self) -> LocustRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def running(self) -> bool:
        return self._process.poll() is None

    def started_at(self, timeout_s: float = STARTUP_ALLOWANCE_S) -> float:
        """When the load began (Unix seconds); waits for it up to ``timeout_s``.

        Precisely: when the first request to *end* was sent. Requests are logged as they end, so
        one sent earlier but answered later is not seen yet; on a fresh start the difference is
        at most that request's latency, milliseconds unless the first answers are slow.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.request_log.exists():
                with self.request_log.open() as file:
                    file.readline()  # the header
                    first = file.readline()
                if first.endswith("\n"):
                    return float(first.split(",", 1)[0])
            if not self.running():
                raise LocustError(f"Locust exited before its first request:\n{self.log_tail()}")
            time.sleep(_FIRST_REQUEST_POLL_S)
        raise TimeoutError(f"Locust sent no request within {timeout_s:g} s:\n{self.log_tail()}")

    def wait(self, timeout_s: float | None = None) -> LocustStats:
        """Wait for Locust to end by itself (``TimeoutError`` after ``timeout_s``), then read its files.

        ``timeout_s`` defaults to the run time plus ``STARTUP_ALLOWANCE_S``. Locust's exit code
        1 (some requests failed) is a normal end: the failures are in the statistics.
        """
        expected_s = self.plan.duration_s + self.plan.request_timeout_s
        limit = expected_s + STARTUP_ALLOWANCE_S if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running():
            self.stop()
            raise TimeoutError(f"Locust still ran after {limit:g} s; ended it (PID {self.pid})")
        if self._process.returncode not in (0, 1):
            raise LocustError(f"Locust exited with {self._process.returncode}:\n{self.log_tail()}")
        try:
            return read_run(self.csv_prefix, self.request_log)
        except FileNotFoundError as missing:
            raise LocustError(f"{missing}:\n{self.log_tail()}") from None
        finally:
            self._clean_up()

    def stop(self) -> None:
        """End Locust by its PID (SIGTERM to its process group, SIGKILL after 5 s); idempotent."""
        if pid_alive(self.pid) or self._process.poll() is None:
            terminate([self.pid], reap={self.pid: self._process})
        self._process.poll()
        self._clean_up()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _clean_up(self) -> None:
        if self._remove_work_dir and not self.running():
            shutil.rmtree(self.work_dir, ignore_errors=True)


def start_locust(target: str | HasGateway, plan: LoadPlan, *, work_dir: Path | None = None) -> LocustRun:
    """Start Locust headless against ``target`` (a cluster or a base URL); use the run as a context manager.

    The files go to ``work_dir``, by default a temporary folder removed once they are read.
    """
    return LocustRun(target, plan, work_dir)


def run_locust(
    target: str | HasGateway, plan: LoadPlan, *, timeout_s: float | None = None, work_dir: Path | None = None
) -> LocustStats:
    """Run ``plan`` against ``target`` to its end (``TimeoutError`` after ``timeout_s``); its statistics."""
    with start_locust(target, plan, work_dir=work_dir) as run:
        return run.wait(timeout_s)
