"""Week 6's order flow, kept as the baseline the saga is measured against: the saga's steps, no log.

``BOOKSTORE_ORDER_FLOW=plain`` wires the order service with ``PlainFlow`` instead of the saga's
``flow.SagaFlow`` (the default). It exists for one reason: ``benchmarks/bench_week07.py`` runs
both flows side by side in the same run, so the price of the saga log is a ratio measured on
the same machine at the same moment, not a guess. Use it for that comparison and for the week 7
notebook's "before"; never to take real orders.

**Derived, not copied.** The plain flow runs the saga's own step list (``saga.order_steps``,
the function ``OrderSaga`` builds its definition from):
the same calls, the same requests, the same deadlines and idempotency keys
(``"<order id>:reserve"``, ``"<order id>:pay"``), the same rule for what a failure means and
the same reasons. What it leaves out is what the saga adds: the log. Change a step and both
flows change with it, so the benchmark's baseline cannot drift away from the saga.

The steps, in order, each one call made while the customer waits::

    validate -> replay? -> catalog.BatchGetBooks -> write PENDING
             -> inventory.ReserveStock -> payment.Pay -> APPROVED

Two write transactions per order (PENDING, then APPROVED or REJECTED) against the saga's three.
When a step fails, the steps done (and the failed one, if it may have done its work) are undone
inline, last first, each **once**; the order is stored REJECTED with the reason the saga would
give, and a refusal is returned while an infrastructure failure is raised (``DownstreamError``),
exactly as ``flow.answer`` decides for the saga.

**Why it is not crash-safe.** Nothing records how far an order got. If this process dies
after ReserveStock or Pay and before the order is marked, nobody ever releases the stock or
refunds the charge, and the order stays PENDING for good: a restarted service sees a PENDING
row but cannot tell which calls were made. A compensation that fails is tried once, logged and
noted in the order's reason ("... needs repair"); the stock or money it should have returned
stays put until a human repairs it. Week 7's saga log closes both gaps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.models import Order, OrderStatus
from bookstore.saga import (
    FailureMeaning,
    SagaOutcome,
    SagaState,
    Step,
    StepContext,
    describe_error,
)
from bookstore.services.order import saga
from bookstore.services.order.clients import OrderDependencies
from bookstore.services.order.flow import answer, draft_order, status_of, validate_order_request
from bookstore.services.order.saga import STEP_CALLS, order_payload, rejection_reason
from bookstore.services.order.store import OrderStore

log = logging.getLogger(__name__)


class PlainFlow:
    """Week 6's flow behind the ``OrderFlow`` protocol: the saga's steps, run without a log.

    ``clock`` measures what is left of each step's deadline (tests pass a fake).
    """

    def __init__(
        self, deps: OrderDependencies, store: OrderStore, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.deps = deps
        self.store = store
        self.steps = saga.order_steps(deps)
        self._clock = clock

    def place(self, command: PlaceOrder) -> Order:
        """Price, reserve, charge and approve an order, one call after the other.

        Returns the order APPROVED, or REJECTED after a business refusal. Raises InvalidArgument
        or NotFound (nothing written) for a bad request, and DownstreamError (order stored
        REJECTED, earlier steps undone as far as the undo calls succeeded) when another service
        fails. A replayed ``request_id`` returns the first order as it is, PENDING included:
        there is no log to resume it from.
        """
        valid = validate_order_request(command)
        if valid.request_id:
            known = self.store.find_by_request(valid.user_id, valid.request_id)
            if known is not None:
                return known  # a retry: answer as the first time, and ask nobody anything

        draft = draft_order(self.deps, valid)
        order = self.store.create_pending(draft)
        if order.order_id != draft.order_id:
            # A concurrent request with the same request_id got there first; its flow owns the order.
            return order
        return answer(self.store, order.order_id, self._run(order.order_id, order_payload(order)))

    def _run(self, order_id: str, payload: Mapping[str, Any]) -> SagaOutcome:
        """Run the steps; on a failure undo what may have been done and store the order REJECTED."""
        done: list[Step] = []
        for step in self.steps:
            try:
                step.action(self._context(order_id, step, payload))
            except Exception as failure:
                # The saga's rule: a refusal did nothing, anything else may have done the work.
                possibly_done = step.failure_meaning(failure) is FailureMeaning.POSSIBLY_DONE
                undo = [*done, step] if possibly_done else done
                notes = [self._compensate(order_id, undone, payload) for undone in reversed(undo)]
                error = describe_error(failure)
                settled = self._reject(order_id, rejection_reason(step.name, error), notes)
                state = SagaState.COMPENSATED if settled else SagaState.COMPENSATING
                return SagaOutcome(order_id, state, step.name, error, exception=failure)
            done.append(step)
        # A crash before this line leaves the order PENDING and its stock and money taken, for good.
        self.store.mark(order_id, OrderStatus.APPROVED)
        return SagaOutcome(order_id, SagaState.SUCCEEDED)

    def _context(
        self, order_id: str, step: Step, payload: Mapping[str, Any], *, compensating: bool = False
    ) -> StepContext:
        deadline_at = self._clock() + step.timeout_s
        return StepContext.of(
            order_id, step.name, payload, deadline_at, self._clock, compensating=compensating
        )

    def _compensate(self, order_id: str, step: Step, payload: Mapping[str, Any]) -> str:
        """Undo one step, once; a failure is logged and returned as a note, never raised.

        Raising here would hide the error that made us compensate, which is the one the caller
        needs to see. Not retrying is the week 6 weakness the saga fixes.
        """
        if step.compensation is None:
            return ""
        try:
            step.compensation(self._context(order_id, step, payload, compensating=True))
        except Exception as error:
            action = STEP_CALLS[step.name].undo if step.name in STEP_CALLS else step.name
            code, details = status_of(error)
            log.warning("compensation %s for order %s failed: %s: %s", action, order_id, code.name, details)
            return f"{action} failed too ({code.name}), needs repair"
        return ""

    def _reject(self, order_id: str, reason: str, notes: list[str]) -> bool:
        """Mark the order REJECTED; False (logged) when even that failed and it stays PENDING."""
        try:
            self.store.mark(order_id, OrderStatus.REJECTED, "; ".join([reason, *filter(None, notes)]))
        except Exception:
            # Same rule as for compensations: the downstream failure is the news; this is logged.
            log.exception("could not mark order %s REJECTED; it stays PENDING", order_id)
            return False
        return True
