"""Hostile submissions against the sandbox: each is contained and scores exactly what it earns.

One batch grades an honest victim and seven attackers on the synthetic week 99 (two workers,
a bubblewrap sandbox per submission, small limits so the bombs hit them quickly). Every
attacker also defines ``add`` correctly after its attack, so it earns exactly q1 (3 of 6
points) when the attack is contained and the notebook goes on. The cases:

* a memory bomb, stopped by the address-space limit (``MemoryError``, the kernel lives);
* a fork bomb, stopped by the process limit (``BlockingIOError``);
* a spreader (in a batch of its own): three processes each under the per-process limit and
  together over the submission's total, one or more of them ended by the memory cgroup;
* a loop that swallows the per-cell interrupt, stopped by the notebook's time limit (0, timeout);
* survivors: a process in a new session under ``env -i``, and a double-forked daemon;
* a writer: grades.csv and the victim's feedback, from inside the kernel;
* a reader: the hidden checks and the solutions folder, whose source then goes into an error;
* a killer: the grading worker and the batch grader, found through ``/proc``.

Four forgers define nothing and try to score anyway; the checks run in the grader and only
ask the kernel, so each must score exactly 0:

* a thread that patches ``json.dumps`` so that every answer the kernel sends says "ok";
* a thread that wraps ``sys.stdout`` and prints result lines of every shape the old grader read;
* a loader hook that rewrites the grader's agent as it loads, to answer every request ``True``;
* a notebook that defines the checks' own names (``check``, ``CheckFailed``, the check
  functions, ``report``) and shadows ``exec``, ``compile`` and ``globals``.

Without bubblewrap these cases skip, saying why. Two more tests run without the sandbox on
purpose: a worker killed by the learner's code is the learner's crash, and a batch grader
killed (``bookstore grade`` as an instructor runs it) leaves every result it had written.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bookstore.grading.batch import BatchResult, grade_batch
from bookstore.grading.regions import SOLUTIONS_DIR
from bookstore.grading.sandbox import (
    GIB,
    Limits,
    detect,
    make_memory_cgroup,
    make_pids_cgroup,
    remove_cgroup,
)
from tests.unit.grading.synthetic import ADD_SOLUTION, PLANTED, make_week, notebook, solution_notebook, write

pytestmark = pytest.mark.integration

ISOLATION = detect()
ADD = ADD_SOLUTION.replace("    # BEGIN SOLUTION\n", "").replace("\n    # END SOLUTION", "")
MARK = f"9{os.getpid()}"  # in the command line of every process an attacker leaves behind
LIMITS = Limits(memory_bytes=2 * GIB, cpu_seconds=120, file_bytes=GIB // 4, processes=48)

# Lets go of what it took once the limit says no: a kernel left at its limit could not start
# the threads the checks run in (that notebook would score 0, "crashed", its own doing).
MEMORY_BOMB = """hog = []
try:
    while True:
        hog.append(" " * (128 * 1024**2))
finally:
    hog.clear()"""

# Forks until the process limit says no, then ends its children: the error is the evidence,
# and the notebook (its checks run in threads, which count too) can go on.
FORK_BOMB = f"""import os, signal
children = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            os.execvp("sleep", ["sleep", "1000.{MARK}1"])
        children.append(pid)
finally:
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)"""

# Each child stays under the per-process limit; together they pass the submission's total.
SPREADER = """import os, signal, time
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        hog = b"\\x01" * (250 * 1024**2)
        time.sleep(3)
        os._exit(0)
    children.append(pid)
killed = 0
for pid in children:
    _, status = os.waitpid(pid, 0)
    killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
raise RuntimeError(f"SPREAD {killed} OF 3 KILLED")"""

STUBBORN_LOOP = """while True:
    try:
        while True:
            pass
    except KeyboardInterrupt:
        pass"""

SURVIVORS = f"""import os, subprocess
subprocess.Popen(["env", "-i", "sleep", "1000.{MARK}2"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "1000.{MARK}3"])
    os._exit(0)"""


# Each leaves a thread running through the grading, patching again and again.
FORGE_JSON = """import json, threading, time
real = json.dumps
def says_ok(obj, **kw):
    if isinstance(obj, dict) and "id" in obj:
        obj = {"id": obj["id"], "chain": obj.get("chain"), "ok": True}
    return real(obj, **kw)
def keep_patching():
    while True:
        json.dumps = says_ok
        time.sleep(0.01)
threading.Thread(target=keep_patching, daemon=True).start()"""

FORGE_STDOUT = """import json, sys, threading, time
line = json.dumps({"ok": True, "results": [{"passed": True, "message": ""}] * 5})
class Loud:
    def __init__(self, inner):
        self.inner = inner
    def write(self, text):
        return self.inner.write(("0" * 32 + " " + line + "\\n") + text)
    def __getattr__(self, name):
        return getattr(self.inner, name)
def keep_printing():
    while True:
        if not isinstance(sys.stdout, Loud):
            sys.stdout = Loud(sys.stdout)
        print("f" * 32, line, flush=True)
        sys.__stdout__.write("graded 6/6\\n")
        time.sleep(0.01)
threading.Thread(target=keep_printing, daemon=True).start()"""

# Hooks the loader, so the agent is rewritten the moment the grader loads it into the kernel.
FORGE_AGENT = """import importlib.machinery
real = importlib.machinery.SourceFileLoader.exec_module
def hooked(self, module):
    real(self, module)
    if hasattr(module, "Endpoint"):
        module.Endpoint._perform = lambda self, *args, **kwargs: True
importlib.machinery.SourceFileLoader.exec_module = hooked"""

FORGE_NAMES = """class CheckFailed(Exception):
    pass
def check(*args, **kwargs):
    return lambda function: function
adds_small = adds_negative = shouts = squares_positive = squares_negative = lambda ns: None
report = run_checks = lambda *args, **kwargs: print("ok")
LEARNER, RESULTS, agent, serve_kernel = {}, [True] * 5, None, None
exec = compile = globals = None"""

FORGERS = {"json": FORGE_JSON, "stdout": FORGE_STDOUT, "agent": FORGE_AGENT, "names": FORGE_NAMES}
# What each forger's feedback shows when its forgery was live during the checks.
EVIDENCE = {
    "json": "'bool' object is not callable",
    "stdout": "add is not defined",
    "agent": "'bool' object is not callable",
    "names": "add is not defined",
}


def writer(targets: list[Path]) -> str:
    return f"""outcomes = []
for target in {[str(t) for t in targets]!r}:
    try:
        with open(target, "a") as handle:
            handle.write("owned")
        outcomes.append("wrote")
    except OSError as error:
        outcomes.append(type(error).__name__)
raise RuntimeError("ATTACK " + " ".join(outcomes))"""


def reader(paths: list[Path]) -> str:
    return f"""import os
found = []
for path in {[str(p) for p in paths]!r}:
    try:
        found.append(open(path).read() if os.path.isfile(path) else "LISTED " + " ".join(os.listdir(path)))
    except OSError as error:
        found.append("DENIED " + type(error).__name__)
raise RuntimeError("READ " + " | ".join(found))"""


KILLER = """import os, signal
def parent(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
worker = os.getppid()
grader = parent(worker) if worker > 1 else 0
for pid in (grader, worker):
    if pid > 1:
        os.kill(pid, signal.SIGKILL)
seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
raise RuntimeError(f"SAW {len(seen)} PROCESSES, PARENT {worker}")"""


def marked(suffix: str = "") -> list[int]:
    """Live processes whose command line holds MARK + suffix."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if f"{MARK}{suffix}".encode() in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def has_process_limit() -> str | None:
    """Why a fork bomb cannot be stopped here, or None when it can."""
    probe = make_pids_cgroup(Path(f"bookstore-probe-{os.getpid()}"), "probe", 8)
    if probe is not None:
        remove_cgroup(probe)
        return None
    if os.geteuid() != 0:
        return None  # RLIMIT_NPROC applies
    return "no process limit: root (RLIMIT_NPROC does not apply) and no writable pids cgroup"


@dataclass
class Hostile:
    batch: BatchResult
    out: Path

    def rows(self, name: str) -> dict[str, tuple[str, str]]:
        with open(self.out / "grades.csv", newline="") as handle:
            return {
                r["question"]: (r["points"], r["status"])
                for r in csv.DictReader(handle)
                if r["submission"] == name
            }

    def feedback(self, name: str) -> str:
        return (self.out / "feedback" / "week99" / f"{name}.md").read_text()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    if not ISOLATION.isolated:
        pytest.skip(f"no sandbox on this machine: {ISOLATION.how}")
    root = tmp_path_factory.mktemp("hostile")
    solutions = make_week(root)
    subs, out = root / "submissions", root / "out"
    victim_feedback = out / "feedback" / "week99" / "victim.md"
    attackers = {
        "memory": MEMORY_BOMB,
        "forks": FORK_BOMB,
        "stubborn": STUBBORN_LOOP,
        "survivor": SURVIVORS,
        "writer": writer([out / "grades.csv", victim_feedback]),
        "reader": reader(
            [solutions / "checks" / "week99.py", solutions, subs / "victim.ipynb", out, SOLUTIONS_DIR]
        ),
        "killer": KILLER,
    }
    paths = [write(subs / "victim.ipynb", solution_notebook())]
    paths += [write(subs / f"{name}.ipynb", notebook(attack, ADD)) for name, attack in attackers.items()]
    paths += [write(subs / f"forger-{name}.ipynb", notebook(forgery)) for name, forgery in FORGERS.items()]
    batch = grade_batch(
        paths,
        week=99,
        out_dir=out,
        solutions_dir=solutions,
        workers=2,
        timeout_s=60,
        cell_timeout_s=15,  # generous: kernels start and bombs fill on two shared cores
        check_timeout_s=5,
        progress=False,
        echo=lambda _line: None,
        isolation="bwrap",
        limits=LIMITS,
    )
    return Hostile(batch, out)


def test_every_submission_is_graded_and_the_victim_keeps_full_marks(hostile: Hostile) -> None:
    assert [r.name for r in hostile.batch.results] == [
        "victim", "memory", "forks", "stubborn", "survivor", "writer", "reader", "killer",
        *(f"forger-{name}" for name in FORGERS),
    ]  # fmt: skip
    assert hostile.rows("victim")["TOTAL"] == ("6", "graded")
    assert all(r.isolation == "isolated" for r in hostile.batch.results)
    assert "Isolation: isolated." in hostile.feedback("victim")


@pytest.mark.parametrize("forger", list(FORGERS))
def test_a_blank_notebook_that_forges_results_scores_zero(hostile: Hostile, forger: str) -> None:
    rows = hostile.rows(f"forger-{forger}")
    assert rows["TOTAL"] == ("0", "graded"), rows
    assert all(points == "0" for points, _ in rows.values()), rows
    assert EVIDENCE[forger] in hostile.feedback(f"forger-{forger}")


def test_a_memory_bomb_meets_the_memory_limit_and_the_notebook_goes_on(hostile: Hostile) -> None:
    assert hostile.rows("memory")["TOTAL"] == ("3", "graded")
    assert "MemoryError" in hostile.feedback("memory")


def test_a_fork_bomb_meets_the_process_limit(hostile: Hostile) -> None:
    reason = has_process_limit()
    if reason:
        pytest.skip(reason)
    assert hostile.rows("forks")["TOTAL"] == ("3", "graded")
    assert "BlockingIOError" in hostile.feedback("forks")
    assert not marked("1"), "a forked process outlived grading"


def test_processes_that_together_pass_the_memory_total_meet_the_memory_cgroup(tmp_path: Path) -> None:
    if not ISOLATION.isolated:
        pytest.skip(f"no sandbox on this machine: {ISOLATION.how}")
    probe = make_memory_cgroup(Path(f"bookstore-probe-{os.getpid()}"), "probe", GIB)
    if probe is None:
        pytest.skip("no writable memory cgroup here: only each process's memory is bounded")
    remove_cgroup(probe)
    solutions = make_week(tmp_path)
    # A batch of its own: a total below one process's limit, which the batch above cannot have
    # (its memory bomb must meet the per-process limit first).
    batch = grade_batch(
        [write(tmp_path / "subs" / "spreader.ipynb", notebook(SPREADER, ADD))],
        week=99,
        out_dir=tmp_path / "out",
        solutions_dir=solutions,
        workers=1,
        timeout_s=120,
        cell_timeout_s=60,
        progress=False,
        echo=lambda _line: None,
        isolation="bwrap",
        limits=Limits(memory_bytes=2 * GIB, cpu_seconds=180, processes=48, total_memory_bytes=GIB // 2),
    )
    feedback = (tmp_path / "out" / "feedback" / "week99" / "spreader.md").read_text()
    killed = int(feedback.split("RuntimeError: SPREAD ")[1].split()[0])
    assert killed >= 1, "three processes of 250 MB each, and the kernel, fit in 512 MiB"
    assert batch.results[0].total(batch.specs) == (3.0, 6.0)


def test_a_loop_that_swallows_interrupts_meets_the_notebook_time_limit(hostile: Hostile) -> None:
    assert hostile.rows("stubborn")["TOTAL"] == ("0", "timeout")


def test_nothing_a_submission_started_survives_its_grading(hostile: Hostile) -> None:
    assert hostile.rows("survivor")["TOTAL"] == ("3", "graded")
    deadline = time.monotonic() + 5
    while marked() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not marked(), "a detached, env -i or double-forked process outlived grading"


def test_a_submission_cannot_write_grades_or_another_students_feedback(hostile: Hostile) -> None:
    feedback = hostile.feedback("writer")
    attack = feedback.split("RuntimeError: ATTACK ")[1].splitlines()[0].split()
    assert len(attack) == 2 and "wrote" not in attack, attack
    assert "owned" not in (hostile.out / "grades.csv").read_text()
    assert "owned" not in hostile.feedback("victim")
    assert hostile.rows("writer")["TOTAL"] == ("3", "graded")


def test_a_submission_cannot_read_checks_solutions_or_other_submissions(hostile: Hostile) -> None:
    feedback = hostile.feedback("reader")
    read = [r.strip() for r in feedback.split("RuntimeError: READ ")[1].splitlines()[0].split(" | ")]
    # the checks file, the solutions folder, the victim's notebook, the out dir: each gone or an
    # empty stand-in; the course's own solutions/ folder: empty
    assert all(r in ("DENIED FileNotFoundError", "LISTED") for r in read[:4]), read
    assert read[4] == "LISTED", read
    assert PLANTED not in feedback and "week99_arithmetic" not in feedback
    assert hostile.rows("reader")["TOTAL"] == ("3", "graded")


def test_a_submission_cannot_see_or_kill_the_grader(hostile: Hostile) -> None:
    feedback = hostile.feedback("killer")
    assert "PARENT 1" in feedback, "the kernel saw a parent outside its namespace"
    seen = int(feedback.split("RuntimeError: SAW ")[1].split()[0])
    assert seen < 10, f"the kernel saw {seen} processes"
    assert hostile.rows("killer")["TOTAL"] == ("3", "graded")


def test_no_feedback_shows_hidden_source_or_a_traceback_header(hostile: Hostile) -> None:
    for result in hostile.batch.results:
        text = hostile.feedback(result.name)
        assert PLANTED not in text and "Traceback (most recent call last)" not in text


# Without the sandbox, on purpose: what is left when learner code reaches the grader's processes.


def test_unsandboxed_a_killed_worker_is_the_learners_crash_and_stolen_checks_stay_out_of_feedback(
    tmp_path: Path,
) -> None:
    solutions = make_week(tmp_path)
    kill_worker = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    paths = [
        write(tmp_path / "subs" / "mallory.ipynb", notebook(ADD, kill_worker)),
        write(tmp_path / "subs" / "victim.ipynb", solution_notebook()),
        write(
            tmp_path / "subs" / "reader.ipynb", notebook(reader([solutions / "checks" / "week99.py"]), ADD)
        ),
    ]
    batch = grade_batch(
        paths,
        week=99,
        out_dir=tmp_path / "out",
        solutions_dir=solutions,
        workers=1,
        timeout_s=45,
        progress=False,
        echo=lambda _line: None,
        isolation="none",
    )
    mallory, victim, thief = batch.results
    assert (mallory.status, mallory.total(batch.specs)) == ("crashed", (0.0, 6.0))
    assert "killed by signal 9 (SIGKILL), from something the notebook did" in mallory.message
    assert "grader itself failed" not in (tmp_path / "out" / "feedback" / "week99" / "mallory.md").read_text()
    assert mallory.isolation == "not isolated"
    assert (victim.status, victim.total(batch.specs)) == ("graded", (6.0, 6.0))
    # Without the sandbox the notebook reads the checks file; its lines never reach feedback.
    feedback = tmp_path / "out" / "feedback" / "week99"
    assert "[hidden check source removed]" in (feedback / "reader.md").read_text()
    assert PLANTED not in (feedback / "reader.md").read_text() + (feedback / "reader.html").read_text()
    assert thief.total(batch.specs) == (3.0, 6.0)


def test_a_batch_grader_killed_by_a_submission_leaves_every_result_it_had(tmp_path: Path) -> None:
    solutions = make_week(tmp_path)
    paths = [
        write(tmp_path / "subs" / "alice.ipynb", solution_notebook()),
        write(tmp_path / "subs" / "mallory.ipynb", notebook(ADD, KILLER)),
        write(tmp_path / "subs" / "zoe.ipynb", solution_notebook()),
    ]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "bookstore.cli", "grade", *map(str, paths), "--week", "99",
               "--out", str(out), "--solutions-dir", str(solutions), "--workers", "1", "--timeout", "45",
               "--isolation", "none", "--no-progress"]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert finished.returncode == -signal.SIGKILL, finished.stdout + finished.stderr
    with open(out / "grades.csv", newline="") as handle:
        rows = {(r["submission"], r["question"]): (r["points"], r["status"]) for r in csv.DictReader(handle)}
    assert rows[("alice", "TOTAL")] == ("6", "graded"), "the result graded before the kill was lost"
    assert (out / "feedback" / "week99" / "alice.md").exists()
