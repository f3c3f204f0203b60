"""What a saga is made of: steps, each an action and its compensation, and the context they get.

A step's action does one piece of work in one other service (reserve the stock, charge the
card) and its compensation undoes it semantically (release the stock, refund the charge).
Both receive a ``StepContext``: the saga's payload, an idempotency key that stays the same
for every attempt of that step, and how many seconds are left, to pass on as the gRPC
``timeout=`` so that the deadline travels with the call.

The one decision a step must make about its own failure is *what the failure means*:

* ``NOTHING_DONE``: the other service looked at the request and refused it before changing
  anything (FAILED_PRECONDITION: out of stock, card declined). There is nothing to undo.
  The same holds when our own circuit breaker refused the call (``CircuitOpenError``, week
  8): the request never left the process, so no Refund is owed for a Pay never sent.
* ``POSSIBLY_DONE``: we do not know. A Pay that timed out may have charged the card just
  before the answer got lost; UNAVAILABLE may come from a proxy after the server committed.
  The saga compensates this step too (refunds it). That is safe only because compensations
  tolerate having nothing to undo, and it is the only safe choice: guessing "nothing done"
  wrongly keeps a customer's money, guessing "possibly done" wrongly costs one no-op call.

``classify_failure`` is the default rule; a step may pass its own.

**Local writes ride in the log's commits.** A saga usually exists for a row of its own
service (the order it places). ``SagaDefinition.on_create`` writes that row inside the
transaction that creates the saga, and ``on_end`` settles it inside the transaction that
ends the saga. No extra commits, and no instant at which the log and the row disagree: a
crash leaves either both or neither.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy.orm import Session

from bookstore.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from bookstore.rpc.failures import CircuitOpenError
from bookstore.saga.log import SagaState

DEFAULT_STEP_TIMEOUT_S = 2.0
DEFAULT_SAGA_DEADLINE_S = 10.0
IDEMPOTENCY_METADATA_KEY = "idempotency-key"


class FailureMeaning(enum.Enum):
    """What a failed action tells us about the work it was asked to do."""

    NOTHING_DONE = "nothing_done"
    POSSIBLY_DONE = "possibly_done"


class StepTimeout(Exception):
    """A step ran past its deadline (its own timeout or what was left of the saga's).

    It may have finished its work just after the deadline, so it counts as possibly done.
    """


class SagaDeadlineExceeded(Exception):
    """The saga's deadline passed before a step could start; that step did nothing."""


# The other service decided to refuse the request, so it changed nothing. ALREADY_EXISTS is
# deliberately absent: it can mean an earlier attempt of this very step got through.
REFUSAL_CODES = frozenset(
    {
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
REFUSAL_ERRORS: tuple[type[Exception], ...] = (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    SagaDeadlineExceeded,
    # Checked before the status code: a refusal by our breaker says UNAVAILABLE, as an outage
    # does, but unlike an outage it proves the call was never made.
    CircuitOpenError,
)


def status_code_of(error: BaseException) -> grpc.StatusCode | None:
    """The gRPC status code a failed call carries, or None for any other exception."""
    code = getattr(error, "code", None)
    if not callable(code):
        return None
    try:
        value = code()
    except Exception:
        return None
    return value if isinstance(value, grpc.StatusCode) else None


def classify_failure(error: Exception) -> FailureMeaning:
    """The default policy: refusals did nothing (the other service's, or our own circuit
    breaker's); everything else (timeouts, UNAVAILABLE, INTERNAL, a bug in the action)
    possibly did something.
    """
    if isinstance(error, REFUSAL_ERRORS):
        return FailureMeaning.NOTHING_DONE
    if status_code_of(error) in REFUSAL_CODES:
        return FailureMeaning.NOTHING_DONE
    return FailureMeaning.POSSIBLY_DONE


def describe_error(error: BaseException) -> str:
    """A one-line reason for the log and the outcome: ``UNAVAILABLE: payment is down``.

    A refusal by our circuit breaker reads as itself (``circuit 'payment' is open; ...``):
    its UNAVAILABLE would suggest that the other service answered, which it never did.
    """
    if isinstance(error, CircuitOpenError):
        return str(error)
    code = status_code_of(error)
    if code is not None:
        details = getattr(error, "details", None)
        text = details() if callable(details) else str(error)
        return f"{code.name}: {text}" if text else code.name
    if isinstance(error, StepTimeout | SagaDeadlineExceeded):
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True)
class StepContext:
    """What an action or a compensation is told about the call it is making.

    ``timeout_s`` is read when used: pass it straight to the stub, as in
    ``stub.Pay(request, timeout=ctx.timeout_s, metadata=ctx.metadata)``.
    """

    saga_id: str
    step: str
    payload: Mapping[str, Any]
    # The same for every attempt of this step, in this process or after a restart, so the
    # other service can recognise a replay and answer it without doing the work twice.
    idempotency_key: str
    deadline_at: float
    clock: Callable[[], float] = field(repr=False, compare=False)
    attempt: int = 1
    compensating: bool = False

    @classmethod
    def of(
        cls,
        saga_id: str,
        step: str,
        payload: Mapping[str, Any],
        deadline_at: float,
        clock: Callable[[], float],
        *,
        attempt: int = 1,
        compensating: bool = False,
    ) -> StepContext:
        """The context of one attempt of ``step``, with the step's idempotency key."""
        return cls(
            saga_id=saga_id,
            step=step,
            payload=payload,
            idempotency_key=idempotency_key(saga_id, step),
            deadline_at=deadline_at,
            clock=clock,
            attempt=attempt,
            compensating=compensating,
        )

    @property
    def timeout_s(self) -> float:
        """Seconds left before this step's deadline: the gRPC ``timeout=`` for the call."""
        return max(0.0, self.deadline_at - self.clock())

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata carrying the idempotency key, for services that read it from there."""
        return ((IDEMPOTENCY_METADATA_KEY, self.idempotency_key),)


def idempotency_key(saga_id: str, step: str) -> str:
    return f"{saga_id}:{step}"


Action = Callable[[StepContext], None]


@dataclass(frozen=True)
class Step:
    """One step of a saga.

    ``compensation`` is None for a step with nothing to undo (a read, say). ``timeout_s``
    bounds one attempt of the action and of each compensation attempt; the forward path is
    also bounded by the saga's deadline. ``failure_meaning`` decides, per error, whether a
    failure of *this* step means nothing was done or that it must be compensated too.
    """

    name: str
    action: Action
    compensation: Action | None = None
    timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    failure_meaning: Callable[[Exception], FailureMeaning] = classify_failure

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a step needs a name")
        if self.timeout_s <= 0:
            raise ValueError(f"step {self.name}: timeout_s must be positive, got {self.timeout_s}")


@dataclass(frozen=True)
class SagaEnd:
    """How a saga ends, handed to ``SagaDefinition.on_end`` inside the saga's last commit."""

    saga_id: str
    payload: Mapping[str, Any]
    state: SagaState
    failed_step: str | None = None
    error: str = ""


@dataclass(frozen=True)
class SagaDefinition:
    """A named, ordered list of steps, the default deadline of one run, and its local writes.

    ``on_create(session, payload)`` runs inside the transaction that creates the saga (and
    commits its first step's STARTED); an exception there rolls the creation back and is
    raised by ``run``. ``on_end(session, end)`` runs inside the transaction that marks the
    saga SUCCEEDED or COMPENSATED. Both get the log's session, so they may only write to
    the saga log's own database.
    """

    name: str
    steps: Sequence[Step]
    deadline_s: float = DEFAULT_SAGA_DEADLINE_S
    on_create: Callable[[Session, Mapping[str, Any]], None] | None = None
    on_end: Callable[[Session, SagaEnd], None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        if not self.name:
            raise ValueError("a saga definition needs a name")
        if not self.steps:
            raise ValueError(f"saga {self.name} has no steps")
        names = [step.name for step in self.steps]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"saga {self.name}: step names must be unique, repeated: {duplicates}")
        if self.deadline_s <= 0:
            raise ValueError(f"saga {self.name}: deadline_s must be positive, got {self.deadline_s}")

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"saga {self.name} has no step {name!r}")

    def index(self, name: str) -> int:
        return [step.name for step in self.steps].index(name)
