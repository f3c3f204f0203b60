"""Fake gRPC stubs that behave like the user, catalog and order services, in memory.

They are what the gateway sees through ``GatewayClients``: objects with the stubs' method
names, taking a request message and a ``timeout`` keyword, returning a response message or
raising a ``grpc.RpcError`` with a code. They keep the services' contracts (the comments in
the .proto files) closely enough for the gateway's tests and for fuzzing, and no more.

Two habits of real stubs are kept on purpose, because the gateway must cope with them:
every request goes through protobuf serialisation (so text protobuf cannot carry fails here
as it would on the wire), and ``timeout`` is a required keyword (so a call without a deadline
fails the test).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from bookstore.gateway.clients import GatewayClients, order_deadline
from bookstore.platform.settings import Settings
from bookstore.platform.tokens import issue_token
from bookstore.rpc.v1 import catalog_pb2, order_pb2, user_pb2

from ...fakes import FakeRpcError

M = TypeVar("M", bound=Message)

DEFAULT_PAGE_SIZE = 20
CARD_LIMIT_CENTS = 50_000
FIXED_NOW = 1_700_000_000


@dataclass(frozen=True)
class Call:
    method: str
    request: Message
    timeout: float


@dataclass
class RecordingStub:
    """Base of the fakes: records each call and sends its request through the wire format."""

    calls: list[Call] = field(default_factory=list)

    def _receive(self, method: str, request: M, timeout: float) -> M:
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise AssertionError(f"{method} called without a positive deadline: timeout={timeout!r}")
        self.calls.append(Call(method, request, timeout))
        return type(request).FromString(request.SerializeToString())


def _page(items: list[Any], page_size: int, page_token: str) -> tuple[list[Any], str]:
    if page_size < 0 or page_size > 100:
        raise FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "page_size: must be between 1 and 100")
    if page_token and (not page_token.isdigit() or len(page_token) > 9):
        raise FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "page_token: is not a token this service issued")
    offset = int(page_token or 0)
    size = page_size or DEFAULT_PAGE_SIZE
    end = offset + size
    return items[offset:end], str(end) if end < len(items) else ""


@dataclass
class FakeUserService(RecordingStub):
    secret: str = "test-secret"
    ttl_s: int = 3600
    users: dict[str, tuple[user_pb2.User, str]] = field(default_factory=dict)

    def Register(self, request: user_pb2.RegisterRequest, *, timeout: float) -> user_pb2.RegisterResponse:
        request = self._receive("Register", request, timeout)
        if request.username in self.users:
            raise FakeRpcError(grpc.StatusCode.ALREADY_EXISTS, f"username: {request.username!r} is taken")
        user = user_pb2.User(user_id=str(uuid.uuid4()), username=request.username, created_at_unix=FIXED_NOW)
        self.users[request.username] = (user, request.password)
        return user_pb2.RegisterResponse(user=user)

    def Login(self, request: user_pb2.LoginRequest, *, timeout: float) -> user_pb2.LoginResponse:
        request = self._receive("Login", request, timeout)
        known = self.users.get(request.username)
        if known is None or known[1] != request.password:
            raise FakeRpcError(grpc.StatusCode.UNAUTHENTICATED, "wrong username or password")
        user = known[0]
        token, expires = issue_token(user.user_id, user.username, secret=self.secret, ttl_s=self.ttl_s)
        return user_pb2.LoginResponse(
            access_token=token, token_type="bearer", expires_at_unix=expires, user=user
        )


def sample_books() -> list[catalog_pb2.Book]:
    return [
        catalog_pb2.Book(
            book_id=1, title="Dune", author="Frank Herbert", isbn="9780441172719", price_cents=999, year=1965
        ),
        catalog_pb2.Book(
            book_id=2,
            title="Neuromancer",
            author="William Gibson",
            isbn="9780441569595",
            price_cents=1250,
            year=1984,
        ),
        catalog_pb2.Book(
            book_id=3,
            title="The Left Hand of Darkness",
            author="Ursula K. Le Guin",
            isbn="9780441478125",
            price_cents=1099,
            year=1969,
        ),
        catalog_pb2.Book(
            book_id=4,
            title="A Very Expensive Atlas",
            author="Mapmakers Guild",
            isbn="9780000000004",
            price_cents=40_000,
            year=2020,
        ),
    ]


@dataclass
class FakeCatalogService(RecordingStub):
    books: list[catalog_pb2.Book] = field(default_factory=sample_books)

    def find(self, book_id: int) -> catalog_pb2.Book | None:
        return next((book for book in self.books if book.book_id == book_id), None)

    def ListBooks(
        self, request: catalog_pb2.ListBooksRequest, *, timeout: float
    ) -> catalog_pb2.ListBooksResponse:
        request = self._receive("ListBooks", request, timeout)
        page, next_token = _page(self.books, request.page_size, request.page_token)
        return catalog_pb2.ListBooksResponse(
            books=page, next_page_token=next_token, total_size=len(self.books)
        )

    def SearchBooks(
        self, request: catalog_pb2.SearchBooksRequest, *, timeout: float
    ) -> catalog_pb2.SearchBooksResponse:
        request = self._receive("SearchBooks", request, timeout)
        query = request.query.strip().lower()
        if not query:
            raise FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "query: must not be empty")
        found = [book for book in self.books if query in book.title.lower() or query in book.author.lower()]
        page, _ = _page(found, request.page_size, "")
        return catalog_pb2.SearchBooksResponse(books=page)

    def GetBook(self, request: catalog_pb2.GetBookRequest, *, timeout: float) -> catalog_pb2.GetBookResponse:
        request = self._receive("GetBook", request, timeout)
        book = self.find(request.book_id)
        if book is None:
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"book_id: no book {request.book_id}")
        return catalog_pb2.GetBookResponse(book=book)


@dataclass
class FakeOrderService(RecordingStub):
    catalog: FakeCatalogService = field(default_factory=FakeCatalogService)
    orders: dict[str, order_pb2.Order] = field(default_factory=dict)
    by_request_id: dict[tuple[str, str], str] = field(default_factory=dict)

    def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, *, timeout: float
    ) -> order_pb2.CreateOrderResponse:
        request = self._receive("CreateOrder", request, timeout)
        key = (request.user_id, request.request_id)
        if request.request_id and key in self.by_request_id:
            return order_pb2.CreateOrderResponse(order=self.orders[self.by_request_id[key]])
        seen: set[int] = set()
        items = []
        for index, item in enumerate(request.items):
            if item.book_id in seen:
                raise FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, f"items[{index}].book_id: duplicate id")
            seen.add(item.book_id)
            book = self.catalog.find(item.book_id)
            if book is None:
                raise FakeRpcError(
                    grpc.StatusCode.NOT_FOUND, f"items[{index}].book_id: no book {item.book_id}"
                )
            items.append(
                order_pb2.OrderItem(
                    book_id=item.book_id, quantity=item.quantity, unit_price_cents=book.price_cents
                )
            )
        total = sum(item.quantity * item.unit_price_cents for item in items)
        approved = total <= CARD_LIMIT_CENTS
        order = order_pb2.Order(
            order_id=str(uuid.uuid4()),
            user_id=request.user_id,
            items=items,
            total_cents=total,
            status=order_pb2.ORDER_STATUS_APPROVED if approved else order_pb2.ORDER_STATUS_REJECTED,
            reason="" if approved else f"payment declined: {total} exceeds the card limit",
            created_at_unix=FIXED_NOW,
        )
        self.orders[order.order_id] = order
        if request.request_id:
            self.by_request_id[key] = order.order_id
        return order_pb2.CreateOrderResponse(order=order)

    def GetOrder(self, request: order_pb2.GetOrderRequest, *, timeout: float) -> order_pb2.GetOrderResponse:
        request = self._receive("GetOrder", request, timeout)
        order = self.orders.get(request.order_id)
        if order is None or (request.user_id and order.user_id != request.user_id):
            raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"order_id: no order {request.order_id}")
        return order_pb2.GetOrderResponse(order=order)

    def ListOrders(
        self, request: order_pb2.ListOrdersRequest, *, timeout: float
    ) -> order_pb2.ListOrdersResponse:
        request = self._receive("ListOrders", request, timeout)
        mine = [order for order in self.orders.values() if order.user_id == request.user_id]
        page, next_token = _page(mine, request.page_size, request.page_token)
        return order_pb2.ListOrdersResponse(orders=page, next_page_token=next_token)


class FailingStub(RecordingStub):
    """A stub whose every method fails with one status code, as a broken backend would."""

    def __init__(self, code: grpc.StatusCode, details: str = "it went wrong") -> None:
        super().__init__()
        self.code = code
        self.details = details

    def __getattr__(self, method: str) -> Callable[..., Message]:
        if method.startswith("_"):
            raise AttributeError(method)

        def fail(request: Message, *, timeout: float) -> Message:
            self._receive(method, request, timeout)
            raise FakeRpcError(self.code, self.details)

        return fail


def fake_clients(settings: Settings) -> GatewayClients:
    """Gateway clients over fresh in-memory services that share ``settings``' JWT secret."""
    catalog = FakeCatalogService()
    return GatewayClients(
        user=FakeUserService(secret=settings.jwt_secret, ttl_s=settings.jwt_ttl_s),
        catalog=catalog,
        order=FakeOrderService(catalog=catalog),
        deadline_s=settings.deadline_s,
        order_deadline_s=order_deadline(settings),
    )


def failing_clients(
    code: grpc.StatusCode, details: str = "it went wrong", deadline_s: float = 1.0
) -> GatewayClients:
    return GatewayClients(
        user=FailingStub(code, details),
        catalog=FailingStub(code, details),
        order=FailingStub(code, details),
        deadline_s=deadline_s,
    )


def bearer(user_id: str, settings: Settings, *, username: str = "someone") -> dict[str, str]:
    """Headers carrying a valid token for ``user_id``, as the user service would issue it."""
    token, _ = issue_token(user_id, username, secret=settings.jwt_secret, ttl_s=settings.jwt_ttl_s)
    return {"Authorization": f"Bearer {token}"}
