"""A circuit breaker: one small state machine in front of one dependency.

The package docstring (``bookstore.resilience``) says why and when; this module is the
machine itself, and knows nothing of gRPC or tracing: it admits calls, hears their outcomes
and changes state. Five decisions shape it:

* **Two steps: admit, then settle.** ``admit()`` decides whether a call may go ahead and
  returns a ``Ticket``; whoever made the call settles the ticket with its outcome, once,
  from any thread and at any later time (``ticket.success()``, ``ticket.raised(error)``,
  ``ticket.abandon()``, or ``ticket.settle(error_or_None)``). ``call``, ``call_async``, the
  decorator and the ``with`` block are this pair wrapped around a function; a gRPC
  interceptor, whose outcome arrives later on gRPC's own thread, uses the pair directly.
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
  new generation. A ticket remembers the generation that admitted it; when it is settled in
  a later one its outcome is discarded. A slow call admitted while CLOSED that fails after
  the breaker half-opened says nothing about the trial, and must not re-open the breaker.
* **The lock guards bookkeeping, never the call.** Admission and settling each take the
  lock for a few microseconds; the protected call runs with no lock held, so a breaker in
  front of a 1 ms call lets eight threads make eight calls at once. Listeners are called
  outside the lock too, in the order the transitions happened.

What counts as a failure is ``BreakerSettings.is_failure``'s decision, by default the gRPC
classifier of ``bookstore.rpc.failures``; the machine never looks inside an error.
Its decisions reach the outside through listeners: ``StateListener`` per breaker for changes of
state, and process-wide decision listeners (``DecisionListener``) for a refusal, a half-open
trial admitted and every change of state (``circuit_breaker.rejected``, ``circuit_breaker.trial_admitted``,
``circuit_breaker.state_change``); ``bookstore.resilience`` attaches one that puts them on the
current span (week 10). A call admitted while CLOSED, the common case, reports nothing.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from bookstore.rpc.failures import CircuitOpenError, FailureClassifier, GrpcFailureClassifier, State

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Module-level aliases for the hot path: on Python 3.11 each ``State.X`` lookup costs about as
# much as acquiring a lock.
_CLOSED, _OPEN, _HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN

StateListener = Callable[[str, State, State, int], None]
"""Called as ``listener(breaker_name, old_state, new_state, generation)`` after each transition."""

DecisionListener = Callable[[str, Mapping[str, str | int | float]], None]
"""Called as ``listener(event, attributes)`` for every breaker's notable decisions: ``event`` is
``circuit_breaker.rejected``, ``circuit_breaker.trial_admitted`` or
``circuit_breaker.state_change``, and ``attributes`` name the breaker and the details. It runs in
the thread that offered the call or caused the transition, outside every breaker's lock."""


_GRPC_OUTAGES: FailureClassifier = GrpcFailureClassifier()
"""The default classifier: gRPC codes that say the server is unwell, and every non-gRPC error."""


@dataclass(frozen=True)
class BreakerSettings:
    """How a breaker judges its dependency. The defaults are a common starting point, not a law.

    They are the only copy: ``BOOKSTORE_BREAKER_*`` variables that are unset leave them as they
    are (``bookstore.resilience.interceptor.breaker_settings_from``).
    """

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
    is_failure: FailureClassifier = _GRPC_OUTAGES
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


# How a ticket was settled; what the outcome does to the breaker depends on its state then.
_SUCCESS, _FAILURE, _ABANDONED = "success", "failure", "abandoned"


class Ticket:
    """One call a breaker admitted, waiting for its outcome. Settle it exactly once.

    ``breaker.admit()`` hands it out; make the call, then report how it ended::

        ticket = breaker.admit()          # raises CircuitOpenError when refused
        try:
            response = stub.Pay(request, timeout=2)
        except Exception as error:
            ticket.raised(error)          # the classifier decides whether it counts
            raise
        ticket.success()

    Any thread may settle it, at any later time: the breaker judges the outcome against the
    generation that admitted the call, so a ticket from before a change of state is counted as
    ``ignored_stale``. A second settling is a bug in the caller (an outcome counted twice would
    skew the window, a trial slot freed twice would admit too many trials): it raises
    ``RuntimeError`` and changes nothing. ``with breaker.admit():`` settles on leaving the block.
    """

    __slots__ = ("_settled", "breaker", "generation", "trial")

    def __init__(self, breaker: CircuitBreaker, generation: int, trial: bool) -> None:
        self.breaker = breaker
        self.generation = generation
        """The generation that admitted the call."""
        self.trial = trial
        """Whether the call was admitted as a HALF_OPEN trial (it holds one of the trial slots)."""
        self._settled = False

    def __repr__(self) -> str:
        kind = "trial" if self.trial else "call"
        return f"Ticket({self.breaker.name!r}, {kind}, generation={self.generation}, settled={self._settled})"

    @property
    def settled(self) -> bool:
        return self._settled

    def success(self) -> bool:
        """The call returned. True if the outcome counted; False if it was stale."""
        return self.breaker._settle(self, _SUCCESS)

    def raised(self, error: Exception) -> bool:
        """The call raised ``error``; it counts as a failure only if ``is_failure(error)`` says so
        (a NOT_FOUND is a working server's answer: a success). True if the outcome counted."""
        return self.breaker._settle(self, _FAILURE if self.breaker._counts_against(error) else _SUCCESS)

    def abandon(self) -> bool:
        """The call ended without a verdict (cancelled, interrupted): counted as abandoned, and a
        trial's slot is freed for another trial. True unless the ticket was stale."""
        return self.breaker._settle(self, _ABANDONED)

    def settle(self, error: BaseException | None = None) -> bool:
        """However the call ended: ``None`` is a success, an ``Exception`` is judged by
        ``raised``, any other ``BaseException`` (cancellation, KeyboardInterrupt) abandons it."""
        if error is None:
            return self.success()
        if isinstance(error, Exception):
            return self.raised(error)
        return self.abandon()

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.settle(exc)


# The tickets of ``with breaker:`` blocks that have not exited yet, innermost last. ``__exit__``
# is handed no ticket, so the block must find its own: a ContextVar keeps threads and asyncio
# tasks apart, each seeing only its own blocks. ``admit()`` and the ticket need none of this.
_open_blocks: contextvars.ContextVar[tuple[Ticket, ...]] = contextvars.ContextVar(
    "bookstore_breaker_open_blocks", default=()
)

# Listeners of every breaker's decisions in this process; replaced whole, so reading needs no lock.
_decision_listeners: tuple[DecisionListener, ...] = ()
_decision_listeners_lock = threading.Lock()


def add_decision_listener(listener: DecisionListener) -> None:
    """Report every breaker's decisions in this process to ``listener`` (once, however often added)."""
    global _decision_listeners
    with _decision_listeners_lock:
        if listener not in _decision_listeners:
            _decision_listeners = (*_decision_listeners, listener)


def remove_decision_listener(listener: DecisionListener) -> None:
    """Stop reporting decisions to ``listener``; nothing happens if it was not added."""
    global _decision_listeners
    with _decision_listeners_lock:
        _decision_listeners = tuple(known for known in _decision_listeners if known != listener)


def _decided(event: str, attributes: Mapping[str, str | int | float]) -> None:
    for listener in _decision_listeners:
        try:
            listener(event, attributes)
        except Exception:
            log.exception("decision listener %r failed on %s", listener, event)


class CircuitBreaker:
    """Guards calls to one dependency. Thread-safe; usable from asyncio.

    Five ways to protect a call::

        breaker = CircuitBreaker("payment")
        breaker.call(stub.Pay, request, timeout=2)

        @breaker
        def pay(request): ...

        with breaker:
            stub.Pay(request, timeout=2)

        await breaker.call_async(aio_stub.Pay, request, timeout=2)   # or: async with breaker:

        ticket = breaker.admit()        # the two steps the others are made of
        ...                             # make the call, then: ticket.settle(error_or_None)

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

    # ----------------------------------------------------------------- the two steps

    def admit(self) -> Ticket:
        """Admit one call, or raise ``CircuitOpenError``; settle the ticket with its outcome.

        A call that is admitted and never settled counts nowhere; if it was a trial it holds its
        slot until ``half_open_max_wait_s`` gives up on it. Settle every ticket, even when the
        call could not be started (``ticket.settle(error)``).
        """
        with self._lock:
            self._calls += 1
            closed = self._state is _CLOSED  # the common case, kept short: no transition happens
            refusal = None if closed else self._admit_trial_or_refuse()
            generation = self._generation
        if closed:
            return Ticket(self, generation, False)
        return self._trial_or_refusal(generation, refusal)

    def _trial_or_refusal(self, generation: int, refusal: CircuitOpenError | None) -> Ticket:
        # Only calls offered while not CLOSED come here: a refusal or a half-open trial, each
        # worth reporting. The common CLOSED path in ``admit`` reports nothing.
        if self._transitions:
            self._notify_listeners()
        if refusal is not None:
            _decided(
                "circuit_breaker.rejected",
                {"breaker": self.name, "state": refusal.state.name, "retry_after_s": refusal.retry_after_s},
            )
            raise refusal
        _decided("circuit_breaker.trial_admitted", {"breaker": self.name, "generation": generation})
        return Ticket(self, generation, True)

    # ----------------------------------------------------------------- protecting calls

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` if the breaker admits it; raises ``CircuitOpenError`` if not."""
        ticket = self.admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            ticket.settle(error)
            raise
        ticket.success()
        return result

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``await fn(*args, **kwargs)`` if the breaker admits it; raises ``CircuitOpenError`` if not.

        Put the deadline inside the call (``timeout=`` on the gRPC call, ``asyncio.timeout``
        inside ``fn``): a timeout applied from outside cancels the call, and a cancelled call
        is abandoned without a verdict.
        """
        ticket = self.admit()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            ticket.settle(error)
            raise
        ticket.success()
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
        ticket = self.admit()
        _open_blocks.set((*_open_blocks.get(), ticket))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close_block().settle(exc)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def _close_block(self) -> Ticket:
        """The ticket of this breaker's innermost open ``with`` block, taken off the stack."""
        blocks = _open_blocks.get()
        if blocks and blocks[-1].breaker is self:  # the usual case: the innermost open block is ours
            _open_blocks.set(blocks[:-1])
            return blocks[-1]
        for index in range(len(blocks) - 1, -1, -1):
            if blocks[index].breaker is self:
                _open_blocks.set(blocks[:index] + blocks[index + 1 :])
                return blocks[index]
        raise RuntimeError(f"breaker {self.name!r}: __exit__ without a matching __enter__")

    # ----------------------------------------------------------------- admission and settling

    def _admit_trial_or_refuse(self) -> CircuitOpenError | None:
        state = self._current_state()  # OPEN, or HALF_OPEN if the timeout has passed
        if state is _HALF_OPEN and self._trials_in_flight < self.settings.half_open_max_calls:
            if self._trials_in_flight == 0:
                self._trials_waiting_since = self._clock()
            self._trials_in_flight += 1
            return None
        self._rejected += 1
        return CircuitOpenError(self.name, self._retry_after_s(), state)

    def _counts_against(self, error: Exception) -> bool:
        try:
            return bool(self.settings.is_failure(error))
        except Exception:
            log.exception("failure classifier of breaker %r raised; counting the call as failed", self.name)
            return True

    def _settle(self, ticket: Ticket, outcome: str) -> bool:
        with self._lock:
            if ticket._settled:
                raise RuntimeError(f"{ticket!r} is settled already; its first outcome stands")
            ticket._settled = True
            counted = ticket.generation == self._generation_now()
            if not counted:
                self._ignored_stale += 1
            elif outcome is _SUCCESS:
                self._record_success()
            elif outcome is _FAILURE:
                self._record_failure()
            else:
                self._abandoned += 1
                if self._state is _HALF_OPEN:
                    self._end_trial()  # free the slot for another trial
        if self._transitions:
            self._notify_listeners()
        return counted

    def _record_success(self) -> None:
        self._successes += 1
        if self._state is _CLOSED:
            self._failures_in_a_row = 0
            self._remember(failed=False)
            if self._should_trip():  # a success too can complete a window that fails
                self._move_to(_OPEN)
        else:  # HALF_OPEN: an unchanged generation means the state that admitted the call
            self._end_trial()
            self._trial_successes += 1
            if self._trial_successes >= self.settings.half_open_max_calls:
                self._move_to(_CLOSED)

    def _record_failure(self) -> None:
        self._failures += 1
        if self._state is _CLOSED:
            self._failures_in_a_row += 1
            self._remember(failed=True)
            if self._should_trip():
                self._move_to(_OPEN)
        else:  # HALF_OPEN: one failed trial is enough
            self._end_trial()
            self._move_to(_OPEN)

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
                    _decided(
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
