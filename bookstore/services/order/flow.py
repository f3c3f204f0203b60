"""Placing an order, as one plain sequential function.

The steps, in order::

    validate -> replay? -> catalog.BatchGetBooks -> write PENDING
             -> inventory.ReserveStock -> payment.Pay -> APPROVED

Two kinds of failure meet this flow, and they are handled differently:

* **A business refusal** (FAILED_PRECONDITION: stock short, card declined) is a normal
  outcome. The flow undoes the earlier steps, stores the order REJECTED with a reason the
  customer can read, and *returns* it: the request succeeded, the answer is "no".
* **An infrastructure failure** (UNAVAILABLE, DEADLINE_EXCEEDED, anything else) means we do
  not know what happened. A Pay that timed out may have charged the card before the answer
  got lost. So the flow undoes everything that *may* have been done, in reverse order
  (Refund, then ReleaseStock), stores the order REJECTED with a reason naming the service,
  and *raises* ``DownstreamError`` carrying the downstream status code, so the caller learns
  that something is broken rather than that the customer was refused.

Undoing "what may have been done" is only safe because the compensations are idempotent
and tolerate having nothing to undo: releasing a reservation that never happened succeeds
(and bars a late one), refunding an order never charged voids it (and bars a late Pay).
A compensation that itself fails is logged and noted in the order's reason, never raised
over the original error; the stock or money it should have returned stays put until
someone repairs it, which is the gap week 7's saga log closes.

Prices come from the catalog, never from the client: a unit price in the request is
ignored, or anyone could buy a book for one cent. Every outgoing call carries
``timeout=deps.deadline_s``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from bookstore.domain import validation as v
from bookstore.domain.errors import InvalidArgument, NotFound
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.platform.channels import open_channel
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    payment_pb2,
    payment_pb2_grpc,
)
from bookstore.services.order.store import MAX_REQUEST_ID_CHARS, OrderStore

log = logging.getLogger(__name__)

MAX_ITEMS = 50
MAX_QUANTITY = 1000
# The most payment accepts in one charge (PayRequest.amount_cents).
MAX_TOTAL_CENTS = 100_000_000


class CatalogClient(Protocol):
    def BatchGetBooks(
        self, request: catalog_pb2.BatchGetBooksRequest, timeout: float | None = None
    ) -> catalog_pb2.BatchGetBooksResponse: ...


class InventoryClient(Protocol):
    def ReserveStock(
        self, request: inventory_pb2.ReserveStockRequest, timeout: float | None = None
    ) -> inventory_pb2.ReserveStockResponse: ...

    def ReleaseStock(
        self, request: inventory_pb2.ReleaseStockRequest, timeout: float | None = None
    ) -> inventory_pb2.ReleaseStockResponse: ...


class PaymentClient(Protocol):
    def Pay(
        self, request: payment_pb2.PayRequest, timeout: float | None = None
    ) -> payment_pb2.PayResponse: ...

    def Refund(
        self, request: payment_pb2.RefundRequest, timeout: float | None = None
    ) -> payment_pb2.RefundResponse: ...


@dataclass(frozen=True)
class OrderDependencies:
    """The services an order needs, and how long to wait for each answer.

    The generated gRPC stubs satisfy the client protocols; unit tests pass plain fakes.
    """

    catalog: CatalogClient
    inventory: InventoryClient
    payment: PaymentClient
    deadline_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderDependencies:
        """Open one channel per peer; a channel is reused by every call, so open them once."""
        return cls(
            catalog=catalog_pb2_grpc.CatalogServiceStub(open_channel(settings.target("catalog"))),
            inventory=inventory_pb2_grpc.InventoryServiceStub(open_channel(settings.target("inventory"))),
            payment=payment_pb2_grpc.PaymentServiceStub(open_channel(settings.target("payment"))),
            deadline_s=settings.deadline_s,
        )


class DownstreamError(grpc.RpcError):
    """Another service failed for a reason that is not a business refusal.

    It carries that service's status code: ``translate_errors`` hands an uncaught
    ``grpc.RpcError`` on with its ``code()``, so our caller sees UNAVAILABLE or
    DEADLINE_EXCEEDED, not a vague INTERNAL. The original error is its ``__cause__``.
    """

    def __init__(
        self, service: str, method: str, code: grpc.StatusCode, details: str, *, order_id: str = ""
    ) -> None:
        self.service = service
        self.method = method
        self.order_id = order_id
        self._code = code
        outcome = f"; order {order_id} was rejected" if order_id else ""
        self._details = f"{service}.{method} returned {code.name}: {details}{outcome}"
        super().__init__(self._details)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@dataclass(frozen=True)
class ValidOrderRequest:
    user_id: str
    items: tuple[OrderItem, ...]
    request_id: str


def validate_order_request(
    user_id: str, items: Sequence[OrderItem], request_id: str = ""
) -> ValidOrderRequest:
    """Check a CreateOrder request before anything is read or written; errors name the field."""
    user_id = v.require_uuid("user_id", user_id)
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


def place_order(
    deps: OrderDependencies,
    store: OrderStore,
    user_id: str,
    items: Sequence[OrderItem],
    request_id: str = "",
) -> Order:
    """Price, reserve, charge and approve an order; see the module docstring for failures.

    Returns the order APPROVED, or REJECTED after a business refusal. Raises InvalidArgument
    or NotFound (nothing written) for a bad request, and DownstreamError (order stored
    REJECTED, earlier steps undone) when another service fails.
    """
    valid = validate_order_request(user_id, items, request_id)
    if valid.request_id:
        known = store.find_by_request(valid.user_id, valid.request_id)
        if known is not None:
            return known  # a retry: answer as the first time, and ask nobody anything

    priced = _price(deps, valid.items)
    total = Order.total_of(priced)
    if total > MAX_TOTAL_CENTS:
        raise InvalidArgument(
            f"the order totals {total} cents, more than the {MAX_TOTAL_CENTS} one payment may charge",
            field="items",
        )
    draft = Order(
        order_id=str(uuid.uuid4()),
        user_id=valid.user_id,
        items=priced,
        status=OrderStatus.PENDING,
        created_at_unix=0,  # the store stamps the time
        request_id=valid.request_id,
        total_cents=total,
    )
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
    return store.mark(order.order_id, OrderStatus.APPROVED)


def _price(deps: OrderDependencies, items: tuple[OrderItem, ...]) -> tuple[OrderItem, ...]:
    """The items with the catalog's unit prices; NotFound names the item of an unknown book."""
    book_ids = [item.book_id for item in items]
    try:
        response = deps.catalog.BatchGetBooks(
            catalog_pb2.BatchGetBooksRequest(book_ids=book_ids), timeout=deps.deadline_s
        )
    except grpc.RpcError as error:
        code, details = _status_of(error)
        if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise _unknown_book(book_ids, details) from None
        raise DownstreamError("catalog", "BatchGetBooks", code, details) from error
    prices = {book.book_id: book.price_cents for book in response.books}
    for index, book_id in enumerate(book_ids):
        if book_id not in prices:
            raise NotFound(f"no book with id {book_id}", field=f"items[{index}].book_id")
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


def _reserve(deps: OrderDependencies, store: OrderStore, order: Order) -> Order | None:
    """Reserve the stock; returns the REJECTED order when stock is short, None when reserved."""
    request = inventory_pb2.ReserveStockRequest(
        order_id=order.order_id,
        items=[inventory_pb2.StockItem(book_id=item.book_id, quantity=item.quantity) for item in order.items],
    )
    try:
        deps.inventory.ReserveStock(request, timeout=deps.deadline_s)
    except grpc.RpcError as error:
        code, details = _status_of(error)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
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
        deps.payment.Pay(request, timeout=deps.deadline_s)
    except grpc.RpcError as error:
        code, details = _status_of(error)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
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
            inventory_pb2.ReleaseStockRequest(order_id=order_id), timeout=deps.deadline_s
        ),
    )


def _refund(deps: OrderDependencies, order_id: str) -> str:
    return _compensate(
        "Refund",
        order_id,
        lambda: deps.payment.Refund(payment_pb2.RefundRequest(order_id=order_id), timeout=deps.deadline_s),
    )


def _compensate(action: str, order_id: str, call: Callable[[], object]) -> str:
    """Run one compensation; a failure is logged and returned as a note, never raised.

    Raising here would hide the error that made us compensate, which is the one the
    caller needs to see.
    """
    try:
        call()
    except grpc.RpcError as error:
        code, details = _status_of(error)
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
    try:
        store.mark(order.order_id, OrderStatus.REJECTED, reason)
    except Exception:
        # Same rule as for compensations: the downstream failure is the news; this is logged.
        log.exception("could not mark order %s REJECTED; it stays PENDING", order.order_id)
    return DownstreamError(service, method, code, details, order_id=order.order_id)


def _with_notes(reason: str, notes: list[str]) -> str:
    written = [note for note in notes if note]
    return "; ".join([reason, *written])


def _status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """Code and details of a failed call; a bare RpcError (no call attached) is UNKNOWN."""
    code = error.code() if callable(getattr(error, "code", None)) else None
    details = error.details() if callable(getattr(error, "details", None)) else None
    return code or grpc.StatusCode.UNKNOWN, details or ""
