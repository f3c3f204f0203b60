"""A tiny synthetic course week (week 99) for grading tests: notebooks and hidden checks.

Nothing here depends on the real course content, so these tests keep their meaning while the
weekly notebooks change.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

WEEK = 99
# Planted in the hidden checks' source only (comments, names, values): feedback must never show it.
PLANTED = "PLANTED-7f3a9c-HIDDEN"


def notebook(*cells: str, week: int | None = WEEK, kind: str = "solution") -> nbformat.NotebookNode:
    """A notebook from cell sources; a source starting with ``md:`` is a markdown cell."""
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = 4
    if week is not None:
        nb.metadata["bookstore"] = {"week": week, "kind": kind}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(source[3:])
        if source.startswith("md:")
        else nbformat.v4.new_code_cell(source)
        for source in cells
    ]
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


def write(path: Path, nb: nbformat.NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


ADD_SOLUTION = """def add(a, b):
    # BEGIN SOLUTION
    return a + b
    # END SOLUTION"""

SHOUT_SOLUTION = """def shout(text):
    # BEGIN SOLUTION
    return text.upper() + "!"
    # END SOLUTION"""

SQUARE_SOLUTION = """def square(x):
    # BEGIN SOLUTION
    return x * x
    # END SOLUTION"""


def solution_notebook() -> nbformat.NotebookNode:
    return notebook(
        "md:# Week 99: arithmetic, loudly",
        ADD_SOLUTION,
        "md:# SOLUTION ONLY\nWhy the answer is what it is.",
        SHOUT_SOLUTION,
        SQUARE_SOLUTION,
        "# SOLUTION ONLY\nassert add(2, 3) == 5 and square(3) == 9",
        "assert callable(add)  # a visible self-check the learner keeps",
    )


CHECKS_SOURCE = f'''"""Hidden checks for week 99. {PLANTED}"""
from bookstore.grading.checks import CheckFailed, check

_SECRET_{PLANTED.replace("-", "_")} = 5  # {PLANTED}


@check("q1", points=2, title="adds two small numbers")
def adds_small(ns):
    got = ns["add"](2, 3)
    if got != _SECRET_{PLANTED.replace("-", "_")}:
        raise CheckFailed(f"add(2, 3) should return 5, got {{got!r}}")


@check("q1", points=1, title="adds negative numbers")
def adds_negative(ns):
    got = ns["add"](-2, -3)
    if got != -5:
        raise CheckFailed(f"add(-2, -3) should return -5, got {{got!r}}")


@check("q2", points=1, title="shouts")
def shouts(ns):
    # A failing learner answer makes this hidden line divide by zero: "{PLANTED}".
    ratio = 1 / (ns["shout"]("hi") == "HI!")
    assert ratio == 1


@check("q3", points=1, title="squares a positive number")
def squares_positive(ns):
    if ns["square"](3) != 9:
        raise CheckFailed("square(3) should return 9")


@check("q3", points=1, title="squares a negative number")
def squares_negative(ns):
    if ns["square"](-2) != 4:
        raise CheckFailed("square(-2) should return 4")
'''


def make_week(root: Path, checks_source: str = CHECKS_SOURCE, week: int = WEEK) -> Path:
    """A solutions folder holding the week's solution notebook and hidden checks; returns it."""
    solutions = root / "solutions"
    write(solutions / f"week{week:02d}_arithmetic.ipynb", solution_notebook())
    (solutions / "checks").mkdir(parents=True, exist_ok=True)
    (solutions / "checks" / f"week{week:02d}.py").write_text(checks_source)
    return solutions
