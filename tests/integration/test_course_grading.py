"""Every week's exercise grades as it should: solution full marks, untouched exercise zero,
a planted partial submission strictly in between (the proof the grading issue asks for)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from bookstore.grading.batch import grade_batch
from bookstore.grading.regions import BEGIN_MARKER, exercise_source, notebook_week, solution_notebooks

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"
WEEKS = [(notebook_week(p.name), p) for p in solution_notebooks(SOLUTIONS)]


def planted_partial(solution: Path, target: Path) -> Path:
    """The solution with only its first solution region kept; every later region is a TODO stub."""
    notebook = nbformat.read(solution, as_version=4)
    kept_one = False
    for cell in notebook.cells:
        if cell.cell_type != "code" or BEGIN_MARKER not in cell.source:
            continue
        if kept_one:
            cell.source = exercise_source(cell.source)
        kept_one = True
    nbformat.write(notebook, target)
    return target


@pytest.mark.parametrize(("week", "solution"), WEEKS, ids=[p.stem for _, p in WEEKS])
def test_solution_scores_full_marks_exercise_zero_and_a_partial_in_between(
    week: int, solution: Path, tmp_path: Path
) -> None:
    exercise = EXERCISES / solution.name
    partial = planted_partial(solution, tmp_path / f"partial_{solution.name}")
    batch = grade_batch(
        [solution, exercise, partial],
        week=week,
        out_dir=tmp_path / "grades",
        progress=False,
        echo=lambda _: None,
    )
    by_name = {r.path.resolve(): r for r in batch.results}
    full = by_name[solution.resolve()]
    untouched = by_name[exercise.resolve()]
    between = by_name[partial.resolve()]

    earned, maximum = full.total(batch.specs)
    assert maximum > 0 and earned == maximum, full.scores(batch.specs)
    assert all(score.points == 0 for score in untouched.scores(batch.specs)), untouched.scores(batch.specs)
    assert 0 < between.total(batch.specs)[0] < maximum, between.scores(batch.specs)
    assert (tmp_path / "grades" / "grades.csv").read_text().count("\n") > 3
