"""The place-order saga: week 6's steps, each one logged, so a crash can no longer strand an order.

The saga's id is the order's id. Its steps, each with the compensation that undoes it::

    reserve  inventory.ReserveStock               undo: inventory.ReleaseStock
    pay      payment.Pay (none for a free order)  undo: payment.Refund

**The order row rides in the log's own commits.** The order is written PENDING in the very
transaction that creates the saga (``SagaDefinition.on_create``), and it becomes APPROVED or
REJECTED in the very transaction that ends it (``on_end``). Three commits per order, where
separate writes took six: the saga's creation with the order and ``reserve`` STARTED;
``reserve`` SUCCEEDED with ``pay`` STARTED; ``pay`` SUCCEEDED with the saga's end and the
approval. A crash can no longer fall between the log and the order: a PENDING order always
has an unfinished saga that ``recover`` finds, and a finished saga always a settled order.
Until the saga ends, the order stays PENDING: a *semantic lock* that tells every reader (the
gateway, a replayed request) that nothing about it is final.

The REJECTED reason is read back from the saga log, so it is the *original* failure ("out of
stock: ...", "payment declined: ...", "payment failed: Pay returned UNAVAILABLE: ..."), also
when the compensation runs in a restarted process that never saw the error itself.

**Why approval is not a step.** A step that returns after its deadline counts as possibly
done and sends the saga into compensation. An ``approve`` step that committed APPROVED and
returned a millisecond late would get the money refunded and the stock released under an
APPROVED order. So approval is part of the saga's end, written with the log's SUCCEEDED.

**Idempotency.** Every call carries the order id in its request, which the inventory and
payment services use as their idempotency key, and the step's key (``"<order id>:pay"``)
as gRPC metadata. A step re-run after a crash or a compensation retried after a failure is
answered from the first outcome, never applied twice. Compensations also work when there
is nothing to undo: a Refund before any Pay voids the payment and bars a late Pay.

**Recovery.** ``recover`` resumes every saga in flight (forward if no step failed, otherwise
compensation to the end), which settles its order as the saga ends. The
service runs it at start-up and then every few seconds (``recover_periodically``), which
also finishes compensations that gave up for a while because a service was down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bookstore.domain.errors import FailedPrecondition
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.rpc.v1 import inventory_pb2, payment_pb2
from bookstore.saga import (
    Backoff,
    Hook,
    SagaBusy,
    SagaDefinition,
    SagaEnd,
    SagaLog,
    SagaNotFound,
    SagaOrchestrator,
    SagaOutcome,
    SagaOwnershipLost,
    SagaState,
    Step,
    StepContext,
)
from bookstore.services.order.clients import OrderDependencies
from bookstore.services.order.crash import CrashPoint, Kill, sigkill_self
from bookstore.services.order.store import OrderStore

log = logging.getLogger(__name__)

PLACE_ORDER = "place_order"
RESERVE_STEP = "reserve"
PAY_STEP = "pay"
STEP_NAMES = (RESERVE_STEP, PAY_STEP)

DEFAULT_RECOVERY_INTERVAL_S = 3.0
# A request thread retries a failing compensation a few times, then leaves the saga
# COMPENSATING (the order PENDING) and answers; the periodic recovery carries on from there.
# A caller is never held hostage by a service that stays down.
COMPENSATION_BACKOFF = Backoff(initial_s=0.1, multiplier=2.0, max_s=1.0, max_attempts=5)


@dataclass(frozen=True)
class StepCall:
    """Whom a step calls, how its compensation is called, and how a refusal reads in a reason."""

    service: str
    method: str
    undo: str
    refusal: str


STEP_CALLS = {
    RESERVE_STEP: StepCall("inventory", "ReserveStock", "ReleaseStock", "out of stock"),
    PAY_STEP: StepCall("payment", "Pay", "Refund", "payment declined"),
}


class RequestTaken(FailedPrecondition):
    """The user's request id belongs to another order already: no saga starts, nothing is written.

    Two copies of one request raced past the replay check; the database's unique key let
    one of them store its order. The other's saga is never created, and its caller gets the winner.
    """

    def __init__(self, winner: Order) -> None:
        super().__init__(f"request {winner.request_id!r} is order {winner.order_id}", field="request_id")
        self.winner = winner


# The payload: everything a restarted process needs to carry the saga on.


def order_payload(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "request_id": order.request_id,
        "total_cents": order.total_cents,
        "items": [
            {"book_id": item.book_id, "quantity": item.quantity, "unit_price_cents": item.unit_price_cents}
            for item in order.items
        ],
    }


def order_from_payload(payload: Mapping[str, Any]) -> Order:
    return Order(
        order_id=payload["order_id"],
        user_id=payload["user_id"],
        items=tuple(
            OrderItem(item["book_id"], item["quantity"], item["unit_price_cents"])
            for item in payload["items"]
        ),
        status=OrderStatus.PENDING,
        created_at_unix=0,  # the store stamps the time
        request_id=payload["request_id"],
        total_cents=payload["total_cents"],
    )


# Reasons, from what the log kept of the original failure.


def split_status(error: str) -> tuple[grpc.StatusCode | None, str]:
    """Read back what ``describe_error`` logged: ``"UNAVAILABLE: down"`` -> (UNAVAILABLE, "down")."""
    name, _, details = error.partition(": ")
    if name in grpc.StatusCode.__members__:
        return grpc.StatusCode[name], details
    return None, error


def rejection_reason(failed_step: str | None, error: str) -> str:
    """The reason a customer reads on a REJECTED order, as week 6 worded it."""
    call = STEP_CALLS.get(failed_step or "")
    if call is None:
        return f"the order could not be completed: {error}"
    code, details = split_status(error)
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return f"{call.refusal}: {details}"
    if code is not None:
        return f"{call.service} failed: {call.method} returned {code.name}: {details}"
    return f"{call.service} failed: {error}"  # our own deadline: "step pay took longer than ..."


class OrderSaga:
    """The place-order saga of one order service: its steps, its log and its orchestrator.

    ``deadline_s`` is the budget of the forward path (``BOOKSTORE_SAGA_DEADLINE_S``); each
    remote step is also bounded by ``deps.deadline_s``, the deadline of one RPC. ``clock``,
    ``sleep`` and ``backoff`` go to the orchestrator (tests pass fakes). ``crash_at`` arms
    the fault injection of ``bookstore.services.order.crash``; ``kill`` is how it dies
    (tests pass a fake).
    """

    def __init__(
        self,
        deps: OrderDependencies,
        store: OrderStore,
        saga_log: SagaLog,
        *,
        deadline_s: float,
        hooks: Sequence[Hook] = (),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff = COMPENSATION_BACKOFF,
        crash_at: CrashPoint | None = None,
        kill: Kill = sigkill_self,
    ) -> None:
        self.deps = deps
        self.store = store
        self.saga_log = saga_log
        steps = list(order_steps(deps))
        all_hooks = list(hooks)
        if crash_at is not None:
            if crash_at.step not in STEP_NAMES:
                raise ValueError(f"BOOKSTORE_CRASH_AT names step {crash_at.step!r}; steps: {STEP_NAMES}")
            log.warning("fault injection armed: this process will SIGKILL itself at %s", crash_at)
            steps = [crash_at.wrap(step, kill) for step in steps]
            all_hooks.append(crash_at.hook(kill))
        self.definition = SagaDefinition(
            PLACE_ORDER, steps, deadline_s=deadline_s, on_create=self._store_pending, on_end=self._settle
        )
        self.orchestrator = SagaOrchestrator(
            saga_log, [self.definition], all_hooks, clock=clock, sleep=sleep, backoff=backoff
        )

    # Driving

    def run(self, draft: Order) -> SagaOutcome:
        """Store a new PENDING ``draft`` and run its saga, which settles the order as it ends.

        Raises RequestTaken, having written nothing, when the user's request id belongs to
        another order (the winner of a race past the replay check).
        """
        try:
            outcome = self.orchestrator.run(PLACE_ORDER, draft.order_id, order_payload(draft))
        except IntegrityError:
            # Both copies passed the check in their transactions; the unique key chose the winner.
            winner = self.store.find_by_request(draft.user_id, draft.request_id) if draft.request_id else None
            if winner is None:
                raise
            raise RequestTaken(winner) from None
        self.store.notify()  # order.created, then order.approved or .rejected, wait in the outbox
        return outcome

    def resume(self, order_id: str) -> SagaOutcome | None:
        """Carry an order's saga on if nobody else drives it; None when there is none, or it is busy."""
        try:
            outcome = self.orchestrator.resume(order_id)
        except SagaNotFound:
            return None
        except (SagaBusy, SagaOwnershipLost) as busy:
            log.debug("saga %s is driven elsewhere: %s", order_id, busy)
            return None
        self.store.notify()
        return outcome

    def recover(self) -> list[SagaOutcome]:
        """Finish every place-order saga in flight; each settles its order as it ends.

        Sagas driven right now (by a request of this process, or by another replica whose
        lease holds) are left to their driver. Returns the outcomes of the sagas resumed.
        """
        outcomes = []
        for record in self.saga_log.in_flight():
            if record.definition != PLACE_ORDER:
                continue
            try:
                outcome = self.resume(record.saga_id)
            except Exception:
                # One broken saga must not keep the others from recovering; it is tried again next round.
                log.exception("recovering saga %s failed; will retry", record.saga_id)
                continue
            if outcome is not None:
                log.info("recovered saga %s: %s", record.saga_id, outcome.state.value)
                outcomes.append(outcome)
        return outcomes

    # The order's own writes, inside the saga's first and last commits.

    def _store_pending(self, session: Session, payload: Mapping[str, Any]) -> None:
        draft = order_from_payload(payload)
        stored = self.store.create_pending_in(session, draft)
        if stored.order_id != draft.order_id:
            raise RequestTaken(stored)  # rolls the saga's creation back: nothing is written

    def _settle(self, session: Session, end: SagaEnd) -> None:
        order_id = end.payload["order_id"]
        if end.state is SagaState.SUCCEEDED:
            self.store.mark_in(session, order_id, OrderStatus.APPROVED)
        else:
            reason = rejection_reason(end.failed_step, end.error)
            self.store.mark_in(session, order_id, OrderStatus.REJECTED, reason)


def order_steps(deps: OrderDependencies) -> tuple[Step, ...]:
    """The place-order steps, each a call and the call that undoes it; each gets one RPC's deadline.

    The saga runs them with a log; ``plain_flow`` runs the very same ones without, so the
    benchmark's baseline differs from the saga by the log and nothing else.
    """

    def reserve(ctx: StepContext) -> None:
        request = inventory_pb2.ReserveStockRequest(
            order_id=ctx.payload["order_id"],
            items=[
                inventory_pb2.StockItem(book_id=item["book_id"], quantity=item["quantity"])
                for item in ctx.payload["items"]
            ],
        )
        deps.inventory.ReserveStock(request, timeout=ctx.timeout_s, metadata=ctx.metadata)

    def release(ctx: StepContext) -> None:
        request = inventory_pb2.ReleaseStockRequest(order_id=ctx.payload["order_id"])
        deps.inventory.ReleaseStock(request, timeout=ctx.timeout_s, metadata=ctx.metadata)

    def pay(ctx: StepContext) -> None:
        if ctx.payload["total_cents"] == 0:
            return  # a free order: payment refuses zero amounts, and there is nothing to charge
        request = payment_pb2.PayRequest(
            order_id=ctx.payload["order_id"],
            user_id=ctx.payload["user_id"],
            amount_cents=ctx.payload["total_cents"],
        )
        deps.payment.Pay(request, timeout=ctx.timeout_s, metadata=ctx.metadata)

    def refund(ctx: StepContext) -> None:
        if ctx.payload["total_cents"] == 0:
            return
        request = payment_pb2.RefundRequest(order_id=ctx.payload["order_id"])
        deps.payment.Refund(request, timeout=ctx.timeout_s, metadata=ctx.metadata)

    # Each call passes what is left of the step's deadline and the step's idempotency key.
    return (
        Step(RESERVE_STEP, reserve, release, timeout_s=deps.deadline_s),
        Step(PAY_STEP, pay, refund, timeout_s=deps.deadline_s),
    )


def recover_periodically(
    saga: OrderSaga, stopping: threading.Event, interval_s: float = DEFAULT_RECOVERY_INTERVAL_S
) -> None:
    """Run ``saga.recover()`` now and then every ``interval_s`` until ``stopping`` is set."""
    while True:
        try:
            saga.recover()
        except Exception:
            log.exception("saga recovery failed; retrying in %.1f s", interval_s)
        if stopping.wait(interval_s):
            return


def start_recovery(saga: OrderSaga, interval_s: float = DEFAULT_RECOVERY_INTERVAL_S) -> threading.Event:
    """Recover in a background thread (start-up must not wait for a service that is down).

    Returns the event that stops it. The thread is a daemon: a process that ends mid-saga
    is exactly what recovery is for, so nothing needs to wait for it.
    """
    stopping = threading.Event()
    threading.Thread(
        target=recover_periodically,
        args=(saga, stopping, interval_s),
        name="saga-recovery",
        daemon=True,
    ).start()
    return stopping
