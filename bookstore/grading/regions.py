"""Exercises are built from solutions: one notebook per week, the answers marked inside it.

An instructor writes ``solutions/weekNN_<topic>.ipynb`` (metadata ``{"bookstore": {"week": N,
"kind": "solution"}}``) and marks each answer in a code cell::

    def find_book_title(stub, book_id):
        # BEGIN SOLUTION
        reply = stub.GetBook(catalog_pb2.GetBookRequest(id=book_id), timeout=2)
        return reply.book.title
        # END SOLUTION

``bookstore exercises build`` writes ``exercises/weekNN_<topic>.ipynb`` where every region
(markers included) becomes, at the marker's indentation::

        # TODO: your code here
        raise NotImplementedError("exercise")

A markdown or code cell whose first line is ``# SOLUTION ONLY`` (a worked answer, a
self-check of the solution) is left out of the exercise. Everything else, including visible
``assert`` cells a learner can use to check themselves as they go, is copied as is.

Why generate rather than keep two notebooks by hand: the two drift, and a drifted exercise
either leaks an answer or asks for something the checks no longer test. The build is
deterministic (the same solution gives byte-identical output: no random cell ids, sorted JSON,
no outputs), so a test can rebuild in memory and fail when the committed exercises differ.

A marker that is almost right (``#BEGIN SOLUTION``, ``# END SOLUTION:``, a ``# SOLUTION ONLY``
that is not a cell's first line) is an error, not ignored: ignoring it would publish the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS_DIR = REPO_ROOT / "solutions"
EXERCISES_DIR = REPO_ROOT / "exercises"

BEGIN_MARKER = "# BEGIN SOLUTION"
END_MARKER = "# END SOLUTION"
SOLUTION_ONLY_MARKER = "# SOLUTION ONLY"
STUB_LINES = ("# TODO: your code here", 'raise NotImplementedError("exercise")')
NOTEBOOK_NAME = re.compile(r"^week(\d{2})_[A-Za-z0-9_]+\.ipynb$")
# Anything that looks like a marker; a line matching this but not exactly a marker is a typo.
_MARKER_LIKE = re.compile(r"#\s*(BEGIN|END)\s*SOLUTION|#\s*SOLUTION\s*ONLY", re.IGNORECASE)


class RegionError(ValueError):
    """A solution notebook whose markers or metadata do not follow the format."""


@dataclass(frozen=True)
class Difference:
    """One exercise notebook that is (or was) not what its solution builds."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def exercise_source(source: str, *, where: str = "cell") -> str:
    """Replace every solution region of one code cell's source by the TODO stub."""
    out: list[str] = []
    region_indent: str | None = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        text = line.rstrip("\r\n")
        stripped = text.strip()
        ending = line[len(text) :]
        if stripped == BEGIN_MARKER:
            if region_indent is not None:
                raise RegionError(f"{where}, line {number}: BEGIN SOLUTION inside another solution region")
            region_indent = text[: len(text) - len(text.lstrip())]
        elif stripped == END_MARKER:
            if region_indent is None:
                raise RegionError(f"{where}, line {number}: END SOLUTION without a BEGIN SOLUTION")
            out.append(region_indent + STUB_LINES[0] + "\n")
            # The stub keeps the END line's ending, so a region closing the cell adds no blank line.
            out.append(region_indent + STUB_LINES[1] + (ending or ""))
            region_indent = None
        elif _MARKER_LIKE.search(text):
            raise RegionError(
                f"{where}, line {number}: {stripped!r} looks like a marker but is not one; "
                f"write {BEGIN_MARKER!r}, {END_MARKER!r} or {SOLUTION_ONLY_MARKER!r} (as a cell's first line)"
            )
        elif region_indent is None:
            out.append(line)
    if region_indent is not None:
        raise RegionError(f"{where}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "".join(out)


def _first_line(source: str) -> str:
    return source.split("\n", 1)[0].strip()


def is_solution_only(cell: dict[str, Any]) -> bool:
    return cell.get("cell_type") in ("code", "markdown") and _first_line(cell.get("source", "")) == (
        SOLUTION_ONLY_MARKER
    )


def notebook_week(name: str) -> int | None:
    match = NOTEBOOK_NAME.match(name)
    return int(match.group(1)) if match else None


def build_exercise(solution: nbformat.NotebookNode, *, name: str = "solution") -> nbformat.NotebookNode:
    """The exercise notebook for a solution notebook (which is left unchanged)."""
    meta = solution.get("metadata", {}).get("bookstore")
    if not isinstance(meta, dict) or meta.get("kind") != "solution" or not isinstance(meta.get("week"), int):
        raise RegionError(f'{name}: metadata needs {{"bookstore": {{"week": N, "kind": "solution"}}}}')
    expected_week = notebook_week(name)
    if expected_week is not None and meta["week"] != expected_week:
        raise RegionError(
            f"{name}: metadata says week {meta['week']}, the file name says week {expected_week}"
        )

    exercise = nbformat.from_dict(json.loads(json.dumps(solution)))  # a deep copy
    cells = []
    for index, cell in enumerate(exercise.cells, start=1):
        if is_solution_only(cell):
            continue
        where = f"{name}, cell {index}"
        if cell.cell_type == "code":
            cell.source = exercise_source(cell.source, where=where)
            cell.outputs = []
            cell.execution_count = None
        for number, line in enumerate(cell.source.splitlines()[1:], start=2):
            if line.strip() == SOLUTION_ONLY_MARKER:
                raise RegionError(
                    f"{where}, line {number}: {SOLUTION_ONLY_MARKER!r} only works as a first line"
                )
        cell.pop("id", None)  # random ids would make every build differ
        cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    exercise.cells = cells
    exercise.metadata["bookstore"] = {**meta, "kind": "exercise"}
    exercise.nbformat, exercise.nbformat_minor = 4, 4
    return exercise


def render(notebook: nbformat.NotebookNode) -> str:
    """Stable text: nbformat's sorted, indented JSON, ending in a newline."""
    text = nbformat.writes(notebook, version=4)
    return text if text.endswith("\n") else text + "\n"


def exercise_text(solution_path: Path) -> str:
    solution = nbformat.reads(solution_path.read_text(encoding="utf-8"), as_version=4)
    return render(build_exercise(solution, name=solution_path.name))


def solution_notebooks(solutions_dir: Path) -> list[Path]:
    return sorted(p for p in solutions_dir.glob("week*.ipynb") if p.is_file())


def build_all(
    solutions_dir: Path = SOLUTIONS_DIR, exercises_dir: Path = EXERCISES_DIR, *, check: bool = False
) -> list[Difference]:
    """Build every exercise; with ``check``, only report what differs. Returns the differences.

    Without ``check`` the differences are fixed: files written, and orphans (an exercise whose
    solution is gone) removed when the build made them.
    """
    if not solutions_dir.is_dir():
        # A learner's release has no solutions/: building there would find no solution for any
        # exercise, and remove every exercise as an orphan.
        raise RegionError(
            f"{solutions_dir} does not exist: exercises are built from the solutions, which only "
            "the instructor's repository has"
        )
    differences: list[Difference] = []
    built: dict[str, str] = {}
    for solution in solution_notebooks(solutions_dir):
        if notebook_week(solution.name) is None:
            raise RegionError(f"{solution}: solution notebooks are named weekNN_<topic>.ipynb")
        built[solution.name] = exercise_text(solution)

    for name, text in built.items():
        target = exercises_dir / name
        if not target.exists():
            differences.append(Difference(target, "missing"))
        elif target.read_text(encoding="utf-8") != text:
            differences.append(Difference(target, "differs from what its solution builds"))
        else:
            continue
        if not check:
            exercises_dir.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)

    for orphan in sorted(exercises_dir.glob("week*.ipynb")) if exercises_dir.is_dir() else []:
        if orphan.name in built:
            continue
        differences.append(Difference(orphan, f"has no solution in {solutions_dir}"))
        if not check and _built_by_us(orphan):
            orphan.unlink()
    return differences


def _built_by_us(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))["metadata"]["bookstore"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "exercise"
