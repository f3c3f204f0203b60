"""Start and stop the monolith as its own OS process, the way the cluster starts a service.

    with MonolithProcess() as monolith:        # one process, a free loopback port
        httpx.get(f"{monolith.url}/books")
        monolith.kill()                         # SIGKILL: the whole bookstore is gone

It is started through ``bookstore.platform.processes.spawn``, like every service: in its own
process group, and tied to the process that started it (on Linux ``PR_SET_PDEATHSIG``: when
the launcher dies, even by SIGKILL, the monolith receives SIGTERM), with an ``atexit``
handler for a normal interpreter exit. ``stop`` signals its PID's group (SIGTERM, then
SIGKILL after 5 s); ``kill`` sends SIGKILL at once, as a crash would.

Ready means answering: ``start`` returns once ``GET /healthz`` answers 200, which happens
after the app's start-up opened the database (tables created, books and stock seeded). If
the process exits or does not answer within ``startup_timeout_s``, the error shows its log.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from bookstore.monolith.modules import NAME
from bookstore.platform import processes, service_catalog
from bookstore.platform.healthcheck import check_http
from bookstore.platform.settings import Settings

MODULE = service_catalog.entry(NAME).module
READY_POLL_S = 0.03

_live: weakref.WeakSet[MonolithProcess] = weakref.WeakSet()


@atexit.register
def _stop_live_monoliths() -> None:
    for monolith in list(_live):
        monolith.stop()


class MonolithError(RuntimeError):
    """The monolith failed to start, or was asked to do something while stopped."""


class MonolithProcess:
    """One monolith process on a free loopback port, with its own work directory (removed at stop)."""

    def __init__(
        self,
        *,
        work_dir: str | Path | None = None,
        db_url: str | None = None,
        jwt_secret: str | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        self._owns_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="bookstore-monolith-"))
        self.db_url = db_url if db_url is not None else os.environ.get("BOOKSTORE_DB_URL", "")
        self.jwt_secret = jwt_secret or secrets.token_urlsafe(32)
        self.startup_timeout_s = startup_timeout_s
        self.port = processes.free_port()
        self.log_path = self.work_dir / "logs" / "monolith-0.log"
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the monolith's one database (to inspect it; the process owns it)."""
        return Settings(work_dir=self.work_dir, db_url_template=self.db_url).database_url(NAME)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MonolithProcess:
        """Start the process and wait until it answers ``/healthz``; on failure, stop it and raise."""
        began = time.perf_counter()
        _live.add(self)
        self._process = processes.spawn(MODULE, self._environment(), self.log_path)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; then remove the work directory if it was ours."""
        process, self._process = self._process, None
        if process is not None:
            processes.terminate([process.pid], reap={process.pid: process})
        _live.discard(self)
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye, no rollback of anything but the open transactions."""
        if self._process is None:
            raise MonolithError("the monolith is not running")
        processes.signal_group(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=5)

    def restart(self) -> None:
        """Start again on the same port and database, after a ``kill``."""
        if self._process is not None and self._process.poll() is None:
            processes.terminate([self._process.pid], reap={self._process.pid: self._process})
        self.start()

    def logs(self, tail: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])

    def __enter__(self) -> MonolithProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKSTORE_")}
        env.update(
            PYTHONUNBUFFERED="1",
            BOOKSTORE_SERVICE=NAME,
            BOOKSTORE_HOST="127.0.0.1",
            BOOKSTORE_PORT=str(self.port),
            BOOKSTORE_WORK_DIR=str(self.work_dir),
            BOOKSTORE_JWT_SECRET=self.jwt_secret,
        )
        if self.db_url:
            env["BOOKSTORE_DB_URL"] = self.db_url
        env.update(self._extra_env)
        return env

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if not self.running():
                raise MonolithError(f"the monolith exited during start-up; its log:\n{self.logs()}")
            if check_http(f"{self.url}/healthz", timeout_s=0.5).healthy:
                return
            if time.monotonic() > deadline:
                raise MonolithError(
                    f"the monolith did not answer /healthz within {self.startup_timeout_s:.0f} s; "
                    f"its log:\n{self.logs()}"
                )
            time.sleep(READY_POLL_S)
