"""Week 6's order flow, kept as the baseline the saga is measured against: plain sequential calls.

``BOOKSTORE_ORDER_FLOW=plain`` makes the order service place orders with this module instead
of the saga (``flow.place_order`` on ``saga.OrderSaga``, the default). It exists for one
reason: ``benchmarks/bench_week07.py`` runs both flows side by side in the same run, so the
price of the saga log (a few extra commits per order) is a ratio measured on the same
machine at the same moment, not a guess. Use it for that comparison and for the week 7
notebook's "before"; never to take real orders.

The steps, in order, each one call made while the customer waits::

    validate -> replay? -> catalog.BatchGetBooks -> write PENDING
             -> inventory.ReserveStock -> payment.Pay -> APPROVED

Failures are handled inline, as week 6 did:

* **A business refusal** (FAILED_PRECONDITION: stock short, card declined) undoes the earlier
  steps, stores the order REJECTED with a reason the customer can read, and *returns* it.
* **An infrastructure failure** (UNAVAILABLE, DEADLINE_EXCEEDED, anything else) undoes
  everything that *may* have been done, in reverse order (Refund, then ReleaseStock), stores
  the order REJECTED with a reason naming the service, and *raises* ``DownstreamError``.
* **An open circuit** (our breaker refused the call) is UNAVAILABLE too, but the call never
  left the process: a Pay refused that way owes no Refund, only the stock is released.

**Why it is not crash-safe.** Nothing records how far an order got. If this process dies
after ReserveStock or Pay and before the order is marked, nobody ever releases the stock or
refunds the charge, and the order stays PENDING for good: a restarted service sees a PENDING
row but cannot tell which calls were made, so it cannot finish or undo it. A compensation
that fails is tried once, logged and noted in the order's reason ("... needs repair"); the
stock or money it should have returned stays put until a human repairs it. Week 7's saga
log closes both gaps: every move is committed before the next, so a restarted service
resumes or undoes every order, and compensations are retried until they succeed.

Adapted to today's clients, so that the comparison measures the log and nothing else: the
calls go through the same channels and circuit breakers (``clients.OrderDependencies``) and
carry the same idempotency keys as the saga's steps (``"<order id>:reserve"``,
``"<order id>:pay"``, as gRPC metadata), and the reasons read as the saga words them.
Validation, pricing and ``DownstreamError`` are ``flow``'s own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.models import Order, OrderStatus
from bookstore.resilience import CircuitOpenError
from bookstore.rpc.v1 import inventory_pb2, payment_pb2
from bookstore.saga.definition import IDEMPOTENCY_METADATA_KEY, idempotency_key
from bookstore.services.order.clients import Metadata, OrderDependencies
from bookstore.services.order.flow import (
    DownstreamError,
    draft_order,
    status_of,
    validate_order_request,
)
from bookstore.services.order.store import OrderStore

log = logging.getLogger(__name__)

# The saga's step names, so both flows send inventory and payment the very same keys.
RESERVE_STEP = "reserve"
PAY_STEP = "pay"


class PlainFlow:
    """Week 6's flow behind the ``OrderFlow`` protocol, for the service wired with ``order_flow=plain``."""

    def __init__(self, deps: OrderDependencies, store: OrderStore) -> None:
        self.deps = deps
        self.store = store

    def place(self, command: PlaceOrder) -> Order:
        return place_order(self.deps, self.store, command)


def place_order(deps: OrderDependencies, store: OrderStore, command: PlaceOrder) -> Order:
    """Price, reserve, charge and approve an order, one call after the other.

    Returns the order APPROVED, or REJECTED after a business refusal. Raises InvalidArgument
    or NotFound (nothing written) for a bad request, and DownstreamError (order stored
    REJECTED, earlier steps undone as far as the undo calls succeeded) when another service
    fails. A replayed ``request_id`` returns the first order as it is, PENDING included:
    there is no log to resume it from.
    """
    valid = validate_order_request(command)
    if valid.request_id:
        known = store.find_by_request(valid.user_id, valid.request_id)
        if known is not None:
            return known  # a retry: answer as the first time, and ask nobody anything

    draft = draft_order(deps, valid)
    order = store.create_pending(draft)
    if order.order_id != draft.order_id:
        # A concurrent request with the same request_id got there first; its flow owns the order.
        return order

    rejected = _reserve(deps, store, order)
    if rejected is not None:
        return rejected
    rejected = _pay(deps, store, order)
    if rejected is not None:
        return rejected
    # A crash before this line leaves the order PENDING and its stock and money taken, for good.
    return store.mark(order.order_id, OrderStatus.APPROVED)


def _metadata(order_id: str, step: str) -> Metadata:
    return ((IDEMPOTENCY_METADATA_KEY, idempotency_key(order_id, step)),)


def _reserve(deps: OrderDependencies, store: OrderStore, order: Order) -> Order | None:
    """Reserve the stock; returns the REJECTED order when stock is short, None when reserved."""
    request = inventory_pb2.ReserveStockRequest(
        order_id=order.order_id,
        items=[inventory_pb2.StockItem(book_id=item.book_id, quantity=item.quantity) for item in order.items],
    )
    try:
        deps.inventory.ReserveStock(
            request, timeout=deps.deadline_s, metadata=_metadata(order.order_id, RESERVE_STEP)
        )
    except CircuitOpenError as refusal:
        # Our breaker refused: the request never left this process, so nothing is reserved.
        raise _fail_circuit(store, order, "inventory", "ReserveStock", refusal, []) from refusal
    except grpc.RpcError as error:
        code, details = status_of(error)
        if code is grpc.StatusCode.FAILED_PRECONDITION:
            # All or nothing: a refused reservation holds nothing, so there is nothing to undo.
            return store.mark(order.order_id, OrderStatus.REJECTED, f"out of stock: {details}")
        # The reservation may have been made before the error reached us (a timeout, say).
        notes = [_release(deps, order.order_id)]
        raise _fail(store, order, "inventory", "ReserveStock", code, details, notes) from error
    return None


def _pay(deps: OrderDependencies, store: OrderStore, order: Order) -> Order | None:
    """Charge the total; returns the REJECTED order when declined, None when charged."""
    if order.total_cents == 0:
        return None  # nothing to charge, and payment refuses a zero amount
    request = payment_pb2.PayRequest(
        order_id=order.order_id, user_id=order.user_id, amount_cents=order.total_cents
    )
    try:
        deps.payment.Pay(request, timeout=deps.deadline_s, metadata=_metadata(order.order_id, PAY_STEP))
    except CircuitOpenError as refusal:
        # Never sent, so never charged: no Refund is owed, only the stock goes back.
        notes = [_release(deps, order.order_id)]
        raise _fail_circuit(store, order, "payment", "Pay", refusal, notes) from refusal
    except grpc.RpcError as error:
        code, details = status_of(error)
        if code is grpc.StatusCode.FAILED_PRECONDITION:
            reason = _with_notes(f"payment declined: {details}", [_release(deps, order.order_id)])
            return store.mark(order.order_id, OrderStatus.REJECTED, reason)
        # The charge may have gone through before the answer got lost; Refund voids it if it did
        # not. Undo in reverse order of doing: money first, then stock.
        notes = [_refund(deps, order.order_id), _release(deps, order.order_id)]
        raise _fail(store, order, "payment", "Pay", code, details, notes) from error
    return None


def _release(deps: OrderDependencies, order_id: str) -> str:
    return _compensate(
        "ReleaseStock",
        order_id,
        lambda: deps.inventory.ReleaseStock(
            inventory_pb2.ReleaseStockRequest(order_id=order_id),
            timeout=deps.deadline_s,
            metadata=_metadata(order_id, RESERVE_STEP),
        ),
    )


def _refund(deps: OrderDependencies, order_id: str) -> str:
    return _compensate(
        "Refund",
        order_id,
        lambda: deps.payment.Refund(
            payment_pb2.RefundRequest(order_id=order_id),
            timeout=deps.deadline_s,
            metadata=_metadata(order_id, PAY_STEP),
        ),
    )


def _compensate(action: str, order_id: str, call: Callable[[], object]) -> str:
    """Run one compensation, once; a failure is logged and returned as a note, never raised.

    Raising here would hide the error that made us compensate, which is the one the caller
    needs to see. Not retrying is the week 6 weakness the saga fixes.
    """
    try:
        call()
    except (grpc.RpcError, CircuitOpenError) as error:
        code, details = status_of(error)
        log.warning("compensation %s for order %s failed: %s: %s", action, order_id, code.name, details)
        return f"{action} failed too ({code.name}), needs repair"
    return ""


def _fail(
    store: OrderStore,
    order: Order,
    service: str,
    method: str,
    code: grpc.StatusCode,
    details: str,
    notes: list[str],
) -> DownstreamError:
    """Store the order REJECTED for an infrastructure failure; return the error to raise."""
    reason = _with_notes(f"{service} failed: {method} returned {code.name}: {details}", notes)
    settled = _reject(store, order, reason)
    return DownstreamError(service, method, code, details, order_id=order.order_id, settled=settled)


def _fail_circuit(
    store: OrderStore,
    order: Order,
    service: str,
    method: str,
    refusal: CircuitOpenError,
    notes: list[str],
) -> DownstreamError:
    """Store the order REJECTED after our breaker refused a call; return the error to raise."""
    settled = _reject(store, order, _with_notes(f"{service} failed: {refusal}", notes))
    return DownstreamError.circuit_open(service, method, refusal, order_id=order.order_id, settled=settled)


def _reject(store: OrderStore, order: Order, reason: str) -> bool:
    """Mark the order REJECTED; False (logged) when even that failed and it stays PENDING."""
    try:
        store.mark(order.order_id, OrderStatus.REJECTED, reason)
    except Exception:
        # Same rule as for compensations: the downstream failure is the news; this is logged.
        log.exception("could not mark order %s REJECTED; it stays PENDING", order.order_id)
        return False
    return True


def _with_notes(reason: str, notes: list[str]) -> str:
    written = [note for note in notes if note]
    return "; ".join([reason, *written])
