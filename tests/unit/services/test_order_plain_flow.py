"""Week 6's plain flow, kept as the saga's benchmark baseline, with the order service's fakes.

The same promises as the saga's flow (what is called, in which order, what is returned and
what is raised), made without a saga log: compensations run inline, once.
"""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import Engine, inspect

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.platform.settings import Settings
from bookstore.resilience import CircuitOpenError
from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import order_pb2
from bookstore.saga import Step
from bookstore.services.order import plain_flow, saga
from bookstore.services.order.clients import OrderDependencies
from bookstore.services.order.flow import DownstreamError
from bookstore.services.order.servicer import OrderServicer
from bookstore.services.order.store import OrderStore

from .order_fakes import DEADLINE_S, Downstream, FakeRpcError

USER = "7b0f6c2e-8a51-4d0b-9a52-3f1c2b6d9e10"


@pytest.fixture
def downstream() -> Downstream:
    return Downstream.create()


@pytest.fixture
def store(sqlite_engine: Engine) -> OrderStore:
    return OrderStore(sqlite_engine)


def basket() -> list[OrderItem]:
    # The client's unit prices are nonsense on purpose: the catalog's prices must win.
    return [OrderItem(book_id=1, quantity=2, unit_price_cents=1), OrderItem(book_id=3, quantity=1)]


def place(downstream: Downstream, store: OrderStore, request_id: str = "") -> Order:
    flow = plain_flow.PlainFlow(downstream.deps, store, clock=ManualClock())
    return flow.place(PlaceOrder.of(USER, basket(), request_id))


def only_order(store: OrderStore) -> Order:
    orders, total = store.list_for_user(USER, 0, 10)
    assert total == 1
    return orders[0]


# The happy path


def test_a_plain_order_is_priced_reserved_charged_and_approved(
    downstream: Downstream, store: OrderStore
) -> None:
    order = place(downstream, store)
    assert order.status is OrderStatus.APPROVED
    assert order.items == (OrderItem(1, 2, 1250), OrderItem(3, 1, 4000))
    assert order.total_cents == 2 * 1250 + 4000
    assert store.get(order.order_id) == order
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay"]
    _, reserve, pay = downstream.journal.calls
    assert reserve.request.order_id == pay.request.order_id == order.order_id
    assert pay.request.amount_cents == order.total_cents
    assert all(call.timeout == DEADLINE_S for call in downstream.journal.calls)


def test_a_step_added_to_the_saga_runs_in_the_plain_flow_too(
    downstream: Downstream, store: OrderStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    saga_steps = saga.order_steps

    def with_audit(deps: OrderDependencies) -> tuple[Step, ...]:
        audit = Step("audit", lambda ctx: seen.append(ctx.idempotency_key), timeout_s=1.0)
        return (*saga_steps(deps), audit)

    monkeypatch.setattr(saga, "order_steps", with_audit)
    order = place(downstream, store)
    assert order.status is OrderStatus.APPROVED
    assert seen == [f"{order.order_id}:audit"]


def test_the_plain_flow_sends_the_idempotency_keys_the_saga_would(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")
    with pytest.raises(DownstreamError):
        place(downstream, store)
    order_id = only_order(store).order_id
    keys = {call.method: call.idempotency_key for call in downstream.journal.calls}
    assert keys == {
        "BatchGetBooks": None,
        "ReserveStock": f"{order_id}:reserve",
        "ReleaseStock": f"{order_id}:reserve",
        "Pay": f"{order_id}:pay",
        "Refund": f"{order_id}:pay",
    }


def test_the_plain_flow_keeps_no_saga_log(
    downstream: Downstream, store: OrderStore, sqlite_engine: Engine
) -> None:
    place(downstream, store)
    assert "saga_instances" not in inspect(sqlite_engine).get_table_names()


def test_a_replayed_request_gets_the_first_order_and_calls_nobody(
    downstream: Downstream, store: OrderStore
) -> None:
    first = place(downstream, store, request_id="checkout-1")
    calls = len(downstream.journal.calls)
    assert place(downstream, store, request_id="checkout-1") == first
    assert len(downstream.journal.calls) == calls


# Business refusals: returned, not raised


def test_short_stock_rejects_the_plain_order_with_the_reason_and_charges_nothing(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.inventory.reserve_error = FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, "items[1]: only 0 of book 3 left"
    )
    order = place(downstream, store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "out of stock: items[1]: only 0 of book 3 left"
    # A refused reservation holds nothing: no release, no payment.
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock"]
    assert store.get(order.order_id) == order


def test_a_declined_payment_releases_the_stock_and_rejects_the_plain_order(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "over the card limit")
    order = place(downstream, store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "payment declined: over the card limit"
    # A declined card was never charged: the stock goes back, nothing is refunded.
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay", "ReleaseStock"]
    assert store.get(order.order_id) == order


# Infrastructure failures: undone inline, then raised


def test_a_failing_payment_is_refunded_then_released_and_raised_with_its_code(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow")
    with pytest.raises(DownstreamError) as raised:
        place(downstream, store)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert downstream.journal.methods[-2:] == ["Refund", "ReleaseStock"]
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "payment failed: Pay returned DEADLINE_EXCEEDED: slow"
    assert raised.value.order_id == order.order_id


def test_a_compensation_that_fails_is_tried_once_and_noted_in_the_reason(
    downstream: Downstream, store: OrderStore
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")
    downstream.inventory.release_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "inventory down too")
    with pytest.raises(DownstreamError) as raised:
        place(downstream, store)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE  # the original failure, not the undo's
    assert downstream.journal.methods.count("ReleaseStock") == 1
    assert only_order(store).reason == (
        "payment failed: Pay returned UNAVAILABLE: down; ReleaseStock failed too (UNAVAILABLE), needs repair"
    )


def test_a_pay_refused_by_an_open_circuit_is_not_refunded_and_says_when_to_retry(
    downstream: Downstream, store: OrderStore
) -> None:
    def refuse_pay(method: str) -> None:
        if method == "Pay":
            raise CircuitOpenError("payment", retry_after_s=2.5)

    downstream.journal.on_call = refuse_pay
    with pytest.raises(DownstreamError) as raised:
        place(downstream, store)
    assert (raised.value.code(), raised.value.circuit, raised.value.retry_after_s) == (
        grpc.StatusCode.UNAVAILABLE,
        "payment",
        2.5,
    )
    assert "Refund" not in downstream.journal.methods
    assert downstream.journal.methods[-1] == "ReleaseStock"
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("payment failed: circuit 'payment' is open")


# Wiring: the setting and the servicer


def test_the_order_flow_setting_defaults_to_the_saga_and_names_itself_when_wrong() -> None:
    assert Settings.from_env({}).order_flow == "saga"
    assert Settings.from_env({"BOOKSTORE_ORDER_FLOW": ""}).order_flow == "saga"
    assert Settings.from_env({"BOOKSTORE_ORDER_FLOW": " Plain "}).order_flow == "plain"
    with pytest.raises(ValueError, match="BOOKSTORE_ORDER_FLOW must be one of saga, plain"):
        Settings.from_env({"BOOKSTORE_ORDER_FLOW": "sequential"})


def test_a_servicer_wired_with_the_plain_flow_places_orders_without_a_saga_log(
    downstream: Downstream, store: OrderStore, sqlite_engine: Engine, context: grpc.ServicerContext
) -> None:
    servicer = OrderServicer(plain_flow.PlainFlow(downstream.deps, store), store)
    request = order_pb2.CreateOrderRequest(user_id=USER, items=[order_pb2.OrderItem(book_id=1, quantity=2)])
    order = servicer.CreateOrder(request, context).order
    assert order.status == order_pb2.ORDER_STATUS_APPROVED
    assert order.total_cents == 2500
    assert "saga_instances" not in inspect(sqlite_engine).get_table_names()
