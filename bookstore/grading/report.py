"""Scores, grades.csv, feedback files and the summary table: what a batch hands back.

Scores are computed here, in the grader, from the instructor's own check specs: the learner's
kernel only says which checks passed (and why not), never how many points anything is worth.

``grades.csv`` has one row per submission and question, then a ``TOTAL`` row per submission::

    submission,week,question,points,max,status
    alice,6,q1,2,2,passed
    alice,6,q2,0.5,1,partial
    alice,6,TOTAL,2.5,3,graded
    bob,6,q1,0,2,timeout

A question's status is ``passed``, ``partial`` or ``failed`` when the notebook was graded, and
the submission's status (``timeout``, ``crashed``, ``invalid``, ``wrong-week``, ``error``)
when it was not, with 0 points.

A feedback file (``feedback/<submission>.md``) is for the learner: the status, each question's
score, each check's title with PASS or FAIL and the failure message, and the cells of their
notebook that raised. It is built from titles and messages only, never from check source.

Files are written whole to a temporary name and renamed, so a reader (or a crash half-way)
never sees half a grades.csv.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bookstore.grading.checks import CheckSpec, question_maxima
from bookstore.grading.worker import CellError, write_atomic

GRADED = "graded"
CSV_COLUMNS = ("submission", "week", "question", "points", "max", "status")
TOTAL = "TOTAL"

STATUS_EXPLAINED = {
    GRADED: "your notebook ran from a fresh kernel and the checks ran against your code",
    "timeout": "your notebook did not finish in time, so no question could be checked",
    "crashed": "the kernel running your notebook died, so no question could be checked",
    "invalid": "the file could not be read as a notebook",
    "wrong-week": "the notebook belongs to another week",
    "error": "the grader itself failed on this submission; your instructor will look into it",
}


@dataclass(frozen=True)
class CheckOutcome:
    spec: CheckSpec
    passed: bool
    message: str


@dataclass(frozen=True)
class QuestionScore:
    question: str
    points: float
    max: float
    status: str


@dataclass
class SubmissionResult:
    """One graded (or ungradable) submission."""

    name: str  # unique within the batch; names the feedback file
    path: Path
    week: int
    status: str
    message: str = ""
    outcomes: list[CheckOutcome] = field(default_factory=list)
    cell_errors: list[CellError] = field(default_factory=list)
    seconds: float = 0.0

    def scores(self, specs: Sequence[CheckSpec]) -> list[QuestionScore]:
        maxima = question_maxima(list(specs))
        if self.status != GRADED:
            return [QuestionScore(q, 0.0, m, self.status) for q, m in maxima.items()]
        earned = dict.fromkeys(maxima, 0.0)
        for outcome in self.outcomes:
            if outcome.passed:
                earned[outcome.spec.question] += outcome.spec.points
        return [QuestionScore(q, earned[q], m, _question_status(earned[q], m)) for q, m in maxima.items()]

    def total(self, specs: Sequence[CheckSpec]) -> tuple[float, float]:
        scores = self.scores(specs)
        return sum(s.points for s in scores), sum(s.max for s in scores)


def _question_status(points: float, maximum: float) -> str:
    if points >= maximum:
        return "passed"
    return "partial" if points > 0 else "failed"


def fmt(points: float) -> str:
    """2.0 -> "2", 0.5 -> "0.5": the way people write points."""
    return str(int(points)) if float(points).is_integer() else f"{points:.2f}".rstrip("0").rstrip(".")


def grades_csv(results: Sequence[SubmissionResult], specs: Sequence[CheckSpec]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in results:
        for score in result.scores(specs):
            writer.writerow(
                [result.name, result.week, score.question, fmt(score.points), fmt(score.max), score.status]
            )
        points, maximum = result.total(specs)
        writer.writerow([result.name, result.week, TOTAL, fmt(points), fmt(maximum), result.status])
    return buffer.getvalue()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def feedback_markdown(result: SubmissionResult, specs: Sequence[CheckSpec]) -> str:
    points, maximum = result.total(specs)
    lines = [
        f"# Week {result.week} feedback: {result.name}",
        "",
        f"**Status: {result.status}** ({STATUS_EXPLAINED.get(result.status, result.status)}).",
        "",
        f"**Score: {fmt(points)} / {fmt(maximum)}**",
    ]
    if result.message and result.status != "error":  # an error's details are for the instructor
        lines += ["", _one_line(result.message)]
    if result.cell_errors:
        lines += [
            "",
            "## Cells that raised an error",
            "",
            "Run from a fresh kernel, top to bottom, these cells failed;"
            " answers after them may depend on them.",
            "",
        ]
        lines += [f"- cell {e.cell} (`{e.first_line}`): {_one_line(e.error)}" for e in result.cell_errors]
    by_question: dict[str, list[CheckOutcome]] = {}
    for outcome in result.outcomes:
        by_question.setdefault(outcome.spec.question, []).append(outcome)
    for score in result.scores(specs):
        lines += ["", f"## {score.question}: {fmt(score.points)} / {fmt(score.max)}", ""]
        if result.status != GRADED:
            lines += [f"- not checked: {spec.title}" for spec in specs if spec.question == score.question]
            continue
        for outcome in by_question.get(score.question, []):
            if outcome.passed:
                lines.append(f"- PASS: {outcome.spec.title}")
            else:
                lines.append(f"- FAIL: {outcome.spec.title}: {_one_line(outcome.message)}")
    return "\n".join(lines) + "\n"


def summary_table(results: Sequence[SubmissionResult], specs: Sequence[CheckSpec]) -> str:
    questions = list(question_maxima(list(specs)))
    header = ["submission", "status", *questions, "total"]
    rows = [header]
    for result in results:
        scores = result.scores(specs)
        points, maximum = result.total(specs)
        rows.append(
            [result.name, result.status]
            + [f"{fmt(s.points)}/{fmt(s.max)}" for s in scores]
            + [f"{fmt(points)}/{fmt(maximum)}"]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def write_outputs(
    out_dir: Path,
    results: Sequence[SubmissionResult],
    specs: Sequence[CheckSpec],
    *,
    feedback: Sequence[SubmissionResult] | None = None,
) -> None:
    """grades.csv for all ``results``; a feedback file for each of ``feedback`` (default: all)."""
    for result in results if feedback is None else feedback:
        write_atomic(out_dir / "feedback" / f"{result.name}.md", feedback_markdown(result, specs))
    write_atomic(out_dir / "grades.csv", grades_csv(results, specs))
