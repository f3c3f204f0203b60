"""Each RPC of each service, called over real gRPC against real processes."""

from __future__ import annotations

import secrets
import uuid

import grpc
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.rpc.v1 import catalog_pb2, inventory_pb2, order_pb2, payment_pb2, user_pb2

DEADLINE = 5


def code_of(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=DEADLINE)
    return error.value.code()  # type: ignore[no-any-return]


def test_register_login_and_get_user(cluster: Cluster) -> None:
    users = cluster.stub("user")
    name = f"grace_{secrets.token_hex(3)}"
    user = users.Register(
        user_pb2.RegisterRequest(username=name, password="hopper-1906"), timeout=DEADLINE
    ).user
    login = users.Login(user_pb2.LoginRequest(username=name, password="hopper-1906"), timeout=DEADLINE)
    assert login.user.user_id == user.user_id and login.access_token.count(".") == 2
    assert (
        users.GetUser(user_pb2.GetUserRequest(user_id=user.user_id), timeout=DEADLINE).user.username == name
    )
    assert (
        code_of(users.Register, user_pb2.RegisterRequest(username=name, password="hopper-1906"))
        is grpc.StatusCode.ALREADY_EXISTS
    )
    assert (
        code_of(users.Login, user_pb2.LoginRequest(username=name, password="wrong-password"))
        is grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        code_of(users.Register, user_pb2.RegisterRequest(username="x", password="hopper-1906"))
        is grpc.StatusCode.INVALID_ARGUMENT
    )


def test_catalog_pages_searches_and_gets_books(cluster: Cluster) -> None:
    catalog = cluster.stub("catalog")
    first = catalog.ListBooks(catalog_pb2.ListBooksRequest(page_size=10), timeout=DEADLINE)
    second = catalog.ListBooks(
        catalog_pb2.ListBooksRequest(page_size=10, page_token=first.next_page_token), timeout=DEADLINE
    )
    assert first.total_size >= 50 and len(first.books) == 10
    assert {b.book_id for b in first.books}.isdisjoint(b.book_id for b in second.books)
    found = catalog.SearchBooks(catalog_pb2.SearchBooksRequest(query="TOLKIEN"), timeout=DEADLINE).books
    assert found and all("tolkien" in (b.author + b.title).lower() for b in found)
    book = catalog.GetBook(catalog_pb2.GetBookRequest(book_id=first.books[0].book_id), timeout=DEADLINE).book
    assert book == first.books[0]
    assert code_of(catalog.GetBook, catalog_pb2.GetBookRequest(book_id=999_999)) is grpc.StatusCode.NOT_FOUND
    assert (
        code_of(catalog.ListBooks, catalog_pb2.ListBooksRequest(page_size=1000))
        is grpc.StatusCode.INVALID_ARGUMENT
    )


def test_inventory_reserves_all_or_nothing_and_releases_idempotently(cluster: Cluster) -> None:
    inventory = cluster.stub("inventory")
    inventory.SetStock(inventory_pb2.SetStockRequest(book_id=11, quantity=5), timeout=DEADLINE)
    inventory.SetStock(inventory_pb2.SetStockRequest(book_id=12, quantity=1), timeout=DEADLINE)
    too_many = inventory_pb2.ReserveStockRequest(
        order_id=str(uuid.uuid4()),
        items=[
            inventory_pb2.StockItem(book_id=11, quantity=2),
            inventory_pb2.StockItem(book_id=12, quantity=2),
        ],
    )
    assert code_of(inventory.ReserveStock, too_many) is grpc.StatusCode.FAILED_PRECONDITION
    assert inventory.GetStock(inventory_pb2.GetStockRequest(book_id=11), timeout=DEADLINE).available == 5

    order_id = str(uuid.uuid4())
    request = inventory_pb2.ReserveStockRequest(
        order_id=order_id, items=[inventory_pb2.StockItem(book_id=11, quantity=2)]
    )
    first = inventory.ReserveStock(request, timeout=DEADLINE)
    assert inventory.ReserveStock(request, timeout=DEADLINE) == first
    assert inventory.GetStock(inventory_pb2.GetStockRequest(book_id=11), timeout=DEADLINE).available == 3
    release = inventory_pb2.ReleaseStockRequest(order_id=order_id)
    assert inventory.ReleaseStock(release, timeout=DEADLINE).released_now is True
    assert inventory.ReleaseStock(release, timeout=DEADLINE).released_now is False
    assert inventory.GetStock(inventory_pb2.GetStockRequest(book_id=11), timeout=DEADLINE).available == 5


def test_payment_charges_once_and_refunds_once(cluster: Cluster) -> None:
    payment = cluster.stub("payment")
    pay = payment_pb2.PayRequest(order_id=str(uuid.uuid4()), user_id=str(uuid.uuid4()), amount_cents=2599)
    first = payment.Pay(pay, timeout=DEADLINE).payment
    assert payment.Pay(pay, timeout=DEADLINE).payment == first
    refund = payment_pb2.RefundRequest(order_id=pay.order_id)
    assert payment.Refund(refund, timeout=DEADLINE).refunded_now is True
    assert payment.Refund(refund, timeout=DEADLINE).refunded_now is False
    declined = payment_pb2.PayRequest(
        order_id=str(uuid.uuid4()), user_id=pay.user_id, amount_cents=10_000_000
    )
    assert code_of(payment.Pay, declined) is grpc.StatusCode.FAILED_PRECONDITION


def test_an_order_is_priced_by_the_catalog_and_approved(cluster: Cluster) -> None:
    cluster.stub("inventory").SetStock(
        inventory_pb2.SetStockRequest(book_id=3, quantity=10), timeout=DEADLINE
    )
    price = (
        cluster.stub("catalog")
        .GetBook(catalog_pb2.GetBookRequest(book_id=3), timeout=DEADLINE)
        .book.price_cents
    )
    user_id = str(uuid.uuid4())
    orders = cluster.stub("order")
    created = orders.CreateOrder(
        order_pb2.CreateOrderRequest(
            user_id=user_id, items=[order_pb2.OrderItem(book_id=3, quantity=2, unit_price_cents=1)]
        ),
        timeout=DEADLINE,
    ).order
    assert created.status == order_pb2.ORDER_STATUS_APPROVED
    assert created.total_cents == 2 * price
    fetched = orders.GetOrder(
        order_pb2.GetOrderRequest(order_id=created.order_id, user_id=user_id), timeout=DEADLINE
    )
    assert fetched.order == created
    listed = orders.ListOrders(order_pb2.ListOrdersRequest(user_id=user_id), timeout=DEADLINE).orders
    assert [o.order_id for o in listed] == [created.order_id]
    other = order_pb2.GetOrderRequest(order_id=created.order_id, user_id=str(uuid.uuid4()))
    assert code_of(orders.GetOrder, other) is grpc.StatusCode.NOT_FOUND
    paid = cluster.stub("payment").GetPayment(
        payment_pb2.GetPaymentRequest(order_id=created.order_id), timeout=DEADLINE
    )
    assert paid.payment.amount_cents == created.total_cents


def test_a_declined_payment_rejects_the_order_and_returns_the_stock(cluster: Cluster) -> None:
    inventory = cluster.stub("inventory")
    inventory.SetStock(inventory_pb2.SetStockRequest(book_id=4, quantity=1000), timeout=DEADLINE)
    created = (
        cluster.stub("order")
        .CreateOrder(
            order_pb2.CreateOrderRequest(
                user_id=str(uuid.uuid4()), items=[order_pb2.OrderItem(book_id=4, quantity=1000)]
            ),
            timeout=DEADLINE,
        )
        .order
    )
    assert created.status == order_pb2.ORDER_STATUS_REJECTED
    assert "declined" in created.reason
    assert inventory.GetStock(inventory_pb2.GetStockRequest(book_id=4), timeout=DEADLINE).available == 1000


def test_an_order_for_an_unknown_book_names_the_item_and_writes_nothing(cluster: Cluster) -> None:
    user_id = str(uuid.uuid4())
    orders = cluster.stub("order")
    bad = order_pb2.CreateOrderRequest(
        user_id=user_id,
        items=[order_pb2.OrderItem(book_id=1, quantity=1), order_pb2.OrderItem(book_id=999_999, quantity=1)],
    )
    with pytest.raises(grpc.RpcError) as error:
        orders.CreateOrder(bad, timeout=DEADLINE)
    assert error.value.code() is grpc.StatusCode.NOT_FOUND
    assert "items[1]" in error.value.details()
    assert (
        list(orders.ListOrders(order_pb2.ListOrdersRequest(user_id=user_id), timeout=DEADLINE).orders) == []
    )


def test_a_replayed_create_order_returns_the_same_order_and_charges_once(cluster: Cluster) -> None:
    cluster.stub("inventory").SetStock(
        inventory_pb2.SetStockRequest(book_id=5, quantity=10), timeout=DEADLINE
    )
    request = order_pb2.CreateOrderRequest(
        user_id=str(uuid.uuid4()),
        items=[order_pb2.OrderItem(book_id=5, quantity=1)],
        request_id="checkout-42",
    )
    first = cluster.stub("order").CreateOrder(request, timeout=DEADLINE).order
    again = cluster.stub("order").CreateOrder(request, timeout=DEADLINE).order
    assert again == first
    stock = cluster.stub("inventory").GetStock(inventory_pb2.GetStockRequest(book_id=5), timeout=DEADLINE)
    assert stock.available == 9


def test_every_service_serves_health_reflection_and_admin(cluster: Cluster) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    for status in cluster.status():
        assert status.state == "SERVING", status
    channel = grpc.insecure_channel(cluster.address("payment"))
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert "bookstore.rpc.v1.PaymentService" in names and "grpc.health.v1.Health" in names
    channel.close()
