"""A loaded machine on demand: CPU hogs that compete with the services for the cores.

What holds on a quiet machine may not hold on a busy one: a deadline of 2 s is generous when
a call takes 3 ms, and is gone when 20 runnable processes share two cores and opening one
database connection takes 2 s. A test or benchmark that must hold "under load" cannot count
on someone else keeping the machine busy. ``cpu_hogs(n)`` starts ``n`` processes that spin at
normal priority, so the run queue holds ``n`` more, as on a CI runner that several jobs share.

The hogs are tied to the process that starts them (they receive SIGTERM when it dies, even
on SIGKILL, see ``bookstore.platform.child``) and are ended by their PIDs when the block
exits. Mind the others on a shared machine: keep the block short.
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
    """The 1-minute load average: runnable (and waiting) processes, averaged over a minute."""
    return os.getloadavg()[0]
