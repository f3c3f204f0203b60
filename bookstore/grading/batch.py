"""The batch grader: many submissions, in parallel, each in a worker process of its own.

    bookstore grade submissions/*.ipynb --week 6 --out grades/ --workers 4

For each submission a worker (:mod:`bookstore.grading.worker`) runs in its own process
group with a private directory; this process only starts workers, waits, and writes files:

* a hard wall clock: a worker gets ``timeout`` seconds for the learner's notebook (it enforces
  that itself and reports ``timeout``) plus a short grace to shut its kernel down; past that its
  whole process group is SIGKILLed and the submission scores ``timeout``;
* every process a worker starts (its kernel, whatever the learner's code spawns, in any
  session) inherits ``BOOKSTORE_GRADING_RUN=<token>``; when the worker ends, processes still
  carrying its token are killed (Linux, through /proc), so no learner process outlives grading;
* results come back on the worker's stdout, on a line prefixed by a nonce this process sent
  on the worker's stdin, never through a file the learner's code could reach; only this
  process writes grades.csv and the feedback files, atomically, so a crashing worker cannot
  corrupt them, and they are rewritten after each submission, so an interrupted batch keeps
  what it graded;
* backing services start once per batch: when the week's check module says
  ``NEEDS_CLUSTER = True``, one detached cluster per worker slot is started here
  (:mod:`bookstore.grading.clusters`); each submission borrows one, reset (services up,
  faults cleared), its directory passed to its worker as ``BOOKSTORE_SHARED_CLUSTER_DIR``
  (notebooks calling ``notebook_cluster()`` attach to it instead of starting six processes
  each, and so do the checks), and all are stopped at the end, whatever happens.

Each submission's kernel runs in a sandbox of its own (:mod:`bookstore.grading.sandbox`):
its own PID namespace (nothing it starts outlives its grading, and it cannot see or signal
this process), a read-only file system without the solutions, the checks, the other
submissions and the out dir, a private scratch directory, and limits on memory, CPU time,
file size and process count. Where bubblewrap is missing or cannot run, the batch says why
once and grades anyway, with every result marked "not isolated" in grades.csv and the
feedback. Should learner code still kill a worker, or this process, what was already written
stays written: results are written after each submission, a worker killed by a signal this
process did not send is the learner's crash (``crashed``), and workers die with this process.

What the sandbox keeps shared: the network (loopback), since notebooks talk to RabbitMQ,
MariaDB and the batch's clusters. The hidden checks run in the worker, outside the sandbox
(:mod:`bookstore.grading.remote`); :mod:`bookstore.grading.redact` still removes their lines
from feedback, for the unsandboxed case.

A cluster is reset before each submission, so a fault one notebook injects never reaches
the next; data written through the services (orders, stock) does carry over on that slot.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bookstore.grading.checks import DEFAULT_CHECK_TIMEOUT_S, CheckModule, CheckSpec, load_checks
from bookstore.grading.clusters import ClusterPool
from bookstore.grading.redact import Redactor, grpc_sentence
from bookstore.grading.regions import SOLUTIONS_DIR
from bookstore.grading.report import (
    GRADED,
    CheckOutcome,
    SubmissionResult,
    read_grades,
    summary_table,
    write_outputs,
)
from bookstore.grading.sandbox import (
    Limits,
    SandboxSpec,
    detect,
    make_memory_cgroup,
    make_pids_cgroup,
    remove_cgroup,
)
from bookstore.grading.worker import (
    DEFAULT_CELL_TIMEOUT_S,
    TOKEN_VARIABLE,
    CellError,
    WorkerReport,
    kill_marked,
)
from bookstore.platform.processes import PARENT_PID_VARIABLE

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_WORKERS = 2
SHUTDOWN_GRACE_S = 15.0
_UNSAFE = re.compile(r"[^\w.-]+")
_WEEK_IN_NAME = re.compile(r"week\s*\d{1,2}(?!\d)", re.IGNORECASE)

if TYPE_CHECKING:
    pass


class GradingError(RuntimeError):
    """The batch cannot run at all (no checks for the week, backing services failed, ...)."""


@dataclass
class BatchResult:
    week: int
    results: list[SubmissionResult]
    specs: tuple[CheckSpec, ...]
    out_dir: Path
    seconds: float

    def summary(self) -> str:
        return summary_table(self.results, self.specs)


def checks_file(solutions_dir: Path, week: int) -> Path:
    return solutions_dir / "checks" / f"week{week:02d}.py"


def load_week_checks(solutions_dir: Path, week: int) -> tuple[Path, CheckModule]:
    """Load the hidden checks here first: a broken check module stops the batch before it starts."""
    path = checks_file(solutions_dir, week)
    if not path.is_file():
        raise GradingError(f"no hidden checks for week {week}: {path} does not exist")
    try:
        module = load_checks(path.read_text(encoding="utf-8"))
    except Exception as error:
        raise GradingError(f"{path} does not load: {type(error).__name__}: {error}") from error
    if not module.checks:
        raise GradingError(f"{path} declares no @check functions")
    return path, module


def expand_submissions(paths: Iterable[Path]) -> list[Path]:
    """Files as given (even if they turn out not to be notebooks); folders as their notebooks."""
    from bookstore.notebook_tools import notebooks_under

    found: list[Path] = []
    for path in paths:
        found.extend(notebooks_under([path]) if path.is_dir() else [path])
    return found


def student_name(path: Path) -> str:
    """Who a submission belongs to, from its path alone (so a re-grade finds the same name).

    * A file that kept the course's notebook name (it starts with ``weekNN``, as
      ``week07_saga.ipynb`` does) is named by its folder: ``bob/week07_saga.ipynb`` is bob.
      Folders named after a week are skipped, so nbgrader's
      ``submitted/bob/week07/week07_saga.ipynb`` is bob too.
    * Any other file is named by its file name, up to the week: ``bob_week07.ipynb``,
      ``bob-week07_saga.ipynb`` and ``bob.ipynb`` are all bob (the flat layout an LMS download
      gives).

    Characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, so the name is
    safe as a file name.
    """
    stem = path.stem
    week = _WEEK_IN_NAME.search(stem)
    name = (stem[: week.start()] if week else stem).strip(" ._-")
    if not name:
        absolute = Path(os.path.abspath(path))  # no "..", and a bare file name gets its folder
        folders = [p.name for p in absolute.parents if p.name and not _WEEK_IN_NAME.match(p.name)]
        name = folders[0] if folders else stem
    return _UNSAFE.sub("_", name).strip(".") or "submission"


def unique_names(paths: Sequence[Path]) -> list[str]:
    """A student name per submission (:func:`student_name`); a second file of one student is name-2."""
    seen: Counter[str] = Counter()
    unique: list[str] = []
    for path in paths:
        name = student_name(path)
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


@dataclass(frozen=True)
class WorkerExit:
    code: int | None  # None: killed at the hard timeout
    stdout: bytes
    log_tail: str  # the last line the worker wrote to stderr, for the instructor
    nonce: str

    def report(self) -> WorkerReport | None:
        """The worker's own result line (the last one carrying the nonce), if there is one."""
        prefix = self.nonce + " "
        for line in reversed(self.stdout.decode("utf-8", errors="replace").splitlines()):
            if line.startswith(prefix):
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    return WorkerReport.from_json(line[len(prefix) :])
        return None


class _Workers:
    """Starts worker processes, enforces the hard timeout, and kills them all on request."""

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        hard_timeout_s: float,
        tmp: Path,
        sandbox: Callable[[Path, str, dict[str, str]], SandboxSpec] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.command = list(command)
        self.env = env
        self.hard_timeout_s = hard_timeout_s
        self.tmp = tmp
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._live: dict[str, subprocess.Popen[bytes]] = {}

    def run(self, index: int, arguments: list[str], extra_env: dict[str, str] | None = None) -> WorkerExit:
        """Run one worker to its end, or kill it at the hard timeout."""
        if self.stopping.is_set():
            raise KeyboardInterrupt
        private = self.tmp / f"submission-{index:05d}"
        for folder in ("tmp", "runtime"):  # both exist before the sandbox binds them
            (private / folder).mkdir(parents=True)
        token = secrets.token_hex(16)
        # Handed over on stdin (read, hence gone, before the kernel starts; never in argv or the
        # environment): the worker prefixes its result line with it, so no learner process that
        # reaches the worker's stdout can pose as the worker.
        nonce = secrets.token_hex(16)
        env = {
            **self.env,
            TOKEN_VARIABLE: token,
            # Kernel connection files, temporary files and the IPython profile stay in the
            # private directory: a killed worker litters nothing (the batch removes the whole
            # directory), and the instructor's IPython startup scripts do not run.
            "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
            "IPYTHONDIR": str(private / "ipython"),
            "TMPDIR": str(private / "tmp"),
            **(extra_env or {}),
        }
        log_path = private / "worker.log"
        arguments = [*arguments, "--work-dir", str(private / "work"), "--nonce-on-stdin"]
        spec = self.sandbox(private, token, env) if self.sandbox is not None else None
        if spec is not None:
            arguments += ["--sandbox", spec.to_json()]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*self.command, *arguments],
                env=env,
                cwd=private,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
            with self._lock:
                self._live[token] = process
            if self.stopping.is_set():  # kill_all ran while this one was starting
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            code: int | None
            try:
                out, _ = process.communicate((nonce + "\n").encode(), timeout=self.hard_timeout_s)
                code = process.returncode
            except subprocess.TimeoutExpired:
                # Not reaped yet, so its pid is still its process group's id: safe to signal.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                kill_marked(token)
                out = _drain(process)
                code = None
            finally:
                with self._lock:
                    self._live.pop(token, None)
                kill_marked(token)
                for cgroup in (spec.cgroup, spec.memory_cgroup) if spec is not None else ():
                    if cgroup is not None:
                        remove_cgroup(cgroup)
        try:  # a notebook that deleted its parent directory took the log with it
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        except OSError:
            tail = []
        return WorkerExit(code, out, tail[0] if tail else "", nonce)

    def kill_all(self) -> None:
        self.stopping.set()
        with self._lock:
            live = dict(self._live)
        for token, process in live.items():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            kill_marked(token)


def _drain(process: subprocess.Popen[bytes]) -> bytes:
    """What a killed worker had written; give up if something it spawned still holds the pipe."""
    try:
        out, _ = process.communicate(timeout=5)
        return out or b""
    except subprocess.TimeoutExpired:
        if process.stdout is not None:
            process.stdout.close()
        process.wait()
        return b""


def _worker_environment() -> dict[str, str]:
    from bookstore.launcher.cluster import SHARED_CLUSTER_VARIABLE

    env = {k: v for k, v in os.environ.items() if k != SHARED_CLUSTER_VARIABLE and k != TOKEN_VARIABLE}
    env["PYTHONUNBUFFERED"] = "1"
    # Each worker dies with this process (bookstore.platform.processes.tie_to_parent), and its
    # kernel with it: a batch killed by SIGKILL leaves no grading running behind it.
    env[PARENT_PID_VARIABLE] = str(os.getpid())
    env.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # quiets a jupyter_core deprecation warning in worker logs
    return env


def _to_result(
    name: str,
    path: Path,
    week: int,
    specs: Sequence[CheckSpec],
    worker: WorkerExit,
    timeout_s: float,
    redact: Redactor | None = None,
) -> SubmissionResult:
    result = _interpret(name, path, week, specs, worker, timeout_s)
    # Messages may quote what the learner's kernel answered: plain sentences, no hidden source.
    clean = redact or (lambda text: text)
    result.message = clean(grpc_sentence(result.message))
    result.outcomes = [
        CheckOutcome(o.spec, o.passed, clean(grpc_sentence(o.message))) for o in result.outcomes
    ]
    result.cell_errors = [
        CellError(e.cell, clean(e.first_line), clean(grpc_sentence(e.error))) for e in result.cell_errors
    ]
    if result.notebook is not None and redact is not None:
        result.notebook = redact.notebook(result.notebook)
    return result


def _interpret(
    name: str, path: Path, week: int, specs: Sequence[CheckSpec], worker: WorkerExit, timeout_s: float
) -> SubmissionResult:
    if worker.code is None:
        return SubmissionResult(
            name, path, week, "timeout", f"the notebook did not finish within {timeout_s:g} s and was stopped"
        )
    report = worker.report()
    if worker.code is not None and worker.code < 0 and report is None:
        # Killed by a signal the batch did not send (its own kills are the timeout above): the
        # learner's code did it (a kernel that found the worker's pid), or used memory until
        # the kernel's OOM killer chose the worker. The student's crash, not the grader's.
        return SubmissionResult(
            name,
            path,
            week,
            "crashed",
            f"the grading of this notebook was killed by signal {-worker.code} "
            f"({_signal_name(-worker.code)}), from something the notebook did",
        )
    if worker.code != 0 or report is None:
        detail = f"exit code {worker.code}" + (f": {worker.log_tail}" if worker.log_tail else "")
        return SubmissionResult(name, path, week, "error", f"the grading worker failed ({detail})")
    result = SubmissionResult(
        name,
        path,
        week,
        report.status,
        report.message,
        cell_errors=report.cell_errors,
        seconds=report.seconds,
        notebook=report.notebook if isinstance(report.notebook, dict) else None,
    )
    if report.status == GRADED:
        checks = report.results or []
        if len(checks) != len(specs) or not all(isinstance(c, dict) for c in checks):
            return SubmissionResult(name, path, week, "error", "the kernel reported results for other checks")
        result.outcomes = [
            CheckOutcome(spec, c.get("passed") is True, str(c.get("message", "")))
            for spec, c in zip(specs, checks, strict=True)
        ]
    return result


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def grade_batch(
    submissions: Sequence[Path],
    *,
    week: int,
    out_dir: Path,
    solutions_dir: Path = SOLUTIONS_DIR,
    workers: int = DEFAULT_WORKERS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    progress: bool = True,
    shutdown_grace_s: float = SHUTDOWN_GRACE_S,
    worker_command: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
    isolation: str = "auto",
    limits: Limits | None = None,
) -> BatchResult:
    """Grade ``submissions`` against week ``week``'s hidden checks; write ``out_dir``.

    A worker past ``timeout_s + shutdown_grace_s`` is killed with its process group.
    ``worker_command`` replaces ``python -m bookstore.grading.worker`` (tests use it to stand in
    a worker that hangs). ``isolation`` is ``auto`` (a bubblewrap sandbox per submission where
    the machine allows one, else graded "not isolated"), ``bwrap`` (required) or ``none``;
    ``limits`` bound each submission's processes (:class:`bookstore.grading.sandbox.Limits`).
    """
    from tqdm import tqdm

    from bookstore.launcher.cluster import SHARED_CLUSTER_VARIABLE

    if workers < 1:
        raise GradingError("--workers must be at least 1")
    if timeout_s <= 0 or check_timeout_s <= 0 or cell_timeout_s <= 0:
        raise GradingError("timeouts must be positive")
    began = time.perf_counter()
    checks_path, module = load_week_checks(solutions_dir, week)
    specs = module.specs
    redact = Redactor(checks_path.read_text(encoding="utf-8"))
    sandboxing = detect(isolation)
    if isolation == "bwrap" and not sandboxing.isolated:
        raise GradingError(f"--isolation bwrap: {sandboxing.how}")
    if not sandboxing.isolated:
        echo(f"submissions are graded NOT ISOLATED: {sandboxing.how}")
    limits = limits or Limits(cpu_seconds=math.ceil(timeout_s + shutdown_grace_s))
    paths = list(submissions)
    names = unique_names(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Read once, now: the rows of other students (and other weeks) are kept as they were, and
    # nothing written into the file while this batch runs is taken over.
    previous = read_grades(out_dir / "grades.csv")
    results: list[SubmissionResult | None] = [None] * len(paths)

    with tempfile.TemporaryDirectory(prefix="bookstore-grade-", ignore_cleanup_errors=True) as tmp:
        env = _worker_environment()
        clusters: ClusterPool | None = None
        cluster_failures: list[str] = []
        batch_tmp = Path(tmp)
        cgroups = Path(f"bookstore-grade-{secrets.token_hex(6)}")
        # What no submission may read: the answers, the out dir, the others' files, this batch.
        hidden = tuple(dict.fromkeys((
            Path(tempfile.gettempdir()), Path("/tmp"), batch_tmp, Path.home(), SOLUTIONS_DIR, solutions_dir,
            checks_path, out_dir, *paths, *(p.parent for p in paths),
        )))  # fmt: skip

        def sandbox_for(private: Path, token: str, run_env: dict[str, str]) -> SandboxSpec:
            shared = run_env.get(SHARED_CLUSTER_VARIABLE)
            return SandboxSpec(
                scratch=private / "sandbox",
                hidden=hidden,
                writable=(private / "ipython",),
                readable=(private / "runtime", *([Path(shared)] if shared else [])),
                limits=limits,
                isolated=sandboxing.isolated,
                cgroup=make_pids_cgroup(cgroups, token, limits.processes),
                memory_cgroup=make_memory_cgroup(cgroups, token, limits.total_memory_bytes),
            )

        pool = _Workers(
            worker_command or [sys.executable, "-m", "bookstore.grading.worker"],
            env,
            timeout_s + shutdown_grace_s,
            batch_tmp,
            sandbox_for,
        )
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade")
        previous_sigterm = _sigterm_raises_system_exit()
        try:
            if module.needs_cluster:
                clusters = _start_clusters(Path(tmp), min(workers, len(paths)))

            def grade_one(index: int) -> SubmissionResult:
                arguments = [
                    "--submission", str(paths[index].resolve()),
                    "--week", str(week),
                    "--checks", str(checks_path.resolve()),
                    "--timeout", str(timeout_s),
                    "--check-timeout", str(check_timeout_s),
                    "--cell-timeout", str(cell_timeout_s),
                ]  # fmt: skip
                with contextlib.ExitStack() as borrowed:
                    extra: dict[str, str] = {}
                    if clusters is not None:  # this submission's own cluster, reset for it
                        extra[SHARED_CLUSTER_VARIABLE] = str(
                            borrowed.enter_context(clusters.borrow()).work_dir
                        )
                    worker = pool.run(index, arguments, extra)
                result = _to_result(names[index], paths[index], week, specs, worker, timeout_s, redact)
                result.isolation = sandboxing.label
                return result

            futures: dict[Future[SubmissionResult], int] = {
                executor.submit(grade_one, i): i for i in range(len(paths))
            }
            if clusters is not None:  # the first kernel starts meanwhile; a dead cluster ends it
                _first_cluster_up(clusters)
            with tqdm(
                total=len(paths),
                desc=f"grading week {week}",
                unit="notebook",
                file=sys.stderr,
                disable=not progress,
            ) as bar:
                for future in as_completed(futures):
                    result = future.result()
                    results[futures[future]] = result
                    done = [r for r in results if r is not None]
                    # Rewritten after every submission: an interrupted batch keeps what it graded.
                    write_outputs(out_dir, done, specs, feedback=[result], previous=previous)
                    bar.set_postfix_str(f"{result.name}: {result.status}", refresh=False)
                    bar.update()
        except BaseException:
            pool.kill_all()
            executor.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            executor.shutdown(wait=True)
            if clusters is not None:
                clusters.stop()
                cluster_failures = clusters.failures
            if previous_sigterm is not None:
                signal.signal(signal.SIGTERM, previous_sigterm)

    graded = [r for r in results if r is not None]
    batch = BatchResult(week, graded, specs, out_dir, time.perf_counter() - began)
    echo(batch.summary())
    for failure in cluster_failures:  # fewer clusters than workers: slower, every grade still sound
        echo(f"a worker slot ran without its own cluster: {failure}")
    for result in graded:
        if result.status not in (GRADED,) and result.message:
            echo(f"{result.name}: {result.status}: {result.message}")
    echo(f"grades: {out_dir / 'grades.csv'}  feedback: {out_dir / 'feedback'}  ({batch.seconds:.1f} s)")
    return batch


def _sigterm_raises_system_exit() -> signal.Handlers | Callable[..., object] | int | None:
    """Make SIGTERM unwind the batch like Ctrl-C does (workers killed, cluster stopped).

    Returns the previous handler to restore, or None when not on the main thread (where Python
    cannot install handlers; the caller then owns signal handling).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def _start_clusters(root: Path, size: int) -> ClusterPool:
    try:
        return ClusterPool(root, size)
    except OSError as error:
        raise GradingError(f"the batch's clusters did not start: {error}") from error


def _first_cluster_up(clusters: ClusterPool) -> None:
    from bookstore.launcher.cluster import ClusterError

    try:
        clusters.wait_first()
    except (ClusterError, OSError) as error:
        raise GradingError(f"the batch's clusters did not start: {error}") from error
