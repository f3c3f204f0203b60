"""place_order with fake catalog, inventory and payment stubs and an SQLite store."""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest
from sqlalchemy import Engine

from bookstore.domain.errors import InvalidArgument, NotFound
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.services.order.flow import MAX_TOTAL_CENTS, DownstreamError, place_order
from bookstore.services.order.store import OrderStore

from .order_fakes import DEADLINE_S, Downstream, FakeRpcError

USER = "7b0f6c2e-8a51-4d0b-9a52-3f1c2b6d9e10"


@pytest.fixture
def downstream() -> Downstream:
    return Downstream.create()


@pytest.fixture
def store(sqlite_engine: Engine) -> OrderStore:
    return OrderStore(sqlite_engine)


def basket() -> list[OrderItem]:
    # The client's unit prices are nonsense on purpose: the catalog's prices must win.
    return [OrderItem(book_id=1, quantity=2, unit_price_cents=1), OrderItem(book_id=3, quantity=1)]


def only_order(store: OrderStore) -> Order:
    orders, total = store.list_for_user(USER, 0, 10)
    assert total == 1
    return orders[0]


# The happy path


def test_an_order_is_approved_and_priced_from_the_catalog(downstream: Downstream, store: OrderStore) -> None:
    order = place_order(downstream.deps, store, USER, basket())
    assert order.status is OrderStatus.APPROVED
    assert order.items == (OrderItem(1, 2, 1250), OrderItem(3, 1, 4000))
    assert order.total_cents == 2 * 1250 + 4000
    assert store.get(order.order_id) == order
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay"]


def test_stock_is_reserved_and_the_total_charged_for_the_order(
    downstream: Downstream, store: OrderStore
) -> None:
    order = place_order(downstream.deps, store, USER, basket())
    _, reserve, pay = downstream.journal.calls
    assert reserve.request.order_id == order.order_id
    assert [(item.book_id, item.quantity) for item in reserve.request.items] == [(1, 2), (3, 1)]
    assert (pay.request.order_id, pay.request.user_id) == (order.order_id, USER)
    assert pay.request.amount_cents == order.total_cents


def test_every_downstream_call_carries_the_deadline(downstream: Downstream, store: OrderStore) -> None:
    place_order(downstream.deps, store, USER, basket())
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")
    with pytest.raises(DownstreamError):
        place_order(downstream.deps, store, USER, basket())
    assert {"Refund", "ReleaseStock"} <= set(downstream.journal.methods)
    assert all(call.timeout == DEADLINE_S for call in downstream.journal.calls)


# Business refusals: returned, not raised


def test_short_stock_rejects_the_order_with_the_reason_and_charges_nothing(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.inventory.reserve_error = FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, "items[1]: only 0 of book 3 left"
    )
    order = place_order(downstream.deps, store, USER, basket())
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "out of stock: items[1]: only 0 of book 3 left"
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock"]
    assert store.get(order.order_id) == order


def test_a_declined_payment_releases_the_stock_and_rejects_the_order(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "over the card limit")
    order = place_order(downstream.deps, store, USER, basket())
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "payment declined: over the card limit"
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay", "ReleaseStock"]
    assert downstream.journal.calls[-1].request.order_id == order.order_id


# Infrastructure failures: compensated, stored REJECTED, raised with the downstream code


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_failed_payment_is_refunded_released_rejected_and_reraised(
    downstream: Downstream, store: OrderStore, code: grpc.StatusCode
) -> None:
    downstream.payment.pay_error = FakeRpcError(code, "no answer")
    with pytest.raises(DownstreamError) as raised:
        place_order(downstream.deps, store, USER, basket())
    assert raised.value.code() is code
    assert raised.value.__cause__ is downstream.payment.pay_error
    assert "payment.Pay" in raised.value.details()
    # The charge may have happened before the answer got lost: undo money, then stock.
    assert downstream.journal.methods[-2:] == ["Refund", "ReleaseStock"]
    order = only_order(store)
    assert raised.value.order_id == order.order_id
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith(f"payment failed: Pay returned {code.name}")


def test_a_failed_reservation_is_released_rejected_and_reraised_without_paying(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.inventory.reserve_error = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "too slow")
    with pytest.raises(DownstreamError) as raised:
        place_order(downstream.deps, store, USER, basket())
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "ReleaseStock"]
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("inventory failed: ReserveStock returned DEADLINE_EXCEEDED")


def test_a_failing_compensation_is_logged_and_does_not_hide_the_original_error(
    downstream: Downstream, store: OrderStore, caplog: pytest.LogCaptureFixture
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "payment down")
    downstream.inventory.release_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "inventory down too")
    with caplog.at_level(logging.WARNING), pytest.raises(DownstreamError) as raised:
        place_order(downstream.deps, store, USER, basket())
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert raised.value.service == "payment"
    assert "ReleaseStock" in caplog.text
    assert "ReleaseStock failed too" in only_order(store).reason


def test_an_unavailable_catalog_passes_its_code_on_and_writes_nothing(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.catalog.error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "catalog down")
    with pytest.raises(DownstreamError) as raised:
        place_order(downstream.deps, store, USER, basket())
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert store.list_for_user(USER, 0, 10) == ([], 0)
    assert downstream.journal.methods == ["BatchGetBooks"]


# Unknown books


@pytest.mark.parametrize(
    ("code", "details"),
    [
        (grpc.StatusCode.NOT_FOUND, "book_ids[1]: no book with id 99"),
        (grpc.StatusCode.NOT_FOUND, "book_ids: no book with id 99"),
        (grpc.StatusCode.INVALID_ARGUMENT, "unknown book 99"),
    ],
)
def test_an_unknown_book_is_not_found_naming_its_item_and_nothing_is_written(
    downstream: Downstream, store: OrderStore, code: grpc.StatusCode, details: str
) -> None:
    downstream.catalog.error = FakeRpcError(code, details)
    items = [OrderItem(book_id=1, quantity=1), OrderItem(book_id=99, quantity=1)]
    with pytest.raises(NotFound) as raised:
        place_order(downstream.deps, store, USER, items)
    assert raised.value.field == "items[1].book_id"
    assert "99" in raised.value.message
    assert store.list_for_user(USER, 0, 10) == ([], 0)
    assert downstream.journal.methods == ["BatchGetBooks"]


def test_a_book_the_catalog_leaves_out_of_its_answer_is_not_found_naming_its_item(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.catalog.drop_unknown = True
    items = [OrderItem(book_id=42, quantity=1), OrderItem(book_id=1, quantity=1)]
    with pytest.raises(NotFound) as raised:
        place_order(downstream.deps, store, USER, items)
    assert raised.value.field == "items[0].book_id"
    assert store.list_for_user(USER, 0, 10) == ([], 0)


# Idempotency


def test_replaying_a_request_id_returns_the_same_order_and_calls_nothing_downstream(
    downstream: Downstream, store: OrderStore
) -> None:
    first = place_order(downstream.deps, store, USER, basket(), request_id="checkout-7")
    calls_before = len(downstream.journal.calls)
    again = place_order(downstream.deps, store, USER, basket(), request_id="checkout-7")
    assert again == first
    assert len(downstream.journal.calls) == calls_before


def test_replaying_a_rejected_request_returns_the_rejection_unchanged(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "declined")
    first = place_order(downstream.deps, store, USER, basket(), request_id="checkout-7")
    downstream.payment.pay_error = None
    again = place_order(downstream.deps, store, USER, basket(), request_id="checkout-7")
    assert again == first
    assert again.status is OrderStatus.REJECTED


def test_the_same_request_id_from_another_user_places_a_new_order(
    downstream: Downstream, store: OrderStore
) -> None:
    mine = place_order(downstream.deps, store, USER, basket(), request_id="checkout-7")
    theirs = place_order(downstream.deps, store, str(uuid.uuid4()), basket(), request_id="checkout-7")
    assert theirs.order_id != mine.order_id
    assert theirs.status is OrderStatus.APPROVED


def test_a_request_that_loses_the_idempotency_race_returns_the_winner_and_reserves_nothing(
    downstream: Downstream, store: OrderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = place_order(downstream.deps, store, USER, basket(), request_id="checkout-7")
    downstream.journal.calls.clear()
    # The loser checked for the key before the winner wrote it.
    monkeypatch.setattr(store, "find_by_request", lambda user_id, request_id: None)
    loser = place_order(downstream.deps, store, USER, basket(), request_id="checkout-7")
    assert loser == winner
    assert downstream.journal.methods == ["BatchGetBooks"]


# Validation: every error names its field, and nothing is called or written


@pytest.mark.parametrize(
    ("user_id", "items", "request_id", "field"),
    [
        ("", [OrderItem(1, 1)], "", "user_id"),
        ("not-a-uuid", [OrderItem(1, 1)], "", "user_id"),
        (USER, [], "", "items"),
        (USER, [OrderItem(book_id, 1) for book_id in range(1, 52)], "", "items"),
        (USER, [OrderItem(0, 1)], "", "items[0].book_id"),
        (USER, [OrderItem(1, 1), OrderItem(2, 0)], "", "items[1].quantity"),
        (USER, [OrderItem(1, 1001)], "", "items[0].quantity"),
        (USER, [OrderItem(1, 1), OrderItem(2, 1), OrderItem(1, 3)], "", "items[2].book_id"),
        (USER, [OrderItem(1, 1)], "r" * 101, "request_id"),
    ],
)
def test_an_invalid_request_is_refused_naming_the_field(
    downstream: Downstream,
    store: OrderStore,
    user_id: str,
    items: list[OrderItem],
    request_id: str,
    field: str,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        place_order(downstream.deps, store, user_id, items, request_id)
    assert raised.value.field == field
    assert downstream.journal.calls == []
    assert store.list_for_user(USER, 0, 10) == ([], 0)


def test_an_order_too_expensive_for_one_payment_is_refused_before_anything_is_written(
    store: OrderStore,
) -> None:
    downstream = Downstream.create(prices={1: MAX_TOTAL_CENTS})
    with pytest.raises(InvalidArgument) as raised:
        place_order(downstream.deps, store, USER, [OrderItem(1, 2)])
    assert raised.value.field == "items"
    assert downstream.journal.methods == ["BatchGetBooks"]
    assert store.list_for_user(USER, 0, 10) == ([], 0)


def test_a_free_order_is_approved_without_a_charge(store: OrderStore) -> None:
    downstream = Downstream.create(prices={1: 0})
    order = place_order(downstream.deps, store, USER, [OrderItem(1, 3)])
    assert order.status is OrderStatus.APPROVED
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock"]
