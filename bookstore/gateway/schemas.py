"""The gateway's public JSON shapes, and their translation to and from protobuf.

These pydantic models are the HTTP contract: FastAPI validates every request against them
(422 when a body or parameter does not fit) and renders them into ``/openapi.json``. Their
constraints are deliberately tight, for two reasons:

* **Precise documentation.** A client, or a fuzzer such as schemathesis, reads the exact
  ranges from the OpenAPI document: ``quantity`` is an integer from 1 to 1000, not "a
  number".
* **Garbage stops at the edge.** What protobuf cannot carry must never reach a stub, or it
  surfaces as a 500. An integer above 2**63-1 does not fit an ``int64``; a string holding a
  lone surrogate (JSON allows ``"\\ud800"``) is not valid UTF-8, and protobuf refuses to
  serialise it. Both are answered 422 here.

The checks are about shape (sizes, ranges, encodings, the formats the .proto contracts
document). Rules that need state, such as "is this book in stock", belong to the services.

Request bodies are strict (``"5"`` is not an integer) and closed (an unknown field such as a
misspelt ``quantiy`` is refused rather than silently ignored). Response models carry no
constraints: the gateway reports what the services answered and must not fail on it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from bookstore.domain.models import OrderStatus
from bookstore.domain.validation import PAGE_TOKEN_MAX_DIGITS
from bookstore.gateway.errors import UpstreamContractError
from bookstore.rpc.v1 import catalog_pb2, order_pb2, user_pb2

MAX_INT64 = 2**63 - 1
MAX_QUANTITY = 1000
MAX_ITEMS = 50
MAX_PAGE_SIZE = 100
MAX_PAGE_TOKEN_LENGTH = PAGE_TOKEN_MAX_DIGITS
# What the services issue and take: up to 9 ASCII digits. Documenting it lets a client (or a
# fuzzer) know that anything else is refused, instead of promising "any string".
PAGE_TOKEN_PATTERN = r"^[0-9]*$"
MAX_QUERY_LENGTH = 100
# "Has a character that is not whitespace": the services strip text with str.strip(), so a
# query of whitespace alone is empty to them. The class lists exactly what str.isspace() takes
# (written out, because regex engines' \s differ on \x1c-\x1f and \x85).
NOT_ONLY_WHITESPACE = (
    "[^\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)
MAX_REQUEST_ID_LENGTH = 100
# Letters are accepted in either case: the user service lowercases, so "Ada" is "ada".
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def require_utf8(value: str) -> str:
    """Refuse text that has no UTF-8 encoding (lone surrogates), which protobuf cannot send."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text; lone surrogate code points are not") from None
    return value


UTF8 = AfterValidator(require_utf8)
"""Metadata for ``Annotated[str, Field(...), UTF8]``: refuse text that protobuf cannot send.

Constraints on a string (lengths, pattern) go *before* it. Pydantic checks and documents
constraints written before a validator on the plain ``str`` itself; written after it, they
become generic checks around the validator's result, which leave the pattern out of
``/openapi.json`` and word their errors for lists ("at most 32 items").
"""


def whole_float_as_int(value: object) -> object:
    """``2.0`` as ``2``: JSON Schema counts a number with a zero fraction as an integer.

    Strict validation refuses floats, so without this ``{"quantity": 2.0}``, valid by the
    published ``"type": "integer"``, would be a 422. Anything else passes through unchanged,
    for the strict check to judge (text and booleans stay refused). Past 2**53 a float cannot
    hold every integer, so a client wanting an exact large id writes it without a fraction.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE_NUMBER = BeforeValidator(whole_float_as_int)
"""Metadata for ``Annotated[int, Field(...), WHOLE_NUMBER]``: bounds before it, as with ``UTF8``."""
BookId = Annotated[int, Field(ge=1, le=MAX_INT64, description="A book's id: a positive int64."), WHOLE_NUMBER]


class RequestBody(BaseModel):
    """Base of request bodies: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ----------------------------------------------------------------------------------- auth


class RegisterBody(RequestBody):
    username: Annotated[
        str,
        Field(
            min_length=3,
            max_length=32,
            pattern=USERNAME_PATTERN,
            description="3-32 letters, digits, '_', '.' or '-', starting with a letter or digit; "
            "case-insensitive (stored in lowercase).",
            examples=["alice"],
        ),
        UTF8,
    ]
    password: Annotated[str, Field(min_length=8, max_length=128, examples=["correct horse"]), UTF8]

    def to_pb(self) -> user_pb2.RegisterRequest:
        return user_pb2.RegisterRequest(username=self.username, password=self.password)


class LoginBody(RequestBody):
    username: Annotated[str, Field(min_length=1, max_length=32, examples=["alice"]), UTF8]
    password: Annotated[str, Field(min_length=1, max_length=128, examples=["correct horse"]), UTF8]

    def to_pb(self) -> user_pb2.LoginRequest:
        return user_pb2.LoginRequest(username=self.username, password=self.password)


class User(BaseModel):
    user_id: str
    username: str
    created_at_unix: int

    @classmethod
    def from_pb(cls, user: user_pb2.User) -> User:
        return cls(user_id=user.user_id, username=user.username, created_at_unix=user.created_at_unix)


class LoginResult(BaseModel):
    access_token: str = Field(description="Send as 'Authorization: Bearer <access_token>'.")
    token_type: str = "bearer"
    expires_at_unix: int
    user: User

    @classmethod
    def from_pb(cls, response: user_pb2.LoginResponse) -> LoginResult:
        return cls(
            access_token=response.access_token,
            token_type=response.token_type or "bearer",
            expires_at_unix=response.expires_at_unix,
            user=User.from_pb(response.user),
        )


# ---------------------------------------------------------------------------------- books


class Book(BaseModel):
    book_id: int
    title: str
    author: str
    isbn: str
    price_cents: int = Field(description="Money is always integer cents.")
    year: int

    @classmethod
    def from_pb(cls, book: catalog_pb2.Book) -> Book:
        return cls(
            book_id=book.book_id,
            title=book.title,
            author=book.author,
            isbn=book.isbn,
            price_cents=book.price_cents,
            year=book.year,
        )


class BookPage(BaseModel):
    books: list[Book]
    next_page_token: str = Field(description="Pass as page_token for the next page; empty on the last.")
    total_size: int

    @classmethod
    def from_pb(cls, response: catalog_pb2.ListBooksResponse) -> BookPage:
        return cls(
            books=[Book.from_pb(book) for book in response.books],
            next_page_token=response.next_page_token,
            total_size=response.total_size,
        )


class BookSearchResult(BaseModel):
    books: list[Book]

    @classmethod
    def from_pb(cls, response: catalog_pb2.SearchBooksResponse) -> BookSearchResult:
        return cls(books=[Book.from_pb(book) for book in response.books])


# --------------------------------------------------------------------------------- orders


class OrderItemBody(RequestBody):
    book_id: BookId
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), WHOLE_NUMBER]


class CreateOrderBody(RequestBody):
    items: Annotated[
        list[OrderItemBody],
        Field(min_length=1, max_length=MAX_ITEMS, description="1-50 items with distinct book ids."),
    ]
    request_id: Annotated[
        Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID_LENGTH), UTF8] | None,
        Field(description="Optional idempotency key: repeating a request with it returns the same order."),
    ] = None

    def to_pb(self, user_id: str) -> order_pb2.CreateOrderRequest:
        return order_pb2.CreateOrderRequest(
            user_id=user_id,
            items=[order_pb2.OrderItem(book_id=item.book_id, quantity=item.quantity) for item in self.items],
            request_id=self.request_id or "",
        )


class OrderItem(BaseModel):
    book_id: int
    quantity: int
    unit_price_cents: int = Field(description="The catalog price when the order was placed.")

    @classmethod
    def from_pb(cls, item: order_pb2.OrderItem) -> OrderItem:
        return cls(book_id=item.book_id, quantity=item.quantity, unit_price_cents=item.unit_price_cents)


class Order(BaseModel):
    order_id: str
    user_id: str
    items: list[OrderItem]
    total_cents: int
    status: OrderStatus = Field(
        description="PENDING while the order's saga runs (nothing about it is final yet), "
        "then APPROVED or REJECTED for good."
    )
    reason: str = Field(description="Why the order was rejected; empty otherwise.")
    created_at_unix: int

    @classmethod
    def from_pb(cls, order: order_pb2.Order) -> Order:
        return cls(
            order_id=order.order_id,
            user_id=order.user_id,
            items=[OrderItem.from_pb(item) for item in order.items],
            total_cents=order.total_cents,
            status=order_status_from_pb(order.status),
            reason=order.reason,
            created_at_unix=order.created_at_unix,
        )


class OrderPage(BaseModel):
    orders: list[Order]
    next_page_token: str

    @classmethod
    def from_pb(cls, response: order_pb2.ListOrdersResponse) -> OrderPage:
        orders = [Order.from_pb(order) for order in response.orders]
        return cls(orders=orders, next_page_token=response.next_page_token)


def order_status_from_pb(status: int) -> OrderStatus:
    """``ORDER_STATUS_APPROVED`` -> ``OrderStatus.APPROVED``; UNSPECIFIED breaks the contract."""
    name = order_pb2.OrderStatus.Name(status) if status in order_pb2.OrderStatus.values() else str(status)
    try:
        return OrderStatus(name.removeprefix("ORDER_STATUS_"))
    except ValueError:
        raise UpstreamContractError(f"the order service sent an order with status {name}") from None


# --------------------------------------------------------------------------------- common


class ErrorBody(BaseModel):
    detail: str
    grpc_code: str | None = Field(default=None, description="The backend's gRPC status code, e.g. NOT_FOUND.")


class HealthStatus(BaseModel):
    status: str = "ok"
