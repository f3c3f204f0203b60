"""The saga orchestrator: drives a saga forward, undoes it when a step fails, recovers it after a crash.

The rules it keeps, in the order they matter:

1. **Log before move.** Every event is committed to the ``SagaLog`` before the next call is
   made, and hooks see it only after it is committed. Kill the process at any instant and
   ``recover_all`` finds each unfinished saga where it was. Events with no call between
   them share one transaction: the saga's creation and its first STARTED, a step's
   SUCCEEDED and the next step's STARTED (or its FAILED, when the deadline has passed),
   the last SUCCEEDED and the saga's end. The definition's ``on_create`` and ``on_end``
   write the service's own rows in the first and the last of those transactions.
2. **Forward in order, compensate in reverse.** When step *k* fails, the steps before it are
   compensated from *k-1* down to the first. Step *k* itself is compensated first when its
   failure means POSSIBLY_DONE (a timeout, UNAVAILABLE), never when it was a refusal
   (NOTHING_DONE). A step re-run after a crash is compensated on any failure, since its first
   attempt may have done the work.
3. **Deadlines travel.** A saga has a deadline and each step a timeout; a step's context
   carries the smaller of the two as the gRPC ``timeout=``. A step that returns after it is
   a possibly-done failure. When the saga's deadline has passed, the next step is not
   started and the saga compensates. Compensations are *not* bounded by the saga deadline:
   giving up on an undo would keep the customer's money.
4. **Compensations are retried until they succeed**, with exponential backoff, so they must
   be idempotent. ``Backoff.max_attempts`` stops early (tests, operators); the saga then
   stays COMPENSATING in the log, and the next ``resume`` carries on.
5. **The original error wins.** The outcome reports the step that failed and its error,
   whatever the compensations went through afterwards; those appear as events.

A resumed saga gets a fresh deadline of its original length: the caller who waited is gone,
and moving forward is what it asked for. ``run`` with the id of an existing saga is a replay:
it resumes that saga (or reports it, when finished) and starts nothing new.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy.orm import Session

from bookstore.observability.saga_telemetry import SagaRun, StepSpan
from bookstore.saga.definition import (
    FailureMeaning,
    SagaDeadlineExceeded,
    SagaDefinition,
    SagaEnd,
    Step,
    StepContext,
    StepTimeout,
    describe_error,
)
from bookstore.saga.log import (
    NewEvent,
    SagaLog,
    SagaOwnershipLost,
    SagaRecord,
    SagaState,
    StepEventKind,
    StepRecord,
    encode_payload,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SagaEvent:
    """What a hook is told, once the event is safely in the log.

    ``at`` is the orchestrator's clock (monotonic by default): good for durations and plots.
    ``last_in_commit`` is False when the event after it was committed in the same
    transaction: no instant exists at which the log holds this event without that one.
    """

    saga_id: str
    step: str
    kind: StepEventKind
    at: float
    error: str = ""
    attempt: int = 1
    last_in_commit: bool = True


Hook = Callable[[SagaEvent], None]


@dataclass(frozen=True)
class Backoff:
    """Delays between compensation attempts: ``initial_s``, doubling, capped at ``max_s``.

    ``jitter`` shaves up to that fraction off each delay at random, so that many sagas
    waiting for the same service do not all knock again at the same instant.
    ``max_attempts`` None means retry forever.
    """

    initial_s: float = 0.1
    multiplier: float = 2.0
    max_s: float = 10.0
    jitter: float = 0.2
    max_attempts: int | None = None
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.multiplier < 1:
            raise ValueError("need 0 <= initial_s <= max_s and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        exponent = min(max(failures - 1, 0), 64)  # past the cap anyway; avoids float overflow
        base = min(self.max_s, self.initial_s * self.multiplier**exponent)
        return base * (1 - self.jitter * self.random())


@dataclass(frozen=True)
class SagaOutcome:
    """How a saga ended, read back from the log.

    ``error`` is the original failure's reason, even when compensations failed before they
    succeeded. ``exception`` is that failure itself, only in the process that saw it happen
    (None after a recovery). ``state`` is COMPENSATING when compensation gave up early
    (``Backoff.max_attempts``): the saga is still in flight and ``resume`` will carry on.
    """

    saga_id: str
    state: SagaState
    failed_step: str | None = None
    error: str = ""
    compensated: tuple[str, ...] = ()
    exception: Exception | None = field(default=None, compare=False, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.state is SagaState.SUCCEEDED

    @property
    def finished(self) -> bool:
        return self.state.finished

    @classmethod
    def from_record(cls, record: SagaRecord, exception: Exception | None = None) -> SagaOutcome:
        return cls(
            saga_id=record.saga_id,
            state=record.state,
            failed_step=record.failed_step,
            error=record.error,
            compensated=tuple(e.step for e in record.events if e.kind is StepEventKind.COMPENSATED),
            exception=exception,
        )


class SagaBusy(RuntimeError):
    """Someone is driving this saga already: this orchestrator, or another owner whose lease holds."""


class UnknownSagaDefinition(LookupError):
    """The log names a saga definition this orchestrator was not given."""


@dataclass
class _Progress:
    """A step's state, folded from its events in the log."""

    started: bool = False
    ended: bool = False
    succeeded: bool = False
    possibly_done: bool = False
    compensated: bool = False

    @property
    def interrupted(self) -> bool:
        return self.started and not self.ended

    @property
    def needs_compensation(self) -> bool:
        return not self.compensated and (self.succeeded or self.possibly_done or self.interrupted)


def _progress(definition: SagaDefinition, events: Iterable[StepRecord]) -> tuple[dict[str, _Progress], bool]:
    """Each step's progress, and whether any step failed (which means: compensate to the end)."""
    progress = {step.name: _Progress() for step in definition.steps}
    failed = False
    for event in events:
        state = progress.get(event.step)
        if state is None:
            raise UnknownSagaDefinition(
                f"the log names step {event.step!r}, which saga {definition.name} does not have"
            )
        if event.kind is StepEventKind.STARTED:
            state.started, state.ended = True, False
        elif event.kind is StepEventKind.SUCCEEDED:
            state.ended = state.succeeded = True
        elif event.kind is StepEventKind.FAILED:
            state.ended = failed = True
            state.possibly_done = bool(event.possibly_done)
        elif event.kind is StepEventKind.COMPENSATED:
            state.compensated = True
    return progress, failed


class SagaOrchestrator:
    """Runs the sagas of ``definitions``, logging every move in ``log``.

    ``clock`` and ``sleep`` are injectable so that tests neither wait nor depend on timing.
    Hooks are called after each event is committed; a hook that raises is logged and
    ignored (observers never change the saga's course).
    """

    def __init__(
        self,
        log: SagaLog,
        definitions: Iterable[SagaDefinition],
        hooks: Sequence[Hook] = (),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        self._log = log
        self._definitions: dict[str, SagaDefinition] = {}
        for definition in definitions:
            if definition.name in self._definitions:
                raise ValueError(f"two saga definitions are named {definition.name}")
            self._definitions[definition.name] = definition
        self._hooks = list(hooks)
        self._clock = clock
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._active: set[str] = set()
        self._active_lock = threading.Lock()

    @property
    def log(self) -> SagaLog:
        return self._log

    def add_hook(self, hook: Hook) -> None:
        self._hooks.append(hook)

    def run(
        self,
        definition_name: str,
        saga_id: str,
        payload: Mapping[str, Any],
        deadline_s: float | None = None,
    ) -> SagaOutcome:
        """Create the saga and drive it to its end; ``deadline_s`` defaults to the definition's.

        With the id of a saga that exists already, this is a replay: nothing new starts, the
        existing saga is reported, or resumed if it is unfinished.
        """
        definition = self._definition(definition_name)
        budget = definition.deadline_s if deadline_s is None else deadline_s
        if budget <= 0:
            raise ValueError(f"deadline_s must be positive, got {budget}")
        # What the actions see is what a recovery would read back from the log.
        stored = json.loads(encode_payload(payload))
        with self._driving(saga_id):
            deadline_at = self._clock() + budget
            first = NewEvent(definition.steps[0].name, StepEventKind.STARTED)
            # The saga is created with its first step STARTED: one transaction, no call between.
            on_create = definition.on_create
            also = None if on_create is None else (lambda session: on_create(session, stored))
            created = self._log.create(
                saga_id, definition.name, stored, deadline_s=budget, first_event=first, also=also
            )
            if created:
                self._notify(saga_id, [first])
                return self._observed(
                    definition,
                    saga_id,
                    lambda: self._forward(
                        definition, saga_id, stored, 0, False, deadline_at, first_started=True
                    ),
                )
        existing = self._log.get(saga_id)
        if existing.definition != definition.name:
            raise ValueError(f"saga {saga_id} exists already, as a {existing.definition} saga")
        return self.resume(saga_id)

    def resume(self, saga_id: str) -> SagaOutcome:
        """Carry an unfinished saga on from where its log stops; report a finished one as is.

        Forward from the first step not SUCCEEDED when no step failed (a step STARTED without
        an end is run again, with the same idempotency key); otherwise compensate to the end.
        Raises SagaBusy when another owner's lease on the saga still holds.
        """
        record = self._log.get(saga_id)
        if record.finished:
            return SagaOutcome.from_record(record)
        definition = self._definition(record.definition)
        with self._driving(saga_id):
            if not self._log.claim(saga_id):
                record = self._log.get(saga_id)
                if record.finished:
                    return SagaOutcome.from_record(record)
                raise SagaBusy(f"saga {saga_id} is owned by {record.owner}, whose lease still holds")
            record = self._log.get(saga_id)
            progress, failed = _progress(definition, record.events)
            log.info("resuming saga %s (%s) in state %s", saga_id, definition.name, record.state.value)
            if failed:
                payload = record.payload
                return self._observed(
                    definition, saga_id, lambda: self._compensate(definition, saga_id, payload), resumed=True
                )
            steps = definition.steps
            start = next((i for i, step in enumerate(steps) if not progress[step.name].succeeded), len(steps))
            interrupted = start < len(steps) and progress[steps[start].name].interrupted
            deadline_at = self._clock() + record.deadline_s
            payload = record.payload
            return self._observed(
                definition,
                saga_id,
                lambda: self._forward(definition, saga_id, payload, start, interrupted, deadline_at),
                resumed=True,
            )

    def recover_all(self) -> list[SagaOutcome]:
        """Resume every unfinished saga in the log; call it at start-up, before taking orders.

        Sagas another live owner is driving (or takes over meanwhile), and sagas of
        definitions this orchestrator does not know, are skipped with a warning; they stay
        in ``log.in_flight()``. A compensation whose service is down is retried until it
        succeeds, so run this in a background thread if start-up must not wait for it.
        """
        outcomes = []
        for record in self._log.in_flight():
            try:
                outcomes.append(self.resume(record.saga_id))
            except (SagaBusy, SagaOwnershipLost, UnknownSagaDefinition) as error:
                log.warning("recovery skipped saga %s: %s", record.saga_id, error)
        return outcomes

    # The forward path

    def _forward(
        self,
        definition: SagaDefinition,
        saga_id: str,
        payload: Mapping[str, Any],
        start: int,
        interrupted: bool,
        deadline_at: float,
        *,
        first_started: bool = False,
    ) -> SagaOutcome:
        """Run the steps from ``start``; ``first_started``: its STARTED is in the log already."""
        frozen = MappingProxyType(dict(payload))
        # The previous step's SUCCEEDED, committed together with whatever comes next.
        done: list[NewEvent] = []
        for index in range(start, len(definition.steps)):
            step = definition.steps[index]
            # A step interrupted by a crash and run again may have done its work the first time.
            rerun = interrupted and index == start
            now = self._clock()
            already_started = first_started and index == start
            if now >= deadline_at:
                late = SagaDeadlineExceeded(f"the saga's deadline passed before step {step.name} started")
                failed = NewEvent(step.name, StepEventKind.FAILED, error=str(late), possibly_done=rerun)
                self._write(saga_id, [*done, failed])
                return self._compensate(definition, saga_id, payload, late)
            step_deadline = min(now + step.timeout_s, deadline_at)
            late_reason = (
                f"step {step.name} ran past the saga's deadline"
                if deadline_at < now + step.timeout_s
                else f"step {step.name} took longer than its timeout of {step.timeout_s:g} s"
            )
            if not already_started:
                self._write(saga_id, [*done, NewEvent(step.name, StepEventKind.STARTED)])
            observed = StepSpan(definition.name, step.name)
            failure = None
            try:
                failure = self._attempt(
                    step, self._context(saga_id, step, frozen, step_deadline), late_reason
                )
            finally:
                observed.end(failure)
            if failure is None:
                done = [NewEvent(step.name, StepEventKind.SUCCEEDED)]
                continue
            meaning = FailureMeaning.POSSIBLY_DONE if rerun else self._meaning(step, failure)
            self._write(
                saga_id,
                [
                    NewEvent(
                        step.name,
                        StepEventKind.FAILED,
                        error=describe_error(failure),
                        possibly_done=meaning is FailureMeaning.POSSIBLY_DONE,
                    )
                ],
            )
            log.info("saga %s: step %s failed (%s): %s", saga_id, step.name, meaning.value, failure)
            return self._compensate(definition, saga_id, payload, failure)
        end = SagaEnd(saga_id, frozen, SagaState.SUCCEEDED)
        self._write(saga_id, done, finish=SagaState.SUCCEEDED, also=self._on_end(definition, end))
        # Only a saga in which no step failed comes this way: nothing to read back.
        return SagaOutcome(saga_id=saga_id, state=SagaState.SUCCEEDED)

    def _attempt(self, step: Step, context: StepContext, late_reason: str) -> Exception | None:
        """Run a step's action; the failure, if any (returning after the deadline is one)."""
        try:
            step.action(context)
        except Exception as error:
            return error
        if self._clock() > context.deadline_at:
            return StepTimeout(late_reason)
        return None

    @staticmethod
    def _meaning(step: Step, failure: Exception) -> FailureMeaning:
        try:
            return step.failure_meaning(failure)
        except Exception:
            log.exception("the failure policy of step %s raised; assuming possibly done", step.name)
            return FailureMeaning.POSSIBLY_DONE

    # The backward path

    def _compensate(
        self,
        definition: SagaDefinition,
        saga_id: str,
        payload: Mapping[str, Any],
        failure: Exception | None = None,
    ) -> SagaOutcome:
        """Compensate, last first, every step the log shows done or possibly done and not yet undone."""
        record = self._log.get(saga_id)
        progress, _ = _progress(definition, record.events)
        frozen = MappingProxyType(dict(payload))
        pending = [
            step
            for step in definition.steps
            if step.compensation is not None and progress[step.name].needs_compensation
        ]
        for step in reversed(pending):
            if not self._compensate_step(saga_id, step, frozen, saga_name=definition.name):
                log.error(
                    "saga %s: gave up compensating step %s after %s attempts; it stays in flight",
                    saga_id,
                    step.name,
                    self._backoff.max_attempts,
                )
                return SagaOutcome.from_record(self._log.get(saga_id), failure)
        end = SagaEnd(saga_id, frozen, SagaState.COMPENSATED, record.failed_step, record.error)
        self._log.finish(saga_id, SagaState.COMPENSATED, also=self._on_end(definition, end))
        return SagaOutcome.from_record(self._log.get(saga_id), failure)

    def _compensate_step(
        self, saga_id: str, step: Step, payload: Mapping[str, Any], *, saga_name: str = ""
    ) -> bool:
        """Retry one compensation with backoff until it succeeds (or max_attempts runs out)."""
        assert step.compensation is not None
        attempt = 0
        while True:
            attempt += 1
            context = self._context(
                saga_id, step, payload, self._clock() + step.timeout_s, attempt=attempt, compensating=True
            )
            self._write(saga_id, [NewEvent(step.name, StepEventKind.COMPENSATING, attempt=attempt)])
            observed = StepSpan(saga_name, step.name, attempt=attempt, compensating=True)
            try:
                step.compensation(context)
            except Exception as error:
                observed.end(error)
                self._write(
                    saga_id,
                    [
                        NewEvent(
                            step.name,
                            StepEventKind.COMPENSATION_FAILED,
                            error=describe_error(error),
                            attempt=attempt,
                        )
                    ],
                )
                log.warning(
                    "saga %s: compensating %s failed (attempt %d): %s", saga_id, step.name, attempt, error
                )
                if self._backoff.max_attempts is not None and attempt >= self._backoff.max_attempts:
                    return False
                self._sleep(self._backoff.delay(attempt))
                continue
            except BaseException as interrupted:
                observed.end(interrupted)
                raise
            observed.end()
            self._write(saga_id, [NewEvent(step.name, StepEventKind.COMPENSATED, attempt=attempt)])
            return True

    # Plumbing

    @staticmethod
    def _observed(
        definition: SagaDefinition, saga_id: str, drive: Callable[[], SagaOutcome], *, resumed: bool = False
    ) -> SagaOutcome:
        """Run ``drive`` as one saga run in traces and ``saga_*`` metrics; it changes nothing else."""
        with SagaRun(definition.name, saga_id, resumed=resumed) as run:
            outcome = drive()
            run.finish(outcome.state.value, failed_step=outcome.failed_step, error=outcome.error)
        return outcome

    def _context(
        self,
        saga_id: str,
        step: Step,
        payload: Mapping[str, Any],
        deadline_at: float,
        *,
        attempt: int = 1,
        compensating: bool = False,
    ) -> StepContext:
        return StepContext.of(
            saga_id, step.name, payload, deadline_at, self._clock, attempt=attempt, compensating=compensating
        )

    @staticmethod
    def _on_end(definition: SagaDefinition, end: SagaEnd) -> Callable[[Session], None] | None:
        """The definition's ``on_end`` for this end, to run inside the saga's last commit."""
        on_end = definition.on_end
        return None if on_end is None else (lambda session: on_end(session, end))

    def _write(
        self,
        saga_id: str,
        events: list[NewEvent],
        *,
        finish: SagaState | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> None:
        """Commit the events in one transaction, then tell the hooks: they never see what the log lacks."""
        if not events and finish is None:
            return
        self._log.append(saga_id, events, finish=finish, also=also)
        self._notify(saga_id, events)

    def _notify(self, saga_id: str, events: list[NewEvent]) -> None:
        at = self._clock()
        for index, new in enumerate(events):
            event = SagaEvent(
                saga_id=saga_id,
                step=new.step,
                kind=new.kind,
                at=at,
                error=new.error,
                attempt=new.attempt,
                last_in_commit=index == len(events) - 1,
            )
            for hook in self._hooks:
                try:
                    hook(event)
                except Exception:
                    log.exception("saga hook %r failed on %s", hook, event)

    def _definition(self, name: str) -> SagaDefinition:
        try:
            return self._definitions[name]
        except KeyError:
            raise UnknownSagaDefinition(
                f"no saga definition {name!r}; this orchestrator knows {sorted(self._definitions)}"
            ) from None

    @contextmanager
    def _driving(self, saga_id: str) -> Iterator[None]:
        """One driver per saga in this process (the log's lease covers other processes)."""
        with self._active_lock:
            if saga_id in self._active:
                raise SagaBusy(f"saga {saga_id} is being driven by this orchestrator already")
            self._active.add(saga_id)
        try:
            yield
        finally:
            with self._active_lock:
                self._active.discard(saga_id)
