"""Scores, grades.csv, feedback and the pieces of a worker that need no kernel."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nbformat
import pytest

from bookstore.grading.batch import WorkerExit, _to_result, student_name, unique_names
from bookstore.grading.checks import CheckSpec, load_checks
from bookstore.grading.report import (
    CSV_COLUMNS,
    CheckOutcome,
    SubmissionResult,
    feedback_html,
    feedback_markdown,
    fmt,
    grades_csv,
    summary_table,
    wide_csv,
    write_outputs,
)
from bookstore.grading.worker import (
    CellError,
    SubmissionProblem,
    WorkerReport,
    first_line,
    read_submission,
    submission_week,
)

from .synthetic import CHECKS_SOURCE, PLANTED, notebook, write

SPECS = load_checks(CHECKS_SOURCE).specs  # q1: 2 + 1 points, q2: 1, q3: 1 + 1


def graded(name: str, passed: list[bool], messages: list[str] | None = None) -> SubmissionResult:
    messages = messages or ["" if ok else "wrong" for ok in passed]
    outcomes = [CheckOutcome(s, ok, m) for s, ok, m in zip(SPECS, passed, messages, strict=True)]
    return SubmissionResult(name, Path(f"{name}.ipynb"), 99, "graded", outcomes=outcomes)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_a_question_scores_the_points_of_its_passing_checks() -> None:
    result = graded("alice", [True, False, True, True, False])
    assert [(s.question, s.points, s.max, s.status) for s in result.scores(SPECS)] == [
        ("q1", 2.0, 3.0, "partial"),
        ("q2", 1.0, 1.0, "passed"),
        ("q3", 1.0, 2.0, "partial"),
    ]
    assert result.total(SPECS) == (4.0, 6.0)
    assert graded("bob", [False] * 5).scores(SPECS)[0].status == "failed"


def test_an_ungraded_submission_scores_zero_with_its_status_on_every_question() -> None:
    result = SubmissionResult("carol", Path("carol.ipynb"), 99, "timeout", "too slow")
    assert {(s.points, s.status) for s in result.scores(SPECS)} == {(0.0, "timeout")}
    assert result.total(SPECS) == (0.0, 6.0)


def test_grades_csv_has_the_columns_a_row_per_question_and_a_total() -> None:
    text = grades_csv([graded("alice", [True] * 5), SubmissionResult("bob", Path("b"), 99, "invalid")], SPECS)
    table = rows(text)
    assert tuple(table[0]) == CSV_COLUMNS
    assert [(r["submission"], r["question"], r["points"], r["max"], r["status"]) for r in table] == [
        ("alice", "q1", "3", "3", "passed"),
        ("alice", "q2", "1", "1", "passed"),
        ("alice", "q3", "2", "2", "passed"),
        ("alice", "TOTAL", "6", "6", "graded"),
        ("bob", "q1", "0", "3", "invalid"),
        ("bob", "q2", "0", "1", "invalid"),
        ("bob", "q3", "0", "2", "invalid"),
        ("bob", "TOTAL", "0", "6", "invalid"),
    ]
    assert {r["week"] for r in table} == {"99"}


def test_points_are_written_the_way_people_write_them() -> None:
    assert [fmt(2.0), fmt(0.5), fmt(1 / 3), fmt(0)] == ["2", "0.5", "0.33", "0"]


def test_feedback_lists_each_check_with_pass_or_fail_and_why() -> None:
    result = graded(
        "alice", [True, False, True, True, False], ["", "add(-2, -3) should return -5", "", "", "slow"]
    )
    result.cell_errors = [CellError(3, "import nothing", "ModuleNotFoundError: No module named 'nothing'")]
    text = feedback_markdown(result, SPECS)
    assert "**Status: graded**" in text and "**Score: 4 / 6**" in text
    assert "## q1: 2 / 3" in text
    assert "- PASS: adds two small numbers" in text
    assert "- FAIL: adds negative numbers: add(-2, -3) should return -5" in text
    assert "- cell 3 (`import nothing`): ModuleNotFoundError: No module named 'nothing'" in text


def test_feedback_for_an_ungraded_submission_explains_and_lists_what_was_not_checked() -> None:
    text = feedback_markdown(SubmissionResult("dan", Path("d"), 99, "crashed", "the kernel died"), SPECS)
    assert "**Status: crashed**" in text and "the kernel died" in text
    assert "- not checked: squares a negative number" in text
    error = feedback_markdown(
        SubmissionResult("eve", Path("e"), 99, "error", "worker log: secret path"), SPECS
    )
    assert "secret path" not in error, "a grader error's details are for the instructor"


def test_feedback_never_shows_check_source() -> None:
    text = feedback_markdown(graded("alice", [False] * 5), SPECS)
    assert PLANTED not in text and "ns[" not in text and "adds_small" not in text


def test_write_outputs_leaves_whole_files_and_no_temporaries(tmp_path: Path) -> None:
    results = [graded("alice", [True] * 5), graded("bob", [False] * 5)]
    write_outputs(tmp_path, results, SPECS)
    assert sorted(p.name for p in (tmp_path / "feedback" / "week99").iterdir()) == [
        "alice.html",
        "alice.md",
        "bob.html",
        "bob.md",
    ]
    assert len(rows((tmp_path / "grades.csv").read_text())) == 8
    write_outputs(tmp_path, results[:1], SPECS, feedback=[])
    assert len(rows((tmp_path / "grades.csv").read_text())) == 4
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_the_summary_table_has_a_row_per_submission() -> None:
    table = summary_table([graded("alice", [True] * 5), graded("bob", [False] * 5)], SPECS)
    lines = table.splitlines()
    assert lines[0].split() == ["submission", "status", "q1", "q2", "q3", "total"]
    assert lines[1].split() == ["alice", "graded", "3/3", "1/1", "2/2", "6/6"]
    assert lines[2].split()[-1] == "0/6"


def test_a_student_is_named_by_the_folder_when_the_file_kept_the_course_name() -> None:
    assert student_name(Path("submissions/bob/week07_saga.ipynb")) == "bob"
    assert student_name(Path("submitted/bob/week07/week07_saga.ipynb")) == "bob"  # nbgrader's layout
    assert student_name(Path("submissions/bob/Week7.ipynb")) == "bob"


def test_a_student_is_named_by_the_file_name_up_to_the_week_in_a_flat_folder() -> None:
    assert student_name(Path("submissions/bob_week07.ipynb")) == "bob"
    assert student_name(Path("submissions/bob-week07_saga.ipynb")) == "bob"
    assert student_name(Path("submissions/alice smith.ipynb")) == "alice_smith"
    assert student_name(Path("submissions/José_week07.ipynb")) == "José"


def test_submission_names_are_unique_and_safe_for_file_names() -> None:
    paths = [
        Path("a/week06.ipynb"),
        Path("b/week06.ipynb"),
        Path("c/alice smith.ipynb"),
        Path("b/week06_late.ipynb"),
        Path("x/..week06.ipynb"),
    ]
    assert unique_names(paths) == ["a", "b", "alice_smith", "b-2", "x"]


def test_regrading_replaces_that_students_rows_in_place_and_keeps_everyone_elses() -> None:
    first = rows(grades_csv([graded("alice", [True] * 5), graded("bob", [False] * 5)], SPECS))
    week98 = [{**r, "week": "98"} for r in first]
    merged = rows(grades_csv([graded("bob", [True] * 5), graded("carol", [True] * 5)], SPECS, week98 + first))
    blocks = list(dict.fromkeys((r["submission"], r["week"]) for r in merged))
    assert blocks == [("alice", "98"), ("bob", "98"), ("alice", "99"), ("bob", "99"), ("carol", "99")]
    assert [r for r in merged if r["week"] == "98"] == week98
    totals = {(r["submission"], r["week"]): r["points"] for r in merged if r["question"] == "TOTAL"}
    assert totals[("bob", "99")] == "6" and totals[("bob", "98")] == "0" and totals[("alice", "99")] == "6"


def test_the_wide_csv_has_a_row_per_student_and_a_column_per_question_and_week() -> None:
    alice, bob = graded("alice", [True, False, True, True, False]), graded("bob", [False] * 5)
    long = rows(grades_csv([alice, bob], SPECS))
    long += [{**r, "week": "7"} for r in long if r["submission"] == "bob"]
    wide = rows(wide_csv(long))
    assert list(wide[0]) == [
        "submission",
        "week7 q1", "week7 q2", "week7 q3", "week7 total", "week7 status",
        "week99 q1", "week99 q2", "week99 q3", "week99 total", "week99 status",
    ]  # fmt: skip
    assert [r["submission"] for r in wide] == ["alice", "bob"]
    assert (wide[0]["week99 q1"], wide[0]["week99 total"], wide[0]["week7 total"]) == ("2", "4", "")
    assert (wide[1]["week7 total"], wide[1]["week7 status"]) == ("0", "graded")


def test_html_feedback_shows_the_executed_notebook_under_the_results_and_sanitizes_it() -> None:
    nb = notebook("def add(a, b):\n    return a + b", week=99)
    untrusted = {"text/html": "<b>hi</b><script>steal()</script>"}
    nb.cells[0].outputs = [{"output_type": "display_data", "metadata": {}, "data": untrusted}]
    result = graded("alice", [True, False, True, True, True])
    result.notebook = json.loads(json.dumps(nb))
    html = feedback_html(result, SPECS)
    assert "PASS: adds two small numbers" in html and "FAIL: adds negative numbers" in html
    assert "return" in html and "<b>hi</b>" in html
    assert "<script>steal()" not in html
    assert PLANTED not in html


def test_html_feedback_escapes_code_cells_that_bleach_no_longer_parses() -> None:
    # Code cells skip the sanitizer (pygments escapes their source): markup in them is text.
    nb = notebook("x = '</pre><script>steal()</script><img src=x onerror=alert(1)>'", week=99)
    nb.cells.append(nbformat.v4.new_markdown_cell("```\n</pre><script>steal()</script>\n```\n<script>steal()</script>"))
    result = graded("alice", [True] * 5)
    result.notebook = json.loads(json.dumps(nb))
    html = feedback_html(result, SPECS)
    assert "<script>steal()" not in html and "<img src" not in html
    assert "&lt;script&gt;steal()" in html  # shown to the instructor, as text


NONCE = "f00d"


def worker_line(nonce: str = NONCE, **fields: object) -> bytes:
    data = {"status": "graded", "message": "", "results": None, "cell_errors": [], "seconds": 1.0} | fields
    return f"noise before\n\n{nonce} {json.dumps(data)}\n".encode()


def to_result(code: int | None, out: bytes) -> SubmissionResult:
    return _to_result("x", Path("x.ipynb"), 99, SPECS, WorkerExit(code, out, "Traceback: boom", NONCE), 15.0)


def test_worker_results_become_outcomes_by_the_graders_own_specs() -> None:
    results = [{"passed": True, "message": ""}] * 4 + [{"passed": False, "message": "no"}]
    forged = worker_line(nonce="guess", results=[{"passed": True, "message": ""}] * 5)
    result = to_result(0, forged + worker_line(results=results) + b'{"dangling": ')
    assert result.status == "graded"
    assert result.total(SPECS) == (5.0, 6.0)


@pytest.mark.parametrize(
    ("code", "out", "status"),
    [
        (None, b"", "timeout"),
        (1, b"", "error"),
        (0, b"not json at all", "error"),
        (0, worker_line(results=[{"passed": True, "message": ""}]), "error"),  # results for other checks
        (0, worker_line(nonce="guess", results=[{"passed": True, "message": ""}] * 5), "error"),
        (0, worker_line(status="crashed", message="the kernel died"), "crashed"),
    ],
)
def test_a_worker_that_timed_out_failed_or_lied_is_reported_not_trusted(
    code: int | None, out: bytes, status: str
) -> None:
    result = to_result(code, out)
    assert result.status == status
    assert result.total(SPECS)[0] == 0


def test_a_worker_report_round_trips_through_json() -> None:
    report = WorkerReport(
        "graded", results=[{"passed": True, "message": ""}], cell_errors=[CellError(1, "x", "E")]
    )
    assert WorkerReport.from_json(report.to_json()) == report
    assert "\n" not in report.to_json(), "one line on the worker's stdout"


def test_a_file_that_is_not_a_notebook_is_invalid(tmp_path: Path) -> None:
    cases = {
        "text.ipynb": "this is { not json",
        "list.ipynb": "[1, 2, 3]",
        "nocells.ipynb": '{"metadata": {}}',
        "badcell.ipynb": '{"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4}',
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(SubmissionProblem) as caught:
            read_submission(tmp_path / name)
        assert caught.value.status == "invalid", name
    with pytest.raises(SubmissionProblem, match="cannot read"):
        read_submission(tmp_path / "missing.ipynb")


def test_the_week_comes_from_metadata_else_from_the_file_name(tmp_path: Path) -> None:
    tagged = write(tmp_path / "week06_anything.ipynb", notebook("x = 1", week=7))
    assert submission_week(read_submission(tagged), tagged) == 7
    untagged = write(tmp_path / "alice_week06.ipynb", notebook("x = 1", week=None))
    assert submission_week(read_submission(untagged), untagged) == 6
    anonymous = write(tmp_path / "alice.ipynb", notebook("x = 1", week=None))
    assert submission_week(read_submission(anonymous), anonymous) is None


def test_first_line_is_short_and_safe_inside_backticks() -> None:
    assert first_line("\n\n  x = `a`  \ny = 2") == "x = 'a'"
    assert len(first_line("z" * 500)) == 60


def test_specs_are_plain_data() -> None:
    assert SPECS[0] == CheckSpec("q1", 2.0, "adds two small numbers", "adds_small")
