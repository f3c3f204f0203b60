"""The gateway's HTTP API: routes that check, call one service, and translate.

Every route has the same three steps and nothing else: take a validated body or parameters
(``schemas``), make one gRPC call with the shared deadline, return the answer converted to
JSON. Failures need no code here: a ``grpc.RpcError`` travels to the handler in ``errors``.
The ``/books`` routes read through ``clients.catalog_cache``, so while the catalog is down
they can answer with the last answer that worked, marked as such (``fallback``).

``GET /internal/breakers`` shows the circuit breakers' state and counters as JSON, for
dashboards and the week 8 plots. It is for operators, so it stays out of ``/openapi.json``.
So does ``GET /metrics`` (week 10): the gateway's Prometheus metrics, on its own port. Every
other request gets a span and the ``http_*`` metrics from ``TelemetryMiddleware``, and the
order routes put the caller's user id (and the order id) on that span.

``create_app`` is the one place that wires the gateway together, so tests build the same
app with fake stubs::

    app = create_app(settings, clients=GatewayClients(user=..., catalog=..., order=...))

Without ``clients`` the app opens real channels when it starts (its lifespan) and closes
them when it stops.

Route functions are plain ``def``: the gRPC stubs block, and FastAPI runs sync routes in a
thread pool so a slow call never stalls the event loop. ``/books/search`` is declared
before ``/books/{book_id}``: routes match in order, and ``search`` would otherwise be taken
for a book id (and refused, since it is not an integer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

import grpc
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import StringConstraints

from bookstore.gateway.admission import AdmissionTimeout, admission_timeout_response
from bookstore.gateway.auth import CurrentUser
from bookstore.gateway.body import BodyGuard
from bookstore.gateway.clients import GatewayClients
from bookstore.gateway.errors import install_error_handlers
from bookstore.gateway.fallback import FALLBACK_HEADER, Resp, Served
from bookstore.gateway.openapi import install_exact_openapi
from bookstore.gateway.placement import failed_placement_response, placement_responses, stored_order_id
from bookstore.gateway.schemas import (
    MAX_INT64,
    MAX_PAGE_SIZE,
    MAX_PAGE_TOKEN_LENGTH,
    MAX_QUERY_LENGTH,
    NOT_ONLY_WHITESPACE,
    PAGE_TOKEN_PATTERN,
    UTF8,
    Book,
    BookPage,
    BookSearchResult,
    CreateOrderBody,
    ErrorBody,
    HealthStatus,
    LoginBody,
    LoginResult,
    Order,
    OrderPage,
    RegisterBody,
    User,
)
from bookstore.observability import annotate_user, render_metrics, watch_admission, watch_breakers
from bookstore.observability.http import TelemetryMiddleware
from bookstore.platform.settings import Settings
from bookstore.resilience import BreakerSnapshot
from bookstore.rpc.v1 import catalog_pb2, order_pb2

TITLE = "Bookstore API gateway"
DESCRIPTION = """\
The public HTTP/JSON entry point of the bookstore. Each route calls one gRPC service:
`/auth` the user service, `/books` the catalog service, `/orders` the order service.

Log in with `POST /auth/login`, then send `Authorization: Bearer <access_token>` to the
`/orders` routes. Errors have the body `{"detail": "...", "grpc_code": "NOT_FOUND"}`;
503 responses carry `Retry-After`.

While the catalog service is down, the `/books` routes may answer 200 with the last answer
that worked: such responses carry `X-Bookstore-Fallback: cache` and `Age` (seconds).
"""
VERSION = "1.0.0"
# The largest valid body (50 items and a request id) is about 4 KiB. Without a cap a client
# could make the gateway buffer and parse megabytes before validation refuses them.
MAX_BODY_BYTES = 64 * 1024

_ERROR_DESCRIPTIONS = {
    400: "The service refused the request as invalid (INVALID_ARGUMENT).",
    401: "Missing, malformed, expired or wrongly signed bearer token, or a wrong password.",
    403: "Authenticated but not allowed (PERMISSION_DENIED).",
    404: "Not found (or, for orders, it belongs to another user).",
    409: "Conflicts with the current state (ALREADY_EXISTS or FAILED_PRECONDITION).",
    429: "Too many requests (RESOURCE_EXHAUSTED).",
    502: "A backend service failed.",
    503: "A backend service is unavailable; retry after the Retry-After header's seconds.",
    504: "A backend service did not answer within the deadline.",
}
NATIVE_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
# Any backend call can end in these, whatever the route.
_BACKEND_FAILURES = (400, 502, 503, 504)


_FALLBACK_HEADERS = {
    FALLBACK_HEADER: {
        "description": "`cache` when the catalog was down and this is the last answer that worked.",
        "schema": {"type": "string", "enum": ["cache"]},
    },
    "Age": {
        "description": "With the fallback: seconds since the catalog gave this answer.",
        "schema": {"type": "integer", "minimum": 0},
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting ``statuses`` plus the backend failures of every route."""
    documented = sorted({*statuses, *_BACKEND_FAILURES})
    return {status: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[status]} for status in documented}


def catalog_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``error_responses`` for a ``/books`` route, plus the headers of a fallback answer."""
    return {200: {"headers": _FALLBACK_HEADERS}, **error_responses(*statuses)}


def served(response: Response, answer: Served[Resp]) -> Resp:
    """The answer inside ``answer``; if it came from the fallback cache, say so in the headers."""
    response.headers.update(answer.headers())
    return answer.answer


def app_state(attribute: str, owner: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that hands a route ``app.state.<attribute>``, which the lifespan sets.

    ``async`` because it does no I/O: no worker thread for a lookup. A missing value means
    the lifespan never ran, which is a wiring mistake, so it fails loudly rather than as a 500
    deep inside a route.
    """

    async def lookup(request: Request) -> Any:
        value = getattr(request.app.state, attribute, None)
        if value is None:
            raise RuntimeError(
                f"the {owner} has no {attribute}: its lifespan did not run (use `with TestClient(app)`)"
            )
        return value

    return lookup


get_clients = app_state("clients", "gateway")
Clients = Annotated[GatewayClients, Depends(get_clients)]
PageSize = Annotated[
    int, Query(ge=0, le=MAX_PAGE_SIZE, description="1-100 results per page; 0 means the default (20).")
]
PageToken = Annotated[
    str,
    StringConstraints(max_length=MAX_PAGE_TOKEN_LENGTH, pattern=PAGE_TOKEN_PATTERN),
    UTF8,
    Query(description="next_page_token of the previous page (digits); empty for the first page."),
]
SearchQuery = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_QUERY_LENGTH, pattern=NOT_ONLY_WHITESPACE),
    UTF8,
    Query(description="Text to find in title or author (not whitespace alone)."),
]

auth_router = APIRouter(prefix="/auth", tags=["auth"])
books_router = APIRouter(prefix="/books", tags=["books"])
orders_router = APIRouter(prefix="/orders", tags=["orders"])
health_router = APIRouter(tags=["health"])


@auth_router.post("/register", status_code=201, responses=error_responses(409))
def register(body: RegisterBody, clients: Clients) -> User:
    """Create an account. 409 when the username is taken."""
    response = clients.user.Register(body.to_pb(), timeout=clients.deadline_s)
    return User.from_pb(response.user)


@auth_router.post("/login", responses=error_responses(401))
def login(body: LoginBody, clients: Clients) -> LoginResult:
    """Exchange a username and password for a bearer token."""
    response = clients.user.Login(body.to_pb(), timeout=clients.deadline_s)
    return LoginResult.from_pb(response)


@books_router.get("", responses=catalog_responses())
def list_books(
    clients: Clients, response: Response, page_size: PageSize = 0, page_token: PageToken = ""
) -> BookPage:
    """The catalog, one page at a time."""
    request = catalog_pb2.ListBooksRequest(page_size=page_size, page_token=page_token)
    answer = clients.catalog_cache.call(
        "ListBooks", clients.catalog.ListBooks, request, timeout=clients.deadline_s
    )
    return BookPage.from_pb(served(response, answer))


@books_router.get("/search", responses=catalog_responses())
def search_books(
    clients: Clients,
    response: Response,
    q: SearchQuery,
    page_size: PageSize = 0,
) -> BookSearchResult:
    """Books whose title or author contains ``q``."""
    request = catalog_pb2.SearchBooksRequest(query=q, page_size=page_size)
    answer = clients.catalog_cache.call(
        "SearchBooks", clients.catalog.SearchBooks, request, timeout=clients.deadline_s
    )
    return BookSearchResult.from_pb(served(response, answer))


@books_router.get("/{book_id}", responses=catalog_responses(404))
def get_book(clients: Clients, response: Response, book_id: Annotated[int, Path(ge=1, le=MAX_INT64)]) -> Book:
    """One book by id."""
    request = catalog_pb2.GetBookRequest(book_id=book_id)
    answer = clients.catalog_cache.call(
        "GetBook", clients.catalog.GetBook, request, timeout=clients.deadline_s
    )
    return Book.from_pb(served(response, answer).book)


@orders_router.post(
    "",
    status_code=201,
    response_model=Order,  # the annotation's JSONResponse is the placement module's, documented there
    responses={**error_responses(401, 404, 409), **placement_responses()},
)
def create_order(body: CreateOrderBody, user: CurrentUser, clients: Clients) -> Order | JSONResponse:
    """Place an order for the caller.

    The answer is the order as the saga left it: APPROVED, or REJECTED with a reason (stock
    short, card declined), or PENDING while its saga is still settling (GET it again later).
    404 when a book does not exist. When a dependency failed after the order was stored, the
    answer names the order and where to follow it (``placement``): 202 while it is PENDING.
    """
    annotate_user(user.user_id)
    try:
        # The deadline starts once the call is sent, not while it waits for its turn.
        with clients.order_admission.slot():
            response = clients.order.CreateOrder(body.to_pb(user.user_id), timeout=clients.order_deadline_s)
    except AdmissionTimeout:
        return admission_timeout_response()
    except grpc.RpcError as error:
        order_id = stored_order_id(error)
        if order_id is None:
            raise
        annotate_user(order_id=order_id)
        return failed_placement_response(
            error, order_id, user_id=user.user_id, orders=clients.order, deadline_s=clients.deadline_s
        )
    annotate_user(order_id=response.order.order_id)
    return Order.from_pb(response.order)


@orders_router.get("/{order_id}", responses=error_responses(401, 404))
def get_order(order_id: UUID, user: CurrentUser, clients: Clients) -> Order:
    """One of the caller's orders. Another user's order is 404, not 403: its existence is private."""
    annotate_user(user.user_id, str(order_id))
    request = order_pb2.GetOrderRequest(order_id=str(order_id), user_id=user.user_id)
    return Order.from_pb(clients.order.GetOrder(request, timeout=clients.deadline_s).order)


@orders_router.get("", responses=error_responses(401))
def list_orders(
    user: CurrentUser, clients: Clients, page_size: PageSize = 0, page_token: PageToken = ""
) -> OrderPage:
    """The caller's orders, one page at a time."""
    annotate_user(user.user_id)
    request = order_pb2.ListOrdersRequest(user_id=user.user_id, page_size=page_size, page_token=page_token)
    return OrderPage.from_pb(clients.order.ListOrders(request, timeout=clients.deadline_s))


@health_router.get("/healthz")
async def healthz() -> HealthStatus:
    """Liveness: the gateway process answers HTTP.

    It deliberately does not call the backends: a gateway reported unhealthy because one
    service is down would be restarted or taken out of rotation, turning a partial outage
    into a total one. Backend failures show up per request instead (503, 504).
    """
    return HealthStatus()


internal_router = APIRouter(prefix="/internal", include_in_schema=False)


@internal_router.get("/breakers")
async def breakers(clients: Clients) -> dict[str, Any]:
    """Every circuit breaker of the gateway: state, generation, sliding window and totals.

    ``async``: reading snapshots takes a lock for microseconds and does no I/O.
    """
    registry = clients.breakers
    return {"breakers": [snapshot_as_json(s) for s in registry.snapshots()] if registry is not None else []}


metrics_router = APIRouter(include_in_schema=False)


@metrics_router.get("/metrics")
def prometheus_metrics() -> Response:
    """The gateway's Prometheus metrics (text format). A plain ``def``: rendering takes about a ms of CPU."""
    body, content_type = render_metrics()
    return Response(content=body, media_type=content_type)


def snapshot_as_json(snapshot: BreakerSnapshot) -> dict[str, Any]:
    """A breaker snapshot as plain JSON; the state by name (``CLOSED``, ``OPEN``, ``HALF_OPEN``)."""
    window = snapshot.window
    return {
        "name": snapshot.name,
        "state": snapshot.state.name,
        "generation": snapshot.generation,
        "window": {"calls": window.calls, "failures": window.failures, "failure_rate": window.failure_rate},
        "totals": dataclasses.asdict(snapshot.totals),
    }


def create_app(settings: Settings, clients: GatewayClients | None = None) -> FastAPI:
    """Build the gateway app. With ``clients`` (fakes in tests) it uses them and never closes them;
    without, it opens channels from ``settings`` at start-up and closes them at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if clients is not None:
            yield
            return
        app.state.clients = GatewayClients.from_settings(settings)
        watch_admission(app.state.clients.order_admission)
        if app.state.clients.breakers is not None:
            watch_breakers(app.state.clients.breakers.snapshots)
        try:
            yield
        finally:
            app.state.clients.close()

    app = FastAPI(
        title=TITLE,
        description=DESCRIPTION,
        version=VERSION,
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        # FastAPI's own OpenTelemetry spans would duplicate TelemetryMiddleware's server span and add
        # three internal spans per request (dependencies, endpoint, serialization): off.
        telemetry=NATIVE_TELEMETRY_OFF,
    )
    app.state.settings = settings
    # Set now rather than in the lifespan, so a TestClient used without `with` works as well.
    app.state.clients = clients
    install_exact_openapi(app)
    install_edge(
        app,
        settings,
        (auth_router, books_router, orders_router, health_router, internal_router, metrics_router),
    )
    return app


def install_edge(app: FastAPI, settings: Settings, routers: Iterable[APIRouter]) -> None:
    """What every bookstore HTTP app puts in front of its routes: the error handlers (gRPC status
    to HTTP, 422 without echoes, 405 with ``Allow``), the body guard, telemetry, then ``routers``.

    The gateway and the monolith (``bookstore.monolith.app``) share it, so that a client sees one
    edge, and a comparison of the two measures what lies behind it.
    """
    install_error_handlers(app)
    app.add_middleware(BodyGuard, max_bytes=MAX_BODY_BYTES, read_timeout_s=settings.http_body_timeout_s)
    app.add_middleware(TelemetryMiddleware)
    for router in routers:
        app.include_router(router)
