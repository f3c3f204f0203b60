"""InventoryServicer: request validation, status codes and messages naming the field."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from bookstore.platform.database import make_engine
from bookstore.rpc.v1 import inventory_pb2 as pb
from bookstore.services.inventory.servicer import InventoryServicer
from bookstore.services.inventory.store import InventoryStore

from .conftest import AbortedCall

BOOKS = 10
STOCK = 100

# The `context` fixture is a fake (see conftest.py) that quacks like the real one.
Context = grpc.ServicerContext


@pytest.fixture
def servicer(tmp_path: Path) -> Iterator[InventoryServicer]:
    engine = make_engine("sqlite:///" + str(tmp_path / "inv.db"))
    yield InventoryServicer(InventoryStore(engine, initial_stock=STOCK, book_count=BOOKS))
    engine.dispose()


def new_order() -> str:
    return str(uuid.uuid4())


def reserve_request(order_id: str, *pairs: tuple[int, int]) -> pb.ReserveStockRequest:
    return pb.ReserveStockRequest(
        order_id=order_id, items=[pb.StockItem(book_id=book, quantity=quantity) for book, quantity in pairs]
    )


def stock_of(servicer: InventoryServicer, book_id: int, context: Context) -> int:
    return servicer.GetStock(pb.GetStockRequest(book_id=book_id), context).available


def aborted(call: Callable[[], object]) -> AbortedCall:
    """Run ``call`` and return how it aborted the RPC."""
    with pytest.raises(AbortedCall) as error:
        call()
    return error.value


# GetStock and SetStock


def test_get_stock_answers_the_available_copies(servicer: InventoryServicer, context: Context) -> None:
    response = servicer.GetStock(pb.GetStockRequest(book_id=3), context)
    assert (response.book_id, response.available) == (3, STOCK)


@pytest.mark.parametrize("book_id", [0, -4])
def test_get_stock_rejects_a_book_id_that_is_not_positive(
    servicer: InventoryServicer, context: Context, book_id: int
) -> None:
    error = aborted(lambda: servicer.GetStock(pb.GetStockRequest(book_id=book_id), context))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.startswith("book_id:")


def test_get_stock_of_an_unstocked_book_is_not_found_naming_book_id(
    servicer: InventoryServicer, context: Context
) -> None:
    error = aborted(lambda: servicer.GetStock(pb.GetStockRequest(book_id=BOOKS + 1), context))
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert error.details == f"book_id: book {BOOKS + 1} is not stocked"


def test_set_stock_restocks_a_book(servicer: InventoryServicer, context: Context) -> None:
    response = servicer.SetStock(pb.SetStockRequest(book_id=2, quantity=1_000_000), context)
    assert (response.book_id, response.available) == (2, 1_000_000)
    assert stock_of(servicer, 2, context) == 1_000_000


@pytest.mark.parametrize("quantity", [-1, 1_000_001])
def test_set_stock_rejects_a_quantity_outside_zero_to_a_million(
    servicer: InventoryServicer, context: Context, quantity: int
) -> None:
    error = aborted(lambda: servicer.SetStock(pb.SetStockRequest(book_id=2, quantity=quantity), context))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.startswith("quantity:")


def test_set_stock_of_an_unstocked_book_is_not_found(servicer: InventoryServicer, context: Context) -> None:
    error = aborted(lambda: servicer.SetStock(pb.SetStockRequest(book_id=BOOKS + 1, quantity=1), context))
    assert error.code is grpc.StatusCode.NOT_FOUND


# ReserveStock: validation


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (reserve_request("", (1, 1)), "order_id"),
        (reserve_request("not-a-uuid", (1, 1)), "order_id"),
        (reserve_request(str(uuid.uuid4())), "items"),
        (reserve_request(str(uuid.uuid4()), *[(book, 1) for book in range(1, 52)]), "items"),
        (reserve_request(str(uuid.uuid4()), (1, 1), (0, 1)), "items[1].book_id"),
        (reserve_request(str(uuid.uuid4()), (1, 0)), "items[0].quantity"),
        (reserve_request(str(uuid.uuid4()), (1, 1), (2, 1001)), "items[1].quantity"),
        (reserve_request(str(uuid.uuid4()), (1, 1), (2, 1), (1, 3)), "items[2]"),
    ],
    ids=[
        "empty order id",
        "order id not a uuid",
        "no items",
        "51 items",
        "book id 0",
        "quantity 0",
        "quantity 1001",
        "duplicate book",
    ],
)
def test_reserve_rejects_a_malformed_request_naming_the_field(
    servicer: InventoryServicer, context: Context, request_: pb.ReserveStockRequest, field: str
) -> None:
    error = aborted(lambda: servicer.ReserveStock(request_, context))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.startswith(f"{field}: ")
    assert stock_of(servicer, 1, context) == STOCK


def test_reserve_accepts_fifty_items_of_a_thousand_copies(
    servicer: InventoryServicer, context: Context, tmp_path: Path
) -> None:
    engine = make_engine("sqlite:///" + str(tmp_path / "big.db"))
    big = InventoryServicer(InventoryStore(engine, initial_stock=1000, book_count=50))
    request = reserve_request(new_order(), *[(book, 1000) for book in range(1, 51)])
    response = big.ReserveStock(request, context)
    assert len(response.items) == 50
    assert stock_of(big, 50, context) == 0
    engine.dispose()


# ReserveStock: outcomes


def test_reserve_answers_the_reservation_in_the_callers_item_order(
    servicer: InventoryServicer, context: Context
) -> None:
    order = new_order()
    response = servicer.ReserveStock(reserve_request(order.upper(), (4, 2), (1, 1)), context)
    assert response.order_id == order
    assert [(item.book_id, item.quantity) for item in response.items] == [(4, 2), (1, 1)]
    assert response.status == pb.RESERVATION_STATUS_RESERVED
    assert stock_of(servicer, 4, context) == STOCK - 2


def test_reserve_with_too_little_stock_fails_the_precondition_naming_the_item(
    servicer: InventoryServicer, context: Context
) -> None:
    servicer.SetStock(pb.SetStockRequest(book_id=7, quantity=3), context)
    error = aborted(lambda: servicer.ReserveStock(reserve_request(new_order(), (2, 1), (7, 5)), context))
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details == "items[1].quantity: only 3 left of book 7, asked for 5"
    assert stock_of(servicer, 2, context) == STOCK


def test_reserve_of_an_unstocked_book_is_not_found_naming_the_item(
    servicer: InventoryServicer, context: Context
) -> None:
    error = aborted(lambda: servicer.ReserveStock(reserve_request(new_order(), (BOOKS + 1, 1)), context))
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert error.details.startswith("items[0].book_id: ")


def test_a_replayed_reserve_returns_the_first_response(servicer: InventoryServicer, context: Context) -> None:
    request = reserve_request(new_order(), (1, 2))
    first = servicer.ReserveStock(request, context)
    assert servicer.ReserveStock(request, context) == first
    assert stock_of(servicer, 1, context) == STOCK - 2


def test_a_reserve_replayed_with_other_items_fails_naming_order_id(
    servicer: InventoryServicer, context: Context
) -> None:
    order = new_order()
    servicer.ReserveStock(reserve_request(order, (1, 2)), context)
    error = aborted(lambda: servicer.ReserveStock(reserve_request(order, (1, 2), (2, 1)), context))
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert error.details.startswith("order_id: ")


# ReleaseStock


def test_release_returns_the_stock_once(servicer: InventoryServicer, context: Context) -> None:
    order = new_order()
    servicer.ReserveStock(reserve_request(order, (1, 2)), context)
    first = servicer.ReleaseStock(pb.ReleaseStockRequest(order_id=order), context)
    again = servicer.ReleaseStock(pb.ReleaseStockRequest(order_id=order), context)
    assert (first.order_id, first.status, first.released_now) == (order, pb.RESERVATION_STATUS_RELEASED, True)
    assert (again.status, again.released_now) == (pb.RESERVATION_STATUS_RELEASED, False)
    assert stock_of(servicer, 1, context) == STOCK


def test_release_before_reserve_succeeds_and_bars_the_late_reserve(
    servicer: InventoryServicer, context: Context
) -> None:
    order = new_order()
    response = servicer.ReleaseStock(pb.ReleaseStockRequest(order_id=order), context)
    assert (response.status, response.released_now) == (pb.RESERVATION_STATUS_RELEASED, False)
    error = aborted(lambda: servicer.ReserveStock(reserve_request(order, (1, 1)), context))
    assert error.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "was released" in error.details
    assert stock_of(servicer, 1, context) == STOCK


def test_release_rejects_an_order_id_that_is_no_uuid(servicer: InventoryServicer, context: Context) -> None:
    error = aborted(lambda: servicer.ReleaseStock(pb.ReleaseStockRequest(order_id="42"), context))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.startswith("order_id: ")
