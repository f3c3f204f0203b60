"""Hidden checks for week 8 (instructor side: never handed out, never shown in feedback).

Each check receives the learner kernel's globals and raises CheckFailed with a message that
says which behaviour was expected, without revealing these inputs' source or the answers.
Time is a ManualClock, so no check sleeps; no cluster is needed. Question 4 measures the
learner's breaker settings with ``payment_drill``: the real breaker against a modelled payment,
in simulated time, so a grading machine's load cannot change a grade.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import grpc

from bookstore.grading.checks import CheckFailed, check
from bookstore.resilience import BreakerSettings, CircuitOpenError, CircuitOpenRpcError, State
from bookstore.resilience.drill import DrillResult, Scenario, payment_drill
from bookstore.resilience.timeline import ManualClock

WEEK = 8
NEEDS_CLUSTER = False


def _learner(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        raise CheckFailed(f"{name} is not defined")
    return ns[name]


# ----------------------------------------------------------------------------- question 1


def _state(breaker: Any) -> str:
    """The breaker's state by name, whether it is kept as a State or as a string."""
    state = breaker.state
    if isinstance(state, State):
        return state.name
    return str(state).upper()


def _mini(ns: dict[str, Any], threshold: int, timeout_s: float) -> tuple[Any, ManualClock]:
    clock = ManualClock(1000.0)  # not zero: a breaker that forgot to read the clock shows
    breaker = _learner(ns, "MiniBreaker")(failure_threshold=threshold, open_timeout_s=timeout_s, clock=clock)
    return breaker, clock


def _call(breaker: Any, success: bool, story: str) -> None:
    """One protected call: ask allow(), and if it says yes, record the outcome."""
    if not breaker.allow():
        raise CheckFailed(
            f"{story}: allow() refused a call it should have let through (state {_state(breaker)})"
        )
    breaker.record(success)


def _expect(breaker: Any, state: str, story: str) -> None:
    if _state(breaker) != state:
        raise CheckFailed(f"{story}: the breaker should be {state}, but it is {_state(breaker)}")


@check("q1", points=1, title="a new breaker is CLOSED, and stays CLOSED below the threshold")
def q1_closed(ns: dict[str, Any]) -> None:
    breaker, _ = _mini(ns, threshold=4, timeout_s=30.0)
    _expect(breaker, "CLOSED", "a new breaker")
    for failures in range(1, 4):
        _call(breaker, False, f"with failure_threshold=4, after {failures} failure(s)")
        _expect(breaker, "CLOSED", f"with failure_threshold=4, after {failures} failure(s) in a row")


@check("q1", points=1, title="the threshold of failures in a row opens it; a success starts the count again")
def q1_opens(ns: dict[str, Any]) -> None:
    breaker, _ = _mini(ns, threshold=3, timeout_s=30.0)
    for success in (False, False, True, False, False):
        _call(breaker, success, "with failure_threshold=3, failing, failing, succeeding, failing, failing")
    _expect(breaker, "CLOSED", "with failure_threshold=3, after failure, failure, success, failure, failure")
    _call(breaker, False, "with failure_threshold=3, a third failure in a row")
    _expect(breaker, "OPEN", "with failure_threshold=3, after three failures in a row")
    if breaker.allow():
        raise CheckFailed("an OPEN breaker should refuse calls, but allow() returned True")


@check("q1", points=1, title="an OPEN breaker refuses calls until open_timeout_s have passed")
def q1_stays_open(ns: dict[str, Any]) -> None:
    breaker, clock = _mini(ns, threshold=1, timeout_s=30.0)
    _call(breaker, False, "with failure_threshold=1, one failure")
    _expect(breaker, "OPEN", "with failure_threshold=1, after one failure")
    for step in (10.0, 19.9):
        clock.advance(step)
        if breaker.allow():
            raise CheckFailed(
                "with open_timeout_s=30, allow() let a call through before 30 s had passed since it opened"
            )
        _expect(breaker, "OPEN", "before open_timeout_s has passed")


@check(
    "q1", points=1, title="after open_timeout_s it lets one trial through, HALF_OPEN, and refuses the rest"
)
def q1_half_open(ns: dict[str, Any]) -> None:
    breaker, clock = _mini(ns, threshold=2, timeout_s=7.5)
    for _ in range(2):
        _call(breaker, False, "with failure_threshold=2, two failures")
    clock.advance(7.5)
    if not breaker.allow():
        raise CheckFailed(
            "with open_timeout_s=7.5, allow() should let a trial through 7.5 s after the opening"
        )
    _expect(breaker, "HALF_OPEN", "once the trial was let through")
    if breaker.allow():
        raise CheckFailed("HALF_OPEN should let only one trial through until its outcome is recorded")


@check("q1", points=1, title="a successful trial closes it, with the count of failures started afresh")
def q1_trial_succeeds(ns: dict[str, Any]) -> None:
    breaker, clock = _mini(ns, threshold=3, timeout_s=2.0)
    for _ in range(3):
        _call(breaker, False, "with failure_threshold=3, three failures")
    clock.advance(2.5)
    _call(breaker, True, "a trial after open_timeout_s")
    _expect(breaker, "CLOSED", "after a successful trial")
    for failures in (1, 2):
        _call(breaker, False, f"after closing, failure {failures}")
        _expect(
            breaker, "CLOSED", f"with failure_threshold=3, {failures} failure(s) after the breaker closed"
        )


@check("q1", points=1, title="a failed trial opens it again, for a full open_timeout_s")
def q1_trial_fails(ns: dict[str, Any]) -> None:
    breaker, clock = _mini(ns, threshold=2, timeout_s=5.0)
    for _ in range(2):
        _call(breaker, False, "with failure_threshold=2, two failures")
    clock.advance(7.0)
    _call(breaker, False, "a trial 7 s after the opening")
    _expect(breaker, "OPEN", "after a failed trial")
    clock.advance(4.9)
    if breaker.allow():
        raise CheckFailed(
            "with open_timeout_s=5, a failed trial should keep the breaker OPEN for 5 s from that failure"
        )
    clock.advance(0.1)
    if not breaker.allow():
        raise CheckFailed("open_timeout_s after a failed trial, the breaker should let a new trial through")
    _expect(breaker, "HALF_OPEN", "open_timeout_s after a failed trial")


# ----------------------------------------------------------------------------- question 2

_ANSWERS = (
    grpc.StatusCode.OK,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.OUT_OF_RANGE,
)
# RESOURCE_EXHAUSTED and INTERNAL are not graded either way: a service may mean them about the
# server (overloaded, broken) or about one request (a client's quota, an input that trips a bug).


def _classify(ns: dict[str, Any], codes: tuple[grpc.StatusCode, ...]) -> list[bool]:
    counts_as_failure = _learner(ns, "counts_as_failure")
    return [bool(counts_as_failure(code)) for code in codes]


@check("q2", points=1, title="a server that is down counts")
def q2_down(ns: dict[str, Any]) -> None:
    if not any(_classify(ns, (grpc.StatusCode.UNAVAILABLE,))):
        raise CheckFailed("UNAVAILABLE, said when a server cannot be reached, was not counted as a failure")


@check("q2", points=1, title="a server that is too slow counts")
def q2_slow(ns: dict[str, Any]) -> None:
    if not any(_classify(ns, (grpc.StatusCode.DEADLINE_EXCEEDED,))):
        raise CheckFailed("DEADLINE_EXCEEDED, said when no answer came in time, was not counted as a failure")


@check("q2", points=1, title="answers about the request do not count")
def q2_answers(ns: dict[str, Any]) -> None:
    wrongly_counted = sum(_classify(ns, _ANSWERS))
    if wrongly_counted:
        raise CheckFailed(
            f"{wrongly_counted} code(s) that a healthy server answers about the request (or success itself) "
            "were counted as failures"
        )


# ----------------------------------------------------------------------------- question 3


class _RpcFailure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class _Script:
    """Raises the given errors one per call, then answers; counts its calls."""

    def __init__(self, *errors: BaseException, answer: object = "charged") -> None:
        self.errors = list(errors)
        self.answer = answer
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


def _retry(ns: dict[str, Any]) -> Callable[..., Any]:
    return _learner(ns, "call_with_retries")  # type: ignore[no-any-return]


@check("q3", points=1, title="UNAVAILABLE is retried until the call answers")
def q3_retries(ns: dict[str, Any]) -> None:
    unavailable = grpc.StatusCode.UNAVAILABLE
    script = _Script(_RpcFailure(unavailable), _RpcFailure(unavailable), _RpcFailure(unavailable), answer=42)
    waits: list[float] = []
    got = _retry(ns)(script, attempts=4, backoff_s=0.05, sleep=waits.append)
    if got != 42 or script.calls != 4:
        raise CheckFailed(
            f"with attempts=4, a call failing 3 times with UNAVAILABLE then answering 42 should give 42 "
            f"after 4 calls; got {got!r} after {script.calls} call(s)"
        )


@check("q3", points=1, title="after `attempts` calls it raises the last error, waiting longer each time")
def q3_gives_up(ns: dict[str, Any]) -> None:
    failures = [_RpcFailure(grpc.StatusCode.UNAVAILABLE) for _ in range(5)]
    script = _Script(*failures)
    waits: list[float] = []
    try:
        got = _retry(ns)(script, attempts=3, backoff_s=0.25, sleep=waits.append)
    except Exception as error:
        if error is not failures[2]:
            raise CheckFailed(
                "after the last attempt, the error of that last attempt should be raised as it is, "
                f"got {type(error).__name__}"
            ) from None
    else:
        raise CheckFailed(f"a call that always fails with UNAVAILABLE should end in an error, not {got!r}")
    if script.calls != 3:
        raise CheckFailed(f"with attempts=3 there should be 3 calls in all, not {script.calls}")
    if len(waits) != 2 or abs(waits[0] - 0.25) > 1e-9 or abs(waits[1] - 0.5) > 1e-9:
        raise CheckFailed(
            f"with backoff_s=0.25 the waits before the 2nd and 3rd attempts should double from backoff_s; "
            f"got {waits}"
        )


@check("q3", points=1, title="a refusal by a breaker, or any other error, is raised at once")
def q3_no_retry(ns: dict[str, Any]) -> None:
    cases: list[tuple[str, BaseException, type[BaseException]]] = [
        (
            "a refusal by a protected channel (CircuitOpenRpcError)",
            CircuitOpenRpcError("inventory", 3.0),
            CircuitOpenError,
        ),
        ("a refusal by a breaker (CircuitOpenError)", CircuitOpenError("inventory", 3.0), CircuitOpenError),
        ("a NOT_FOUND answer", _RpcFailure(grpc.StatusCode.NOT_FOUND), grpc.RpcError),
    ]
    for story, error, kind in cases:
        script = _Script(error)
        waits: list[float] = []
        try:
            _retry(ns)(script, attempts=5, backoff_s=0.1, sleep=waits.append)
        except kind:
            pass
        else:
            raise CheckFailed(f"{story} should reach the caller as the error it is")
        if script.calls != 1 or waits:
            raise CheckFailed(
                f"{story} should be raised at once: got {script.calls} call(s) and {len(waits)} wait(s)"
            )


# ----------------------------------------------------------------------------- question 4

P99_BOUND_S = 0.1
RECOVERY_BOUND_S = 15.0
JUDGED_S = 180.0  # the incident is judged over 3 minutes from its start, wherever the fault clears
# (when the fault clears, seed): drills the visible checks do not run. The first three vary the
# draw of which calls hang, the last three also the moment the fault clears.
_OTHER_DRAWS = ((60.0, 3), (60.0, 5), (53.0, 4))
_OTHER_CLEARINGS = ((71.9, 2), (75.0, 4), (48.2, 3))
_drills: dict[tuple[BreakerSettings, float, int], DrillResult] = {}


def _settings(ns: dict[str, Any]) -> BreakerSettings:
    chosen = _learner(ns, "PAYMENT_BREAKER")
    if not isinstance(chosen, BreakerSettings):
        raise CheckFailed(f"PAYMENT_BREAKER should be a BreakerSettings, not {type(chosen).__name__}")
    # A plain BreakerSettings with the same fields: a subclass cannot change how the drill reads them.
    return BreakerSettings(**{f.name: getattr(chosen, f.name) for f in dataclasses.fields(BreakerSettings)})


def _drill(settings: BreakerSettings, fault_s: float, seed: int) -> DrillResult:
    """One drill, run once for the p99 check and the recovery check together."""
    scenario = Scenario(fault_s=fault_s, after_s=JUDGED_S - fault_s)
    key = (settings, fault_s, seed)  # equal settings are equal fields: a frozen dataclass
    try:
        hash(key)
    except TypeError:  # an unhashable is_failure: measure without remembering
        return payment_drill(settings, scenario, seed=seed)
    if key not in _drills:
        _drills[key] = payment_drill(settings, scenario, seed=seed)
    return _drills[key]


def _p99_on(ns: dict[str, Any], drills: tuple[tuple[float, int], ...]) -> None:
    settings = _settings(ns)
    for fault_s, seed in drills:
        result = _drill(settings, fault_s, seed)
        if result.p99_s > P99_BOUND_S:
            raise CheckFailed(
                f"in one of these drills (seed and clearing time hidden), the p99 of checkout latency "
                f"was {result.p99_s * 1000:.0f} ms ({result.outcomes['DEADLINE_EXCEEDED']} checkouts "
                f"waited out a deadline); at most {P99_BOUND_S * 1000:.0f} ms was asked for"
            )


def _recovery_on(ns: dict[str, Any], drills: tuple[tuple[float, int], ...]) -> None:
    settings = _settings(ns)
    for fault_s, seed in drills:
        result = _drill(settings, fault_s, seed)
        if result.recovered_after_s > RECOVERY_BOUND_S:
            raise CheckFailed(
                f"in one of these drills (seed and clearing time hidden), the breaker was CLOSED for "
                f"good only {result.recovered_after_s:.1f} s after it cleared; at most "
                f"{RECOVERY_BOUND_S:g} s was asked for"
            )


@check(
    "q4",
    points=1,
    title="p99 of checkout latency at most 100 ms, on other draws of which calls hang",
    timeout_s=60,
)
def q4_p99_other_draws(ns: dict[str, Any]) -> None:
    _p99_on(ns, _OTHER_DRAWS)


@check(
    "q4",
    points=1,
    title="p99 of checkout latency at most 100 ms, with the fault clearing at other times",
    timeout_s=60,
)
def q4_p99_other_clearings(ns: dict[str, Any]) -> None:
    _p99_on(ns, _OTHER_CLEARINGS)


@check(
    "q4", points=1, title="CLOSED for good within 15 s after the fault cleared, on other draws", timeout_s=60
)
def q4_recovery_other_draws(ns: dict[str, Any]) -> None:
    _recovery_on(ns, _OTHER_DRAWS)


@check(
    "q4",
    points=1,
    title="CLOSED for good within 15 s after the fault cleared, when it clears at other times",
    timeout_s=60,
)
def q4_recovery_other_clearings(ns: dict[str, Any]) -> None:
    _recovery_on(ns, _OTHER_CLEARINGS)
