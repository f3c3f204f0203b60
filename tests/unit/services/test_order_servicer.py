"""OrderServicer called directly, with fake downstream stubs and a fake servicer context.

The ``context`` fixture is conftest's FakeContext, standing in for a grpc.ServicerContext.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import order_pb2
from bookstore.services.order.flow import SagaFlow
from bookstore.services.order.servicer import OrderServicer
from bookstore.services.order.store import OrderStore

from .conftest import AbortedCall
from .order_fakes import Downstream, FakeRpcError, order_saga

USER = "7b0f6c2e-8a51-4d0b-9a52-3f1c2b6d9e10"


@pytest.fixture
def downstream() -> Downstream:
    return Downstream.create()


@pytest.fixture
def servicer(downstream: Downstream, sqlite_engine: Engine) -> OrderServicer:
    store = OrderStore(sqlite_engine)
    saga = order_saga(downstream, store, sqlite_engine, ManualClock(1000.0))
    return OrderServicer(SagaFlow(downstream.deps, store, saga), store)


def create(
    servicer: OrderServicer, context: grpc.ServicerContext, user_id: str = USER, **fields: Any
) -> order_pb2.Order:
    request = order_pb2.CreateOrderRequest(
        user_id=user_id, items=[order_pb2.OrderItem(book_id=1, quantity=2, unit_price_cents=1)], **fields
    )
    return servicer.CreateOrder(request, context).order


def test_create_order_answers_the_approved_order_priced_by_the_catalog(
    servicer: OrderServicer, context: grpc.ServicerContext
) -> None:
    order = create(servicer, context)
    assert order.status == order_pb2.ORDER_STATUS_APPROVED
    assert order.user_id == USER
    assert [(item.book_id, item.quantity, item.unit_price_cents) for item in order.items] == [(1, 2, 1250)]
    assert order.total_cents == 2500
    assert order.created_at_unix > 0


def test_create_order_with_a_bad_quantity_is_invalid_argument_naming_the_field(
    servicer: OrderServicer, context: grpc.ServicerContext
) -> None:
    request = order_pb2.CreateOrderRequest(user_id=USER, items=[order_pb2.OrderItem(book_id=1, quantity=0)])
    with pytest.raises(AbortedCall) as aborted:
        servicer.CreateOrder(request, context)
    assert aborted.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert aborted.value.details.startswith("items[0].quantity:")


def test_a_refusal_is_an_answer_but_a_broken_payment_is_its_status_code(
    servicer: OrderServicer, downstream: Downstream, context: grpc.ServicerContext
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "declined")
    assert create(servicer, context).status == order_pb2.ORDER_STATUS_REJECTED
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
    with pytest.raises(AbortedCall) as aborted:
        create(servicer, context)
    assert aborted.value.code is grpc.StatusCode.UNAVAILABLE
    assert "payment.Pay" in aborted.value.details


def test_get_order_finds_an_order_with_or_without_its_owner(
    servicer: OrderServicer, context: grpc.ServicerContext
) -> None:
    created = create(servicer, context)
    for user_id in ("", USER):
        request = order_pb2.GetOrderRequest(order_id=created.order_id, user_id=user_id)
        assert servicer.GetOrder(request, context).order == created


@pytest.mark.parametrize("whose", ["another user", "nobody"])
def test_get_order_of_another_user_or_of_nobody_is_not_found_alike(
    servicer: OrderServicer, context: grpc.ServicerContext, whose: str
) -> None:
    order_id = create(servicer, context).order_id if whose == "another user" else str(uuid.uuid4())
    request = order_pb2.GetOrderRequest(order_id=order_id, user_id=str(uuid.uuid4()))
    with pytest.raises(AbortedCall) as aborted:
        servicer.GetOrder(request, context)
    assert aborted.value.code is grpc.StatusCode.NOT_FOUND
    assert aborted.value.details == f"order_id: no order {order_id}"


def test_list_orders_pages_through_a_users_orders_newest_first(
    servicer: OrderServicer, context: grpc.ServicerContext
) -> None:
    created = [create(servicer, context).order_id for _ in range(3)]
    first = servicer.ListOrders(order_pb2.ListOrdersRequest(user_id=USER, page_size=2), context)
    second = servicer.ListOrders(
        order_pb2.ListOrdersRequest(user_id=USER, page_size=2, page_token=first.next_page_token), context
    )
    assert [order.order_id for order in [*first.orders, *second.orders]] == list(reversed(created))
    assert first.next_page_token
    assert second.next_page_token == ""


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"user_id": "nope"}, "user_id"),
        ({"user_id": USER, "page_size": 101}, "page_size"),
        ({"user_id": USER, "page_token": "abc"}, "page_token"),
    ],
)
def test_list_orders_with_a_bad_field_is_invalid_argument_naming_it(
    servicer: OrderServicer, context: grpc.ServicerContext, request_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(AbortedCall) as aborted:
        servicer.ListOrders(order_pb2.ListOrdersRequest(**request_fields), context)
    assert aborted.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert aborted.value.details.startswith(f"{field}:")
