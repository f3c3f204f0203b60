"""The order service behind its circuit breakers: what an open circuit means to the saga.

The stubs are the real generated ones, on ``grpc.intercept_channel`` with the breaker
interceptor, over an in-process channel to the fake catalog, inventory and payment: the
path a call takes in the running service, minus the network. The breakers and the saga
share one fake clock, so an open timeout passes when a test says so; nothing sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.models import OrderItem, OrderStatus
from bookstore.platform.settings import Settings
from bookstore.platform.status import ORDER_ID_METADATA_KEY
from bookstore.resilience import (
    CIRCUIT_METADATA_KEY,
    DEPENDENCY_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
    BreakerRegistry,
    BreakerSettings,
    CircuitBreakerInterceptor,
    CircuitOpenError,
    State,
)
from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import catalog_pb2_grpc, inventory_pb2_grpc, order_pb2, payment_pb2_grpc
from bookstore.saga import SagaLog, StepEventKind
from bookstore.services.order.clients import OrderDependencies
from bookstore.services.order.flow import DownstreamError, SagaFlow
from bookstore.services.order.saga import OrderSaga
from bookstore.services.order.servicer import OrderServicer
from bookstore.services.order.store import OrderStore

from ..resilience.grpc_fakes import InProcessChannel
from ..saga.fakes import FakeSleep
from .conftest import AbortedCall, FakeContext
from .order_fakes import DEADLINE_S, NO_WAIT_BACKOFF, SAGA_DEADLINE_S, Downstream, FakeRpcError

USER = "7b0f6c2e-8a51-4d0b-9a52-3f1c2b6d9e10"
OPEN_TIMEOUT_S = 4.0
# The first failure opens a breaker; one successful trial call closes it again.
BREAKER_SETTINGS = BreakerSettings(
    consecutive_failures=1, open_timeout_s=OPEN_TIMEOUT_S, half_open_max_calls=1
)


@dataclass
class Protected:
    """The fakes behind real breakers, and the saga and store of one order service."""

    downstream: Downstream
    breakers: BreakerRegistry
    deps: OrderDependencies
    store: OrderStore
    saga: OrderSaga
    clock: ManualClock

    def place(self) -> Any:
        return SagaFlow(self.deps, self.store, self.saga).place(
            PlaceOrder.of(USER, [OrderItem(book_id=1, quantity=2)])
        )

    def only_order(self) -> Any:
        orders, total = self.store.list_for_user(USER, 0, 10)
        assert total == 1
        return orders[0]


def protected_stub(stub_class: Any, fake: object, name: str, registry: BreakerRegistry) -> Any:
    channel = grpc.intercept_channel(InProcessChannel(fake), CircuitBreakerInterceptor(registry, name))
    return stub_class(channel)


@pytest.fixture
def protected(sqlite_engine: Engine) -> Protected:
    clock = ManualClock(1000.0)
    downstream = Downstream.create()
    registry = BreakerRegistry(BREAKER_SETTINGS, clock=clock)
    deps = OrderDependencies(
        catalog=protected_stub(catalog_pb2_grpc.CatalogServiceStub, downstream.catalog, "catalog", registry),
        inventory=protected_stub(
            inventory_pb2_grpc.InventoryServiceStub, downstream.inventory, "inventory", registry
        ),
        payment=protected_stub(payment_pb2_grpc.PaymentServiceStub, downstream.payment, "payment", registry),
        deadline_s=DEADLINE_S,
        breakers=registry,
    )
    store = OrderStore(sqlite_engine)
    saga = OrderSaga(
        deps,
        store,
        SagaLog(sqlite_engine, owner="order-0"),
        deadline_s=SAGA_DEADLINE_S,
        clock=clock,
        sleep=FakeSleep(clock),
        backoff=NO_WAIT_BACKOFF,
    )
    return Protected(downstream, registry, deps, store, saga, clock)


# ----------------------------------------------------------------------------- an open circuit on Pay


def test_a_pay_refused_by_the_open_payment_circuit_is_not_refunded_only_the_stock_is_released(
    protected: Protected,
) -> None:
    protected.breakers.breaker("payment").force_open()

    with pytest.raises(DownstreamError) as raised:
        protected.place()

    # The Pay never left the process, so there is no charge to refund: only the stock goes back.
    assert protected.downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "ReleaseStock"]
    order = protected.only_order()
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("payment failed: circuit 'payment' is open; trial calls in")
    pay_failed = [
        event
        for event in protected.saga.saga_log.get(order.order_id).events
        if event.step == "pay" and event.kind is StepEventKind.FAILED
    ]
    assert [event.possibly_done for event in pay_failed] == [False]
    assert isinstance(raised.value.__cause__, CircuitOpenError)


def test_an_open_payment_circuit_is_unavailable_saying_so_and_when_to_retry(protected: Protected) -> None:
    protected.breakers.breaker("payment").force_open()
    protected.clock.advance(1.5)

    with pytest.raises(DownstreamError) as raised:
        protected.place()

    error = raised.value
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details().startswith("payment.Pay was not called: circuit 'payment' is open")
    assert error.details().endswith(f"order {error.order_id} was rejected")
    assert (error.circuit, error.retry_after_s) == ("payment", OPEN_TIMEOUT_S - 1.5)
    assert dict(error.trailing_metadata()) == {
        DEPENDENCY_METADATA_KEY: "payment.Pay",
        ORDER_ID_METADATA_KEY: error.order_id,
        CIRCUIT_METADATA_KEY: "payment",
        RETRY_AFTER_METADATA_KEY: "2.500",
    }


def test_create_order_passes_the_open_circuit_and_its_retry_after_on_as_trailing_metadata(
    protected: Protected,
) -> None:
    servicer = OrderServicer(SagaFlow(protected.deps, protected.store, protected.saga), protected.store)
    protected.breakers.breaker("payment").force_open()
    context = FakeContext()
    request = order_pb2.CreateOrderRequest(user_id=USER, items=[order_pb2.OrderItem(book_id=1, quantity=1)])

    with pytest.raises(AbortedCall) as aborted:
        servicer.CreateOrder(request, context)  # type: ignore[arg-type]

    assert aborted.value.code is grpc.StatusCode.UNAVAILABLE
    assert aborted.value.details.startswith(
        "downstream: payment.Pay was not called: circuit 'payment' is open"
    )
    metadata = dict(context.trailing_metadata)
    assert metadata.pop(ORDER_ID_METADATA_KEY) in aborted.value.details
    assert metadata == {
        DEPENDENCY_METADATA_KEY: "payment.Pay",
        CIRCUIT_METADATA_KEY: "payment",
        RETRY_AFTER_METADATA_KEY: "4.000",
    }


def test_a_plain_downstream_failure_is_passed_on_naming_the_dependency_and_the_order_but_no_circuit(
    protected: Protected,
) -> None:
    servicer = OrderServicer(SagaFlow(protected.deps, protected.store, protected.saga), protected.store)
    protected.downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "payment down")
    context = FakeContext()
    request = order_pb2.CreateOrderRequest(user_id=USER, items=[order_pb2.OrderItem(book_id=1, quantity=1)])

    with pytest.raises(AbortedCall) as aborted:
        servicer.CreateOrder(request, context)  # type: ignore[arg-type]

    assert aborted.value.code is grpc.StatusCode.UNAVAILABLE
    metadata = dict(context.trailing_metadata)
    assert metadata.keys() == {DEPENDENCY_METADATA_KEY, ORDER_ID_METADATA_KEY}
    assert metadata[DEPENDENCY_METADATA_KEY] == "payment.Pay"  # a caller's breaker must not count it
    assert metadata[ORDER_ID_METADATA_KEY] in aborted.value.details


def test_an_open_catalog_circuit_is_unavailable_and_writes_nothing(protected: Protected) -> None:
    protected.breakers.breaker("catalog").force_open()

    with pytest.raises(DownstreamError) as raised:
        protected.place()

    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert raised.value.circuit == "catalog"
    assert protected.downstream.journal.methods == []
    assert protected.store.list_for_user(USER, 0, 10) == ([], 0)


# ----------------------------------------------------------------------------- compensations and the breaker


def test_a_refund_refused_by_the_open_circuit_is_retried_until_a_trial_refund_gets_through(
    protected: Protected,
) -> None:
    protected.downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "payment down")

    # This Pay really failed, so it may have charged: it is refunded. But its failure opened
    # the breaker, which now refuses the Refund; the request gives up waiting, not the saga.
    with pytest.raises(DownstreamError) as raised:
        protected.place()

    assert raised.value.circuit == ""  # what failed was the Pay itself, not a refusal
    assert "stays PENDING" in raised.value.details()
    assert protected.downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay"]
    payment_breaker = protected.breakers.breaker("payment")
    assert payment_breaker.snapshot().totals.rejected == NO_WAIT_BACKOFF.max_attempts
    assert protected.only_order().status is OrderStatus.PENDING

    protected.saga.recover()  # still open: refused again, still pending
    assert protected.only_order().status is OrderStatus.PENDING
    assert "Refund" not in protected.downstream.journal.methods

    protected.clock.advance(OPEN_TIMEOUT_S)
    protected.saga.recover()  # half-open: the Refund is the trial call, and it succeeds

    assert protected.downstream.journal.methods[-2:] == ["Refund", "ReleaseStock"]
    order = protected.only_order()
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("payment failed: Pay returned UNAVAILABLE: payment down")
    assert payment_breaker.state is State.CLOSED


# ----------------------------------------------------------------------------- wiring


TARGETS = {"catalog": "127.0.0.1:1", "inventory": "127.0.0.1:2", "payment": "127.0.0.1:3"}


def test_the_service_puts_a_breaker_in_front_of_each_peer_configured_by_settings() -> None:
    # Opening a gRPC channel does not connect; no call is made here.
    deps = OrderDependencies.from_settings(
        Settings(targets=TARGETS, breaker_open_timeout_s=2.5, breaker_minimum_calls=5)
    )

    assert deps.breakers is not None
    assert [snapshot.name for snapshot in deps.breakers.snapshots()] == ["catalog", "inventory", "payment"]
    assert deps.breakers.settings.open_timeout_s == 2.5
    assert deps.breakers.settings.minimum_calls == 5


def test_without_breakers_the_service_calls_its_peers_on_plain_channels() -> None:
    deps = OrderDependencies.from_settings(Settings(targets=TARGETS, breaker_enabled=False))

    assert deps.breakers is None


def test_a_missing_peer_target_names_the_variable_to_set() -> None:
    with pytest.raises(RuntimeError, match="BOOKSTORE_PAYMENT_TARGET"):
        OrderDependencies.from_settings(
            Settings(targets={"catalog": "127.0.0.1:1", "inventory": "127.0.0.1:2"})
        )
