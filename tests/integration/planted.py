"""Planted submissions: the solution notebook with one plausible mistake, for the proofs that a
submission passing every visible check earns at least 90 % of the week's points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from bookstore.grading.batch import grade_batch
from bookstore.grading.checks import CheckSpec
from bookstore.grading.report import SubmissionResult

SHARE_THAT_VISIBLE_PASS_EARNS = 0.9


@dataclass(frozen=True)
class Planted:
    """The solution with ``old`` replaced by ``new`` (``old`` occurs exactly once in it)."""

    name: str
    old: str
    new: str
    passes_visible: bool  # what we expect; the test checks it, so a drifted check is noticed


def plant(solution: Path, mistake: Planted, target: Path) -> Path:
    notebook = nbformat.read(solution, as_version=4)
    found = sum(cell.source.count(mistake.old) for cell in notebook.cells)
    assert found == 1, f"{mistake.name}: the solution should contain its snippet once, found {found}"
    for cell in notebook.cells:
        cell.source = cell.source.replace(mistake.old, mistake.new)
    nbformat.write(notebook, target)
    return target


@dataclass(frozen=True)
class Graded:
    """One batch: the solution and every planted submission, graded by the real grader."""

    results: dict[str, SubmissionResult]  # by file stem
    specs: list[CheckSpec]

    def assert_solution_earns_full_marks(self, solution: Path) -> None:
        result = self.results[solution.stem]
        earned, maximum = result.total(self.specs)
        assert result.cell_errors == [] and earned == maximum, (result.cell_errors, result.scores(self.specs))

    def assert_visible_pass_earns_90_percent(self, mistake: Planted) -> None:
        """The planted submission passes the visible checks as expected; if it does, it earns >= 90 %."""
        result = self.results[mistake.name]
        earned, maximum = result.total(self.specs)
        passes_visible = not result.cell_errors
        assert passes_visible is mistake.passes_visible, result.cell_errors
        if passes_visible:
            assert earned >= SHARE_THAT_VISIBLE_PASS_EARNS * maximum, result.scores(self.specs)
        else:
            assert earned < maximum, "a planted mistake the hidden checks do not notice"


def grade_planted(solution: Path, week: int, mistakes: list[Planted], folder: Path) -> Graded:
    paths = [plant(solution, m, folder / f"{m.name}.ipynb") for m in mistakes]
    batch = grade_batch(
        [solution, *paths], week=week, out_dir=folder / "grades", progress=False, echo=lambda _: None
    )
    return Graded({r.path.stem: r for r in batch.results}, list(batch.specs))
