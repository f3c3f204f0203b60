"""The breaker's two steps: ``admit()`` hands out a ticket, and the ticket is settled with the outcome.

Time is a ManualClock moved by hand; nothing sleeps.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import grpc
import pytest

from bookstore.resilience import (
    BreakerSettings,
    CircuitBreaker,
    CircuitOpenError,
    State,
    Ticket,
    Totals,
    add_decision_listener,
    remove_decision_listener,
)
from bookstore.resilience.timeline import ManualClock

from ...fakes import FakeRpcError


class Boom(Exception):
    pass


def breaker_with(clock: ManualClock, **settings: Any) -> CircuitBreaker:
    return CircuitBreaker("payment", BreakerSettings(**settings), clock=clock)


def half_open(clock: ManualClock, **settings: Any) -> CircuitBreaker:
    """A breaker that has just become HALF_OPEN: forced open, then its timeout waited out."""
    breaker = breaker_with(clock, open_timeout_s=5.0, **settings)
    breaker.force_open()
    clock.advance(5.0)
    return breaker


def totals(breaker: CircuitBreaker) -> Totals:
    return breaker.snapshot().totals


def test_a_call_admitted_while_closed_gets_a_ticket_that_is_no_trial() -> None:
    breaker = breaker_with(ManualClock())
    ticket = breaker.admit()
    assert (ticket.breaker, ticket.generation, ticket.trial, ticket.settled) == (breaker, 0, False, False)
    assert ticket.success() is True
    assert ticket.settled
    assert totals(breaker) == Totals(
        calls=1, successes=1, failures=0, rejected=0, ignored_stale=0, abandoned=0
    )


def test_an_admitted_call_counts_nowhere_until_its_ticket_is_settled() -> None:
    breaker = breaker_with(ManualClock(), window_size=2, minimum_calls=2)
    first, second = breaker.admit(), breaker.admit()
    assert breaker.snapshot().window.calls == 0
    first.raised(Boom())
    second.raised(Boom())
    assert breaker.state is State.OPEN


def test_a_ticket_settled_twice_is_refused_and_its_first_outcome_stands() -> None:
    breaker = breaker_with(ManualClock(), consecutive_failures=1)
    ticket = breaker.admit()
    ticket.success()
    with pytest.raises(RuntimeError, match="settled already"):
        ticket.raised(Boom())
    with pytest.raises(RuntimeError, match="settled already"):
        ticket.abandon()
    assert breaker.state is State.CLOSED  # the failure reported second was not counted
    assert totals(breaker).successes == 1 and totals(breaker).failures == 0


def test_a_trial_ticket_settled_twice_frees_its_slot_once() -> None:
    clock = ManualClock()
    breaker = half_open(clock, half_open_max_calls=2)
    trial = breaker.admit()
    other = breaker.admit()
    trial.abandon()
    with pytest.raises(RuntimeError):
        trial.abandon()
    breaker.admit()  # the one slot freed is taken again...
    with pytest.raises(CircuitOpenError):
        breaker.admit()  # ...and a second abandon freed none
    assert other.trial


def test_a_call_admitted_while_half_open_is_a_trial_that_holds_a_slot() -> None:
    clock = ManualClock()
    breaker = half_open(clock, half_open_max_calls=1)
    trial = breaker.admit()
    assert trial.trial and trial.generation == breaker.snapshot().generation
    with pytest.raises(CircuitOpenError) as refused:
        breaker.admit()
    assert refused.value.state is State.HALF_OPEN
    assert trial.success() is True
    assert breaker.state is State.CLOSED


def test_a_failed_trial_ticket_reopens_the_breaker() -> None:
    clock = ManualClock()
    breaker = half_open(clock, half_open_max_calls=2)
    trial = breaker.admit()
    trial.raised(Boom())
    assert breaker.state is State.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        breaker.admit()
    assert refused.value.retry_after_s == pytest.approx(5.0)


def test_an_abandoned_trial_frees_its_slot_without_a_verdict() -> None:
    clock = ManualClock()
    breaker = half_open(clock, half_open_max_calls=1)
    breaker.admit().abandon()
    assert breaker.state is State.HALF_OPEN
    assert breaker.admit().trial
    assert totals(breaker).abandoned == 1


def test_a_trial_ticket_given_up_on_is_stale_when_it_is_settled_at_last() -> None:
    clock = ManualClock()
    breaker = half_open(clock, half_open_max_calls=1, half_open_max_wait_s=30.0)
    hung = breaker.admit()
    clock.advance(30.0)  # the wait for its outcome runs out: OPEN again, a new generation
    assert breaker.state is State.OPEN
    assert hung.raised(Boom()) is False
    assert totals(breaker).ignored_stale == 1
    clock.advance(5.0)
    assert breaker.admit().trial  # the late failure did not re-open it for another timeout


def test_a_ticket_from_before_a_change_of_state_is_ignored_as_stale() -> None:
    breaker = breaker_with(ManualClock(), consecutive_failures=1)
    slow = breaker.admit()
    breaker.admit().raised(Boom())  # opens the breaker: generation 1
    assert slow.success() is False
    assert breaker.state is State.OPEN
    assert totals(breaker).ignored_stale == 1


def test_a_refused_admission_raises_and_hands_out_no_ticket() -> None:
    breaker = breaker_with(ManualClock())
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    assert totals(breaker) == Totals(
        calls=1, successes=0, failures=0, rejected=1, ignored_stale=0, abandoned=0
    )


def test_the_classifier_decides_whether_a_raised_error_counts_against_the_dependency() -> None:
    breaker = breaker_with(ManualClock(), consecutive_failures=1)
    breaker.admit().raised(FakeRpcError(grpc.StatusCode.NOT_FOUND))  # an answer, not an outage
    assert breaker.state is State.CLOSED and totals(breaker).successes == 1
    breaker.admit().raised(FakeRpcError(grpc.StatusCode.UNAVAILABLE))
    assert breaker.state is State.OPEN


@pytest.mark.parametrize(
    ("error", "counted_as"),
    [(None, "successes"), (Boom(), "failures"), (KeyboardInterrupt(), "abandoned")],
)
def test_settle_takes_however_the_call_ended(error: BaseException | None, counted_as: str) -> None:
    breaker = breaker_with(ManualClock())
    breaker.admit().settle(error)
    assert getattr(totals(breaker), counted_as) == 1


def test_a_ticket_may_be_settled_on_another_thread() -> None:
    breaker = breaker_with(ManualClock(), consecutive_failures=1)
    ticket = breaker.admit()
    settler = threading.Thread(target=ticket.raised, args=(Boom(),))
    settler.start()
    settler.join(timeout=10)
    assert breaker.state is State.OPEN


def test_with_an_admitted_ticket_the_block_settles_it_on_leaving() -> None:
    breaker = breaker_with(ManualClock(), consecutive_failures=2)
    with breaker.admit() as ticket:
        pass
    assert ticket.settled and totals(breaker).successes == 1
    with pytest.raises(Boom), breaker.admit():
        raise Boom()
    assert totals(breaker).failures == 1


def test_a_ticket_says_what_it_is() -> None:
    ticket = breaker_with(ManualClock()).admit()
    assert repr(ticket) == "Ticket('payment', call, generation=0, settled=False)"
    assert isinstance(ticket, Ticket)


@pytest.fixture
def decisions() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def listener(event: str, attributes: Mapping[str, str | int | float]) -> None:
        seen.append((event, dict(attributes)))

    add_decision_listener(listener)
    try:
        yield seen
    finally:
        remove_decision_listener(listener)


def test_decision_listeners_hear_refusals_trials_and_changes_of_state_but_not_ordinary_calls(
    decisions: list[tuple[str, dict[str, Any]]],
) -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=1, open_timeout_s=5.0, half_open_max_calls=1)
    breaker.admit().success()
    assert decisions == []
    breaker.admit().raised(Boom())
    with pytest.raises(CircuitOpenError):
        breaker.admit()
    clock.advance(5.0)
    breaker.admit().success()
    assert [event for event, _ in decisions] == [
        "circuit_breaker.state_change",
        "circuit_breaker.rejected",
        "circuit_breaker.state_change",
        "circuit_breaker.trial_admitted",
        "circuit_breaker.state_change",
    ]
    assert decisions[0][1] == {"breaker": "payment", "from": "CLOSED", "to": "OPEN", "generation": 1}
    assert decisions[3][1] == {"breaker": "payment", "generation": 2}


def test_a_removed_decision_listener_hears_nothing_more() -> None:
    heard: list[str] = []

    def listener(event: str, _attributes: Mapping[str, str | int | float]) -> None:
        heard.append(event)

    add_decision_listener(listener)
    add_decision_listener(listener)  # added once, however often
    breaker = breaker_with(ManualClock())
    breaker.force_open()
    remove_decision_listener(listener)
    breaker.reset()
    assert heard == ["circuit_breaker.state_change"]


def test_the_saga_and_the_status_mapping_load_without_the_breaker() -> None:
    # They share CircuitOpenError and the metadata keys through bookstore.rpc.failures only.
    probe = (
        "import sys, bookstore.saga, bookstore.platform.status; "
        "print(sorted(m for m in sys.modules if m.startswith('bookstore.resilience')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert loaded == "[]"
