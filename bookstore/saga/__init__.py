"""Sagas: one business transaction across services that each own their database.

**What.** A saga is an ordered list of steps. Each step is a local transaction in one service
(reserve the stock, charge the card) paired with a *compensation* that undoes it
semantically (release the stock, refund the charge). Either every step completes, or the
steps that completed are compensated, last first. Nothing is left half-done, eventually.

**ACID versus saga.** Inside one database a transaction is atomic and isolated: nobody sees
the stock gone before the payment went through, and a rollback erases both. With a
database per service there is no such transaction. A saga keeps atomicity (all or
compensated) and durability, but gives up isolation: in between, others *can* see the
reserved stock and the PENDING order. Hence the PENDING status (a semantic lock that tells
readers "not final yet") and hence compensations are new transactions, not rollbacks: a
refund is a second movement of money that the customer may well see on the statement.

**Why not two-phase commit.** 2PC makes every participant *prepare* (hold its locks) and wait
for the coordinator's verdict. It needs every participant to speak a common protocol (XA),
which gRPC and HTTP services and RabbitMQ do not; it holds locks across network round trips;
and if the coordinator dies after the prepare, the participants stay blocked, locks held,
until it comes back. A saga holds no lock between steps and survives the death of anyone,
at the price of the visible in-between.

**Orchestration versus choreography.** Here one orchestrator (the order service) tells each
participant what to do and decides what to undo: the flow lives in one place, it can be
read top to bottom, logged and recovered. In choreography each service reacts to the others'
events (week 9): looser coupling and no centre, but the flow is scattered across services
and harder to follow, test and compensate. Orchestrate when the caller needs the answer (a
customer waiting for "order approved"); choreograph the follow-ups nobody waits for.

**The failed step itself.** Compensating the steps *before* the failure is obvious; the
failed step needs a decision. A business refusal (FAILED_PRECONDITION: out of stock, card
declined) means the service changed nothing, so it is not compensated; nor is a call that
our own circuit breaker refused to send (week 8), since it never left the process. A timeout,
UNAVAILABLE or any unexpected error means we do not know: a Pay that timed out may have
charged the card before the answer got lost. Such a step is treated as possibly done and
compensated too (refunded). Wrongly assuming "possibly done" costs one no-op refund;
wrongly assuming "nothing done" keeps a customer's money. A step that ran past its own
timeout or the saga's deadline counts as possibly done. See ``definition.classify_failure``.

**Why compensations must be idempotent.** A compensation is retried, with backoff, until it
succeeds, and repeated after a crash when the log cannot tell whether it got through. So
running it twice must do what running it once does (refund once, release once). It must
also succeed when there is nothing to undo (the possibly-done step that was in fact not
done), and should bar a late original: a Pay that arrives after its Refund must be refused,
or the money is taken after the saga gave it back. Actions are idempotent for the same
reasons: each call carries an idempotency key, ``"<saga id>:<step>"``, the same on every
attempt, so a replay after a crash never double-reserves or double-charges.

**Crashes.** The ``SagaLog`` records every move before the next one is made, in the
orchestrating service's own database. On start-up ``SagaOrchestrator.recover_all`` resumes
each unfinished saga: forward if no step failed, otherwise compensation to the end.

**When not to use one.** If two pieces of data must never be seen out of step, they belong in
one service and one database; no saga gives isolation back. Put steps that cannot be undone
(sending an e-mail, shipping) last, after every step that can still fail.

Usage::

    steps = [Step("reserve", reserve, release), Step("pay", pay, refund, timeout_s=2.0)]
    orchestrator = SagaOrchestrator(SagaLog(engine), [SagaDefinition("place_order", steps)])
    orchestrator.recover_all()
    outcome = orchestrator.run("place_order", order_id, {"order_id": order_id}, deadline_s=5.0)
"""

from bookstore.saga.definition import (
    FailureMeaning,
    SagaDeadlineExceeded,
    SagaDefinition,
    SagaEnd,
    Step,
    StepContext,
    StepTimeout,
    classify_failure,
    describe_error,
    idempotency_key,
)
from bookstore.saga.log import (
    NewEvent,
    SagaLog,
    SagaNotFound,
    SagaOwnershipLost,
    SagaRecord,
    SagaState,
    StepEventKind,
    StepRecord,
)
from bookstore.saga.orchestrator import (
    Backoff,
    Hook,
    SagaBusy,
    SagaEvent,
    SagaOrchestrator,
    SagaOutcome,
    UnknownSagaDefinition,
)

__all__ = [
    "Backoff",
    "FailureMeaning",
    "Hook",
    "NewEvent",
    "SagaBusy",
    "SagaDeadlineExceeded",
    "SagaDefinition",
    "SagaEnd",
    "SagaEvent",
    "SagaLog",
    "SagaNotFound",
    "SagaOrchestrator",
    "SagaOutcome",
    "SagaOwnershipLost",
    "SagaRecord",
    "SagaState",
    "Step",
    "StepContext",
    "StepEventKind",
    "StepRecord",
    "StepTimeout",
    "UnknownSagaDefinition",
    "classify_failure",
    "describe_error",
    "idempotency_key",
]
