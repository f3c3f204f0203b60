"""Week 7's visible self-checks cover what the hidden checks grade.

The promise to a learner: a submission that passes every visible check earns at least 90 % of
the week's points. Each planted submission below is the solution with one plausible mistake,
graded by the real batch grader (a fresh kernel per notebook, the hidden checks of
``solutions/checks/week07.py``). A visible check that fails shows up as an error in its check
cell, so "passes every visible check" means: no cell raised.

The mistakes are the ones learners make, and one that the visible checks used to miss: ``ship``
without its compensation, which passed them all while the hidden checks took 2 points off. A
timeout at ``ship`` is possibly done, so it must be cancelled; a visible check now says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .planted import Graded, Planted, grade_planted

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / "week07_saga.ipynb"


PLANTED = [
    Planted(
        "ship_without_compensation",
        'Step("ship", lambda ctx: courier.book(order_id(ctx)), lambda ctx: courier.cancel(order_id(ctx))),',
        'Step("ship", lambda ctx: courier.book(order_id(ctx))),',
        passes_visible=False,
    ),
    Planted(
        "plan_reverses_in_place",
        "return possibly_done + list(reversed(completed))",
        "completed.reverse()\n    return possibly_done + completed",
        passes_visible=False,
    ),
    Planted(
        "plan_forgets_possibly_done",
        "return possibly_done + list(reversed(completed))",
        "return list(reversed(completed))",
        passes_visible=False,
    ),
    Planted(
        "plan_undoes_a_refused_first_step",
        "return possibly_done + list(reversed(completed))",
        "return possibly_done + list(reversed(completed)) if completed else [failed]",
        passes_visible=True,  # one hidden point lost: 13 of 14 is still above 90 %
    ),
    Planted(
        "refund_remembers_in_memory",
        '    if any(entry.kind in ("refund", "void") for entry in entries):\n'
        "        return  # undone already: a retry changes nothing\n",
        '    refunded = globals().setdefault("REFUNDED_IDS", set())  # remembered by this kernel only\n'
        "    if order_id in refunded:\n"
        "        return\n"
        "    refunded.add(order_id)\n",
        passes_visible=False,
    ),
    Planted(
        "refund_never_voids",
        'ledger.add(order_id, "void", 0)',
        "pass",
        passes_visible=False,
    ),
    Planted(
        "steps_misnamed",
        'Step("reserve", lambda ctx',
        'Step("hold", lambda ctx',
        passes_visible=False,
    ),
    Planted("pivot_too_early", 'PIVOT = "dispatch"', 'PIVOT = "charge"', passes_visible=False),
    Planted("no_pivot_at_all", 'PIVOT = "dispatch"', 'PIVOT = "notify"', passes_visible=False),
    Planted(
        "e_mail_before_dispatch",
        'CHECKOUT_PLAN = ["reserve", "charge", "dispatch", "notify"]',
        'CHECKOUT_PLAN = ["reserve", "charge", "notify", "dispatch"]',
        passes_visible=False,
    ),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    return grade_planted(SOLUTION, 7, PLANTED, tmp_path_factory.mktemp("week07_planted"))


def test_the_solution_passes_every_visible_check_with_full_marks(graded: Graded) -> None:
    graded.assert_solution_earns_full_marks(SOLUTION)


@pytest.mark.parametrize("mistake", PLANTED, ids=[m.name for m in PLANTED])
def test_passing_every_visible_check_earns_at_least_90_percent(graded: Graded, mistake: Planted) -> None:
    graded.assert_visible_pass_earns_90_percent(mistake)


def test_ship_without_its_compensation_fails_a_visible_check(graded: Graded) -> None:
    errors = graded.results["ship_without_compensation"].cell_errors
    assert any("FAIL a lost answer cancels the pickup" in error.error for error in errors), errors
