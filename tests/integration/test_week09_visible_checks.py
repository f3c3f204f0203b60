"""Week 9's visible self-checks cover what the hidden checks grade.

The promise to a learner: a submission that passes every visible check earns at least 90 % of
the week's points. Each planted submission below is the solution with one plausible mistake,
graded by the real batch grader (a fresh kernel per notebook, the hidden checks of
``solutions/checks/week09.py``). A visible check that fails shows up as an error in its check
cell, so "passes every visible check" means: no cell raised.

Every question has its plants, and every idea a hidden check grades has one that misses it.
Before these proofs, seven of the mistakes below passed every visible check; one of them (the
dedupe ids kept in the kernel's memory, not in the table) earned 13 of 15 points, under 90 %.
The visible checks now name each idea those seven missed: the id recorded in the table, in
one transaction with the work, a known id not running the work at all, a failure reaching the
caller, '#' in the middle of a binding key, one mark per relay run, nothing marked when
nothing was confirmed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .planted import Graded, Planted, grade_planted

REPO = Path(__file__).resolve().parents[2]
SOLUTION = REPO / "solutions" / "week09_messaging.ipynb"

HASH_TRIES_BOTH = "return match(p + 1, w) or (w < len(words) and match(p, w + 1))"
APPLY_ONCE = (
    "    try:\n"
    "        with db:  # one transaction: committed if the block ends, rolled back if it raises\n"
    '            db.execute("INSERT INTO processed (message_id) VALUES (?)", (message_id,))\n'
    "            apply(db)\n"
)
MARK_CONFIRMED = "    if confirmed:\n        mark_published(confirmed)\n"
READ_MODEL_FRESH = "if known is not None and known[1] >= seen:"

PLANTED = [
    # question 1: topic routing
    Planted("q1_star_takes_any_number", 'if pattern[p] == "#":', 'if pattern[p] in ("#", "*"):', False),
    Planted(
        "q1_hash_needs_a_word",
        HASH_TRIES_BOTH,
        "return w < len(words) and (match(p + 1, w + 1) or match(p, w + 1))",
        passes_visible=False,
    ),
    Planted("q1_hash_swallows_the_rest", HASH_TRIES_BOTH, "return True", passes_visible=False),
    # question 2: apply each message once
    Planted(
        "q2_ids_kept_in_memory",
        APPLY_ONCE,
        '    seen = globals().setdefault("SEEN_IDS", set())  # remembered by this kernel only\n'
        "    if message_id in seen:\n"
        "        return False\n"
        "    seen.add(message_id)\n"
        "    try:\n"
        "        with db:\n"
        "            apply(db)\n",
        passes_visible=False,
    ),
    Planted(
        "q2_id_committed_apart_from_the_work",
        APPLY_ONCE,
        "    try:\n"
        "        with db:\n"
        '            db.execute("INSERT INTO processed (message_id) VALUES (?)", (message_id,))\n'
        "        with db:\n"
        "            apply(db)\n",
        passes_visible=False,
    ),
    Planted(
        "q2_work_runs_before_the_id_is_looked_up",
        APPLY_ONCE,
        "    try:\n"
        "        with db:\n"
        "            apply(db)\n"
        '            db.execute("INSERT INTO processed (message_id) VALUES (?)", (message_id,))\n',
        passes_visible=False,
    ),
    Planted(
        "q2_failure_swallowed", "except sqlite3.IntegrityError:", "except Exception:", passes_visible=False
    ),
    # question 3: relay an outbox in order
    Planted(
        "q3_failed_message_overtaken",
        "break  # keep the order: what follows waits for the next run",
        "continue",
        passes_visible=False,
    ),
    Planted(
        "q3_marks_row_by_row",
        MARK_CONFIRMED,
        "    for row_id in confirmed:\n        mark_published([row_id])\n",
        passes_visible=False,
    ),
    Planted("q3_marks_an_empty_run", MARK_CONFIRMED, "    mark_published(confirmed)\n", passes_visible=False),
    # question 4: bind the fraud team's queue (RabbitMQ routes)
    Planted("q4_star_for_payments", '"payment.#"', '"payment.*"', passes_visible=False),
    Planted(
        "q4_hash_for_regions",
        '"order.rejected", "order.rejected.*"]',
        '"order.rejected.#"]',
        passes_visible=False,
    ),
    Planted("q4_region_forgotten", ', "order.rejected.*"]', "]", passes_visible=False),
    # question 5: read your own order, never an older one
    Planted("q5_always_the_order_service", READ_MODEL_FRESH, "if False:", passes_visible=False),
    Planted(
        "q5_only_a_newer_read_model",
        READ_MODEL_FRESH,
        "if known is not None and known[1] > seen:",
        passes_visible=False,
    ),
    Planted("q5_read_model_trusted", READ_MODEL_FRESH, "if known is not None:", passes_visible=False),
    Planted("q5_unknown_order_forgotten", READ_MODEL_FRESH, "if known[1] >= seen:", passes_visible=False),
]


@pytest.fixture(scope="module")
def graded(rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory) -> Graded:
    # rabbitmq_url: question 4's checks, visible and hidden, ask the real broker
    return grade_planted(SOLUTION, 9, PLANTED, tmp_path_factory.mktemp("week09_planted"))


def test_the_solution_passes_every_visible_check_with_full_marks(graded: Graded) -> None:
    graded.assert_solution_earns_full_marks(SOLUTION)


@pytest.mark.parametrize("mistake", PLANTED, ids=[m.name for m in PLANTED])
def test_passing_every_visible_check_earns_at_least_90_percent(graded: Graded, mistake: Planted) -> None:
    graded.assert_visible_pass_earns_90_percent(mistake)


def test_a_read_model_trusted_blindly_fails_the_visible_read_your_writes_check(graded: Graded) -> None:
    errors = graded.results["q5_read_model_trusted"].cell_errors
    assert any("FAIL a read model older than what the customer has seen" in e.error for e in errors), errors
