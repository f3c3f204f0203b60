"""Starting and ending child processes so that none outlives the one who started it.

A notebook kernel that is restarted or killed must not leave six services listening on
ports. Three layers make sure of that:

* each child runs in its own session (process group), so it can be signalled as a unit and
  a Ctrl-C in the parent's terminal does not hit it twice;
* on Linux each child asks the kernel for ``PR_SET_PDEATHSIG``: when its parent dies, for
  whatever reason, even SIGKILL, the child receives SIGTERM;
* the launcher registers an ``atexit`` handler for a normal interpreter exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PR_SET_PDEATHSIG = 1


PARENT_PID_VARIABLE = "BOOKSTORE_PARENT_PID"


def tie_to_parent() -> None:
    """In a child: receive SIGTERM when the launcher dies (Linux), or exit now if it already has."""
    expected = os.environ.get(PARENT_PID_VARIABLE)
    if not expected or sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return  # the atexit handler still cleans up after a normal exit
    if os.getppid() != int(expected):
        sys.exit("the launcher exited before this service started")


# PR_SET_PDEATHSIG fires when the *thread* that created the child exits, not the process.
# A child started from a short-lived thread (a restart from a worker thread, a notebook
# cell run on a subshell thread) would be killed as soon as that thread ends, so every
# child is started from this one long-lived thread.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookstore-spawner")


def spawn(
    module: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    tied_to_parent: bool = True,
    command: Sequence[str] = (),
    talk: bool = False,
) -> subprocess.Popen[bytes]:
    """Run ``python -m module`` with ``env``, output appended to ``log_path``.

    No ``preexec_fn``: it would run Python code in a forked copy of this (threaded, gRPC)
    process. The child ties itself to us instead (``bookstore.platform.child``).
    ``command`` (a program and its arguments) runs that program instead of a module, tied the
    same way (the kernel keeps the parent-death signal across ``exec``): e.g. ``prometheus``.
    ``talk``: the child's stdin and stdout are pipes to this process (only its stderr goes to
    the log), for a child that answers requests (``bookstore.platform.forkserver``).
    """
    arguments = ["--exec", *command] if command else [module]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = dict(env)
    if tied_to_parent:
        child_env[PARENT_PID_VARIABLE] = str(os.getpid())
    else:
        child_env.pop(PARENT_PID_VARIABLE, None)

    def start() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "bookstore.platform.child", *arguments],
                env=child_env,
                stdin=subprocess.PIPE if talk else subprocess.DEVNULL,
                stdout=subprocess.PIPE if talk else log,
                stderr=log if talk else subprocess.STDOUT,
                start_new_session=True,
            )

    return _spawner.submit(start).result()


def wait_for_stop_signal(log: logging.Logger) -> None:
    """Block until SIGTERM or SIGINT arrives, then return so the caller can shut down gracefully.

    The child's side of :func:`terminate`: a process that returns from here has the grace
    period ``terminate`` gives before SIGKILL to finish what it serves.
    """
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill(0)
    if fields[0] != "Z":
        return True
    # The main thread reads "Z" as soon as it has exited, while the process's other threads
    # are still being torn down, their sockets still open (a gRPC server's listening port):
    # the process is gone only once it is down to that one task. A parent waiting on a Popen
    # never sees the difference; the children of a zygote (bookstore.platform.forkserver) do.
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def terminate(
    pids: list[int], *, grace_s: float = 5.0, reap: dict[int, subprocess.Popen[bytes]] | None = None
) -> None:
    """SIGTERM every pid's group, wait up to ``grace_s``, then SIGKILL whatever is left."""
    for pid in pids:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if not _exited(pid, reap)]
        if remaining:
            time.sleep(0.02)
    for pid in remaining:
        signal_group(pid, signal.SIGKILL)
    for pid in remaining:
        _wait_gone(pid, reap)


def _exited(pid: int, reap: dict[int, subprocess.Popen[bytes]] | None) -> bool:
    if reap and pid in reap:
        return reap[pid].poll() is not None
    return not pid_alive(pid)


def _wait_gone(pid: int, reap: dict[int, subprocess.Popen[bytes]] | None) -> None:
    if reap and pid in reap:
        with contextlib.suppress(subprocess.TimeoutExpired):
            reap[pid].wait(timeout=5)
        return
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time of a whole process (every thread), from ``/proc``.

    0.0 for ``None``, for a process that is gone, and where there is no ``/proc`` (not Linux):
    a measurement of CPU per request then says nothing, rather than failing.
    """
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
