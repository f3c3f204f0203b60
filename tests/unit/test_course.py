"""The course runner's week list: week 0 (start here) and weeks 6-10, each with its notebook."""

from __future__ import annotations

import pytest

from bookstore.cli import build_parser
from bookstore.course import DEFAULT_WEEKS, notebook_for, parse_weeks


def test_the_default_course_is_week_0_then_weeks_6_to_10() -> None:
    assert parse_weeks(DEFAULT_WEEKS) == [0, 6, 7, 8, 9, 10]
    assert build_parser().parse_args(["course", "run"]).weeks == DEFAULT_WEEKS


def test_every_default_week_has_a_notebook_and_week_0_is_the_start_here_one() -> None:
    assert all(notebook_for(week) is not None for week in parse_weeks(DEFAULT_WEEKS))
    start_here = notebook_for(0)
    assert start_here is not None and start_here.name == "week00_start_here.ipynb"


@pytest.mark.parametrize(("spec", "weeks"), [("0", [0]), ("0-0", [0]), ("6-8", [6, 7, 8]), ("0,9", [0, 9])])
def test_weeks_are_single_numbers_ranges_or_lists(spec: str, weeks: list[int]) -> None:
    assert parse_weeks(spec) == weeks


def test_a_week_that_is_not_a_number_is_refused_with_examples() -> None:
    with pytest.raises(SystemExit, match="0,6-10"):
        parse_weeks("six")
