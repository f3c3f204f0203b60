"""A zygote for service processes: import the libraries once, then fork each service from it.

Every service of a cluster is a Python process of its own, and a fresh ``python -m`` spends
most of its start importing: SQLAlchemy, gRPC, pika and the bookstore's own modules, about
0.6-0.9 s of CPU per process on the 2-core course machines, six times per cluster. A cluster
started through a :class:`ForkServer` pays for those imports once: the zygote (``python -m
bookstore.platform.forkserver``) imports every service's module, then forks one child per
service, which only runs its own ``main``. Each child is still a process of its own, with its
own pid, session, log, environment, memory and ports: what the course teaches about separate
processes holds for it unchanged.

What it relies on, and where it stops:

* ``fork`` is safe only in a process with one thread: a lock held by another thread at fork
  time stays locked in the child forever. The zygote checks after its imports that it has one
  thread and refuses to fork otherwise (it answers every request with an error, and the
  caller starts the service the usual way, :func:`bookstore.platform.processes.spawn`).
  Importing gRPC starts no thread and creates no gRPC object, so a child starts its gRPC core
  afresh; a zygote that had opened a channel or a server could not fork safely.
* A child gets exactly the environment it is given; module-level code already ran in the
  zygote, so a library that read the environment *at import* would see the zygote's. None of
  the bookstore's modules does (settings are read when ``Settings.from_env`` is called).
  Likewise its working directory is the one the launcher had when the zygote started (the
  services use absolute paths only).
* The zygote, not the launcher, is the children's parent, so only the zygote can read how
  one ended: it reaps each child as it exits and appends the outcome to that child's log
  (``[forkserver] exited with code 0``, ``[forkserver] ended by SIGKILL``). The launcher only
  needs to know whether a pid still runs (:func:`bookstore.platform.processes.pid_alive`).
* A child tied to its launcher is tied to the zygote (``PR_SET_PDEATHSIG``), and the zygote is
  tied to the launcher: when the launcher dies the zygote does, and with it every child. The
  zygote ends when its launcher closes the request pipe (:meth:`ForkServer.close`).

The protocol is a JSON line each way over the zygote's stdin and stdout: a request names the
module, its environment and its log file; the answer carries the child's pid or an error.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from bookstore.platform import processes

PRELOAD_VARIABLE = "BOOKSTORE_FORKSERVER_PRELOAD"
# The imports take about 1 s on the course machines; far longer means something hangs.
PRELOAD_TIMEOUT_S = 60.0
_READY = "ready"


class ForkServerError(RuntimeError):
    """The zygote did not start, died, or refused to fork: start the service the usual way."""


class ForkServer:
    """The launcher's handle on one zygote: :meth:`spawn` a service, :meth:`close` when done.

    ``preload`` names the modules the zygote imports before it forks anything (a service's
    ``__main__`` module brings in all its libraries). ``tied_to_parent`` as in
    :func:`bookstore.platform.processes.spawn`: False for a detached cluster, whose services
    outlive the process that started them.
    """

    def __init__(
        self, preload: Sequence[str], env: Mapping[str, str], log_path: Path, *, tied_to_parent: bool = True
    ) -> None:
        self._lock = threading.Lock()
        self.tied_to_parent = tied_to_parent
        zygote_env = {**env, PRELOAD_VARIABLE: ",".join(preload), "PYTHONUNBUFFERED": "1"}
        self._process = processes.spawn(
            "bookstore.platform.forkserver", zygote_env, log_path, tied_to_parent=tied_to_parent, talk=True
        )
        self.pid = self._process.pid
        try:
            answer = self._read(timeout_s=PRELOAD_TIMEOUT_S)
        except ForkServerError:
            self.close()
            raise
        if answer.get("status") != _READY:
            self.close()
            raise ForkServerError(f"the zygote did not start: {answer.get('error', answer)}")

    def spawn(self, module: str, env: Mapping[str, str], log_path: Path) -> int:
        """Fork ``python -m module`` with ``env``, output appended to ``log_path``; its pid."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        child_env = dict(env)
        if self.tied_to_parent:  # the child's parent is the zygote, itself tied to us
            child_env[processes.PARENT_PID_VARIABLE] = str(self.pid)
        else:
            child_env.pop(processes.PARENT_PID_VARIABLE, None)
        request = {"module": module, "env": child_env, "log": str(log_path)}
        with self._lock:
            stdin = self._process.stdin
            if stdin is None or self._process.poll() is not None:
                raise ForkServerError("the zygote is not running")
            try:
                stdin.write((json.dumps(request) + "\n").encode())
                stdin.flush()
            except OSError as error:
                raise ForkServerError(f"the zygote is gone: {error}") from error
            answer = self._read()
        pid = answer.get("pid")
        if not isinstance(pid, int):
            raise ForkServerError(f"the zygote did not fork {module}: {answer.get('error', answer)}")
        return pid

    def close(self) -> None:
        """End the zygote: it exits when its request pipe closes.

        Children tied to it (``tied_to_parent``) receive SIGTERM as it goes, as they would if
        their launcher died; a launcher closes the zygote after stopping them. Untied children
        (a detached cluster's) run on.
        """
        with contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _read(self, timeout_s: float | None = None) -> dict[str, object]:
        stdout = self._process.stdout
        if stdout is None:
            raise ForkServerError("the zygote has no pipe")
        if timeout_s is not None and not select.select([stdout], [], [], timeout_s)[0]:
            self._process.kill()
            raise ForkServerError(f"the zygote did not answer within {timeout_s:g} s")
        line = stdout.readline()
        if not line:
            raise ForkServerError(f"the zygote exited (code {self._process.wait()})")
        try:
            answer = json.loads(line)
        except ValueError as error:
            raise ForkServerError(f"the zygote answered {line[:200]!r}") from error
        return answer if isinstance(answer, dict) else {"error": repr(answer)}


# ---------------------------------------------------------------- the zygote's side


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    def answer(message: Mapping[str, object]) -> None:
        answers.write((json.dumps(message) + "\n").encode())
        answers.flush()

    refusal = ""
    for module in ["setproctitle", *filter(None, os.environ.get(PRELOAD_VARIABLE, "").split(","))]:
        try:
            importlib.import_module(module)
        except Exception as error:  # the child will import it again and log the same error
            print(f"forkserver: preloading {module} failed: {type(error).__name__}: {error}", file=sys.stderr)
        if module.endswith(".__main__"):
            # Its libraries stay imported; the module itself is forgotten, so that a child runs
            # it afresh as __main__ and holds one copy of its state (runpy warns otherwise).
            sys.modules.pop(module, None)
            package = sys.modules.get(module.rpartition(".")[0])
            if package is not None and hasattr(package, "__main__"):
                delattr(package, "__main__")
    if threading.active_count() != 1:
        names = ", ".join(t.name for t in threading.enumerate())
        refusal = f"threads were running after the imports ({names}); forking would not be safe"
    signal.signal(signal.SIGCHLD, _reap)
    answer({"status": _READY})
    for line in requests:
        try:
            request = json.loads(line)
            if refusal:
                raise ForkServerError(refusal)
            answer({"pid": _fork(request["module"], request["env"], Path(request["log"]))})
        except Exception as error:
            answer({"error": f"{type(error).__name__}: {error}"})
    _reap_dying()  # a child that ended as the pipe closed still gets its line


# The log of every child still running, by pid: where _reap writes how it ended.
_children: dict[int, Path] = {}


def _reap(_signum: int, _frame: object) -> None:
    """SIGCHLD: collect every child that ended (no zombie is left) and note how in its log."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _note_ending(pid, status)


def _reap_dying() -> None:
    """Before the zygote leaves: wait for each child already on its way out.

    A process whose main thread has ended reads as gone (``pid_alive``) while its other
    threads are still being torn down, so a launcher can close the pipe a moment before the
    last SIGCHLD; children still running (a detached cluster's) are left to run.
    """
    for pid in list(_children):
        if not processes.pid_alive(pid):
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(pid, 0)
                _note_ending(pid, status)


def _note_ending(pid: int, status: int) -> None:
    log_path = _children.pop(pid, None)
    if log_path is None:
        return
    code = os.waitstatus_to_exitcode(status)
    outcome = f"exited with code {code}" if code >= 0 else f"ended by {signal.Signals(-code).name}"
    with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as log:
        log.write(f"[forkserver] {outcome}\n")


def _fork(module: str, env: Mapping[str, str], log_path: Path) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # Held back until the child is on record, so that one ending at once is still reported.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        pid = os.fork()
    except BaseException:
        os.close(log)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        raise
    if pid:
        os.close(log)
        _children[pid] = log_path
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        return pid
    # The child. Nothing here may return into the zygote's loop: it ends with os._exit.
    code = 1
    try:
        os.setsid()  # its own session and process group, as spawn gives (signal_group kills it whole)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        _children.clear()
        # Over the request pipe's ends (fds 0 and 1): the child keeps neither.
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        _retitle(module)  # before the environment changes: setproctitle finds its memory through it
        os.environ.clear()
        os.environ.update(env)
        processes.tie_to_parent()  # the parent named in env is the zygote (ForkServer.spawn)
        sys.argv = [module]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _retitle(module: str) -> None:
    """Show ``python -m MODULE`` in ps and /proc/PID/cmdline, not the zygote's command line."""
    try:
        from setproctitle import setproctitle
    except ImportError:  # still a sound process; ps shows it as the zygote
        return
    setproctitle(f"{sys.executable} -m {module} (forked by bookstore.platform.forkserver)")


if __name__ == "__main__":  # started through bookstore.platform.child, which tied it already
    _serve(sys.stdin.buffer, sys.stdout.buffer)
