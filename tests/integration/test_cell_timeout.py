"""One hung cell costs only what depends on it: the per-cell limit interrupts it, the notebook goes on.

The submission's second cell defines ``square`` with an endless loop and tries it out, so the
cell itself never ends. Its other answers are right and one of them comes after it. Graded
with a per-cell limit well under the notebook's, the cell is interrupted (as Jupyter's stop
button does), the cells after it run, and the checks give every point but square's.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bookstore.cli import main
from tests.unit.grading.synthetic import ADD_SOLUTION, make_week, notebook, write

pytestmark = pytest.mark.integration

ADD = ADD_SOLUTION.replace("    # BEGIN SOLUTION\n", "").replace("\n    # END SOLUTION", "")
HUNG_SQUARE = "def square(x):\n    while True:\n        pass\n\nsquare(3)  # trying it out"
SHOUT = "def shout(text):\n    return text.upper() + '!'"


def test_a_hung_cell_is_interrupted_and_the_other_answers_keep_their_points(tmp_path: Path) -> None:
    solutions = make_week(tmp_path)
    submission = write(tmp_path / "dana_week99.ipynb", notebook(ADD, HUNG_SQUARE, SHOUT))
    out = tmp_path / "grades"
    code = main(
        [
            "grade", str(submission), "--week", "99", "--out", str(out), "--solutions-dir", str(solutions),
            "--timeout", "60", "--cell-timeout", "3", "--check-timeout", "2", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    with open(out / "grades.csv", newline="") as handle:
        scores = {r["question"]: (r["points"], r["status"]) for r in csv.DictReader(handle)}
    assert scores == {
        "q1": ("3", "passed"),
        "q2": ("1", "passed"),  # defined after the hung cell: the notebook went on
        "q3": ("0", "failed"),
        "TOTAL": ("4", "graded"),
    }
    feedback = (out / "feedback" / "week99" / "dana.md").read_text()
    assert "cell 2 (`def square(x):`) ran longer than 3 s and was interrupted" in feedback
    assert "- cell 2 (`def square(x):`): interrupted after 3 s, the time limit per cell" in feedback
