"""A sandbox per submission: the learner's kernel in namespaces of its own, under limits.

A learner's notebook is code the instructor did not write, run with the instructor's rights.
The grader therefore starts each submission's kernel (and so everything the kernel starts)
inside `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``), the sandbox
Flatpak uses, with:

* its own **PID namespace**: the kernel sees only its own processes in ``/proc``, cannot
  signal the grader, and everything it starts dies with the namespace when grading ends;
  ``setsid``, a double fork or ``env -i`` change nothing, since a namespace has no way out;
* a **read-only view** of the file system, with the places a learner must not read replaced
  by empty directories (or ``/dev/null`` for a file): the solutions and their hidden checks,
  the other submissions, the out dir with grades.csv and everyone's feedback, the batch's
  temporary folder, ``/tmp`` and the instructor's home;
* a **private scratch directory**, writable, as the kernel's cwd, ``HOME`` and ``TMPDIR``;
* **limits** set before the sandbox starts (``setrlimit``, inherited by every process in it):
  address space per process (a memory bomb gets ``MemoryError``), CPU seconds, file size,
  no core dumps; and a process count: a ``pids`` cgroup where one can be created, otherwise
  ``RLIMIT_NPROC`` (which the kernel does not enforce for root: a root grader without a
  writable cgroup has no process limit). The pids cgroup counts threads too;
* a **memory cgroup** bounding the resident memory of all the submission's processes
  together (the kernel, the services its notebook starts, whatever they fork): past it the
  kernel's OOM killer ends one of them, inside the submission. It is made *below the
  grader's own* memory cgroup, so the grader's own limit (a container's, say) still holds
  over it. Where none can be made (no writable memory controller), each process is still
  bounded, and the total is not.

What it keeps: the network namespace. Week 6 to 10 notebooks talk to RabbitMQ, MariaDB and the
batch's shared cluster on loopback, so the sandbox shares the host's loopback; a learner can
reach those services (and any other on loopback, or a Unix socket: a read-only mount does not
stop ``connect``), though no longer any process of the grader.

Where bubblewrap is missing or cannot create namespaces (some containers forbid it), the
grader still grades, with the limits alone, and marks every result "not isolated" with the
reason, found once per batch (:func:`detect`).

The launcher (``python -m bookstore.grading.sandbox LIMITS -- bwrap ...``) is a fresh
interpreter that joins the cgroup, sets the limits and ``exec``\\ s bubblewrap: no Python runs
between ``fork`` and ``exec`` in the multi-threaded grader (no ``preexec_fn``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

BWRAP = "bwrap"
ISOLATED = "isolated"
NOT_ISOLATED = "not isolated"
PIDS_CGROUP_ROOT = Path("/sys/fs/cgroup/pids")
GIB = 1024**3
SHM_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class Limits:
    """What one submission's processes may use; each applies to every process in the sandbox."""

    memory_bytes: int = 4 * GIB  # address space per process: a kernel with grpc and matplotlib needs ~1.5
    cpu_seconds: int = 600
    file_bytes: int = GIB
    processes: int = 1024  # pids cgroup: processes and threads of the submission; or RLIMIT_NPROC
    total_memory_bytes: int = 4 * GIB  # memory cgroup: all the submission's processes together


@dataclass(frozen=True)
class Isolation:
    """How this batch isolates submissions: found once per batch by :func:`detect`."""

    isolated: bool
    how: str  # one line: the mechanism, or why there is none

    @property
    def label(self) -> str:
        return ISOLATED if self.isolated else NOT_ISOLATED


def detect(mode: str = "auto") -> Isolation:
    """Can this machine run a bubblewrap sandbox? ``mode`` is ``auto``, ``bwrap`` or ``none``."""
    if mode == "none":
        return Isolation(False, "isolation was turned off (--isolation none)")
    if mode not in ("auto", BWRAP):
        raise ValueError(f"isolation must be auto, bwrap or none, not {mode!r}")
    if sys.platform != "linux":
        return Isolation(False, f"bubblewrap needs Linux namespaces; this is {sys.platform}")
    program = shutil.which(BWRAP)
    if program is None:
        return Isolation(False, "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)")
    probe = [program, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *_NAMESPACES, "true"]
    try:
        run = subprocess.run(probe, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Isolation(False, f"bwrap did not run: {error}")
    if run.returncode != 0:
        why = (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
        return Isolation(False, f"bwrap cannot create namespaces here: {why}")
    return Isolation(True, "bubblewrap: own PID namespace, read-only file system, private scratch")


# --new-session: the sandbox cannot push keystrokes into the grader's terminal (TIOCSTI), and
# no signal it sends to its process group reaches bwrap's own processes outside.
_NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--new-session", "--die-with-parent")  # fmt: skip


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _needed_paths() -> list[Path]:
    """What the kernel cannot run without: the interpreter, the venv, the bookstore package."""
    import bookstore

    package_root = Path(bookstore.__file__).resolve().parent.parent
    return [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}] + [package_root]


@dataclass(frozen=True)
class SandboxSpec:
    """One submission's sandbox: what it may write, what it may read, what it must not see."""

    scratch: Path  # cwd, HOME and TMPDIR live here; writable
    hidden: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()
    limits: Limits = field(default_factory=Limits)
    isolated: bool = True
    cgroup: Path | None = None  # a pids cgroup the launcher joins, or None
    memory_cgroup: Path | None = None  # a memory cgroup the launcher joins, or None

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, default=str)

    @classmethod
    def from_json(cls, text: str) -> SandboxSpec:
        data = json.loads(text)
        return cls(
            scratch=Path(data["scratch"]),
            hidden=tuple(Path(p) for p in data["hidden"]),
            writable=tuple(Path(p) for p in data["writable"]),
            readable=tuple(Path(p) for p in data["readable"]),
            limits=Limits(**data["limits"]),
            isolated=bool(data["isolated"]),
            cgroup=Path(data["cgroup"]) if data.get("cgroup") else None,
            memory_cgroup=Path(data["memory_cgroup"]) if data.get("memory_cgroup") else None,
        )

    @property
    def work(self) -> Path:
        """The kernel's cwd, where the learner's notebook lies."""
        return self.scratch / "work"

    @property
    def home(self) -> Path:
        return self.scratch / "home"

    @property
    def tmp(self) -> Path:
        return self.scratch / "tmp"

    def prepare(self) -> None:
        for folder in (self.scratch, self.work, self.home, self.tmp, *self.writable):
            folder.mkdir(parents=True, exist_ok=True)

    def bwrap_arguments(self, readable: tuple[Path, ...] = ()) -> list[str]:
        """bubblewrap's mounts, in order: read-only root, then hidden places, then the binds."""
        needed = _needed_paths()
        arguments = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # /dev/shm is memory: a bounded one, or a learner could fill RAM past every rlimit.
        arguments += ["--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
        # Shallow first: a deeper mount inside a hidden folder would otherwise be covered by it.
        emptied: list[str] = []
        for path in sorted({p.resolve() for p in self.hidden}, key=lambda p: len(p.parts)):
            if not path.exists() or any(_within(n, path) for n in needed):
                continue  # hiding it would hide the interpreter; its files are hidden one by one
            if any(_within(path, Path(folder)) for folder in emptied):
                continue  # gone already; mounting on it would recreate its path in the empty folder
            if path.is_dir():
                arguments += ["--tmpfs", str(path)]
                emptied.append(str(path))
            else:
                arguments += ["--ro-bind", "/dev/null", str(path)]
        for path in (*self.readable, *readable):
            if path.exists():
                arguments += ["--ro-bind", str(path.resolve()), str(path.resolve())]
        for path in (self.scratch, *self.writable):
            arguments += ["--bind", str(path.resolve()), str(path.resolve())]
        # Read-only once the binds inside them exist: writing grades.csv into the empty stand-in
        # for the out dir fails as loudly as writing the real one would.
        for path_text in emptied:
            arguments += ["--remount-ro", path_text]
        arguments += [*_NAMESPACES, "--cap-drop", "ALL", "--chdir", str(self.work.resolve())]
        # Inside, the kernel's parent is the namespace's init (pid 1): tell ipykernel's parent
        # poller so, or it would take pid 1 for "my parent died" and exit at once.
        arguments += ["--setenv", "JPY_PARENT_PID", "1"]
        return arguments

    def command(self, argv: list[str], readable: tuple[Path, ...] = ()) -> list[str]:
        """``argv`` wrapped: launcher (limits, cgroup), then bubblewrap, which shows ``readable``
        (the kernel's connection file, say) besides the spec's own readable paths."""
        limits = json.dumps(asdict(self.limits))
        launcher = [sys.executable, "-m", "bookstore.grading.sandbox", "--limits", limits]
        for cgroup in (self.cgroup, self.memory_cgroup):
            if cgroup is not None:
                launcher += ["--cgroup", str(cgroup)]
        launcher += ["--setenv", f"HOME={self.home}", "--setenv", f"TMPDIR={self.tmp}", "--"]
        if not self.isolated:
            return [*launcher, *argv]
        bwrap = shutil.which(BWRAP) or BWRAP
        return [*launcher, bwrap, *self.bwrap_arguments(readable), "--", *argv]


def make_pids_cgroup(parent: Path, name: str, limit: int) -> Path | None:
    """A pids cgroup (v1 or v2) limited to ``limit`` processes, or None where none can be made."""
    for root in (PIDS_CGROUP_ROOT, Path("/sys/fs/cgroup")):
        folder = root / parent / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "pids.max").write_text(str(limit))
        except OSError:
            with contextlib.suppress(OSError):
                folder.rmdir()
            continue
        return folder
    return None


MEMORY_CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def own_cgroup(controller: str, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Path | None:
    """This process's cgroup folder for ``controller`` (v1), or its unified (v2) folder."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    unified = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
    return Path("/sys/fs/cgroup") / unified.lstrip("/") if unified is not None else None


def make_memory_cgroup(parent: Path, name: str, limit_bytes: int) -> Path | None:
    """A memory cgroup below this process's own, limited to ``limit_bytes`` resident (and swap)."""
    home = own_cgroup("memory")
    if home is None:
        return None
    folder = home / parent / name
    v1 = (home / "memory.limit_in_bytes").exists() or _within(home, MEMORY_CGROUP_ROOT)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if v1:
            (folder / "memory.limit_in_bytes").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):  # without swap accounting there is no such file
                (folder / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        else:
            (folder / "memory.max").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
    except OSError:
        with contextlib.suppress(OSError):
            folder.rmdir()
            folder.parent.rmdir()
        return None
    return folder


def remove_cgroup(folder: Path) -> None:
    """Kill every process still in the cgroup, then remove it (and its parent, once empty)."""
    for _round in range(20):
        try:
            pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    for _round in range(40):  # a killed process leaves the cgroup a moment after it vanishes from it
        try:
            folder.rmdir()
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.05)
    with contextlib.suppress(OSError):  # the batch's folder, once its last submission is done
        folder.parent.rmdir()


def apply_limits(limits: Limits) -> None:
    """In the launcher, before exec: the limits every process of the sandbox inherits."""
    soft_and_hard = {
        resource.RLIMIT_AS: limits.memory_bytes,
        resource.RLIMIT_CPU: limits.cpu_seconds,
        resource.RLIMIT_FSIZE: limits.file_bytes,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: limits.processes,
    }
    for which, value in soft_and_hard.items():
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(which, (value, value))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bookstore.grading.sandbox")
    parser.add_argument("--limits", required=True, help="Limits as JSON")
    parser.add_argument("--cgroup", type=Path, action="append", default=[])
    parser.add_argument("--setenv", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    for cgroup in args.cgroup:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    for assignment in args.setenv:
        name, _, value = assignment.partition("=")
        os.environ[name] = value
    apply_limits(Limits(**json.loads(args.limits)))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
