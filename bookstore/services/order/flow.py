"""Placing an order: check and price it here, then run the place-order saga.

``SagaFlow.place(PlaceOrder(...))`` is what CreateOrder calls. The service picks its flow once,
when it is wired (``SagaFlow`` by default, ``plain_flow.PlainFlow`` as week 6's baseline), and
the servicer only knows the ``OrderFlow`` protocol: one method, one command.

The steps, in order::

    validate -> replay? -> catalog.BatchGetBooks
             -> saga: PENDING -> inventory.ReserveStock -> payment.Pay -> APPROVED

Week 6 ran the saga's part as a plain sequence of calls; if the process died in the middle,
nobody finished the compensation and the order stayed PENDING for good. Week 7 runs the
same steps on ``bookstore.saga``: every move is logged first, so a restarted service
resumes or undoes whatever it left half-done (see ``bookstore.services.order.saga``).
What a caller sees did not change:

* **A business refusal** (FAILED_PRECONDITION: stock short, card declined) is a normal
  outcome. The saga undoes the earlier steps, the order is REJECTED with a reason the
  customer can read, and it is *returned*: the request succeeded, the answer is "no".
* **An infrastructure failure** (UNAVAILABLE, DEADLINE_EXCEEDED, a step past its deadline)
  means we do not know what happened. A Pay that timed out may have charged the card before
  the answer got lost. So the saga undoes everything that *may* have been done, in reverse
  order (Refund, then ReleaseStock), the order is REJECTED with a reason naming the service,
  and ``DownstreamError`` is *raised* carrying the downstream status code, so the caller
  learns that something is broken rather than that the customer was refused.
* **An open circuit** (week 8: our breaker in front of that service refused the call) is
  UNAVAILABLE too, but here we *do* know what happened: nothing, the call never left the
  process. A Pay refused that way is not refunded (only the stock is released), and the
  ``DownstreamError`` says the circuit is open and when it will try again; the servicer
  passes that on as trailing metadata (``bookstore-retry-after-s``), which becomes the
  gateway's ``Retry-After``.

A compensation that fails is retried with backoff, a few times while the caller waits, then
by the service's background recovery until it succeeds; meanwhile the order stays PENDING,
which is the truth: it is not settled yet.

Prices come from the catalog, never from the client: a unit price in the request is
ignored, or anyone could buy a book for one cent. The catalog call carries
``timeout=deps.deadline_s``; each saga step carries what is left of its own deadline.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import grpc

from bookstore.domain import validation as v
from bookstore.domain.commands import PlaceOrder
from bookstore.domain.errors import InvalidArgument, NotFound
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.platform.status import ORDER_ID_METADATA_KEY
from bookstore.resilience import (
    CIRCUIT_METADATA_KEY,
    DEPENDENCY_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    CircuitOpenError,
)
from bookstore.rpc.v1 import catalog_pb2
from bookstore.saga import SagaDeadlineExceeded, SagaOutcome, SagaOwnershipLost, StepTimeout
from bookstore.saga.definition import status_code_of
from bookstore.services.order.clients import (
    CatalogClient,
    InventoryClient,
    OrderDependencies,
    PaymentClient,
)
from bookstore.services.order.saga import STEP_CALLS, OrderSaga, RequestTaken
from bookstore.services.order.store import MAX_REQUEST_ID_CHARS, OrderStore

log = logging.getLogger(__name__)

__all__ = [
    "MAX_TOTAL_CENTS",
    "CatalogClient",
    "DownstreamError",
    "InventoryClient",
    "OrderDependencies",
    "OrderFlow",
    "PaymentClient",
    "PlaceOrder",
    "SagaFlow",
    "ValidOrderRequest",
    "answer",
    "new_order",
    "price_items",
    "status_of",
    "validate_order_request",
    "with_prices",
]

MAX_ITEMS = 50
MAX_QUANTITY = 1000
# The most payment accepts in one charge (PayRequest.amount_cents).
MAX_TOTAL_CENTS = 100_000_000


class DownstreamError(grpc.RpcError):
    """Another service failed for a reason that is not a business refusal.

    It carries that service's status code: ``translate_errors`` hands an uncaught
    ``grpc.RpcError`` on with its ``code()``, so our caller sees UNAVAILABLE or
    DEADLINE_EXCEEDED, not a vague INTERNAL. The original error is its ``__cause__``.
    ``trailing_metadata()`` says which call failed (``bookstore-dependency``: a caller's
    breaker must not blame this service for it) and, when an order was stored, its id
    (``bookstore-order-id``: where the customer can follow it). When our circuit breaker
    refused the call (``circuit_open``), ``circuit`` names it and ``retry_after_s`` says when
    it tries again; the metadata carries both, as the refusal itself did. ``translate_errors``
    passes all of it on.
    """

    def __init__(
        self,
        service: str,
        method: str,
        code: grpc.StatusCode,
        details: str,
        *,
        order_id: str = "",
        settled: bool = True,
        circuit: str = "",
        retry_after_s: float = 0.0,
    ) -> None:
        self.service = service
        self.method = method
        self.order_id = order_id
        self.circuit = circuit
        self.retry_after_s = retry_after_s
        self._code = code
        outcome = ""
        if order_id:
            state = "was rejected" if settled else "stays PENDING until its compensation completes"
            outcome = f"; order {order_id} {state}"
        what = "was not called" if circuit else f"returned {code.name}"
        self._details = f"{service}.{method} {what}: {details}{outcome}"
        super().__init__(self._details)

    @classmethod
    def circuit_open(
        cls, service: str, method: str, refusal: CircuitOpenError, *, order_id: str = "", settled: bool = True
    ) -> DownstreamError:
        """The call was refused by our breaker, never sent: UNAVAILABLE, with when to retry."""
        return cls(
            service,
            method,
            grpc.StatusCode.UNAVAILABLE,
            str(refusal),  # "circuit 'payment' is open; trial calls in 1.234 s"
            order_id=order_id,
            settled=settled,
            circuit=refusal.name,
            retry_after_s=refusal.retry_after_s,
        )

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    # grpc-stubs types RpcError's trailing_metadata as _Metadatum; gRPC returns these pairs.
    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        metadata = [(DEPENDENCY_METADATA_KEY, f"{self.service}.{self.method}")]
        if self.order_id:
            metadata.append((ORDER_ID_METADATA_KEY, self.order_id))
        if self.circuit:
            metadata.append((CIRCUIT_METADATA_KEY, self.circuit))
            metadata.append((RETRY_AFTER_METADATA_KEY, f"{self.retry_after_s:.3f}"))
        return tuple(metadata)


@dataclass(frozen=True)
class ValidOrderRequest:
    user_id: str
    items: tuple[OrderItem, ...]
    request_id: str


def validate_order_request(command: PlaceOrder) -> ValidOrderRequest:
    """Check a PlaceOrder command before anything is read or written; errors name the field."""
    user_id = v.require_uuid("user_id", command.user_id)
    items, request_id = command.items, command.request_id
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidArgument(f"must hold between 1 and {MAX_ITEMS} items, got {len(items)}", field="items")
    first_index: dict[int, int] = {}
    for index, item in enumerate(items):
        v.require_id(f"items[{index}].book_id", item.book_id)
        v.require_int_range(f"items[{index}].quantity", item.quantity, low=1, high=MAX_QUANTITY)
        if item.book_id in first_index:
            raise InvalidArgument(
                f"book {item.book_id} is already items[{first_index[item.book_id]}]; list each book once",
                field=f"items[{index}].book_id",
            )
        first_index[item.book_id] = index
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgument(f"must be at most {MAX_REQUEST_ID_CHARS} characters", field="request_id")
    # Whatever unit price the client sent is dropped here; the catalog sets it.
    clean = tuple(OrderItem(book_id=item.book_id, quantity=item.quantity) for item in items)
    return ValidOrderRequest(user_id=user_id, items=clean, request_id=request_id)


def draft_order(deps: OrderDependencies, valid: ValidOrderRequest) -> Order:
    """A new PENDING order priced by the catalog (client prices are ignored); nothing is written."""
    return new_order(valid, price_items(deps, valid.items))


def new_order(
    valid: ValidOrderRequest, priced: tuple[OrderItem, ...], status: OrderStatus = OrderStatus.PENDING
) -> Order:
    """A new ``status`` order of ``priced`` items; InvalidArgument past what payment may charge."""
    total = Order.total_of(priced)
    if total > MAX_TOTAL_CENTS:
        raise InvalidArgument(
            f"the order totals {total} cents, more than the {MAX_TOTAL_CENTS} one payment may charge",
            field="items",
        )
    return Order(
        order_id=str(uuid.uuid4()),
        user_id=valid.user_id,
        items=priced,
        status=status,
        created_at_unix=0,  # the store stamps the time
        request_id=valid.request_id,
        total_cents=total,
    )


class OrderFlow(Protocol):
    """How CreateOrder places an order. A service is wired with one flow and keeps it."""

    def place(self, command: PlaceOrder) -> Order: ...


class SagaFlow:
    """Week 7's flow: check and price the order, then run it on the place-order saga."""

    def __init__(self, deps: OrderDependencies, store: OrderStore, saga: OrderSaga) -> None:
        self.deps = deps
        self.store = store
        self.saga = saga

    def place(self, command: PlaceOrder) -> Order:
        """Price an order, then reserve, charge and approve it on the saga; see the module docstring.

        Returns the order APPROVED, or REJECTED after a business refusal, or PENDING when its
        saga is not settled yet (a compensation waits for a service to come back; a replay
        whose first request is still running). Raises InvalidArgument or NotFound (nothing
        written) for a bad request, and DownstreamError (earlier steps undone, order REJECTED)
        when another service fails.
        """
        valid = validate_order_request(command)
        if valid.request_id:
            known = self.store.find_by_request(valid.user_id, valid.request_id)
            if known is not None:
                return self._replay(known)

        draft = draft_order(self.deps, valid)
        try:
            outcome = self.saga.run(draft)
        except RequestTaken as taken:
            # A concurrent request with the same request_id got there first; its saga owns the order.
            return self.store.get(taken.winner.order_id)
        except SagaOwnershipLost:
            # Another replica took the saga over (our lease ran out); it finishes the order.
            log.warning("saga %s was taken over by another orchestrator", draft.order_id)
            return self.store.get(draft.order_id)
        return answer(self.store, draft.order_id, outcome)

    def _replay(self, known: Order) -> Order:
        """A retry answers as the first request did, asking nobody anything once the order is settled.

        A PENDING order means its saga is still going, or was stranded by a crash: the retry
        lends a hand (resuming is safe, every step is idempotent) unless someone drives it already.
        """
        if known.status is not OrderStatus.PENDING:
            return known
        self.saga.resume(known.order_id)
        return self.store.get(known.order_id)


def answer(store: OrderStore, order_id: str, outcome: SagaOutcome) -> Order:
    """The order to return, or the downstream failure to raise, given how its steps ended."""
    failure = outcome.exception
    if outcome.succeeded or failure is None:
        return store.get(order_id)
    late = isinstance(failure, StepTimeout | SagaDeadlineExceeded)
    call = STEP_CALLS.get(outcome.failed_step or "")
    if call is None:
        raise failure  # every step is a call; anything else is a bug: INTERNAL
    if status_code_of(failure) is grpc.StatusCode.FAILED_PRECONDITION:
        return store.get(order_id)  # a refusal: REJECTED with its reason (PENDING while undoing)
    if isinstance(failure, CircuitOpenError):
        raise DownstreamError.circuit_open(
            call.service, call.method, failure, order_id=order_id, settled=outcome.finished
        ) from failure
    code, details = (grpc.StatusCode.DEADLINE_EXCEEDED, str(failure)) if late else status_of(failure)
    raise DownstreamError(
        call.service, call.method, code, details, order_id=order_id, settled=outcome.finished
    ) from failure


def price_items(deps: OrderDependencies, items: tuple[OrderItem, ...]) -> tuple[OrderItem, ...]:
    """The items with the catalog's unit prices; NotFound names the item of an unknown book."""
    book_ids = [item.book_id for item in items]
    try:
        response = deps.catalog.BatchGetBooks(
            catalog_pb2.BatchGetBooksRequest(book_ids=book_ids), timeout=deps.deadline_s
        )
    except CircuitOpenError as refusal:
        raise DownstreamError.circuit_open("catalog", "BatchGetBooks", refusal) from refusal
    except grpc.RpcError as error:
        code, details = status_of(error)
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise _unknown_book(book_ids, details) from None
        raise DownstreamError("catalog", "BatchGetBooks", code, details) from error
    return with_prices(items, {book.book_id: book.price_cents for book in response.books})


def with_prices(items: tuple[OrderItem, ...], prices: Mapping[int, int]) -> tuple[OrderItem, ...]:
    """``items`` with the unit prices of ``prices`` (book id -> cents); NotFound names an unpriced item."""
    for index, item in enumerate(items):
        if item.book_id not in prices:
            raise NotFound(f"no book with id {item.book_id}", field=f"items[{index}].book_id")
    return tuple(
        OrderItem(book_id=item.book_id, quantity=item.quantity, unit_price_cents=prices[item.book_id])
        for item in items
    )


_INDEXED_BOOK_ID = re.compile(r"book_ids\[(\d+)\]")
_NUMBER = re.compile(r"\d+")


def _unknown_book(book_ids: list[int], details: str) -> NotFound:
    """Map the catalog's complaint back to the customer's item, which is what they can fix.

    The catalog speaks of its own request (``book_ids[2]`` or the id itself); ours was built
    from the items in the same order, so an index or an id leads back to ``items[i]``.
    """
    match = _INDEXED_BOOK_ID.search(details)
    if match is not None and int(match.group(1)) < len(book_ids):
        index = int(match.group(1))
        return NotFound(f"no book with id {book_ids[index]}", field=f"items[{index}].book_id")
    for number in _NUMBER.findall(details):
        if int(number) in book_ids:
            index = book_ids.index(int(number))
            return NotFound(f"no book with id {book_ids[index]}", field=f"items[{index}].book_id")
    return NotFound(f"the catalog refused the books: {details}", field="items")


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """Code and details of a failed call; a bare RpcError (no call attached) is UNKNOWN."""
    details = getattr(error, "details", None)
    text = details() if callable(details) else None
    return status_code_of(error) or grpc.StatusCode.UNKNOWN, text or ""
