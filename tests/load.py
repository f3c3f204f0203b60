"""A loaded machine on demand: CPU hogs that compete with the services for the cores.

A test that must hold "on a busy machine" cannot count on someone else keeping the machine
busy. ``cpu_hogs(n)`` starts ``n`` processes that spin at normal priority, so each process
of a cluster gets about ``cores / (n + its own runnable threads)`` of a core, as on a CI
runner that several jobs share. The hogs are tied to this process (they die with it, even
on SIGKILL) and ended by their PIDs when the block exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bookstore.platform.processes import PARENT_PID_VARIABLE

_SPIN = "while True: pass"


@contextmanager
def cpu_hogs(count: int) -> Iterator[list[int]]:
    """Run ``count`` busy-looping processes for the duration of the block; yields their PIDs."""
    env = {**os.environ, PARENT_PID_VARIABLE: str(os.getpid())}
    command = [sys.executable, "-m", "bookstore.platform.child", "--exec", sys.executable, "-c", _SPIN]
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            hogs.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL))
        yield [hog.pid for hog in hogs]
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


def load_average() -> float:
    """The 1-minute load average (what the issue's "load average >= 20" means)."""
    return os.getloadavg()[0]
