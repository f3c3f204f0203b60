"""Week 8's visible self-checks cover what the hidden checks grade.

The promise to a learner: a submission that passes every visible check earns at least 90 % of
the week's points. Each planted submission below is the solution with one plausible mistake,
graded by the real batch grader (a fresh kernel per notebook, the hidden checks of
``solutions/checks/week08.py``). A visible check that fails shows up as an error in its check
cell, so "passes every visible check" means: no cell raised.

Questions 1-3 each plant a mistake in one transition, classification or retry rule. Question 4,
the design task, plants settings a learner could choose: the lesson's demo settings (far too
many trials into a slow payment), a long open timeout (p99 met, recovery missed), more trial
calls, a threshold above the fault rate, and a timeout that passes the visible drills but
misses the p99 on one hidden drill: it costs 1 point of 16, which the promise allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .planted import Graded, Planted, grade_planted

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / "week08_circuit_breaker.ipynb"

PLANTED = [
    # question 1: the transitions of MiniBreaker
    Planted(
        "opens_one_failure_late",
        "if self.failures_in_a_row >= self.failure_threshold:",
        "if self.failures_in_a_row > self.failure_threshold:",
        passes_visible=False,
    ),
    Planted(
        "a_success_does_not_reset_the_count",
        "self.failures_in_a_row = 0 if success else self.failures_in_a_row + 1",
        "self.failures_in_a_row += 0 if success else 1",
        passes_visible=False,
    ),
    Planted(
        "half_open_admits_every_call",
        "if self.state is State.HALF_OPEN and not self.trial_in_flight:",
        "if self.state is State.HALF_OPEN:",
        passes_visible=False,
    ),
    Planted(
        "a_failed_trial_keeps_the_old_opening_time",
        "            else:\n                self.state, self.opened_at = State.OPEN, self.clock()",
        "            else:\n                self.state = State.OPEN",
        passes_visible=False,
    ),
    Planted(
        "closing_keeps_the_count",
        "self.state, self.failures_in_a_row = State.CLOSED, 0",
        "self.state = State.CLOSED",
        passes_visible=False,
    ),
    # question 2: which codes count
    Planted(
        "not_found_counts",
        "grpc.StatusCode.UNAVAILABLE,         # down, or not reachable",
        "grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND,",
        passes_visible=False,
    ),
    Planted(
        "deadline_exceeded_does_not_count",
        "        grpc.StatusCode.DEADLINE_EXCEEDED,   # too slow\n",
        "",
        passes_visible=False,
    ),
    Planted(  # RESOURCE_EXHAUSTED and INTERNAL are the learner's call: a right answer too
        "only_unavailable_and_deadline_count",
        "        grpc.StatusCode.RESOURCE_EXHAUSTED,  # overloaded\n"
        "        grpc.StatusCode.INTERNAL,            # broken inside\n",
        "",
        passes_visible=True,
    ),
    # question 3: retries
    Planted(
        "retries_refusals",
        "        except CircuitOpenError:\n"
        "            raise  # a refusal is an answer: the breaker has judged the dependency already\n",
        "",
        passes_visible=False,
    ),
    Planted(
        "constant_backoff",
        "sleep(backoff_s * 2 ** (attempt - 1))",
        "sleep(backoff_s)",
        passes_visible=False,
    ),
    Planted(
        "retries_every_error",
        "if error.code() != grpc.StatusCode.UNAVAILABLE or attempt >= attempts:",
        "if attempt >= attempts:",
        passes_visible=False,
    ),
    # question 4: the design task
    Planted("the_lessons_demo_timeout", "open_timeout_s=12.0,", "open_timeout_s=0.8,", passes_visible=False),
    Planted("a_long_open_timeout", "open_timeout_s=12.0,", "open_timeout_s=30.0,", passes_visible=False),
    Planted("two_trial_calls", "half_open_max_calls=1,", "half_open_max_calls=2,", passes_visible=False),
    Planted(
        "a_threshold_above_the_fault_rate",
        "failure_rate_threshold=0.5,",
        "failure_rate_threshold=0.9,",
        passes_visible=False,
    ),
    Planted(  # passes the visible drills, misses the p99 on one hidden drill: 15 of 16
        "an_open_timeout_with_little_margin",
        "open_timeout_s=12.0,",
        "open_timeout_s=10.0,",
        passes_visible=True,
    ),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Graded:
    return grade_planted(SOLUTION, 8, PLANTED, tmp_path_factory.mktemp("week08_planted"))


def test_the_solution_passes_every_visible_check_with_full_marks(graded: Graded) -> None:
    graded.assert_solution_earns_full_marks(SOLUTION)


@pytest.mark.parametrize("mistake", PLANTED, ids=[m.name for m in PLANTED])
def test_passing_every_visible_check_earns_at_least_90_percent(graded: Graded, mistake: Planted) -> None:
    graded.assert_visible_pass_earns_90_percent(mistake)


def test_a_long_open_timeout_fails_the_visible_recovery_check(graded: Graded) -> None:
    """The design task's conflict, seen by the learner: the p99 is met, the recovery is not."""
    errors = graded.results["a_long_open_timeout"].cell_errors
    assert any("FAIL drill 2: CLOSED for good within 15 s" in error.error for error in errors), errors
