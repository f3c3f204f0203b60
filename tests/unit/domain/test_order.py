"""The order's status rules, on the domain ``Order`` alone: no store, no flow."""

from __future__ import annotations

import pytest

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.errors import FailedPrecondition
from bookstore.domain.models import Order, OrderItem, OrderStatus


def pending() -> Order:
    return Order(
        order_id="o-1",
        user_id="u-1",
        items=(OrderItem(1, 2, 500),),
        status=OrderStatus.PENDING,
        created_at_unix=0,
        total_cents=1000,
    )


def test_a_pending_order_can_be_approved() -> None:
    assert pending().approve().status is OrderStatus.APPROVED


def test_a_pending_order_can_be_rejected_with_a_reason() -> None:
    rejected = pending().reject("out of stock: book 1")
    assert (rejected.status, rejected.reason) == (OrderStatus.REJECTED, "out of stock: book 1")


def test_settling_an_order_again_the_same_way_changes_nothing() -> None:
    approved = pending().approve()
    assert approved.approve() is approved
    rejected = pending().reject("declined")
    assert rejected.reject("another reason") is rejected  # the first reason stays


@pytest.mark.parametrize(
    ("settle", "then"),
    [
        (Order.approve, lambda order: order.reject("late refusal")),
        (lambda order: order.reject("declined"), Order.approve),
        (Order.approve, lambda order: order.moved_to(OrderStatus.PENDING)),
    ],
)
def test_a_settled_order_refuses_to_change_its_status(settle, then) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FailedPrecondition, match="already"):
        then(settle(pending()))


def test_a_pending_order_cannot_be_moved_to_pending() -> None:
    with pytest.raises(FailedPrecondition):
        pending().moved_to(OrderStatus.PENDING)


def test_a_place_order_command_holds_its_items_as_a_tuple() -> None:
    command = PlaceOrder.of("u-1", [OrderItem(1, 2)], "checkout-1")
    assert command.items == (OrderItem(1, 2),)
    assert command == PlaceOrder("u-1", (OrderItem(1, 2),), "checkout-1")
