"""The order rules the monolith shares with the order service: pricing and the new order's status."""

from __future__ import annotations

import uuid

import pytest

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.errors import InvalidArgument, NotFound
from bookstore.domain.models import OrderItem, OrderStatus
from bookstore.services.order.flow import MAX_TOTAL_CENTS, new_order, validate_order_request, with_prices

USER = str(uuid.uuid4())


def test_prices_come_from_the_catalog_not_from_the_client() -> None:
    valid = validate_order_request(
        PlaceOrder.of(USER, [OrderItem(book_id=2, quantity=3, unit_price_cents=1)])
    )
    assert with_prices(valid.items, {2: 1599}) == (OrderItem(book_id=2, quantity=3, unit_price_cents=1599),)


def test_an_unpriced_book_is_not_found_naming_its_item() -> None:
    items = (OrderItem(book_id=1, quantity=1), OrderItem(book_id=99, quantity=1))
    with pytest.raises(NotFound) as refused:
        with_prices(items, {1: 1499})
    assert refused.value.field == "items[1].book_id"


def test_a_new_order_carries_the_status_asked_and_its_total() -> None:
    valid = validate_order_request(PlaceOrder.of(USER, [OrderItem(book_id=1, quantity=2)]))
    order = new_order(valid, with_prices(valid.items, {1: 1499}), OrderStatus.APPROVED)
    assert (order.status, order.total_cents, order.user_id) == (OrderStatus.APPROVED, 2998, USER)
    assert new_order(valid, with_prices(valid.items, {1: 1499})).status is OrderStatus.PENDING


def test_a_total_past_what_payment_may_charge_is_refused_before_anything_is_written() -> None:
    valid = validate_order_request(PlaceOrder.of(USER, [OrderItem(book_id=1, quantity=1000)]))
    with pytest.raises(InvalidArgument):
        new_order(valid, with_prices(valid.items, {1: MAX_TOTAL_CENTS // 1000 + 1}))
