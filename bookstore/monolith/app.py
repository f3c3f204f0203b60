"""The monolith's HTTP API: the gateway's routes, answered by function calls instead of RPCs.

Same paths, same JSON shapes (the gateway's ``schemas``), same JWT check (``auth``), same
error bodies and statuses, same HTTP edge (body limits, telemetry middleware, ``/metrics``,
``/healthz``): a client cannot tell the two apart by their contract. Behind each route, the
gateway makes one gRPC call; here the route calls a module's function in this process.

Errors: a module raises a typed domain error, which the services would turn into a gRPC
status and the gateway into an HTTP status. Here the same two tables do both steps at once
(``bookstore.platform.status.status_for``, then ``bookstore.gateway.errors.http_status_for``),
so ``NotFound`` is 404 and ``InvalidArgument`` 400 from either, with the same body
``{"detail": "items[0].book_id: no book with id 999", "grpc_code": "NOT_FOUND"}``. The code
name stays in the body for compatibility, although no gRPC call happened. The one
difference, on purpose: a refused order (stock short, card declined) is 409 here, with
nothing written, where the services answer 201 with a stored REJECTED order (see
``bookstore.monolith``).

Route functions are plain ``def``: the stores block on the database, and FastAPI runs sync
routes in its thread pool, as the gateway's routes block on gRPC.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse

from bookstore.domain import validation as v
from bookstore.domain.errors import BookstoreError, NotFound
from bookstore.domain.models import OrderItem
from bookstore.gateway.app import (
    MAX_BODY_BYTES,
    NATIVE_TELEMETRY_OFF,
    PageSize,
    PageToken,
    SearchQuery,
    app_state,
    health_router,
    install_edge,
    metrics_router,
)
from bookstore.gateway.auth import CurrentUser
from bookstore.gateway.errors import headers_for, http_status_for
from bookstore.gateway.schemas import (
    MAX_INT64,
    Book,
    BookPage,
    BookSearchResult,
    CreateOrderBody,
    LoginBody,
    LoginResult,
    Order,
    OrderPage,
    RegisterBody,
    User,
)
from bookstore.monolith import checkout
from bookstore.monolith.modules import Modules
from bookstore.observability import annotate_user
from bookstore.platform.settings import Settings
from bookstore.platform.status import status_for
from bookstore.services.catalog.servicer import MAX_QUERY_LEN
from bookstore.services.user.servicer import TOKEN_TYPE, log_in, register

TITLE = "Bookstore monolith"


get_modules = app_state("modules", "monolith")

Mods = Annotated[Modules, Depends(get_modules)]

auth_router = APIRouter(prefix="/auth", tags=["auth"])
books_router = APIRouter(prefix="/books", tags=["books"])
orders_router = APIRouter(prefix="/orders", tags=["orders"])


@auth_router.post("/register", status_code=201)
def register_user(body: RegisterBody, modules: Mods) -> User:
    """Create an account. 409 when the username is taken."""
    return User.model_validate(register(modules.users, body.username, body.password), from_attributes=True)


@auth_router.post("/login")
def login(body: LoginBody, modules: Mods, request: Request) -> LoginResult:
    """Exchange a username and password for a bearer token, signed like the user service's."""
    settings: Settings = request.app.state.settings
    session = log_in(
        modules.users,
        body.username,
        body.password,
        jwt_secret=settings.jwt_secret,
        jwt_ttl_s=settings.jwt_ttl_s,
        now=time.time(),
    )
    return LoginResult(
        access_token=session.access_token,
        token_type=TOKEN_TYPE,
        expires_at_unix=session.expires_at_unix,
        user=User.model_validate(session.user, from_attributes=True),
    )


@books_router.get("")
def list_books(modules: Mods, page_size: PageSize = 0, page_token: PageToken = "") -> BookPage:
    """The catalog, one page at a time."""
    limit = v.page_size(page_size)
    offset = v.decode_page_token(page_token)
    books, total = modules.catalog.list_books(offset, limit)
    return BookPage(
        books=[Book.model_validate(book, from_attributes=True) for book in books],
        next_page_token=v.encode_page_token(offset + limit, total),
        total_size=total,
    )


@books_router.get("/search")
def search_books(modules: Mods, q: SearchQuery, page_size: PageSize = 0) -> BookSearchResult:
    """Books whose title or author contains ``q``."""
    found = modules.catalog.search(v.require_text("query", q, max_len=MAX_QUERY_LEN), v.page_size(page_size))
    return BookSearchResult(books=[Book.model_validate(book, from_attributes=True) for book in found])


@books_router.get("/{book_id}")
def get_book(modules: Mods, book_id: Annotated[int, Path(ge=1, le=MAX_INT64)]) -> Book:
    """One book by id."""
    return Book.model_validate(modules.catalog.get(book_id), from_attributes=True)


@orders_router.post("", status_code=201)
def create_order(body: CreateOrderBody, user: CurrentUser, modules: Mods) -> Order:
    """Place an order for the caller, in one transaction: 201 APPROVED, or an error with nothing written."""
    annotate_user(user.user_id)
    items = [OrderItem(book_id=item.book_id, quantity=item.quantity) for item in body.items]
    order = checkout.place_order(modules, user.user_id, items, body.request_id or "")
    annotate_user(order_id=order.order_id)
    return Order.model_validate(order, from_attributes=True)


@orders_router.get("/{order_id}")
def get_order(order_id: UUID, user: CurrentUser, modules: Mods) -> Order:
    """One of the caller's orders. Another user's order is 404, not 403, as from the gateway."""
    order = modules.orders.get(str(order_id))
    if order.user_id != user.user_id:
        raise NotFound(f"no order {order_id}", field="order_id")
    return Order.model_validate(order, from_attributes=True)


@orders_router.get("")
def list_orders(
    user: CurrentUser, modules: Mods, page_size: PageSize = 0, page_token: PageToken = ""
) -> OrderPage:
    """The caller's orders, newest first, one page at a time."""
    size = v.page_size(page_size)
    offset = v.decode_page_token(page_token)
    orders, total = modules.orders.list_for_user(user.user_id, offset, size)
    return OrderPage(
        orders=[Order.model_validate(order, from_attributes=True) for order in orders],
        next_page_token=v.encode_page_token(offset + len(orders), total),
    )


def domain_error_response(error: BookstoreError) -> JSONResponse:
    """The gateway's answer to the gRPC status the services would have sent for ``error``."""
    code = status_for(error)
    status = http_status_for(code)
    return JSONResponse(
        status_code=status,
        content={"detail": str(error), "grpc_code": code.name},
        headers=headers_for(status),
    )


async def _on_domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, BookstoreError)
    return domain_error_response(error)


def create_app(settings: Settings, modules: Modules | None = None) -> FastAPI:
    """Build the monolith's app. Without ``modules`` it opens its database when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.modules is None:
            app.state.modules = Modules.from_settings(settings)
        yield

    app = FastAPI(
        title=TITLE,
        version="1.0.0",
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        telemetry=NATIVE_TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.modules = modules
    # The gateway's edge, so that the comparison with the services measures the architecture only.
    install_edge(app, settings, (auth_router, books_router, orders_router, health_router, metrics_router))
    app.add_exception_handler(BookstoreError, _on_domain_error)
    return app
