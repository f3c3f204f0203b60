"""The gateway behind circuit breakers: 503 with Retry-After when a circuit is open, and the
catalog's last known good answers while it is down.

The stubs here are the real generated ones, on ``grpc.intercept_channel`` with the breaker
interceptor, over an in-process channel to the fake services: the same path a request takes
in the running gateway, minus the network. Time is a fake clock; nothing sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient

from bookstore.gateway.app import create_app
from bookstore.gateway.clients import ORDER_OPERATION_CLASSES, GatewayClients
from bookstore.gateway.fallback import FALLBACK_HEADER, LastKnownGood
from bookstore.platform.settings import Settings
from bookstore.platform.status import ORDER_ID_METADATA_KEY
from bookstore.resilience import (
    CIRCUIT_METADATA_KEY,
    DEPENDENCY_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    BreakerRegistry,
    BreakerSettings,
    CircuitBreakerInterceptor,
    CircuitOpenRpcError,
    State,
)
from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import catalog_pb2, catalog_pb2_grpc, order_pb2, order_pb2_grpc, user_pb2_grpc

from ..resilience.grpc_fakes import InProcessChannel, RpcFailure
from .fakes import FailingStub, FakeCatalogService, FakeOrderService, FakeRpcError, FakeUserService, bearer

OPEN_TIMEOUT_S = 5.0
BREAKER_SETTINGS = BreakerSettings(
    window_size=4, minimum_calls=4, open_timeout_s=OPEN_TIMEOUT_S, half_open_max_calls=2
)



class Outage:
    """A service that can be taken down: while ``down`` is set, every call fails with ``code``."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.down: grpc.StatusCode | None = None
        self.calls_while_down = 0

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        if self.down is None:
            return getattr(self.service, method)
        code = self.down

        def fail(request: Any, *, timeout: float) -> Any:
            self.calls_while_down += 1
            raise FakeRpcError(code, "injected outage")

        return fail


@dataclass
class Gateway:
    """A gateway app whose three backends are fake services behind real breakers."""

    http: TestClient
    clients: GatewayClients
    breakers: BreakerRegistry
    catalog: Outage
    order: Outage
    clock: ManualClock

    @property
    def catalog_breaker_state(self) -> State:
        return self.breakers.breaker("catalog").state


def protected_stub(stub_class: Any, service: Any, name: str, registry: BreakerRegistry) -> Any:
    channel = grpc.intercept_channel(InProcessChannel(service), CircuitBreakerInterceptor(registry, name))
    return stub_class(channel)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[Gateway]:
    clock = ManualClock(1000.0)
    registry = BreakerRegistry(BREAKER_SETTINGS, operation_classes=ORDER_OPERATION_CLASSES, clock=clock)
    fake_catalog = FakeCatalogService()
    catalog = Outage(fake_catalog)
    order = Outage(FakeOrderService(catalog=fake_catalog))
    clients = GatewayClients(
        user=protected_stub(
            user_pb2_grpc.UserServiceStub,
            FakeUserService(secret=settings.jwt_secret, ttl_s=settings.jwt_ttl_s),
            "user",
            registry,
        ),
        catalog=protected_stub(catalog_pb2_grpc.CatalogServiceStub, catalog, "catalog", registry),
        order=protected_stub(order_pb2_grpc.OrderServiceStub, order, "order", registry),
        deadline_s=settings.deadline_s,
        breakers=registry,
        catalog_cache=LastKnownGood(clock=clock),
    )
    with TestClient(create_app(settings, clients)) as http:
        yield Gateway(http, clients, registry, catalog, order, clock)


def trip_catalog_breaker(gateway: Gateway, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
    """Take the catalog down and make uncached requests until its breaker opens."""
    gateway.catalog.down = code
    for book_id in range(100, 100 + BREAKER_SETTINGS.minimum_calls):
        gateway.http.get(f"/books/{book_id}")
    assert gateway.catalog_breaker_state is State.OPEN


# --------------------------------------------------------------------------- 503 and Retry-After


def test_failing_catalog_calls_open_its_breaker_and_then_requests_fail_without_calling_it(
    gateway: Gateway,
) -> None:
    trip_catalog_breaker(gateway)
    calls_before = gateway.catalog.calls_while_down

    response = gateway.http.get("/books/2")

    assert response.status_code == 503
    assert response.json()["grpc_code"] == "UNAVAILABLE"
    assert "circuit open" in response.json()["detail"]
    assert gateway.catalog.calls_while_down == calls_before


def test_an_open_circuit_sets_retry_after_to_the_whole_seconds_until_the_breaker_tries_again(
    gateway: Gateway,
) -> None:
    trip_catalog_breaker(gateway)
    assert gateway.http.get("/books/2").headers["Retry-After"] == "5"

    gateway.clock.advance(3.5)  # 1.5 s to go: rounded up

    assert gateway.http.get("/books/2").headers["Retry-After"] == "2"


def test_failures_before_the_circuit_opens_keep_the_plain_retry_after_of_one_second(gateway: Gateway) -> None:
    gateway.catalog.down = grpc.StatusCode.UNAVAILABLE

    response = gateway.http.get("/books/2")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert gateway.catalog_breaker_state is State.CLOSED


def test_a_refusal_with_no_wait_left_still_asks_for_at_least_one_second(settings: Settings) -> None:
    clients = GatewayClients(
        user=FailingStub(grpc.StatusCode.UNAVAILABLE),
        catalog=FailingStub(grpc.StatusCode.UNAVAILABLE),
        order=FailingStub(grpc.StatusCode.UNAVAILABLE),
        deadline_s=1.0,
    )

    def refused(request: object, *, timeout: float) -> None:
        raise CircuitOpenRpcError("catalog", 0.0, State.HALF_OPEN)

    clients.catalog.GetBook = refused
    with TestClient(create_app(settings, clients)) as client:
        response = client.get("/books/1")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_an_open_order_circuit_is_503_for_orders_and_leaves_the_catalog_alone(
    gateway: Gateway, settings: Settings
) -> None:
    gateway.breakers.breaker("order", "ListOrders").force_open()

    response = gateway.http.get("/orders", headers=bearer("u-1", settings))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert FALLBACK_HEADER not in response.headers
    assert gateway.http.get("/books/1").status_code == 200


class PaymentCircuitOpen:
    """An order service whose own breaker in front of payment is open: it refuses CreateOrder
    at once, with UNAVAILABLE and the breaker's trailing metadata, as the real one does."""

    def __init__(self, retry_after_s: str) -> None:
        self.retry_after_s = retry_after_s
        self.calls = 0

    def CreateOrder(self, request: object, *, timeout: float) -> None:
        self.calls += 1
        raise RpcFailure(
            grpc.StatusCode.UNAVAILABLE,
            "downstream: payment.Pay was not called: circuit 'payment' is open; trial calls in 2.300 s",
            ((CIRCUIT_METADATA_KEY, "payment"), (RETRY_AFTER_METADATA_KEY, self.retry_after_s)),
        )


def test_an_order_refused_by_the_order_services_open_circuit_is_503_with_that_circuits_retry_after(
    gateway: Gateway, settings: Settings
) -> None:
    gateway.order.service = PaymentCircuitOpen(retry_after_s="2.300")

    response = gateway.http.post(
        "/orders",
        json={"items": [{"book_id": 1, "quantity": 1}]},
        headers=bearer(str(uuid.uuid4()), settings),
    )

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"  # 2.3 s, rounded up
    assert response.json()["grpc_code"] == "UNAVAILABLE"
    assert "circuit open" in response.json()["detail"]


def test_refusals_by_the_order_services_own_breaker_never_open_the_gateways_order_breaker(
    gateway: Gateway, settings: Settings
) -> None:
    refusing = PaymentCircuitOpen(retry_after_s="not a number")
    gateway.order.service = refusing
    headers = bearer(str(uuid.uuid4()), settings)

    for _ in range(3 * BREAKER_SETTINGS.window_size):
        response = gateway.http.post(
            "/orders", json={"items": [{"book_id": 1, "quantity": 1}]}, headers=headers
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"  # unreadable: the plain default

    # The order service answered every time, at once: it is healthy, payment is not.
    assert refusing.calls == 3 * BREAKER_SETTINGS.window_size
    assert gateway.breakers.breaker("order", "CreateOrder").state is State.CLOSED


class OrderFailsAfterStoring(FakeOrderService):
    """An order service whose CreateOrder stores the order, then payment fails: it answers ``code``
    naming the dependency and the stored order (left ``status``), as the real one does."""

    def __init__(self, code: grpc.StatusCode, status: int = order_pb2.ORDER_STATUS_REJECTED) -> None:
        super().__init__()
        self.code = code
        self.status = status

    def CreateOrder(self, request: Any, *, timeout: float) -> Any:
        order = self.orders[super().CreateOrder(request, timeout=timeout).order.order_id]
        order.status = self.status  # what the saga left behind, as GetOrder will show it
        raise RpcFailure(
            self.code,
            f"downstream: payment.Pay returned {self.code.name}: injected; order {order.order_id} ...",
            ((DEPENDENCY_METADATA_KEY, "payment.Pay"), (ORDER_ID_METADATA_KEY, order.order_id)),
        )


def place(gateway: Gateway, headers: dict[str, str]) -> Any:
    return gateway.http.post("/orders", json={"items": [{"book_id": 1, "quantity": 1}]}, headers=headers)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_orders_rejected_because_payment_failed_never_open_a_gateway_breaker(
    gateway: Gateway, settings: Settings, code: grpc.StatusCode
) -> None:
    gateway.order.service = OrderFailsAfterStoring(code)
    headers = bearer(str(uuid.uuid4()), settings)

    for _ in range(3 * BREAKER_SETTINGS.window_size):
        assert place(gateway, headers).status_code in (503, 504)

    # The order service answered every time: payment failed, not the order service.
    assert {b.name: b.state for b in gateway.breakers} == {
        "order/reads": State.CLOSED,
        "order/writes": State.CLOSED,
    }
    assert gateway.http.get("/orders", headers=headers).status_code == 200


def test_failing_creates_open_only_the_order_write_breaker_and_reads_stay_available(
    gateway: Gateway, settings: Settings
) -> None:
    service = gateway.order.service

    def create_fails_itself(request: Any, *, timeout: float) -> Any:
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "the order service's own failure")

    gateway.order.service = FailingCreates(service, create_fails_itself)
    headers = bearer(str(uuid.uuid4()), settings)
    for _ in range(BREAKER_SETTINGS.minimum_calls):
        assert place(gateway, headers).status_code == 503

    assert gateway.breakers.breaker("order", "CreateOrder").state is State.OPEN
    assert gateway.breakers.breaker("order", "ListOrders").state is State.CLOSED
    assert gateway.http.get("/orders", headers=headers).status_code == 200


class FailingCreates:
    """An order service whose CreateOrder is replaced; its reads are the wrapped service's."""

    def __init__(self, service: Any, create: Callable[..., Any]) -> None:
        self._service = service
        self.CreateOrder = create

    def __getattr__(self, method: str) -> Any:
        return getattr(self._service, method)


# ------------------------------------------------------------------- a failed placement names its order


def test_a_placement_that_failed_after_storing_a_rejected_order_answers_503_with_the_order_and_where_it_is(
    gateway: Gateway, settings: Settings
) -> None:
    gateway.order.service = OrderFailsAfterStoring(grpc.StatusCode.UNAVAILABLE)
    headers = bearer(str(uuid.uuid4()), settings)

    response = place(gateway, headers)

    assert response.status_code == 503
    body = response.json()
    assert body["grpc_code"] == "UNAVAILABLE"
    assert body["location"] == f"/orders/{body['order_id']}" == response.headers["Location"]
    assert response.headers["Retry-After"] == "1"
    followed = gateway.http.get(response.headers["Location"], headers=headers)
    assert (followed.status_code, followed.json()["status"]) == (200, "REJECTED")


def test_a_placement_that_failed_with_its_order_still_pending_answers_202_with_the_order_and_location(
    gateway: Gateway, settings: Settings
) -> None:
    gateway.order.service = OrderFailsAfterStoring(
        grpc.StatusCode.DEADLINE_EXCEEDED, order_pb2.ORDER_STATUS_PENDING
    )
    headers = bearer(str(uuid.uuid4()), settings)

    response = place(gateway, headers)

    assert response.status_code == 202
    order = response.json()
    assert order["status"] == "PENDING"
    assert response.headers["Location"] == f"/orders/{order['order_id']}"


def test_a_placement_that_failed_before_storing_an_order_is_a_plain_503(
    gateway: Gateway, settings: Settings
) -> None:
    gateway.order.down = grpc.StatusCode.UNAVAILABLE

    response = place(gateway, bearer(str(uuid.uuid4()), settings))

    assert response.status_code == 503
    assert "Location" not in response.headers
    assert set(response.json()) == {"detail", "grpc_code"}


def test_a_neutral_not_found_is_404_and_never_opens_the_breaker(gateway: Gateway) -> None:
    for _ in range(3 * BREAKER_SETTINGS.window_size):
        assert gateway.http.get("/books/999").status_code == 404

    assert gateway.catalog_breaker_state is State.CLOSED


# --------------------------------------------------------------------------- the catalog fallback


def test_a_fresh_answer_carries_no_fallback_header(gateway: Gateway) -> None:
    response = gateway.http.get("/books/1")

    assert response.status_code == 200
    assert FALLBACK_HEADER not in response.headers
    assert "Age" not in response.headers


def test_a_book_seen_before_is_served_from_the_cache_while_the_catalog_breaker_is_open(
    gateway: Gateway,
) -> None:
    fresh = gateway.http.get("/books/1")
    trip_catalog_breaker(gateway)
    gateway.clock.advance(7)

    stale = gateway.http.get("/books/1")

    assert stale.status_code == 200
    assert stale.json() == fresh.json()
    assert stale.headers[FALLBACK_HEADER] == "cache"
    assert stale.headers["Age"] == "7"


def test_a_book_never_seen_is_503_while_the_catalog_breaker_is_open(gateway: Gateway) -> None:
    gateway.http.get("/books/1")
    trip_catalog_breaker(gateway)

    response = gateway.http.get("/books/2")

    assert response.status_code == 503
    assert FALLBACK_HEADER not in response.headers


def test_lists_and_searches_fall_back_per_request(gateway: Gateway) -> None:
    page = gateway.http.get("/books", params={"page_size": 2})
    hits = gateway.http.get("/books/search", params={"q": "dune"})
    trip_catalog_breaker(gateway)

    same_page = gateway.http.get("/books", params={"page_size": 2})
    same_hits = gateway.http.get("/books/search", params={"q": "dune"})

    assert (same_page.status_code, same_page.json()) == (200, page.json())
    assert (same_hits.status_code, same_hits.json()) == (200, hits.json())
    assert same_page.headers[FALLBACK_HEADER] == same_hits.headers[FALLBACK_HEADER] == "cache"
    assert gateway.http.get("/books", params={"page_size": 3}).status_code == 503
    assert gateway.http.get("/books/search", params={"q": "gibson"}).status_code == 503


def test_a_catalog_call_that_misses_its_deadline_falls_back_too_and_504s_when_nothing_is_kept(
    gateway: Gateway,
) -> None:
    gateway.http.get("/books/1")
    gateway.catalog.down = grpc.StatusCode.DEADLINE_EXCEEDED

    assert gateway.http.get("/books/1").headers[FALLBACK_HEADER] == "cache"
    assert gateway.http.get("/books/2").status_code == 504


def test_other_catalog_failures_are_not_hidden_behind_the_cache(gateway: Gateway) -> None:
    gateway.http.get("/books/1")
    gateway.catalog.down = grpc.StatusCode.PERMISSION_DENIED

    assert gateway.http.get("/books/1").status_code == 403


def test_when_the_catalog_recovers_trial_calls_close_the_breaker_and_answers_are_fresh_again(
    gateway: Gateway,
) -> None:
    gateway.http.get("/books/1")
    trip_catalog_breaker(gateway)
    gateway.catalog.down = None
    gateway.clock.advance(OPEN_TIMEOUT_S)

    answers = [gateway.http.get("/books/1") for _ in range(BREAKER_SETTINGS.half_open_max_calls)]

    assert gateway.catalog_breaker_state is State.CLOSED
    assert all(a.status_code == 200 and FALLBACK_HEADER not in a.headers for a in answers)


def test_the_cache_keeps_only_the_most_recently_used_answers() -> None:
    cache = LastKnownGood(max_entries=2)
    catalog = FakeCatalogService()
    for book_id in (1, 2, 3):
        cache.call("GetBook", catalog.GetBook, catalog_pb2.GetBookRequest(book_id=book_id), timeout=1)

    def down(request: object, *, timeout: float) -> None:
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")

    assert len(cache) == 2
    assert cache.call("GetBook", down, catalog_pb2.GetBookRequest(book_id=3), timeout=1).from_cache
    with pytest.raises(grpc.RpcError):
        cache.call("GetBook", down, catalog_pb2.GetBookRequest(book_id=1), timeout=1)


# --------------------------------------------------------------------------- /internal/breakers


def test_internal_breakers_shows_each_breakers_state_window_and_totals(gateway: Gateway) -> None:
    gateway.http.get("/books/1")
    trip_catalog_breaker(gateway)
    gateway.http.get("/books/2")

    body = gateway.http.get("/internal/breakers").json()

    by_name = {breaker["name"]: breaker for breaker in body["breakers"]}
    catalog = by_name["catalog"]
    assert catalog["state"] == "OPEN"
    assert catalog["generation"] == 1
    # One success, then the window [ok, fail, fail, fail] trips: the next two are refused.
    assert catalog["totals"] == {
        "calls": 6,
        "successes": 1,
        "failures": 3,
        "rejected": 2,
        "ignored_stale": 0,
        "abandoned": 0,
    }
    assert set(catalog["window"]) == {"calls", "failures", "failure_rate"}


def test_internal_breakers_is_empty_without_breakers_and_stays_out_of_the_openapi_document(
    client: TestClient,
) -> None:
    assert client.get("/internal/breakers").json() == {"breakers": []}
    assert not any(path.startswith("/internal") for path in client.get("/openapi.json").json()["paths"])


def test_the_openapi_document_describes_the_fallback_headers_of_the_book_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path in ("/books", "/books/search", "/books/{book_id}"):
        assert set(paths[path]["get"]["responses"]["200"]["headers"]) == {FALLBACK_HEADER, "Age"}
