"""The circuit breaker, from the outside: scenarios in the manner of gobreaker's and pybreaker's suites.

Time is a fake clock moved by hand; threads meet on Events and Semaphores; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from bookstore.resilience import (
    CIRCUIT_METADATA_KEY,
    DEPENDENCY_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    BreakerSettings,
    CircuitBreaker,
    CircuitOpenError,
    State,
    Totals,
    WindowCounts,
    grpc_failure_classifier,
)
from bookstore.resilience.timeline import ManualClock

WAIT_S = 10.0  # how long a test waits for another thread before calling it stuck



class Boom(Exception):
    pass


class FakeRpcError(grpc.RpcError):
    """What a failed gRPC call raises: an RpcError with a status code."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def ok() -> str:
    return "ok"


def fail() -> None:
    raise Boom()


def raise_status(code: grpc.StatusCode) -> None:
    raise FakeRpcError(code)


def breaker_with(clock: ManualClock | None = None, **settings: Any) -> CircuitBreaker:
    return CircuitBreaker("payment", BreakerSettings(**settings), clock=clock or ManualClock())


def succeed_times(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        assert breaker.call(ok) == "ok"


def fail_times(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            breaker.call(fail)


def open_then_half_open(breaker: CircuitBreaker, clock: ManualClock) -> None:
    breaker.force_open()
    clock.advance(breaker.settings.open_timeout_s)
    assert breaker.state is State.HALF_OPEN


def in_thread(target: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def join(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(WAIT_S)
        assert not thread.is_alive(), "a thread is stuck"


# ------------------------------------------------------------------------------- CLOSED


def test_a_new_breaker_is_closed_and_passes_calls_and_their_results_through() -> None:
    breaker = breaker_with()
    assert breaker.state is State.CLOSED
    assert breaker.call(lambda a, b: a + b, 2, b=3) == 5
    snapshot = breaker.snapshot()
    assert (snapshot.name, snapshot.generation, snapshot.window) == ("payment", 0, WindowCounts(1, 0))


def test_the_default_settings_trip_once_half_of_at_least_ten_calls_have_failed() -> None:
    breaker = CircuitBreaker("payment", clock=ManualClock())
    succeed_times(breaker, 5)
    fail_times(breaker, 4)
    assert breaker.state is State.CLOSED  # 4 of 9: under the minimum of 10 calls, and under 50%
    fail_times(breaker, 1)
    assert breaker.state is State.OPEN  # 5 of 10
    assert breaker.snapshot().generation == 1


def test_ten_failures_in_a_row_trip_the_default_breaker_but_nine_do_not() -> None:
    breaker = CircuitBreaker("payment", clock=ManualClock())
    fail_times(breaker, 9)
    assert breaker.state is State.CLOSED
    fail_times(breaker, 1)
    assert breaker.state is State.OPEN


def test_the_failure_rate_is_not_judged_before_the_minimum_number_of_calls() -> None:
    breaker = breaker_with(window_size=10, minimum_calls=5, failure_rate_threshold=0.6)
    fail_times(breaker, 3)
    succeed_times(breaker, 1)
    assert breaker.state is State.CLOSED  # 75% failed, but only 4 calls so far
    fail_times(breaker, 1)
    assert breaker.state is State.OPEN  # 4 of 5 = 80%
    assert breaker.snapshot().window == WindowCounts(calls=5, failures=4)


def test_the_window_is_judged_after_every_outcome_so_a_success_can_complete_a_failing_window() -> None:
    breaker = breaker_with(window_size=10, minimum_calls=4, failure_rate_threshold=0.5)
    fail_times(breaker, 3)
    assert breaker.state is State.CLOSED  # 3 outcomes: under the minimum
    succeed_times(breaker, 1)
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.generation) == (State.OPEN, 1)  # 3 of 4 failed: the docstring's rule
    assert (snapshot.totals.successes, snapshot.totals.failures) == (1, 3)


def test_a_success_that_brings_the_window_to_its_minimum_under_the_threshold_keeps_it_closed() -> None:
    breaker = breaker_with(window_size=10, minimum_calls=4, failure_rate_threshold=0.5)
    fail_times(breaker, 1)
    succeed_times(breaker, 3)
    assert breaker.state is State.CLOSED  # 1 of 4


def test_a_failure_rate_under_the_threshold_keeps_the_breaker_closed() -> None:
    breaker = breaker_with(window_size=10, minimum_calls=10, failure_rate_threshold=0.5)
    for _ in range(20):
        succeed_times(breaker, 3)
        fail_times(breaker, 2)  # 40%, forever
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().totals.failures == 40


def test_the_sliding_window_forgets_outcomes_older_than_its_size() -> None:
    breaker = breaker_with(window_size=4, minimum_calls=4, failure_rate_threshold=0.5)
    fail_times(breaker, 1)
    succeed_times(breaker, 3)
    assert breaker.snapshot().window == WindowCounts(calls=4, failures=1)
    succeed_times(breaker, 1)
    assert breaker.snapshot().window == WindowCounts(calls=4, failures=0)  # the old failure is gone
    assert breaker.snapshot().totals.failures == 1  # though the totals keep it
    fail_times(breaker, 1)
    assert breaker.state is State.CLOSED  # 1 of 4
    fail_times(breaker, 1)
    assert breaker.state is State.OPEN  # 2 of 4


def test_reset_closes_the_breaker_with_an_empty_window_in_a_new_generation() -> None:
    breaker = breaker_with(window_size=10, minimum_calls=10)
    fail_times(breaker, 4)
    breaker.reset()
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.generation, snapshot.window) == (State.CLOSED, 1, WindowCounts(0, 0))
    breaker.force_open()
    breaker.reset()
    assert (breaker.state, breaker.snapshot().generation) == (State.CLOSED, 3)


# ------------------------------------------------------------------------------- OPEN


def test_an_open_breaker_rejects_at_once_without_calling_the_function() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=1, open_timeout_s=5.0)
    fail_times(breaker, 1)
    called: list[str] = []

    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(called.append, "should not happen")

    assert called == []
    assert (refused.value.name, refused.value.state) == ("payment", State.OPEN)
    assert refused.value.retry_after_s == 5.0
    assert "payment" in str(refused.value)
    assert breaker.snapshot().totals == Totals(
        calls=2, successes=0, failures=1, rejected=1, ignored_stale=0, abandoned=0
    )


def test_the_rejection_says_how_long_until_the_breaker_tries_again() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, open_timeout_s=5.0)
    breaker.force_open()
    clock.advance(1.5)
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(ok)
    assert refused.value.retry_after_s == pytest.approx(3.5)


def test_an_open_breaker_becomes_half_open_once_the_timeout_has_passed() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=1, open_timeout_s=5.0)
    fail_times(breaker, 1)
    clock.advance(4.5)
    assert breaker.state is State.OPEN
    clock.advance(0.5)
    assert breaker.state is State.HALF_OPEN
    assert breaker.snapshot().generation == 2


def test_an_open_breaker_whose_timeout_passed_admits_the_next_call_as_a_trial() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=1, half_open_max_calls=1)
    fail_times(breaker, 1)
    clock.advance(5.0)
    assert breaker.call(ok) == "ok"  # nobody read the state in between: admission derives it
    assert breaker.state is State.CLOSED


# ------------------------------------------------------------------------------- HALF_OPEN


def test_a_failed_trial_reopens_the_breaker_for_a_full_timeout() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, open_timeout_s=5.0)
    open_then_half_open(breaker, clock)
    succeed_times(breaker, 2)
    fail_times(breaker, 1)
    assert breaker.state is State.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(ok)
    assert refused.value.retry_after_s == 5.0


def test_enough_successful_trials_close_the_breaker_with_an_empty_window() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_calls=3)
    fail_times(breaker, 10)
    clock.advance(5.0)
    succeed_times(breaker, 2)
    assert breaker.state is State.HALF_OPEN
    succeed_times(breaker, 1)
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.window) == (State.CLOSED, WindowCounts(0, 0))
    fail_times(breaker, 9)
    assert breaker.state is State.CLOSED  # the old failures do not count against the new window


def test_half_open_admits_at_most_the_configured_number_of_concurrent_trials() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_calls=3)
    open_then_half_open(breaker, clock)
    inside, release = threading.Semaphore(0), threading.Event()

    def held_trial() -> str:
        inside.release()
        assert release.wait(WAIT_S)
        return "ok"

    trials = [in_thread(lambda: breaker.call(held_trial)) for _ in range(3)]
    for _ in trials:
        assert inside.acquire(timeout=WAIT_S)

    called: list[str] = []
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(called.append, "a fourth trial")
    # The trials' verdict closes the breaker, or opens it for the open timeout: come back then.
    assert (called, refused.value.state) == ([], State.HALF_OPEN)
    assert refused.value.retry_after_s == breaker.settings.open_timeout_s

    release.set()
    join(*trials)
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().totals.rejected == 1


def hung_trial(breaker: CircuitBreaker) -> contextlib.ExitStack:
    """A trial admitted and left running: ``stack.close()`` ends it successfully, however late."""
    stack = contextlib.ExitStack()
    stack.enter_context(breaker)
    return stack


def test_a_trial_that_never_returns_sends_the_breaker_back_to_open_after_the_maximum_wait() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_calls=1, open_timeout_s=5.0, half_open_max_wait_s=30.0)
    open_then_half_open(breaker, clock)
    stuck = hung_trial(breaker)
    clock.advance(29.0)
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(ok)
    assert (refused.value.state, refused.value.retry_after_s) == (State.HALF_OPEN, pytest.approx(1.0))

    clock.advance(1.0)
    assert breaker.state is State.OPEN  # given up on the trial: a new open timeout starts now
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(ok)
    assert refused.value.retry_after_s == 5.0
    clock.advance(5.0)
    assert breaker.state is State.HALF_OPEN
    stuck.close()  # the abandoned trial returns at last...
    assert breaker.state is State.HALF_OPEN  # ...and its success is ignored: it is not this trial's
    assert breaker.snapshot().totals.ignored_stale == 1
    succeed_times(breaker, 1)
    assert breaker.state is State.CLOSED


def test_a_late_failure_of_an_abandoned_trial_does_not_reopen_the_breaker() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_calls=1, half_open_max_wait_s=10.0)
    open_then_half_open(breaker, clock)
    with pytest.raises(Boom), breaker:
        clock.advance(10.0 + breaker.settings.open_timeout_s)  # nobody looked in the meantime
        raise Boom("the abandoned trial fails at last")
    snapshot = breaker.snapshot()
    # Given up at 10 s (OPEN), half-open again at 15 s: the late failure belongs to neither.
    assert (snapshot.state, snapshot.totals.ignored_stale) == (State.HALF_OPEN, 1)
    assert snapshot.totals.failures == 0


def test_each_trial_outcome_restarts_the_wait_for_the_trials_still_in_flight() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_calls=3, half_open_max_wait_s=10.0)
    open_then_half_open(breaker, clock)
    stuck = hung_trial(breaker)
    clock.advance(8.0)
    succeed_times(breaker, 1)  # progress at 8 s: the stuck trial gets 10 s from here
    clock.advance(9.0)
    assert breaker.state is State.HALF_OPEN
    clock.advance(1.0)
    assert breaker.state is State.OPEN
    stuck.close()
    assert breaker.snapshot().totals.ignored_stale == 1


def test_a_half_open_breaker_with_no_trial_in_flight_waits_for_one_however_long() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_wait_s=10.0)
    open_then_half_open(breaker, clock)
    clock.advance(3600.0)
    assert breaker.state is State.HALF_OPEN  # no trial was admitted, so none is overdue
    succeed_times(breaker, 3)
    assert breaker.state is State.CLOSED


def test_without_a_maximum_wait_a_hung_trial_holds_the_breaker_half_open() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_calls=1, half_open_max_wait_s=None)
    open_then_half_open(breaker, clock)
    stuck = hung_trial(breaker)
    clock.advance(3600.0)
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(ok)
    assert (refused.value.state, refused.value.retry_after_s) == (State.HALF_OPEN, 5.0)
    stuck.close()
    assert breaker.state is State.CLOSED


# ------------------------------------------------------------------------------- generations


def test_a_slow_failure_admitted_while_closed_cannot_reopen_a_half_open_breaker() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=3, half_open_max_calls=1)
    with pytest.raises(Boom), breaker:  # admitted in generation 0, still running...
        fail_times(breaker, 3)  # ...while others trip the breaker (generation 1)
        clock.advance(5.0)
        assert breaker.state is State.HALF_OPEN  # generation 2
        raise Boom("the slow call finally fails")

    assert breaker.state is State.HALF_OPEN
    assert breaker.snapshot().totals.ignored_stale == 1
    succeed_times(breaker, 1)
    assert breaker.state is State.CLOSED


def test_a_slow_success_admitted_while_closed_cannot_close_a_half_open_breaker() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=3, half_open_max_calls=1)
    started, finish = threading.Event(), threading.Event()

    def slow_call() -> str:
        started.set()
        assert finish.wait(WAIT_S)
        return "late"

    slow = in_thread(lambda: breaker.call(slow_call))
    assert started.wait(WAIT_S)
    fail_times(breaker, 3)
    clock.advance(5.0)
    assert breaker.state is State.HALF_OPEN

    finish.set()
    join(slow)
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.totals.ignored_stale, snapshot.totals.successes) == (
        State.HALF_OPEN,
        1,
        0,
    )


def test_every_transition_and_every_reset_starts_a_new_generation() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=1, half_open_max_calls=1)
    generations = [breaker.snapshot().generation]
    fail_times(breaker, 1)  # CLOSED -> OPEN
    generations.append(breaker.snapshot().generation)
    clock.advance(5.0)  # OPEN -> HALF_OPEN, on read
    generations.append(breaker.snapshot().generation)
    succeed_times(breaker, 1)  # HALF_OPEN -> CLOSED
    generations.append(breaker.snapshot().generation)
    succeed_times(breaker, 5)  # no transition
    generations.append(breaker.snapshot().generation)
    breaker.reset()  # CLOSED -> CLOSED, with an empty window
    generations.append(breaker.snapshot().generation)
    assert generations == [0, 1, 2, 3, 3, 4]


# ------------------------------------------------------------------------------- listeners


def test_listeners_see_every_transition_exactly_once_and_in_order() -> None:
    clock = ManualClock()
    seen: list[tuple[str, State, State, int]] = []
    breaker = CircuitBreaker(
        "payment",
        BreakerSettings(consecutive_failures=2, half_open_max_calls=2),
        clock=clock,
        listeners=[lambda *transition: seen.append(transition)],
    )
    fail_times(breaker, 2)
    clock.advance(5.0)
    for _ in range(3):
        assert breaker.state is State.HALF_OPEN
    fail_times(breaker, 1)
    clock.advance(5.0)
    breaker.snapshot()
    succeed_times(breaker, 2)
    breaker.reset()  # already closed: a new window, no transition

    assert seen == [
        ("payment", State.CLOSED, State.OPEN, 1),
        ("payment", State.OPEN, State.HALF_OPEN, 2),
        ("payment", State.HALF_OPEN, State.OPEN, 3),
        ("payment", State.OPEN, State.HALF_OPEN, 4),
        ("payment", State.HALF_OPEN, State.CLOSED, 5),
    ]


def test_a_listener_added_later_sees_later_transitions() -> None:
    breaker = breaker_with()
    seen: list[State] = []
    breaker.add_listener(lambda _name, _old, new, _generation: seen.append(new))
    breaker.force_open()
    assert seen == [State.OPEN]


def test_listeners_run_outside_the_lock_so_they_may_read_the_breaker() -> None:
    seen: list[tuple[State, int]] = []
    breaker = breaker_with(consecutive_failures=1)
    breaker.add_listener(lambda *_: seen.append((breaker.state, breaker.snapshot().totals.failures)))
    join(in_thread(lambda: fail_times(breaker, 1)))  # a listener under the lock would hang here
    assert seen == [(State.OPEN, 1)]


def test_a_failing_listener_is_logged_and_neither_stops_the_others_nor_reaches_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[State] = []

    def broken(*_: object) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker(
        "payment",
        BreakerSettings(consecutive_failures=1),
        clock=ManualClock(),
        listeners=[broken, lambda _n, _o, new, _g: seen.append(new)],
    )
    fail_times(breaker, 1)  # raises Boom, not RuntimeError
    assert seen == [State.OPEN]
    assert "listener of breaker 'payment' failed" in caplog.text


# ------------------------------------------------------------------------------- what counts


def test_neutral_grpc_errors_such_as_not_found_pass_through_and_do_not_count_as_failures() -> None:
    breaker = breaker_with()
    for _ in range(30):
        with pytest.raises(FakeRpcError) as raised:
            breaker.call(raise_status, grpc.StatusCode.NOT_FOUND)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.totals.failures) == (State.CLOSED, 0)
    assert snapshot.window == WindowCounts(calls=20, failures=0)

    for _ in range(10):
        with pytest.raises(FakeRpcError):
            breaker.call(raise_status, grpc.StatusCode.UNAVAILABLE)
    assert breaker.state is State.OPEN  # 10 of the last 20


@pytest.mark.parametrize(
    ("code", "counts"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.INTERNAL, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.ALREADY_EXISTS, False),
        (grpc.StatusCode.FAILED_PRECONDITION, False),
        (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.UNAUTHENTICATED, False),
    ],
)
def test_the_grpc_classifier_counts_only_codes_that_say_the_server_is_unwell(
    code: grpc.StatusCode, counts: bool
) -> None:
    assert grpc_failure_classifier()(FakeRpcError(code)) is counts


def test_the_grpc_classifier_counts_other_exceptions_as_failures_by_default() -> None:
    classify = grpc_failure_classifier()
    assert classify(ConnectionRefusedError()) is True
    assert classify(grpc.RpcError()) is True  # no status code to judge by


def test_the_grpc_classifier_takes_its_own_codes_and_may_let_other_exceptions_pass() -> None:
    classify = grpc_failure_classifier({grpc.StatusCode.UNAVAILABLE}, other_errors_are_failures=False)
    assert classify(FakeRpcError(grpc.StatusCode.UNAVAILABLE)) is True
    assert classify(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED)) is False
    assert classify(ValueError()) is False


class DownstreamRefusal(FakeRpcError):
    """UNAVAILABLE from a healthy server whose own breaker refused to call its dependency."""

    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((CIRCUIT_METADATA_KEY, "payment"), (RETRY_AFTER_METADATA_KEY, "1.500"))


class UnreadableMetadata(FakeRpcError):
    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        raise RuntimeError("the call object cannot say")


class DependencyFailurePassedOn(FakeRpcError):
    """UNAVAILABLE or DEADLINE_EXCEEDED from a healthy server whose dependency failed a call."""

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((DEPENDENCY_METADATA_KEY, "payment.Pay"),)


def test_the_grpc_classifier_does_not_blame_a_server_for_its_own_breakers_refusal() -> None:
    assert grpc_failure_classifier()(DownstreamRefusal()) is False
    assert grpc_failure_classifier(passed_on_errors_are_failures=True)(DownstreamRefusal()) is True


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_the_grpc_classifier_does_not_blame_a_server_for_a_dependency_failure_it_passes_on(
    code: grpc.StatusCode,
) -> None:
    passed_on = DependencyFailurePassedOn(code)
    assert grpc_failure_classifier()(passed_on) is False
    assert grpc_failure_classifier(passed_on_errors_are_failures=True)(passed_on) is True


def test_the_grpc_classifier_judges_by_the_code_alone_when_the_metadata_cannot_be_read() -> None:
    assert grpc_failure_classifier()(UnreadableMetadata(grpc.StatusCode.UNAVAILABLE)) is True


def test_any_callable_can_decide_what_counts_as_a_failure() -> None:
    breaker = breaker_with(consecutive_failures=1, is_failure=lambda error: not isinstance(error, KeyError))
    stock: dict[str, int] = {}
    with pytest.raises(KeyError):
        breaker.call(stock.__getitem__, "missing")
    assert breaker.state is State.CLOSED
    fail_times(breaker, 1)
    assert breaker.state is State.OPEN


def test_the_consecutive_failures_policy_trips_before_the_window_has_its_minimum() -> None:
    breaker = breaker_with(consecutive_failures=3)
    fail_times(breaker, 2)
    assert breaker.state is State.CLOSED
    fail_times(breaker, 1)
    assert breaker.state is State.OPEN
    assert breaker.snapshot().window.calls == 3


def test_a_success_breaks_a_run_of_consecutive_failures() -> None:
    breaker = breaker_with(consecutive_failures=3)
    fail_times(breaker, 2)
    succeed_times(breaker, 1)
    fail_times(breaker, 2)
    assert breaker.state is State.CLOSED


# ------------------------------------------------------------------------------- threads


def test_ten_threads_making_ten_thousand_calls_each_are_all_counted_exactly() -> None:
    # Every thread alternates success and failure, so in any 20 consecutive outcomes a thread
    # that contributed k of them contributed at most ceil(k/2) failures: at most 15 of 20 fail,
    # and a threshold of 100% over a full window of 20 can never be reached.
    breaker = breaker_with(window_size=20, minimum_calls=20, failure_rate_threshold=1.0)
    start = threading.Barrier(10)

    def worker() -> None:
        start.wait(WAIT_S)
        for i in range(10_000):
            if i % 2:
                with pytest.raises(Boom):
                    breaker.call(fail)
            else:
                breaker.call(ok)

    join(*[in_thread(worker) for _ in range(10)])
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.generation) == (State.CLOSED, 0)
    assert snapshot.totals == Totals(
        calls=100_000, successes=50_000, failures=50_000, rejected=0, ignored_stale=0, abandoned=0
    )
    # Each thread's last call fails, so its share of the final window ends in a failure: between
    # half and (20 + 10) / 2 of the last 20 outcomes, depending on how the threads interleaved.
    assert snapshot.window.calls == 20
    assert 10 <= snapshot.window.failures <= 15


def test_under_contention_the_breaker_trips_once_and_accounts_for_every_call() -> None:
    seen: list[State] = []
    breaker = CircuitBreaker(
        "payment", clock=ManualClock(), listeners=[lambda _n, _o, new, _g: seen.append(new)]
    )
    start = threading.Barrier(10)

    def worker() -> None:
        start.wait(WAIT_S)
        for _ in range(10_000):
            with pytest.raises((Boom, CircuitOpenError)):
                breaker.call(fail)

    join(*[in_thread(worker) for _ in range(10)])
    totals = breaker.snapshot().totals
    assert seen == [State.OPEN]
    assert totals.calls == 100_000
    assert totals.successes + totals.failures + totals.rejected + totals.ignored_stale == 100_000
    assert totals.failures >= 10


def test_under_random_concurrent_load_listeners_see_an_unbroken_chain_of_transitions() -> None:
    clock, clock_lock = ManualClock(), threading.Lock()
    seen: list[tuple[str, State, State, int]] = []
    breaker = CircuitBreaker(
        "payment",
        BreakerSettings(window_size=10, minimum_calls=5, open_timeout_s=1.0, half_open_max_calls=3),
        clock=clock,
        listeners=[lambda *transition: seen.append(transition)],
    )

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(5_000):
            if rng.random() < 0.01:
                with clock_lock:
                    clock.advance(0.3)
            with contextlib.suppress(Boom, CircuitOpenError):
                breaker.call(fail if rng.random() < 0.4 else ok)

    join(*[in_thread(functools.partial(worker, seed)) for seed in range(8)])
    snapshot = breaker.snapshot()
    totals = snapshot.totals
    assert totals.calls == 40_000
    assert totals.successes + totals.failures + totals.rejected + totals.ignored_stale == 40_000
    assert len(seen) == snapshot.generation > 10  # no resets: one generation per transition
    assert seen[0][1:] == (State.CLOSED, State.OPEN, 1)
    for (_, _, new, generation), (_, old, _, next_generation) in itertools.pairwise(seen):
        assert (old, next_generation) == (new, generation + 1)


def test_the_protected_call_runs_without_the_breaker_lock_held() -> None:
    breaker = breaker_with()

    def call_that_waits_for_another_call() -> str:
        # With a lock held across calls (as pybreaker does) this inner thread would wait forever.
        join(in_thread(lambda: breaker.call(ok)))
        return "outer"

    assert breaker.call(call_that_waits_for_another_call) == "outer"
    assert breaker.snapshot().totals.successes == 2


# ------------------------------------------------------------------------------- ways to use it


def test_the_breaker_decorates_a_function_and_keeps_its_name() -> None:
    breaker = breaker_with(consecutive_failures=1)

    @breaker
    def add(a: int, b: int) -> int:
        """Adds."""
        return a + b

    assert (add(2, 3), add.__name__, add.__doc__) == (5, "add", "Adds.")
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        add(2, 3)


def test_a_with_block_records_an_exception_raised_inside_it_and_lets_it_propagate() -> None:
    breaker = breaker_with(consecutive_failures=2)
    with breaker:
        pass
    for _ in range(2):
        with pytest.raises(Boom), breaker:
            raise Boom()
    assert breaker.state is State.OPEN
    ran: list[bool] = []
    with pytest.raises(CircuitOpenError), breaker:
        ran.append(True)
    assert ran == []
    assert breaker.snapshot().totals == Totals(
        calls=4, successes=1, failures=2, rejected=1, ignored_stale=0, abandoned=0
    )


def test_nested_with_blocks_on_two_breakers_each_record_their_own_outcome() -> None:
    outer, inner = breaker_with(), breaker_with()
    with pytest.raises(Boom), outer:
        with inner:
            pass
        raise Boom()
    assert (outer.snapshot().totals.failures, inner.snapshot().totals.successes) == (1, 1)


def test_a_keyboard_interrupt_is_recorded_as_abandoned_not_as_a_failure() -> None:
    breaker = breaker_with(consecutive_failures=1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.totals.abandoned, snapshot.window.calls) == (State.CLOSED, 1, 0)


def test_asyncio_code_uses_call_async_async_with_and_decorated_coroutines() -> None:
    breaker = breaker_with(consecutive_failures=3)

    @breaker
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def failing() -> None:
        await asyncio.sleep(0)
        raise Boom()

    async def scenario() -> list[int]:
        results = [await breaker.call_async(double, 1), await double(2)]
        async with breaker:
            results.append(await double(3))
        with pytest.raises(Boom):
            await breaker.call_async(failing)
        with pytest.raises(Boom):
            async with breaker:
                await failing()
        with pytest.raises(Boom):
            await breaker.call_async(failing)
        with pytest.raises(CircuitOpenError):
            await double(4)
        return results

    assert asyncio.run(scenario()) == [2, 4, 6]
    assert breaker.state is State.OPEN


def test_concurrent_tasks_in_async_with_blocks_keep_their_admissions_apart() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, consecutive_failures=2, half_open_max_calls=1)

    async def slow_block(go: asyncio.Event, fails: bool) -> None:
        async with breaker:
            await go.wait()
            if fails:
                raise Boom()

    async def scenario() -> None:
        go_old, go_trial = asyncio.Event(), asyncio.Event()
        old = asyncio.create_task(slow_block(go_old, fails=True))
        await asyncio.sleep(0)  # the old block is admitted while CLOSED
        fail_times(breaker, 2)
        clock.advance(5.0)
        trial = asyncio.create_task(slow_block(go_trial, fails=False))
        await asyncio.sleep(0)  # the trial is admitted while HALF_OPEN
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)  # the one trial slot is taken
        go_old.set()
        with pytest.raises(Boom):
            await old  # stale: must not re-open the breaker nor take the trial's place
        go_trial.set()
        await trial

    asyncio.run(scenario())
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.totals.ignored_stale) == (State.CLOSED, 1)


def test_a_cancelled_trial_frees_its_slot_without_a_verdict() -> None:
    clock = ManualClock()
    breaker = breaker_with(clock, half_open_max_calls=1)
    open_then_half_open(breaker, clock)

    async def scenario() -> None:
        hang = asyncio.Event()
        trial = asyncio.create_task(breaker.call_async(hang.wait))
        await asyncio.sleep(0)
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(asyncio.sleep, 0)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
        assert breaker.state is State.HALF_OPEN
        await breaker.call_async(asyncio.sleep, 0)  # the slot is free again

    asyncio.run(scenario())
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.totals.abandoned, snapshot.totals.rejected) == (State.CLOSED, 1, 1)


# ------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"window_size": 0}, "window_size"),
        ({"failure_rate_threshold": 0.0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"window_size": 5, "minimum_calls": 6}, "minimum_calls"),
        ({"consecutive_failures": 0}, "consecutive_failures"),
        ({"open_timeout_s": -1.0}, "open_timeout_s"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"half_open_max_wait_s": 0.0}, "half_open_max_wait_s"),
    ],
)
def test_settings_that_make_no_sense_are_refused_naming_the_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerSettings(**bad)


def test_the_default_settings_are_the_documented_ones() -> None:
    settings = BreakerSettings()
    assert (
        settings.window_size,
        settings.failure_rate_threshold,
        settings.minimum_calls,
        settings.consecutive_failures,
        settings.open_timeout_s,
        settings.half_open_max_calls,
        settings.half_open_max_wait_s,
    ) == (20, 0.5, 10, None, 5.0, 3, 30.0)
    assert settings.is_failure == grpc_failure_classifier()
