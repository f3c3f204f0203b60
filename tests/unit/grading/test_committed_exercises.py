"""The committed exercises are exactly what `bookstore exercises build` makes of the solutions."""

from __future__ import annotations

import pytest

from bookstore.grading.regions import EXERCISES_DIR, SOLUTIONS_DIR, build_all, solution_notebooks


def test_committed_exercises_match_a_fresh_build_of_the_solutions() -> None:
    if not solution_notebooks(SOLUTIONS_DIR):
        pytest.skip(f"no solution notebooks in {SOLUTIONS_DIR} yet")
    differences = build_all(SOLUTIONS_DIR, EXERCISES_DIR, check=True)
    assert differences == [], "run `bookstore exercises build` and commit:\n" + "\n".join(
        map(str, differences)
    )
