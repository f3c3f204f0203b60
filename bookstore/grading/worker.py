"""Grade ONE submission: ``python -m bookstore.grading.worker --submission PATH --week N ...``.

The batch grader starts one of these per submission, each in its own process group with a
private directory, and reads the one result line it prints. Everything that can go wrong
with a learner's notebook goes wrong in here, where it can only cost this submission:

1. read and validate the file (not JSON, not a notebook: ``invalid``; another week:
   ``wrong-week``, from ``metadata.bookstore.week`` or else the file name ``weekNN``);
2. copy it, outputs cleared, into a fresh working directory that becomes the kernel's cwd
   (a saved output can never count, and a notebook deleting its folder deletes a copy);
3. execute it with nbclient in a fresh ``python3`` kernel, ``allow_errors`` so that one broken
   cell does not hide the answers after it; a cell past its own limit is interrupted
   (KeyboardInterrupt, the kernel lives on) and the next cell runs; past the submission's
   time budget the kernel is killed and the status is ``timeout``; a kernel that dies is
   ``crashed``;
4. run the hidden checks *here*, in this trusted process, against the kernel's globals over
   a narrow channel (:mod:`bookstore.grading.remote`): one more cell starts a small agent in
   the kernel that connects back to this process with a token made up only now, and each
   check's ``ns["add"](2, 3)`` becomes a request the agent answers with data. The check
   source never enters the kernel, and pass or fail is decided here;
5. kill whatever the learner's code started (every process carrying this submission's
   ``BOOKSTORE_GRADING_RUN`` token), then print the result on a line of its own, prefixed by
   the nonce the batch grader sent on stdin. The kernel never sees that nonce, so a learner
   process that found its way to this process's stdout still cannot pose as it.

Outputs never count. Error outputs are kept (for the feedback "cell 3 raised NameError ..."),
other outputs only up to a budget (``MAX_KEPT_OUTPUT_CHARS``, for the learner's HTML feedback,
which shows the executed notebook), so a notebook printing in an endless loop cannot fill this
process's memory. The executed notebook travels back in the result line. Stderr and warnings
are never looked at.

The kernel's own stdout and stderr go to /dev/null (ipykernel forwards what matters over
ZeroMQ), and its IPython profile and Jupyter runtime files live in this submission's private
directory, so an instructor's startup scripts cannot change how a learner's notebook runs.

With ``--sandbox`` the kernel starts inside a bubblewrap sandbox (:mod:`bookstore.grading.sandbox`),
through a kernel manager that interrupts by message instead of by signal.

What the kernel can still do while the checks run: answer them. A learner thread that
patches ``json.dumps``, ``sys.stdout`` or the agent itself changes what the kernel *says*, and
the checks trust nothing they cannot check: to pass, the answers must be right for inputs only
the checks send.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bookstore.grading.checks import (
    STUB_MESSAGE,
    CheckModule,
    CheckResult,
    RemoteNamespace,
    load_checks,
    run_check,
)
from bookstore.grading.redact import learner_traceback
from bookstore.grading.remote import accept_kernel, agent_cell_source
from bookstore.grading.sandbox import SandboxSpec
from bookstore.platform.processes import tie_to_parent

MAX_SUBMISSION_BYTES = 50_000_000
MAX_LINE_CHARS = 1_000_000
# Outputs kept for the HTML feedback, all cells together (error outputs are always kept): a
# notebook printing in an endless loop must not fill this process's memory.
MAX_KEPT_OUTPUT_CHARS = 2_000_000
KERNEL_NAME = "python3"
DEFAULT_CELL_TIMEOUT_S = 60.0
FILE_WEEK = re.compile(r"week(\d{1,2})(?!\d)", re.IGNORECASE)
# Set by the batch grader to a token unique to one submission; inherited by its kernel and by
# whatever the learner's code starts, which is how those processes are found and ended.
TOKEN_VARIABLE = "BOOKSTORE_GRADING_RUN"


@dataclass
class CellError:
    """A learner cell that raised: its 1-based position, its first line and the exception.

    ``error`` is the learner's own frames, if any, then ``Type: message`` on the last line
    (:func:`bookstore.grading.redact.learner_traceback`).
    """

    cell: int
    first_line: str
    error: str


@dataclass
class WorkerReport:
    """What a worker tells the batch grader: one JSON line on stdout (or the --result file)."""

    status: str  # graded, timeout, crashed, invalid, wrong-week, error
    message: str = ""
    results: list[dict[str, Any]] | None = None  # one {"passed", "message"} per check, in order
    cell_errors: list[CellError] = field(default_factory=list)
    seconds: float = 0.0
    notebook: dict[str, Any] | None = None  # the executed notebook, for the HTML feedback

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkerReport:
        data = json.loads(text)
        return cls(
            status=str(data["status"]),
            message=str(data.get("message", "")),
            results=data.get("results"),
            cell_errors=[CellError(**e) for e in data.get("cell_errors", [])],
            seconds=float(data.get("seconds", 0.0)),
            notebook=data["notebook"] if isinstance(data.get("notebook"), dict) else None,
        )


class SubmissionProblem(Exception):
    """The submission cannot be graded at all; ``status`` says why."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def read_submission(path: Path) -> Any:
    """The notebook (an nbformat NotebookNode), or SubmissionProblem("invalid", why)."""
    import nbformat

    try:
        size = path.stat().st_size
    except OSError as error:
        raise SubmissionProblem("invalid", f"cannot read the file: {error.strerror or error}") from None
    if size > MAX_SUBMISSION_BYTES:
        raise SubmissionProblem(
            "invalid", f"the file is {size / 1e6:.0f} MB; a notebook should be far smaller"
        )
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise SubmissionProblem("invalid", f"not a notebook: the file is not valid JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionProblem("invalid", "not a notebook: the JSON has no list of cells")
    try:
        notebook = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as error:  # nbformat raises many types for malformed input
        raise SubmissionProblem("invalid", f"not a notebook: {type(error).__name__}: {error}") from None
    for cell in notebook.cells:
        if not isinstance(cell.get("source"), str) or not isinstance(cell.get("cell_type"), str):
            raise SubmissionProblem("invalid", "not a notebook: a cell has no source or type")
    return notebook


def submission_week(notebook: Any, path: Path) -> int | None:
    """The week a notebook belongs to: its metadata, else a ``weekNN`` in its file name."""
    meta = notebook.get("metadata", {}).get("bookstore")
    if isinstance(meta, dict) and isinstance(meta.get("week"), int) and not isinstance(meta["week"], bool):
        return int(meta["week"])
    match = FILE_WEEK.search(path.name)
    return int(match.group(1)) if match else None


def first_line(source: str, width: int = 60) -> str:
    for line in source.splitlines():
        if line.strip():
            text = line.strip().replace("`", "'")
            return text if len(text) <= width else text[: width - 3] + "..."
    return ""


def _kernel_manager_class(sandbox: SandboxSpec) -> type:
    """A kernel manager that starts the kernel inside ``sandbox`` and interrupts it by message.

    Interrupting by signal would send SIGINT to the kernel's process group, which outside the
    sandbox holds only bubblewrap (and SIGINT ends bubblewrap, and with it the kernel); the
    ``interrupt_request`` message reaches ipykernel itself, which raises KeyboardInterrupt in
    the running cell exactly as the signal would.
    """
    from jupyter_client.manager import AsyncKernelManager

    class SandboxedKernelManager(AsyncKernelManager):  # type: ignore[misc]
        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            assert self.kernel_spec is not None
            self.kernel_spec.interrupt_mode = "message"
            command: list[str] = super().format_kernel_cmd(extra_arguments)
            return sandbox.command(command, readable=(Path(self.connection_file),))

    return SandboxedKernelManager


def _make_client_class() -> type:
    """A NotebookClient that keeps outputs up to a budget and interrupts a cell past its limit."""
    from nbclient import NotebookClient

    class GradingClient(NotebookClient):  # type: ignore[misc]
        checking: bool = False
        _kept_chars: int = 0
        deadline: float = math.inf  # time.monotonic() past which the notebook is out of time
        grading_cell: Any = None
        interrupted: list[int]

        def output(
            self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int
        ) -> Any:
            if self.checking:
                return None  # the agent's cell: nothing it shows is the learner's or counts
            if msg["msg_type"] == "error":
                return super().output(outs, msg, display_id, cell_index)
            # Outputs never count towards a score; they are kept only for the learner's HTML
            # feedback, and only up to a budget, which bounds memory.
            size = len(json.dumps(msg.get("content", {}), default=str))
            if self._kept_chars + size > MAX_KEPT_OUTPUT_CHARS:
                return None
            self._kept_chars += size
            return super().output(outs, msg, display_id, cell_index)

        async def _async_handle_timeout(self, timeout: int, cell: Any = None) -> None:
            """A cell past its own limit is interrupted and the notebook goes on; past the
            notebook's limit (the backstop), or in the grading cell, the run ends here."""
            from nbclient.exceptions import CellTimeoutError
            from nbclient.util import ensure_async

            if cell is None or cell is self.grading_cell or time.monotonic() >= self.deadline:
                raise CellTimeoutError.error_from_timeout_and_cell("Cell execution timed out", timeout, cell)
            # SIGINT, as Jupyter's stop button sends: the cell ends with KeyboardInterrupt, the
            # kernel and every definition made so far live on. nbclient then waits for the
            # cell's reply again; a cell that ignores the interrupt meets it again at its next
            # limit, and the notebook's limit at the latest.
            assert self.km is not None  # set while a kernel runs, which it does here
            index = next((i for i, c in enumerate(self.nb.cells) if c is cell), None)
            if index is not None and index not in self.interrupted:
                self.interrupted.append(index)
            await ensure_async(self.km.interrupt_kernel())

    return GradingClient


def grade_submission(
    submission: Path,
    *,
    week: int,
    checks_source: str,
    work_dir: Path,
    timeout_s: float,
    check_timeout_s: float,
    cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S,
    sandbox: SandboxSpec | None = None,
) -> WorkerReport:
    """Run one submission in a fresh kernel, then its checks; never raises.

    With ``sandbox``, the kernel starts inside it (:mod:`bookstore.grading.sandbox`): its
    scratch directory is the kernel's cwd, ``work_dir`` is not used.

    A learner cell gets ``cell_timeout_s``: past it the cell is interrupted (KeyboardInterrupt)
    and the cells after it still run, so one hung answer costs only what depends on it. The
    whole notebook, checks included, gets ``timeout_s``: past that it is stopped (``timeout``).
    """
    began = time.monotonic()
    deadline = began + timeout_s

    def finish(status: str, message: str = "", **kw: Any) -> WorkerReport:
        return WorkerReport(status, message, seconds=round(time.monotonic() - began, 2), **kw)

    try:
        notebook = read_submission(submission)
        found = submission_week(notebook, submission)
        if found is not None and found != week:
            raise SubmissionProblem(
                "wrong-week", f"this is a week {found} notebook; this batch grades week {week}"
            )
    except SubmissionProblem as problem:
        return finish(problem.status, problem.message)

    try:  # here, in this process: the check source never goes near the kernel
        module = load_checks(checks_source)
    except Exception as error:
        return finish("error", f"the hidden checks did not load: {type(error).__name__}: {error}")

    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None  # a saved output must never count
    if sandbox is not None:
        sandbox.prepare()
        work_dir = sandbox.work
    work_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, work_dir / (submission.stem + ".ipynb"))

    def remaining() -> int:
        return max(1, math.ceil(deadline - time.monotonic()))

    def cell_limit(cell: object = None) -> int:
        if cell is not None and cell is client.grading_cell:
            return remaining()  # the agent's cell: only the backstop applies
        return min(max(1, math.ceil(cell_timeout_s)), remaining())

    from traitlets.config import Config

    from bookstore.kernel_client import CLIENT_CLASS

    extra: dict[str, Any] = {}
    if sandbox is not None:
        extra["kernel_manager_class"] = _kernel_manager_class(sandbox)
    client = _make_client_class()(
        notebook,
        **extra,
        # A reply's missed wake-up would look like a cell past its limit, interrupted and scored.
        config=Config({"KernelManager": {"client_class": CLIENT_CLASS}}),
        timeout=remaining(),
        timeout_func=cell_limit,
        kernel_name=KERNEL_NAME,
        allow_errors=True,
        shutdown_kernel="immediate",
        record_timing=False,
        resources={"metadata": {"path": str(work_dir)}},
    )
    client.deadline, client.interrupted = deadline, []
    running: int | None = None
    results: list[CheckResult] = []
    unreachable = ""
    status, message = "graded", ""
    try:
        with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            # The kernel started while the batch's first cluster may still be starting.
            if not _wait_for_cluster(deadline):
                raise RuntimeError("the batch's cluster did not come up before the notebook's deadline")
            for index, cell in enumerate(notebook.cells):
                running = index
                client.execute_cell(cell, index)
            running = None
            results, unreachable = _check_in_grader(client, notebook, module, check_timeout_s, deadline)
    except CellTimeoutError:
        status = "timeout"
        message = f"the notebook did not finish within {timeout_s:g} s"
        if running is not None:
            message += f"; {_cell(notebook, running)} was still running"
    except DeadKernelError:
        status = "crashed"
        where = _cell(notebook, running) if running is not None else "the grader's agent cell"
        message = f"the kernel died while running {where}"
    except Exception as error:  # the kernel would not start, or nbclient failed: the grader's problem
        status, message = "error", f"the grader could not run this notebook: {type(error).__name__}: {error}"

    if notebook.cells and notebook.cells[-1] is client.grading_cell:
        notebook.cells.pop()
    why = f"interrupted after {cell_timeout_s:g} s, the time limit per cell"
    interrupted = dict.fromkeys(client.interrupted, why)
    cell_errors = _cell_errors(notebook, interrupted)
    if status == "graded" and client.interrupted:
        cells = ", ".join(_cell(notebook, i) for i in client.interrupted)
        message = (
            f"{cells} ran longer than {cell_timeout_s:g} s and "
            f"{'was' if len(client.interrupted) == 1 else 'were'} interrupted; "
            "the rest of the notebook still ran and was graded"
        )
    executed: dict[str, Any] = json.loads(json.dumps(notebook, default=str))

    def ran(status: str, message: str = "", **kw: Any) -> WorkerReport:
        return finish(status, message, notebook=executed, **kw)

    if status != "graded":
        return ran(status, message, cell_errors=cell_errors)
    if unreachable:
        # The check module loaded before any kernel started, so what keeps the checks from
        # reaching the kernel is the state the notebook left it in: the student's crash.
        return ran("crashed", unreachable, cell_errors=cell_errors)
    return ran("graded", message, results=[r.to_json() for r in results], cell_errors=cell_errors)


def _check_in_grader(
    client: Any, notebook: Any, module: CheckModule, check_timeout_s: float, deadline: float
) -> tuple[list[CheckResult], str]:
    """Start the agent in the kernel, run every check here against it; (results, problem)."""
    import socket

    import nbformat

    # Made up only now: nothing the learner's cells did could have known it.
    token = secrets.token_hex(16)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        agent = nbformat.v4.new_code_cell(agent_cell_source("127.0.0.1", listener.getsockname()[1], token))
        client.grading_cell, client.checking = agent, True
        # nbclient stores every executed cell back into the notebook by index, so the agent's
        # cell joins it for the moment it runs; it is removed before anything reads it.
        notebook.cells.append(agent)
        client.execute_cell(agent, len(notebook.cells) - 1, store_history=False)
        endpoint = accept_kernel(listener, token, timeout_s=max(1.0, min(20.0, deadline - time.monotonic())))
    if endpoint is None:
        return [], "the checks could not reach the kernel this notebook left behind (sockets broken?)"
    namespace = RemoteNamespace(endpoint)
    results: list[CheckResult] = []
    # What learner code makes the grader's callbacks print is nobody's business, and this
    # process's stdout carries its result.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for check in module.checks:
            left = deadline - time.monotonic()
            if left <= 0:
                results.append(CheckResult(False, "not run: the notebook's time limit had passed"))
                continue
            results.append(run_check(check, namespace, default_timeout_s=check_timeout_s, cap_s=left))
    endpoint.close()
    return results, ""


def _wait_for_cluster(deadline: float) -> bool:
    """Wait until the cluster this submission borrowed has written its state file.

    The batch lends its first cluster out while it starts, so that this worker's kernel
    starts meanwhile (``bookstore.grading.clusters``); learner code must not run before the
    services answer. False if the deadline passed first; True at once without a cluster.
    """
    from bookstore.launcher.cluster import SHARED_CLUSTER_VARIABLE, STATE_FILE

    shared = os.environ.get(SHARED_CLUSTER_VARIABLE)
    if not shared:
        return True
    state = Path(shared) / STATE_FILE
    while not state.exists():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _cell(notebook: Any, index: int) -> str:
    return f"cell {index + 1} (`{first_line(notebook.cells[index].source)}`)"


def _cell_errors(notebook: Any, interrupted: dict[int, str], limit: int = 20) -> list[CellError]:
    """The learner cells that raised, in order; an interrupted cell says why, not KeyboardInterrupt."""
    found: list[CellError] = []
    for index, cell in enumerate(notebook.cells):
        if cell.get("cell_type") != "code":
            continue
        if index in interrupted:
            found.append(CellError(index + 1, first_line(cell.source), interrupted[index]))
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and len(found) < limit:
                name, value = str(output.get("ename", "Error")), str(output.get("evalue", ""))
                if name == "NotImplementedError" and value == STUB_MESSAGE:
                    value += " (an exercise stub that is not filled in yet)"
                frames = output.get("traceback", [])
                text = learner_traceback(frames if isinstance(frames, list) else [], name, value)
                found.append(CellError(index + 1, first_line(cell.source), text))
    return found


def kill_marked(token: str, variable: str = TOKEN_VARIABLE) -> int:
    """SIGKILL every process whose environment carries ``variable=token``; how many were found.

    Linux only (elsewhere this finds nothing and the process-group kill has to do). The token
    is unique to one submission, so only processes that submission started can match.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    needle = f"{variable}={token}".encode()
    killed = 0
    for _round in range(5):  # a process may fork while we look: look again until none is left
        found = 0
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    found += 1
        killed += found
        if not found:
            break
        time.sleep(0.05)
    return killed


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bookstore.grading.worker", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--submission", required=True, type=Path)
    parser.add_argument("--week", required=True, type=int)
    parser.add_argument("--checks", required=True, type=Path, help="the hidden check module")
    parser.add_argument("--work-dir", required=True, type=Path, help="an empty directory: the kernel's cwd")
    parser.add_argument("--result", type=Path, default=None, help="where to write the JSON (default: stdout)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--check-timeout", type=float, default=20.0)
    parser.add_argument("--cell-timeout", type=float, default=DEFAULT_CELL_TIMEOUT_S)
    parser.add_argument("--sandbox", default=None, help="a SandboxSpec as JSON: run the kernel inside it")
    parser.add_argument(
        "--nonce-on-stdin",
        action="store_true",
        help="read a nonce from stdin; prefix the result line with it",
    )
    args = parser.parse_args(argv)
    tie_to_parent()  # the batch grader dies: this worker, and so its kernel, die too
    # Read before the kernel starts: once consumed from the pipe, nothing learner code does can see it.
    nonce = sys.stdin.readline().strip() if args.nonce_on_stdin else ""
    report = grade_submission(
        args.submission,
        week=args.week,
        checks_source=args.checks.read_text(encoding="utf-8"),
        work_dir=args.work_dir,
        timeout_s=args.timeout,
        check_timeout_s=args.check_timeout,
        cell_timeout_s=args.cell_timeout,
        sandbox=SandboxSpec.from_json(args.sandbox) if args.sandbox else None,
    )
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        # The kernel is gone; whatever the learner's code started goes too, before the result is
        # written, so nothing it left running can write after (or instead of) this worker.
        kill_marked(token)
    if args.result is None:
        # On a line of its own, whatever a learner process may have left unterminated on this pipe.
        sys.stdout.write("\n" + (f"{nonce} " if nonce else "") + report.to_json() + "\n")
        sys.stdout.flush()
    else:
        write_atomic(args.result, report.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
