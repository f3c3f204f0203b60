"""A circuit breaker: one small state machine in front of one dependency.

The package docstring (``bookstore.resilience``) says why and when; this module is the
machine itself. Four decisions shape it:

* **Judged on a sliding window, after every outcome.** While CLOSED the breaker keeps the
  outcomes of the last ``window_size`` calls and, each time an outcome goes in, trips when the
  failure rate reaches the threshold, but only once ``minimum_calls`` outcomes are in the
  window: two failures out of two calls prove nothing. A success can therefore be the outcome
  that trips it: with a minimum of 4 and a threshold of 0.5, failure, failure, failure, success
  trips at the fourth outcome (3 of 4 failed), as resilience4j does. (gobreaker judges only
  when a failure arrives, which would leave that window CLOSED at 75 % until the next failure.)
* **State derived on read.** Nothing runs in the background. An OPEN breaker becomes
  HALF_OPEN the first time someone looks (reads ``state``, takes a ``snapshot()``, offers
  a call or reports an outcome) after ``open_timeout_s``; a HALF_OPEN breaker whose trials
  have given no outcome for ``half_open_max_wait_s`` goes back to OPEN the same way. The
  clock is injected, so tests move time by hand.
* **A generation counter.** Every change of state, and every reset of the window, starts a
  new generation. A call remembers the generation that admitted it; when it finishes in a
  later one its outcome is discarded. A slow call admitted while CLOSED that fails after the
  breaker half-opened says nothing about the trial, and must not re-open the breaker.
* **The lock guards bookkeeping, never the call.** Admission and recording each take the
  lock for a few microseconds; the protected call runs with no lock held, so a breaker in
  front of a 1 ms call lets eight threads make eight calls at once. Listeners are called
  outside the lock too, in the order the transitions happened.

Its decisions show in traces (week 10): a refusal, a half-open trial admitted and every
change of state are events on the current span (``circuit_breaker.rejected``,
``circuit_breaker.trial_admitted``, ``circuit_breaker.state_change``). A call admitted while
CLOSED, the common case, records nothing.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

import grpc
from opentelemetry import trace

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class State(Enum):
    CLOSED = "closed"
    """Calls pass through; their outcomes fill the sliding window."""
    OPEN = "open"
    """Calls are rejected at once with ``CircuitOpenError``, until ``open_timeout_s`` has passed."""
    HALF_OPEN = "half_open"
    """A few trial calls pass; their outcomes decide between CLOSED and OPEN."""


# Module-level aliases for the hot path: on Python 3.11 each ``State.X`` lookup costs about as
# much as acquiring a lock.
_CLOSED, _OPEN, _HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN

FailureClassifier = Callable[[Exception], bool]
"""Given an exception the protected call raised: does it count against the dependency?"""

StateListener = Callable[[str, State, State, int], None]
"""Called as ``listener(breaker_name, old_state, new_state, generation)`` after each transition."""

DEFAULT_FAILURE_CODES: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""Codes that say the dependency is down, slow or overloaded. Every other code (NOT_FOUND,
INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION, ...) is an answer from a working
server about the request, so it counts as a success. INTERNAL and RESOURCE_EXHAUSTED are
counted as the server's trouble, though a service may mean them per request (one input that
trips a bug, one client's quota): leave them out for such a service."""


CIRCUIT_METADATA_KEY = "bookstore-circuit"
"""Trailing metadata of a refused call: the name of the breaker that refused it."""
RETRY_AFTER_METADATA_KEY = "bookstore-retry-after-s"
"""Trailing metadata of a refused call: seconds until the breaker admits trial calls."""
DEPENDENCY_METADATA_KEY = "bookstore-dependency"
"""Trailing metadata of a failure a server passes on from one of its own dependencies: which
one (``payment.Pay``). The server itself worked: it made the call, cleaned up and answered."""


@dataclass(frozen=True)
class GrpcFailureClassifier:
    """Counts a ``grpc.RpcError`` as a failure when its code is in ``failure_codes``.

    An error a server passes on from its own dependency is, by default, no failure of that
    server: its trailing metadata names a circuit (``bookstore-circuit``: the server's breaker
    refused a call to *its* dependency) or the dependency that failed (``bookstore-dependency``:
    the order service placed an order, payment answered UNAVAILABLE, the order service undid
    the reservation and answered). Either way the server is healthy and answered. Counting such
    answers would open the caller's breaker too, and cut off the methods that never needed the
    failing dependency (listing orders, while payment is down). A breaker judges its own
    dependency, not its dependency's dependencies.
    """

    failure_codes: frozenset[grpc.StatusCode] = DEFAULT_FAILURE_CODES
    other_errors_are_failures: bool = True
    """Whether an exception that is not a ``grpc.RpcError`` (a bug, a ``TimeoutError``, a
    connection refused by a non-gRPC client) counts as a failure."""
    passed_on_errors_are_failures: bool = False
    """Whether an error passed on from a dependency (``bookstore-circuit`` or
    ``bookstore-dependency`` trailing metadata) counts as a failure."""

    def __call__(self, error: Exception) -> bool:
        if isinstance(error, grpc.RpcError):
            code = getattr(error, "code", None)
            if not callable(code):
                return True  # an RpcError that carries no status cannot be told apart from an outage
            if code() not in self.failure_codes:
                return False
            return self.passed_on_errors_are_failures or not passed_on(error)
        return self.other_errors_are_failures


def names_a_circuit(error: grpc.RpcError) -> bool:
    """Whether a failed call's trailing metadata says a circuit breaker refused it."""
    return _has_trailing_key(error, frozenset({CIRCUIT_METADATA_KEY}))


def passed_on(error: grpc.RpcError) -> bool:
    """Whether a failed call's trailing metadata says the server passed on a dependency's
    failure (``bookstore-dependency``) or its breaker's refusal (``bookstore-circuit``)."""
    return _has_trailing_key(error, _PASSED_ON_KEYS)


_PASSED_ON_KEYS = frozenset({CIRCUIT_METADATA_KEY, DEPENDENCY_METADATA_KEY})


def _has_trailing_key(error: grpc.RpcError, keys: frozenset[str]) -> bool:
    trailing = getattr(error, "trailing_metadata", None)
    try:
        pairs = trailing() if callable(trailing) else None
        return any(key in keys for key, _ in pairs or ())
    except Exception:  # a call object that cannot say: judge it by its code alone
        return False


def grpc_failure_classifier(
    failure_codes: Iterable[grpc.StatusCode] = DEFAULT_FAILURE_CODES,
    *,
    other_errors_are_failures: bool = True,
    passed_on_errors_are_failures: bool = False,
) -> GrpcFailureClassifier:
    """A classifier for ``BreakerSettings.is_failure`` that judges gRPC errors by status code.

    ``grpc_failure_classifier()`` counts UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL and
    RESOURCE_EXHAUSTED, plus any non-gRPC exception, except an error the server passed on
    from its own dependency (see ``GrpcFailureClassifier``). An error it does not count passes through
    to the caller unchanged and is recorded as a success: the server answered.
    """
    return GrpcFailureClassifier(
        frozenset(failure_codes), other_errors_are_failures, passed_on_errors_are_failures
    )


@dataclass(frozen=True)
class BreakerSettings:
    """How a breaker judges its dependency. The defaults are a common starting point, not a law."""

    window_size: int = 20
    """The sliding window: the breaker remembers the outcomes of the last ``window_size`` calls
    made while CLOSED, and forgets older ones."""
    failure_rate_threshold: float = 0.5
    """Trip when at least this share of the calls in the window failed (0 < rate <= 1)."""
    minimum_calls: int = 10
    """Outcomes the window must hold before the failure rate may trip the breaker."""
    consecutive_failures: int | None = None
    """Also trip after this many failures in a row, whatever the window holds. ``None``: off."""
    open_timeout_s: float = 5.0
    """How long an OPEN breaker rejects calls before it lets trial calls through."""
    half_open_max_calls: int = 3
    """HALF_OPEN admits at most this many trial calls at once; this many successes close the
    breaker, and any failure re-opens it."""
    half_open_max_wait_s: float | None = 30.0
    """How long HALF_OPEN waits for an outcome of its trials in flight before it gives up on
    them and goes back to OPEN, for a new ``open_timeout_s``; a result that the abandoned trials
    bring later is ignored. Without this bound a trial call that never returns (a call made
    without a deadline, a hung thread) holds its slot forever, and the breaker refuses everyone
    else for good. Make it longer than the deadline of any protected call, so that a trial
    which merely ends in its deadline still gives its verdict. ``None``: wait forever (as
    resilience4j's ``maxWaitDurationInHalfOpenState`` of 0 does)."""
    is_failure: FailureClassifier = GrpcFailureClassifier()
    """Which exceptions count against the dependency; the rest count as successes."""

    def __post_init__(self) -> None:
        if self.window_size < 1:
            raise ValueError(f"window_size must be at least 1, got {self.window_size}")
        if not 0.0 < self.failure_rate_threshold <= 1.0:
            raise ValueError(f"failure_rate_threshold must be in (0, 1], got {self.failure_rate_threshold}")
        if not 1 <= self.minimum_calls <= self.window_size:
            raise ValueError(
                f"minimum_calls must be between 1 and window_size ({self.window_size}), "
                f"got {self.minimum_calls}"
            )
        if self.consecutive_failures is not None and self.consecutive_failures < 1:
            raise ValueError(
                f"consecutive_failures must be at least 1 or None, got {self.consecutive_failures}"
            )
        if self.open_timeout_s < 0:
            raise ValueError(f"open_timeout_s must not be negative, got {self.open_timeout_s}")
        if self.half_open_max_calls < 1:
            raise ValueError(f"half_open_max_calls must be at least 1, got {self.half_open_max_calls}")
        if self.half_open_max_wait_s is not None and not self.half_open_max_wait_s > 0:
            raise ValueError(
                f"half_open_max_wait_s must be positive or None, got {self.half_open_max_wait_s}"
            )


class CircuitOpenError(Exception):
    """The breaker refused the call without making it.

    ``retry_after_s`` is how long until an OPEN breaker admits trial calls. When the breaker
    is HALF_OPEN with every trial slot taken, the trials' verdict decides: it closes the breaker,
    or opens it for ``open_timeout_s``; and trials that stay silent are given up on once
    ``half_open_max_wait_s`` has passed. So the hint is the shorter of ``open_timeout_s`` and
    the time left until the trials are given up (with no bound on that wait: ``open_timeout_s``).
    """

    def __init__(self, name: str, retry_after_s: float, state: State = State.OPEN) -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        self.state = state
        if state is State.OPEN:
            message = f"circuit {name!r} is open; trial calls in {retry_after_s:.3f} s"
        else:
            message = f"circuit {name!r} is half-open and all its trial calls are in flight"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float, State]]:
        return type(self), (self.name, self.retry_after_s, self.state)


@dataclass(frozen=True)
class WindowCounts:
    """The sliding window right now: outcomes of the last calls made while CLOSED."""

    calls: int
    failures: int

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Totals:
    """Counters since the breaker was made; they only grow.

    Once no call is in flight, ``calls == successes + failures + rejected + ignored_stale +
    abandoned``: every offered call ends in exactly one of those.
    """

    calls: int
    """Calls offered to the breaker, admitted or not."""
    successes: int
    """Calls that returned, or raised an error the classifier does not count."""
    failures: int
    """Calls that raised an error the classifier counts."""
    rejected: int
    """Calls refused with ``CircuitOpenError``; the function was never called."""
    ignored_stale: int
    """Calls that finished in a later generation than the one that admitted them."""
    abandoned: int
    """Calls interrupted without a verdict (cancelled, KeyboardInterrupt, SystemExit)."""


@dataclass(frozen=True)
class BreakerSnapshot:
    name: str
    state: State
    generation: int
    window: WindowCounts
    totals: Totals


# Generations admitted by ``with breaker:`` blocks that have not exited yet, innermost last.
# A ContextVar keeps threads and asyncio tasks apart: each sees only its own admissions.
_open_blocks: contextvars.ContextVar[tuple[tuple[CircuitBreaker, int], ...]] = contextvars.ContextVar(
    "bookstore_breaker_open_blocks", default=()
)


class CircuitBreaker:
    """Guards calls to one dependency. Thread-safe; usable from asyncio.

    Four ways to protect a call::

        breaker = CircuitBreaker("payment")
        breaker.call(stub.Pay, request, timeout=2)

        @breaker
        def pay(request): ...

        with breaker:
            stub.Pay(request, timeout=2)

        await breaker.call_async(aio_stub.Pay, request, timeout=2)   # or: async with breaker:

    A refused call raises ``CircuitOpenError`` without running. Whatever the call raises
    reaches the caller unchanged; the breaker only takes note.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[StateListener] = (),
    ) -> None:
        self.name = name
        self.settings = settings if settings is not None else BreakerSettings()
        self._clock = clock
        self._listeners: tuple[StateListener, ...] = tuple(listeners)
        self._lock = threading.Lock()

        self._state = State.CLOSED
        self._generation = 0
        self._opened_at = 0.0
        # The sliding window is a ring buffer of "failed?" flags with running counts.
        self._window: list[bool] = [False] * self.settings.window_size
        self._window_next = 0
        self._window_calls = 0
        self._window_failures = 0
        self._failures_in_a_row = 0
        self._trials_in_flight = 0
        self._trial_successes = 0
        # When the trials in flight last made progress: the first was admitted, or one ended.
        self._trials_waiting_since = 0.0

        self._calls = 0
        self._successes = 0
        self._failures = 0
        self._rejected = 0
        self._ignored_stale = 0
        self._abandoned = 0

        # Transitions waiting for their listeners, in the order they happened.
        self._transitions: deque[tuple[State, State, int]] = deque()
        self._delivering = threading.Lock()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value}, generation={self._generation})"

    # ----------------------------------------------------------------- reading

    @property
    def state(self) -> State:
        """The state now; an OPEN breaker whose timeout has passed reads as HALF_OPEN."""
        with self._lock:
            state = self._current_state()
        self._notify_listeners()
        return state

    def snapshot(self) -> BreakerSnapshot:
        """State, generation, window and totals, read together under the lock."""
        with self._lock:
            snapshot = BreakerSnapshot(
                name=self.name,
                state=self._current_state(),
                generation=self._generation,
                window=WindowCounts(self._window_calls, self._window_failures),
                totals=Totals(
                    calls=self._calls,
                    successes=self._successes,
                    failures=self._failures,
                    rejected=self._rejected,
                    ignored_stale=self._ignored_stale,
                    abandoned=self._abandoned,
                ),
            )
        self._notify_listeners()
        return snapshot

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(name, old_state, new_state, generation)`` after every transition.

        Listeners run outside the breaker's lock, so they may read the breaker. They see the
        transitions in the order they happened, each once; an exception in a listener is
        logged and does not reach the call that caused the transition. A listener normally
        runs in the thread that caused the transition, before that thread's call returns; if
        another thread is delivering transitions at that moment, that thread delivers it.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

    # ----------------------------------------------------------------- operating by hand

    def reset(self) -> None:
        """Close the breaker with an empty window (a new generation), whatever its state."""
        with self._lock:
            self._move_to(State.CLOSED)
        self._notify_listeners()

    def force_open(self) -> None:
        """Open the breaker now, for ``open_timeout_s``, whatever the window says."""
        with self._lock:
            self._move_to(State.OPEN)
        self._notify_listeners()

    # ----------------------------------------------------------------- protecting calls

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` if the breaker admits it; raises ``CircuitOpenError`` if not."""
        generation = self._admit()
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            self._record_error(generation, error)
            raise
        except BaseException:
            self._record_abandoned(generation)
            raise
        self._record_success(generation)
        return result

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``await fn(*args, **kwargs)`` if the breaker admits it; raises ``CircuitOpenError`` if not.

        Put the deadline inside the call (``timeout=`` on the gRPC call, ``asyncio.timeout``
        inside ``fn``): a timeout applied from outside cancels the call, and a cancelled call
        is abandoned without a verdict.
        """
        generation = self._admit()
        try:
            result = await fn(*args, **kwargs)
        except Exception as error:
            self._record_error(generation, error)
            raise
        except BaseException:
            self._record_abandoned(generation)
            raise
        self._record_success(generation)
        return result

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """As a decorator: every call of ``fn`` goes through the breaker (coroutine functions too)."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_coroutine(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call_async(fn, *args, **kwargs)

            return guarded_coroutine

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.call(fn, *args, **kwargs)

        return guarded

    def __enter__(self) -> CircuitBreaker:
        generation = self._admit()
        _open_blocks.set((*_open_blocks.get(), (self, generation)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        generation = self._close_block()
        if exc is None:
            self._record_success(generation)
        elif isinstance(exc, Exception):
            self._record_error(generation, exc)
        else:
            self._record_abandoned(generation)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    # ----------------------------------------------------------------- admission and recording

    def _admit(self) -> int:
        """The generation a call is admitted in; raises ``CircuitOpenError`` if it is not."""
        with self._lock:
            self._calls += 1
            if self._state is _CLOSED:  # the common case, kept short: no transition can happen here
                return self._generation
            refusal = self._admit_trial_or_refuse()
            generation = self._generation
        if self._transitions:
            self._notify_listeners()
        # Only calls offered while not CLOSED come here: a refusal or a half-open trial, each
        # worth an event on the caller's span. The common CLOSED path above records nothing.
        if refusal is not None:
            _span_event(
                "circuit_breaker.rejected",
                {"breaker": self.name, "state": refusal.state.name, "retry_after_s": refusal.retry_after_s},
            )
            raise refusal
        _span_event("circuit_breaker.trial_admitted", {"breaker": self.name, "generation": generation})
        return generation

    def _admit_trial_or_refuse(self) -> CircuitOpenError | None:
        state = self._current_state()  # OPEN, or HALF_OPEN if the timeout has passed
        if state is _HALF_OPEN and self._trials_in_flight < self.settings.half_open_max_calls:
            if self._trials_in_flight == 0:
                self._trials_waiting_since = self._clock()
            self._trials_in_flight += 1
            return None
        self._rejected += 1
        return CircuitOpenError(self.name, self._retry_after_s(), state)

    def _record_error(self, generation: int, error: Exception) -> None:
        try:
            failed = self.settings.is_failure(error)
        except Exception:
            log.exception("failure classifier of breaker %r raised; counting the call as failed", self.name)
            failed = True
        if failed:
            self._record_failure(generation)
        else:
            self._record_success(generation)

    def _record_success(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation_now():
                self._ignored_stale += 1
            elif self._state is _CLOSED:
                self._successes += 1
                self._failures_in_a_row = 0
                self._remember(failed=False)
                if self._should_trip():  # a success too can complete a window that fails
                    self._move_to(_OPEN)
            else:  # HALF_OPEN: an unchanged generation means the state that admitted the call
                self._successes += 1
                self._end_trial()
                self._trial_successes += 1
                if self._trial_successes >= self.settings.half_open_max_calls:
                    self._move_to(_CLOSED)
        if self._transitions:
            self._notify_listeners()

    def _record_failure(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation_now():
                self._ignored_stale += 1
            elif self._state is _CLOSED:
                self._failures += 1
                self._failures_in_a_row += 1
                self._remember(failed=True)
                if self._should_trip():
                    self._move_to(_OPEN)
            else:  # HALF_OPEN: one failed trial is enough
                self._failures += 1
                self._end_trial()
                self._move_to(_OPEN)
        if self._transitions:
            self._notify_listeners()

    def _record_abandoned(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation_now():
                self._ignored_stale += 1
            else:
                self._abandoned += 1
                if self._state is _HALF_OPEN:
                    self._end_trial()  # free the slot for another trial
        if self._transitions:
            self._notify_listeners()

    def _close_block(self) -> int:
        blocks = _open_blocks.get()
        if blocks and blocks[-1][0] is self:  # the usual case: the innermost open block is ours
            _open_blocks.set(blocks[:-1])
            return blocks[-1][1]
        for index in range(len(blocks) - 1, -1, -1):
            breaker, generation = blocks[index]
            if breaker is self:
                _open_blocks.set(blocks[:index] + blocks[index + 1 :])
                return generation
        raise RuntimeError(f"breaker {self.name!r}: __exit__ without a matching __enter__")

    # ----------------------------------------------------------------- the state machine (lock held)

    def _current_state(self) -> State:
        overdue_since = self._trials_overdue_since()
        if overdue_since is not None:
            self._move_to(_OPEN)  # a new generation: whatever the abandoned trials say later is stale
            # Derived on read, but dated when the wait ran out, as if someone had been looking.
            self._opened_at = overdue_since
        if self._state is _OPEN and self._clock() - self._opened_at >= self.settings.open_timeout_s:
            self._move_to(_HALF_OPEN)
        return self._state

    def _generation_now(self) -> int:
        """The generation after any transition that is due; an outcome is judged against it."""
        if self._state is not _CLOSED:  # CLOSED has no timer
            self._current_state()
        return self._generation

    def _trials_overdue_since(self) -> float | None:
        """When HALF_OPEN gave up waiting for its trials in flight; None if it has not."""
        max_wait = self.settings.half_open_max_wait_s
        if self._state is not _HALF_OPEN or max_wait is None or self._trials_in_flight == 0:
            return None
        deadline = self._trials_waiting_since + max_wait
        return deadline if self._clock() >= deadline else None

    def _end_trial(self) -> None:
        self._trials_in_flight -= 1
        self._trials_waiting_since = self._clock()  # the trials still in flight get a fresh wait

    def _retry_after_s(self) -> float:
        if self._state is _HALF_OPEN:
            max_wait = self.settings.half_open_max_wait_s
            open_timeout_s = self.settings.open_timeout_s
            if max_wait is None:
                return open_timeout_s
            return max(0.0, min(open_timeout_s, self._trials_waiting_since + max_wait - self._clock()))
        if self._state is not _OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.settings.open_timeout_s - self._clock())

    def _remember(self, *, failed: bool) -> None:
        """Put one outcome into the window, pushing out the oldest once it is full."""
        index = self._window_next
        if self._window_calls == len(self._window):
            self._window_failures -= self._window[index]
        else:
            self._window_calls += 1
        self._window[index] = failed
        self._window_failures += failed
        self._window_next = (index + 1) % len(self._window)

    def _should_trip(self) -> bool:
        settings = self.settings
        limit = settings.consecutive_failures
        if limit is not None and self._failures_in_a_row >= limit:
            return True
        return (
            self._window_calls >= settings.minimum_calls
            and self._window_failures / self._window_calls >= settings.failure_rate_threshold
        )

    def _move_to(self, new: State) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        if new is _OPEN:
            self._opened_at = self._clock()
        elif new is _HALF_OPEN:
            self._trials_in_flight = 0
            self._trial_successes = 0
        else:
            self._window = [False] * self.settings.window_size
            self._window_next = self._window_calls = self._window_failures = 0
            self._failures_in_a_row = 0
        if new is not old:
            self._transitions.append((old, new, self._generation))

    # ----------------------------------------------------------------- listeners (lock not held)

    def _notify_listeners(self) -> None:
        # One thread at a time delivers, so listeners see transitions in order. A thread that
        # finds another delivering leaves its transitions to it: the deliverer checks the
        # queue again after releasing, so nothing is left behind.
        while self._transitions:
            if not self._delivering.acquire(blocking=False):
                return
            try:
                while self._transitions:
                    old, new, generation = self._transitions.popleft()
                    _span_event(
                        "circuit_breaker.state_change",
                        {"breaker": self.name, "from": old.name, "to": new.name, "generation": generation},
                    )
                    for listener in self._listeners:
                        try:
                            listener(self.name, old, new, generation)
                        except Exception:
                            log.exception("listener of breaker %r failed on %s -> %s", self.name, old, new)
            finally:
                self._delivering.release()


def _span_event(name: str, attributes: dict[str, str | int | float]) -> None:
    """A breaker decision as an event on the current span (week 10's traces); nothing when none records."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)
