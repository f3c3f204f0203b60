"""The grading engine on real kernels: one batch of good, partial, hung, crashing and hostile notebooks.

A synthetic week 99 (solution, exercise built from it, hidden checks) lives in a temporary
folder; one batch grades ten submissions with two workers, and every test below reads that
one batch's grades.csv and feedback. Two smaller batches cover the hard kill of a worker
that hangs, and the shared cluster a week with ``NEEDS_CLUSTER = True`` gets.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bookstore.grading.batch import BatchResult, GradingError, grade_batch
from bookstore.grading.regions import build_all
from bookstore.platform.processes import pid_alive
from tests.unit.grading.synthetic import ADD_SOLUTION, PLANTED, make_week, notebook, solution_notebook, write

pytestmark = pytest.mark.integration

# Generous: ten kernels start on two cores, perhaps shared; only the endless loop uses it all.
TIMEOUT_S = 30.0
CHECK_TIMEOUT_S = 3.0

ADD = ADD_SOLUTION.replace("    # BEGIN SOLUTION\n", "").replace("\n    # END SOLUTION", "")

FORGERIES = """import json, os, sys, warnings, logging
everything = {"ok": True, "results": [{"passed": True, "message": ""}] * 5}
for fake in ("0" * 32, "deadbeef" * 4, "NONCE", ""):
    print(fake, json.dumps(everything))
worker_line = {"status": "graded", "results": everything["results"], "cell_errors": [], "seconds": 1}
try:  # straight into the grading worker's stdout pipe
    with open(f"/proc/{os.getppid()}/fd/1", "w") as pipe:
        pipe.write(json.dumps(worker_line) + "\\n" + "0" * 32 + " " + json.dumps(worker_line) + "\\n{")
except OSError:
    pass
print("a warning on stderr", file=sys.stderr)
warnings.warn("this API is deprecated", DeprecationWarning)
warnings.warn("careful now")
logging.getLogger("noisy").warning("a logged warning")"""

TAMPERING = """import sys, types
import bookstore.grading.checks as api
api.run_check = lambda *args, **kwargs: api.CheckResult(True, "")
api.CheckFailed = type("Harmless", (Exception,), {})
fake = types.ModuleType("bookstore.grading.checks")
fake.check = lambda *a, **k: (lambda f: f)
sys.modules["bookstore.grading.checks"] = fake"""

DELETE_EVERYTHING = """import os, shutil
for folder in (".", ".."):
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)"""


def spawn_escaping(marker: str) -> str:
    """Notebook code that starts a process in a session of its own, named by ``marker``.

    Nothing is written down: a sandboxed kernel can write nowhere the test could read. The
    test looks the process up by its command line (``sleep 300.<marker>``) instead.
    """
    return f"import subprocess\nescaped = subprocess.Popen(['sleep', '300.{marker}'], start_new_session=True)"


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


ESCAPED_MARKER = "424242"


@dataclass
class Graded:
    batch: BatchResult
    out: Path
    submissions: dict[str, Path]
    seconds: float

    def csv_rows(self) -> list[dict[str, str]]:
        with open(self.out / "grades.csv", newline="") as handle:
            return list(csv.DictReader(handle))

    def scores(self, name: str) -> dict[str, tuple[str, str, str]]:
        """question -> (points, max, status) for one submission, from grades.csv."""
        return {
            r["question"]: (r["points"], r["max"], r["status"])
            for r in self.csv_rows()
            if r["submission"] == name
        }

    def feedback(self, name: str) -> str:
        return (self.out / "feedback" / "week99" / f"{name}.md").read_text()


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    root = tmp_path_factory.mktemp("week99")
    solutions = make_week(root)
    exercises = root / "exercises"
    build_all(solutions, exercises)
    subs = root / "submissions"
    submissions = {
        "solution": write(subs / "solution.ipynb", solution_notebook()),
        "exercise": write(
            subs / "exercise.ipynb", notebook(*[c.source for c in _cells(exercises)], kind="exercise")
        ),
        "partial": write(
            subs / "partial.ipynb",
            notebook(
                ADD,
                "def shout(text):\n    return text.lower()",
                "def square(x):\n    while x < 0:\n        pass\n    return x * x",
                kind="exercise",
            ),
        ),
        "endless": write(
            subs / "endless.ipynb", notebook(spawn_escaping(ESCAPED_MARKER), "while True:\n    pass", ADD)
        ),
        "sysexit": write(subs / "sysexit.ipynb", notebook("import sys\nsys.exit(1)")),
        "osexit": write(subs / "osexit.ipynb", notebook(ADD, "import os\nos._exit(1)")),
        "deleter": write(subs / "deleter.ipynb", notebook(DELETE_EVERYTHING)),
        "forger": write(subs / "forger.ipynb", notebook(ADD, FORGERIES, TAMPERING)),
        "wrongweek": write(subs / "wrongweek.ipynb", notebook(ADD, week=98)),
    }
    submissions["notjson"] = subs / "notjson.ipynb"
    submissions["notjson"].write_text("this is { not a notebook")

    out = root / "out"
    began = time.monotonic()
    batch = grade_batch(
        list(submissions.values()),
        week=99,
        out_dir=out,
        solutions_dir=solutions,
        workers=2,
        timeout_s=TIMEOUT_S,
        check_timeout_s=CHECK_TIMEOUT_S,
        progress=False,
        echo=lambda _line: None,
    )
    return Graded(batch, out, submissions, time.monotonic() - began)


def _cells(exercises: Path) -> list[object]:
    import nbformat

    (built,) = exercises.glob("week99_*.ipynb")
    return list(nbformat.read(built, as_version=4).cells)


def test_the_solution_gets_full_marks(graded: Graded) -> None:
    assert graded.scores("solution") == {
        "q1": ("3", "3", "passed"),
        "q2": ("1", "1", "passed"),
        "q3": ("2", "2", "passed"),
        "TOTAL": ("6", "6", "graded"),
    }


def test_the_untouched_exercise_gets_zero_on_every_question(graded: Graded) -> None:
    scores = graded.scores("exercise")
    assert scores["TOTAL"] == ("0", "6", "graded")
    assert {status for question, (_p, _m, status) in scores.items() if question != "TOTAL"} == {"failed"}
    assert "not implemented yet" in graded.feedback("exercise")


def test_a_partial_answer_scores_strictly_between_and_a_hung_function_costs_one_check(graded: Graded) -> None:
    scores = graded.scores("partial")
    assert scores["q1"] == ("3", "3", "passed")
    assert scores["q2"] == ("0", "1", "failed")
    assert scores["q3"] == ("1", "2", "partial")
    assert scores["TOTAL"] == ("4", "6", "graded")
    feedback = graded.feedback("partial")
    assert "- FAIL: squares a negative number: timed out after 3 s" in feedback
    assert "- FAIL: shouts: ZeroDivisionError: division by zero" in feedback


def test_an_endless_loop_times_out_with_zero_and_its_escaped_process_is_ended(graded: Graded) -> None:
    assert graded.scores("endless")["TOTAL"] == ("0", "6", "timeout")
    assert "cell 2 (`while True:`) was still running" in graded.feedback("endless")
    deadline = time.monotonic() + 5
    while processes_with(f"300.{ESCAPED_MARKER}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with(f"300.{ESCAPED_MARKER}"), (
        "a process the notebook started in its own session outlived grading"
    )


def test_sys_exit_costs_the_answers_but_not_the_kernel(graded: Graded) -> None:
    assert graded.scores("sysexit")["TOTAL"] == ("0", "6", "graded")
    assert "cell 1 (`import sys`): SystemExit: 1" in graded.feedback("sysexit")


def test_os_exit_is_a_crash_with_zero(graded: Graded) -> None:
    assert graded.scores("osexit")["TOTAL"] == ("0", "6", "crashed")
    assert "the kernel died while running cell 2 (`import os`)" in graded.feedback("osexit")


def test_a_notebook_deleting_its_folders_harms_nobody_else(graded: Graded) -> None:
    assert graded.scores("deleter")["TOTAL"] == ("0", "6", "graded")
    assert all(path.exists() for path in graded.submissions.values()), "a submission file was deleted"


def test_a_file_that_is_not_json_is_invalid(graded: Graded) -> None:
    assert graded.scores("notjson")["TOTAL"] == ("0", "6", "invalid")
    assert "not valid JSON" in graded.feedback("notjson")


def test_a_notebook_of_another_week_is_not_graded(graded: Graded) -> None:
    assert graded.scores("wrongweek")["TOTAL"] == ("0", "6", "wrong-week")
    assert "week 98 notebook" in graded.feedback("wrongweek")


def test_forged_results_tampering_and_warnings_change_nothing(graded: Graded) -> None:
    scores = graded.scores("forger")
    assert scores["q1"] == ("3", "3", "passed"), "warnings on stderr cost points"
    assert scores["TOTAL"] == ("3", "6", "graded"), "a forged or tampered result was believed"
    assert "- FAIL: shouts: shout is not defined" in graded.feedback("forger")


def test_grades_csv_is_whole_one_block_per_submission_in_input_order(graded: Graded) -> None:
    rows = graded.csv_rows()
    assert list(rows[0]) == ["submission", "week", "question", "points", "max", "status", "isolation"]
    assert len(rows) == len(graded.submissions) * 4
    order = list(dict.fromkeys(r["submission"] for r in rows))
    assert order == list(graded.submissions)
    assert {r["week"] for r in rows} == {"99"}
    assert not [p for p in graded.out.rglob("*") if p.name.endswith(".tmp")]


def test_every_submission_gets_feedback_that_never_shows_hidden_source(graded: Graded) -> None:
    files = sorted(p.stem for p in (graded.out / "feedback" / "week99").glob("*.md"))
    assert files == sorted(graded.submissions)
    for name in graded.submissions:
        text = graded.feedback(name)
        assert PLANTED not in text
        assert "Traceback" not in text
        assert "ratio" not in text and 'ns["' not in text
        assert "BOOKSTORE_GRADING_RUN" not in text


def test_the_batch_returns_the_same_results_it_wrote(graded: Graded) -> None:
    assert [r.name for r in graded.batch.results] == list(graded.submissions)
    assert "solution" in graded.batch.summary() and "6/6" in graded.batch.summary()


def test_a_worker_that_hangs_is_killed_with_what_it_started(tmp_path: Path) -> None:
    solutions = make_week(tmp_path)
    pid_file = tmp_path / "child.pid"
    hanging_worker = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    began = time.monotonic()
    batch = grade_batch(
        [write(tmp_path / "any.ipynb", solution_notebook())],
        week=99,
        out_dir=tmp_path / "out",
        solutions_dir=solutions,
        timeout_s=1.0,
        shutdown_grace_s=0.5,
        progress=False,
        worker_command=[sys.executable, "-c", hanging_worker],
        echo=lambda _line: None,
    )
    assert time.monotonic() - began < 20
    assert [r.status for r in batch.results] == ["timeout"]
    assert not pid_alive(int(pid_file.read_text()))


CLUSTER_CHECKS = """import json
from bookstore.grading.checks import CheckFailed, check

NEEDS_CLUSTER = True


@check("q1", title="lists books through the shared cluster")
def lists_books(ns):
    cluster = ns["cluster"]
    if cluster.owned:
        raise CheckFailed("the notebook started a cluster of its own")
    if not ns["titles"]:
        raise CheckFailed("no titles")


@check("seen", title="tells the test what the kernel saw")
def seen(ns):
    cluster = ns["cluster"]
    pids = [r.pid for replicas in cluster.replicas.values() for r in replicas]
    # The kernel is sandboxed and can write no file the test reads: a failure message can travel.
    raise CheckFailed(json.dumps({"dir": str(cluster.work_dir), "pids": pids}))
"""

CLUSTER_NOTEBOOK = """from bookstore.launcher.cluster import notebook_cluster
from bookstore.rpc.v1 import catalog_pb2

cluster = notebook_cluster()
reply = cluster.stub("catalog").ListBooks(catalog_pb2.ListBooksRequest(page_size=3), timeout=5)
titles = [book.title for book in reply.books]
cluster.stop()"""


def _cluster_batch(
    tmp_path: Path, submissions: list[Path], *, workers: int, timeout_s: float = 60
) -> BatchResult:
    """Grade ``submissions`` against CLUSTER_CHECKS, a week that needs a cluster per slot."""
    return grade_batch(
        submissions,
        week=97,
        out_dir=tmp_path / "out",
        solutions_dir=make_week(tmp_path, CLUSTER_CHECKS, week=97),
        workers=workers,
        timeout_s=timeout_s,
        progress=False,
        echo=lambda _line: None,
    )


def _grade_on_clusters(
    tmp_path: Path, submissions: list[Path], *, workers: int
) -> tuple[BatchResult, list[dict[str, Any]]]:
    """``_cluster_batch``, where each submission must earn the point for its listing.

    Returns the batch and, per submission, what its kernel saw of the cluster (folder, PIDs).
    """
    batch = _cluster_batch(tmp_path, submissions, workers=workers)
    expected = [("graded", (1.0, 2.0))] * len(submissions)
    assert [(r.status, r.total(batch.specs)) for r in batch.results] == expected
    return batch, [json.loads(r.outcomes[-1].message) for r in batch.results]


def test_a_week_that_needs_the_cluster_resets_it_between_submissions_and_stops_it(tmp_path: Path) -> None:
    # The first learner breaks the catalogue for whoever comes next; the reset must undo it.
    saboteur = CLUSTER_NOTEBOOK + '\ncluster.inject_fault("catalog", "*", code="UNAVAILABLE")'
    submissions = [
        write(tmp_path / "saboteur.ipynb", notebook(saboteur, week=97)),
        write(tmp_path / "next.ipynb", notebook(CLUSTER_NOTEBOOK, week=97)),
    ]
    batch, seen = _grade_on_clusters(tmp_path, submissions, workers=1)
    assert not batch.results[1].cell_errors, "the next submission met the fault the first one injected"
    assert len(seen) == 2 and seen[0] == seen[1], "one worker slot, one cluster"
    assert seen[0]["pids"] and not any(pid_alive(pid) for pid in seen[0]["pids"]), (
        "the cluster was not stopped"
    )
    assert not Path(seen[0]["dir"]).exists(), "the batch's temporary folder was left behind"


def test_two_workers_grade_on_at_most_two_clusters_and_both_are_stopped(tmp_path: Path) -> None:
    submissions = [
        write(tmp_path / f"learner{i}.ipynb", notebook(CLUSTER_NOTEBOOK, week=97)) for i in range(3)
    ]
    _, seen = _grade_on_clusters(tmp_path, submissions, workers=2)
    # The second slot's cluster starts while the first submissions are graded: whether it is
    # ready in time depends on the machine, so the test asks only that no third one appears.
    assert 1 <= len({s["dir"] for s in seen}) <= 2
    pids = [pid for s in seen for pid in s["pids"]]
    assert pids and not any(pid_alive(pid) for pid in pids), "a cluster was not stopped"
    assert not any(Path(s["dir"]).exists() for s in seen), "a cluster's folder was left behind"


def test_a_batch_whose_first_cluster_cannot_start_stops_with_the_cause_and_grades_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first kernel starts while the first cluster does: a cluster that dies must end the
    # batch then, not after the notebook's whole time limit.
    from bookstore.launcher.cluster import Cluster, ClusterError

    def start_that_fails(self: Cluster, **_: object) -> Cluster:
        time.sleep(1)  # long enough for the first worker to be starting its kernel
        raise ClusterError("user[0] exited with status 1 before it was SERVING (planted)")

    monkeypatch.setattr(Cluster, "start", start_that_fails)
    submission = write(tmp_path / "learner.ipynb", notebook(CLUSTER_NOTEBOOK, week=97))
    began = time.monotonic()
    with pytest.raises(GradingError, match=r"the batch's clusters did not start: user\[0\] exited.*planted"):
        _cluster_batch(tmp_path, [submission], workers=1, timeout_s=600)
    assert time.monotonic() - began < 300, "the batch waited out the notebook's time limit"
    assert not (tmp_path / "out" / "grades.csv").exists(), "a grade was written without a cluster"
