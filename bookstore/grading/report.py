"""Scores, grades.csv, feedback files and the summary table: what a batch hands back.

Scores are computed here, in the grader, from the instructor's own check specs: the learner's
kernel only says which checks passed (and why not), never how many points anything is worth.

``grades.csv`` (the long gradebook) has one row per student and question, then a ``TOTAL``
row per student; the ``submission`` column holds the student's identity (see
:func:`bookstore.grading.batch.student_name`)::

    submission,week,question,points,max,status
    alice,6,q1,2,2,passed
    alice,6,q2,0.5,1,partial
    alice,6,TOTAL,2.5,3,graded
    bob,6,q1,0,2,timeout

A question's status is ``passed``, ``partial`` or ``failed`` when the notebook was graded, and
the submission's status (``timeout``, ``crashed``, ``invalid``, ``wrong-week``, ``error``)
when it was not, with 0 points.

Re-grading merges: the rows of a (student, week) graded now replace that pair's rows, every
other row of the existing file stays where it was, and a new pair is appended. Grading one
late submission never costs anyone else their grade. The file is read once when a batch
starts (so nothing written into it while a batch runs is taken over).

``grades_wide.csv`` is the same gradebook a row per student, the shape a spreadsheet or an
LMS import wants: a column per week and question, the week's total and its status::

    submission,week99 q1,week99 q2,week99 q3,week99 total,week99 status
    alice,3,0.5,2,5.5,graded

A feedback file (``feedback/weekNN/<student>.md``) is for the learner: the status, each
question's score, each check's title with PASS or FAIL and the failure message, and the cells
of their notebook that raised. It is built from titles and messages only, never from check
source. ``feedback/weekNN/<student>.html`` is the same feedback on top of the learner's
executed notebook, rendered by nbconvert with the HTML in it sanitized (the notebook is
untrusted; the instructor opens this file in a browser).

Files are written whole to a temporary name and renamed, so a reader (or a crash half-way)
never sees half a grades.csv.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bookstore.grading.checks import CheckSpec, question_maxima
from bookstore.grading.worker import CellError, write_atomic

GRADED = "graded"
CSV_COLUMNS = ("submission", "week", "question", "points", "max", "status", "isolation")
# Gradebooks written before the isolation column existed are read with it empty.
REQUIRED_COLUMNS = CSV_COLUMNS[:6]
TOTAL = "TOTAL"

STATUS_EXPLAINED = {
    GRADED: "your notebook ran from a fresh kernel and the checks ran against your code",
    "timeout": "your notebook did not finish in time, so no question could be checked",
    "crashed": "the kernel running your notebook died, or was left unable to run the checks,"
    " so no question could be checked",
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
    # The notebook as the grader ran it (nbformat JSON, outputs kept up to a budget), for the
    # HTML feedback; None when it never ran (invalid, wrong week, ...).
    notebook: dict[str, Any] | None = None
    # "isolated" (its kernel ran in a sandbox, bookstore.grading.sandbox) or "not isolated";
    # empty for results made without a batch.
    isolation: str = ""

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


GradeRow = dict[str, str]  # one line of grades.csv, keyed by CSV_COLUMNS


def result_rows(result: SubmissionResult, specs: Sequence[CheckSpec]) -> list[GradeRow]:
    """A submission's rows of the long gradebook: one per question, then its TOTAL."""
    def row(question: str, points: float, maximum: float, status: str) -> GradeRow:
        values = [result.name, str(result.week), question, fmt(points), fmt(maximum), status]
        values.append(result.isolation)
        return dict(zip(CSV_COLUMNS, values, strict=True))

    rows = [row(s.question, s.points, s.max, s.status) for s in result.scores(specs)]
    rows.append(row(TOTAL, *result.total(specs), result.status))
    return rows


def read_grades(path: Path) -> list[GradeRow]:
    """The rows of an existing grades.csv; [] when there is none. Rows missing a column are dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [
        {column: row.get(column) or "" for column in CSV_COLUMNS}
        for row in csv.DictReader(io.StringIO(text))
        if all(isinstance(row.get(column), str) for column in REQUIRED_COLUMNS)
    ]


def merge_grades(
    previous: Iterable[GradeRow], results: Sequence[SubmissionResult], specs: Sequence[CheckSpec]
) -> list[GradeRow]:
    """``previous`` with each (student, week) graded now replaced in place, new ones appended."""
    blocks: dict[tuple[str, str], list[GradeRow]] = {}
    for row in previous:
        blocks.setdefault((row["submission"], row["week"]), []).append(row)
    for result in results:
        # Assigning to an existing key keeps its position: a re-graded student stays where they were.
        blocks[(result.name, str(result.week))] = result_rows(result, specs)
    return [row for block in blocks.values() for row in block]


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def grades_csv(
    results: Sequence[SubmissionResult], specs: Sequence[CheckSpec], previous: Iterable[GradeRow] = ()
) -> str:
    """The long gradebook: ``previous`` rows merged with ``results`` (see :func:`merge_grades`)."""
    return long_csv(merge_grades(previous, results, specs))


def long_csv(rows: Iterable[GradeRow]) -> str:
    return _csv_text(CSV_COLUMNS, ([row[c] for c in CSV_COLUMNS] for row in rows))


def wide_csv(rows: Sequence[GradeRow]) -> str:
    """A row per student (in gradebook order); per week a column per question, its total and status."""
    questions: dict[str, dict[str, None]] = {}  # week -> its questions, as first seen (ordered sets)
    table: dict[str, dict[str, str]] = {}
    for row in rows:
        week, question = row["week"], row["question"]
        line = table.setdefault(row["submission"], {})
        if question == TOTAL:
            line[f"week{week} total"], line[f"week{week} status"] = row["points"], row["status"]
        else:
            questions.setdefault(week, {}).setdefault(question)
            line[f"week{week} {question}"] = row["points"]
    columns: list[str] = []
    for week in sorted(questions, key=lambda w: (not w.isdigit(), int(w) if w.isdigit() else 0, w)):
        columns += [f"week{week} {question}" for question in questions[week]]
        columns += [f"week{week} total", f"week{week} status"]
    lines = ([name, *(line.get(c, "") for c in columns)] for name, line in table.items())
    return _csv_text(["submission", *columns], lines)


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
    if result.isolation:
        lines += ["", f"Isolation: {result.isolation}."]
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
        for error in result.cell_errors:
            *frames, last = error.error.splitlines() or [""]
            lines.append(f"- cell {error.cell} (`{error.first_line}`): {_one_line(last)}")
            if frames:  # the learner's own frames, indented: a code block inside the list item
                lines += ["", *(f"      {line}" for line in frames), ""]
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


def feedback_html(result: SubmissionResult, specs: Sequence[CheckSpec]) -> str:
    """The feedback (as in the .md file) on top of the learner's executed notebook, as HTML.

    The notebook's own HTML and Markdown are sanitized: a submission is untrusted, and this
    page is opened in the instructor's browser. A notebook nbconvert cannot render is left out
    (the feedback above it still says everything the grade rests on).
    """
    import nbformat

    summary = nbformat.v4.new_markdown_cell(feedback_markdown(result, specs))
    exporter = _html_exporter()
    if result.notebook is not None:
        try:
            notebook = nbformat.from_dict(copy.deepcopy(result.notebook))
            notebook.cells.insert(0, summary)
            return str(exporter.from_notebook_node(notebook)[0])
        except Exception:  # nbformat and nbconvert raise many types for a malformed notebook
            pass
    alone = nbformat.v4.new_notebook()
    alone.cells = [summary]
    return str(exporter.from_notebook_node(alone)[0])


@functools.cache
def _html_exporter() -> Any:
    """One exporter per process: building one loads its templates, a noticeable cost per submission.

    It sanitizes everything the notebook brings (Markdown, HTML and SVG outputs) except code
    cells, which it highlights with pygments: pygments escapes every character of the source,
    so bleach parsing its HTML again found nothing to remove and took a third of each page's
    rendering (about 0.1 s of the batch parent's CPU per submission).
    """
    from nbconvert import HTMLExporter
    from nbconvert.filters.strings import clean_html

    class Escaped(str):
        """pygments' HTML for a code cell: the learner's source in it is escaped."""

    def clean(element: Any) -> str:
        return element if type(element) is Escaped else str(clean_html(element))

    class FeedbackExporter(HTMLExporter):  # type: ignore[misc]
        def default_filters(self) -> Any:
            yield from super().default_filters()
            yield ("clean_html", clean)

        def register_filter(self, name: str, jinja_filter: Any) -> Any:
            if name == "highlight_code":  # registered anew for each notebook, with its lexer
                highlight = jinja_filter

                def jinja_filter(source: str, language: str | None = None, metadata: Any = None) -> str:
                    return Escaped(highlight(source, language, metadata))

            return super().register_filter(name, jinja_filter)

    return FeedbackExporter(sanitize_html=True)


def feedback_path(out_dir: Path, result: SubmissionResult, suffix: str) -> Path:
    """``out_dir/feedback/weekNN/<student><suffix>``: a folder per week, so weeks never collide."""
    return out_dir / "feedback" / f"week{result.week:02d}" / f"{result.name}{suffix}"


def write_outputs(
    out_dir: Path,
    results: Sequence[SubmissionResult],
    specs: Sequence[CheckSpec],
    *,
    feedback: Sequence[SubmissionResult] | None = None,
    previous: Sequence[GradeRow] = (),
    html: bool = True,
) -> None:
    """grades.csv and grades_wide.csv for ``previous`` merged with ``results``; feedback for
    each of ``feedback`` (default: all), Markdown and, with ``html``, HTML."""
    for result in results if feedback is None else feedback:
        write_atomic(feedback_path(out_dir, result, ".md"), feedback_markdown(result, specs))
        if html:
            write_atomic(feedback_path(out_dir, result, ".html"), feedback_html(result, specs))
    rows = merge_grades(previous, results, specs)
    write_atomic(out_dir / "grades.csv", long_csv(rows))
    write_atomic(out_dir / "grades_wide.csv", wide_csv(rows))
