"""Week 6's visible self-checks cover what the hidden checks grade, question 4 (the design task)
above all: a submission that passes every visible check earns at least 90 % of the points.

Each planted submission is the solution with one way of writing ``cart_titles`` that a learner
might choose, graded by the real batch grader against the hidden checks of
``solutions/checks/week06.py``. "Passes every visible check" means: no cell raised.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .planted import Graded, Planted, grade_planted

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / "week06_services.ipynb"
BATCHED = """    distinct = list(dict.fromkeys(book_ids))
    titles: dict[int, str] = {}
    for start in range(0, len(distinct), 100):
        batch = distinct[start:start + 100]
        reply = stub.BatchGetBooks(catalog_pb2.BatchGetBooksRequest(book_ids=batch), timeout=2)
        titles.update((book.book_id, book.title) for book in reply.books)
    return [titles[book_id] for book_id in book_ids]"""

PLANTED = [
    Planted(  # correct, and one round trip per item: the consequence the task is about
        "one_get_book_per_item",
        BATCHED,
        "    get = stub.GetBook\n"
        "    return [get(catalog_pb2.GetBookRequest(book_id=i), timeout=2).book.title for i in book_ids]",
        passes_visible=False,
    ),
    Planted(
        "batches_without_removing_repeats",
        "distinct = list(dict.fromkeys(book_ids))",
        "distinct = list(book_ids)",
        passes_visible=False,
    ),
    Planted(
        "batches_of_fifty",
        "range(0, len(distinct), 100)",
        "range(0, len(distinct), 50)",
        passes_visible=False,
    ),
    Planted(
        "no_deadline",
        "BatchGetBooksRequest(book_ids=batch), timeout=2)",
        "BatchGetBooksRequest(book_ids=batch))",
        passes_visible=False,
    ),
    Planted(
        "repeats_answered_once",
        "return [titles[book_id] for book_id in book_ids]",
        "return [titles[book_id] for book_id in distinct]",
        passes_visible=False,
    ),
    Planted(  # a set loses the cart's order, but the answer is rebuilt in order: a right answer
        "distinct_through_a_set",
        "distinct = list(dict.fromkeys(book_ids))",
        "distinct = sorted(set(book_ids))",
        passes_visible=True,
    ),
]

@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    return grade_planted(SOLUTION, 6, PLANTED, tmp_path_factory.mktemp("week06_planted"))


def test_the_solution_passes_every_visible_check_with_full_marks(graded: Graded) -> None:
    graded.assert_solution_earns_full_marks(SOLUTION)


@pytest.mark.parametrize("mistake", PLANTED, ids=[m.name for m in PLANTED])
def test_passing_every_visible_check_earns_at_least_90_percent(graded: Graded, mistake: Planted) -> None:
    graded.assert_visible_pass_earns_90_percent(mistake)
