"""The gradebook through `bookstore grade`, as an instructor runs it: grade, re-grade one, keep all.

Two students hand in week 99 in a folder each (``alice/week99_arithmetic.ipynb``, the file
name the course gave them); a third hands in a flat file (``carol_week99.ipynb``). Re-grading
bob alone must replace bob's rows and nothing else, and every name must be the student's.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bookstore.cli import main
from tests.unit.grading.synthetic import ADD_SOLUTION, PLANTED, make_week, notebook, solution_notebook, write

pytestmark = pytest.mark.integration

ADD = ADD_SOLUTION.replace("    # BEGIN SOLUTION\n", "").replace("\n    # END SOLUTION", "")


def grade(solutions: Path, out: Path, *submissions: Path) -> None:
    arguments = ["grade", *map(str, submissions), "--week", "99", "--out", str(out)]
    arguments += ["--solutions-dir", str(solutions), "--timeout", "60", "--check-timeout", "3"]
    assert main([*arguments, "--no-progress"]) == 0


def totals(out: Path) -> dict[str, str]:
    with open(out / "grades.csv", newline="") as handle:
        return {r["submission"]: r["points"] for r in csv.DictReader(handle) if r["question"] == "TOTAL"}


def test_regrading_one_student_keeps_the_others_and_names_everyone_by_folder_or_file(tmp_path: Path) -> None:
    solutions = make_week(tmp_path)
    subs, out = tmp_path / "submissions", tmp_path / "grades"
    write(subs / "alice" / "week99_arithmetic.ipynb", solution_notebook())
    bob = write(subs / "bob" / "week99_arithmetic.ipynb", notebook(ADD, kind="exercise"))
    carol_shouts = "def shout(text):\n    return text.upper() + '!'\n\nprint('carol', shout('was here'))"
    write(subs / "carol_week99.ipynb", notebook(ADD, carol_shouts))

    grade(solutions, out, subs)
    assert totals(out) == {"alice": "6", "bob": "3", "carol": "4"}

    write(bob, solution_notebook())  # bob hands in again, late, and only bob is re-graded
    grade(solutions, out, bob)
    assert totals(out) == {"alice": "6", "bob": "6", "carol": "4"}
    lines = (out / "grades.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * 4, "a block of four rows per student, each student once"

    with open(out / "grades_wide.csv", newline="") as handle:
        wide = {r["submission"]: r for r in csv.DictReader(handle)}
    assert set(wide) == {"alice", "bob", "carol"}
    carol = wide["carol"]
    assert (carol["week99 q1"], carol["week99 q2"], carol["week99 total"]) == ("3", "1", "4")

    feedback = out / "feedback" / "week99"
    assert sorted(p.name for p in feedback.iterdir()) == [
        f"{name}.{kind}" for name in ("alice", "bob", "carol") for kind in ("html", "md")
    ]
    page = (feedback / "carol.html").read_text()
    assert "PASS: shouts" in page and "FAIL: squares a positive number" in page
    assert "carol WAS HERE!" in page, "the HTML shows the learner's notebook with its outputs"
    assert PLANTED not in page
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
