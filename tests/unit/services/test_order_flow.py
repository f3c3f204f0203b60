"""place_order on the saga, with fake catalog, inventory and payment stubs and an SQLite store.

The week 6 promises (what is called, in which order, what is returned and what is raised)
hold unchanged; the saga adds deadlines per step and per saga, idempotency keys, retried
compensations and recovery after a crash, tested at the end.
"""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.errors import InvalidArgument, NotFound
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.resilience.timeline import ManualClock
from bookstore.services.order.flow import MAX_TOTAL_CENTS, DownstreamError, SagaFlow
from bookstore.services.order.saga import OrderSaga
from bookstore.services.order.store import OrderStore

from .order_fakes import (
    DEADLINE_S,
    SAGA_DEADLINE_S,
    Downstream,
    FakeRpcError,
    SimulatedCrash,
    WriteTransactions,
    order_saga,
)

USER = "7b0f6c2e-8a51-4d0b-9a52-3f1c2b6d9e10"


@pytest.fixture
def downstream() -> Downstream:
    return Downstream.create()


@pytest.fixture
def store(sqlite_engine: Engine) -> OrderStore:
    return OrderStore(sqlite_engine)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def saga(downstream: Downstream, store: OrderStore, sqlite_engine: Engine, clock: ManualClock) -> OrderSaga:
    return order_saga(downstream, store, sqlite_engine, clock)


def basket() -> list[OrderItem]:
    # The client's unit prices are nonsense on purpose: the catalog's prices must win.
    return [OrderItem(book_id=1, quantity=2, unit_price_cents=1), OrderItem(book_id=3, quantity=1)]


def only_order(store: OrderStore) -> Order:
    orders, total = store.list_for_user(USER, 0, 10)
    assert total == 1
    return orders[0]


# The happy path


def test_an_order_is_approved_and_priced_from_the_catalog(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    order = SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert order.status is OrderStatus.APPROVED
    assert order.items == (OrderItem(1, 2, 1250), OrderItem(3, 1, 4000))
    assert order.total_cents == 2 * 1250 + 4000
    assert store.get(order.order_id) == order
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay"]


def test_stock_is_reserved_and_the_total_charged_for_the_order(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    order = SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    _, reserve, pay = downstream.journal.calls
    assert reserve.request.order_id == order.order_id
    assert [(item.book_id, item.quantity) for item in reserve.request.items] == [(1, 2), (3, 1)]
    assert (pay.request.order_id, pay.request.user_id) == (order.order_id, USER)
    assert pay.request.amount_cents == order.total_cents


def test_every_downstream_call_carries_the_deadline(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")
    with pytest.raises(DownstreamError):
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert {"Refund", "ReleaseStock"} <= set(downstream.journal.methods)
    assert all(call.timeout == DEADLINE_S for call in downstream.journal.calls)


# Business refusals: returned, not raised


def test_short_stock_rejects_the_order_with_the_reason_and_charges_nothing(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.inventory.reserve_error = FakeRpcError(
        grpc.StatusCode.FAILED_PRECONDITION, "items[1]: only 0 of book 3 left"
    )
    order = SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "out of stock: items[1]: only 0 of book 3 left"
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock"]
    assert store.get(order.order_id) == order


def test_a_declined_payment_releases_the_stock_and_rejects_the_order(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "over the card limit")
    order = SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "payment declined: over the card limit"
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay", "ReleaseStock"]
    assert downstream.journal.calls[-1].request.order_id == order.order_id


# Infrastructure failures: compensated, stored REJECTED, raised with the downstream code


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_a_failed_payment_is_refunded_released_rejected_and_reraised(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, code: grpc.StatusCode
) -> None:
    downstream.payment.pay_error = FakeRpcError(code, "no answer")
    with pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is code
    assert raised.value.__cause__ is downstream.payment.pay_error
    assert "payment.Pay" in raised.value.details()
    # The charge may have happened before the answer got lost: undo money, then stock.
    assert downstream.journal.methods[-2:] == ["Refund", "ReleaseStock"]
    order = only_order(store)
    assert raised.value.order_id == order.order_id
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith(f"payment failed: Pay returned {code.name}")


def test_a_failed_reservation_is_released_rejected_and_reraised_without_paying(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.inventory.reserve_error = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "too slow")
    with pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "ReleaseStock"]
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("inventory failed: ReserveStock returned DEADLINE_EXCEEDED")


def test_a_failing_compensation_is_retried_logged_and_does_not_hide_the_original_error(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, caplog: pytest.LogCaptureFixture
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "payment down")
    downstream.inventory.release_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "inventory down too")
    downstream.inventory.release_failures = 2
    with caplog.at_level(logging.WARNING), pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert raised.value.service == "payment"
    assert "compensating reserve failed" in caplog.text and "inventory down too" in caplog.text
    # Week 6 gave up after one try and noted "needs repair"; the saga retries until it works.
    assert downstream.journal.methods.count("ReleaseStock") == 3
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("payment failed: Pay returned UNAVAILABLE: payment down")


def test_a_compensation_that_keeps_failing_leaves_the_order_pending_until_recovery_completes_it(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "payment down")
    downstream.inventory.release_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "inventory down too")
    with pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "stays PENDING" in raised.value.details()
    # The stock is still held, so the order is not settled: it says so.
    assert only_order(store).status is OrderStatus.PENDING
    assert [record.saga_id for record in saga.saga_log.in_flight()] == [only_order(store).order_id]

    downstream.inventory.release_error = None
    saga.recover()
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("payment failed: Pay returned UNAVAILABLE: payment down")
    assert saga.saga_log.in_flight() == []
    assert downstream.journal.methods[-1] == "ReleaseStock"


def test_an_unavailable_catalog_passes_its_code_on_and_writes_nothing(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.catalog.error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "catalog down")
    with pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert store.list_for_user(USER, 0, 10) == ([], 0)
    assert downstream.journal.methods == ["BatchGetBooks"]


# Unknown books


@pytest.mark.parametrize(
    ("code", "details"),
    [
        (grpc.StatusCode.NOT_FOUND, "book_ids[1]: no book with id 99"),
        (grpc.StatusCode.NOT_FOUND, "book_ids: no book with id 99"),
        (grpc.StatusCode.INVALID_ARGUMENT, "unknown book 99"),
    ],
)
def test_an_unknown_book_is_not_found_naming_its_item_and_nothing_is_written(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, code: grpc.StatusCode, details: str
) -> None:
    downstream.catalog.error = FakeRpcError(code, details)
    items = [OrderItem(book_id=1, quantity=1), OrderItem(book_id=99, quantity=1)]
    with pytest.raises(NotFound) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, items))
    assert raised.value.field == "items[1].book_id"
    assert "99" in raised.value.message
    assert store.list_for_user(USER, 0, 10) == ([], 0)
    assert downstream.journal.methods == ["BatchGetBooks"]


def test_a_book_the_catalog_leaves_out_of_its_answer_is_not_found_naming_its_item(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.catalog.drop_unknown = True
    items = [OrderItem(book_id=42, quantity=1), OrderItem(book_id=1, quantity=1)]
    with pytest.raises(NotFound) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, items))
    assert raised.value.field == "items[0].book_id"
    assert store.list_for_user(USER, 0, 10) == ([], 0)


# Idempotency


def test_replaying_a_request_id_returns_the_same_order_and_calls_nothing_downstream(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    first = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-7")
    )
    calls_before = len(downstream.journal.calls)
    again = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-7")
    )
    assert again == first
    assert len(downstream.journal.calls) == calls_before


def test_replaying_a_rejected_request_returns_the_rejection_unchanged(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "declined")
    first = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-7")
    )
    downstream.payment.pay_error = None
    again = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-7")
    )
    assert again == first
    assert again.status is OrderStatus.REJECTED


def test_the_same_request_id_from_another_user_places_a_new_order(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    mine = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-7")
    )
    theirs = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(str(uuid.uuid4()), basket(), request_id="checkout-7")
    )
    assert theirs.order_id != mine.order_id
    assert theirs.status is OrderStatus.APPROVED


def test_a_request_that_loses_the_idempotency_race_returns_the_winner_and_reserves_nothing(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-7")
    )
    downstream.journal.calls.clear()
    # The loser checked for the key before the winner wrote it.
    monkeypatch.setattr(store, "find_by_request", lambda user_id, request_id: None)
    loser = SagaFlow(downstream.deps, store, saga).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-7")
    )
    assert loser == winner
    assert downstream.journal.methods == ["BatchGetBooks"]


# Validation: every error names its field, and nothing is called or written


@pytest.mark.parametrize(
    ("user_id", "items", "request_id", "field"),
    [
        ("", [OrderItem(1, 1)], "", "user_id"),
        ("not-a-uuid", [OrderItem(1, 1)], "", "user_id"),
        (USER, [], "", "items"),
        (USER, [OrderItem(book_id, 1) for book_id in range(1, 52)], "", "items"),
        (USER, [OrderItem(0, 1)], "", "items[0].book_id"),
        (USER, [OrderItem(1, 1), OrderItem(2, 0)], "", "items[1].quantity"),
        (USER, [OrderItem(1, 1001)], "", "items[0].quantity"),
        (USER, [OrderItem(1, 1), OrderItem(2, 1), OrderItem(1, 3)], "", "items[2].book_id"),
        (USER, [OrderItem(1, 1)], "r" * 101, "request_id"),
    ],
)
def test_an_invalid_request_is_refused_naming_the_field(
    downstream: Downstream,
    store: OrderStore,
    saga: OrderSaga,
    user_id: str,
    items: list[OrderItem],
    request_id: str,
    field: str,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(user_id, items, request_id))
    assert raised.value.field == field
    assert downstream.journal.calls == []
    assert store.list_for_user(USER, 0, 10) == ([], 0)


def test_an_order_too_expensive_for_one_payment_is_refused_before_anything_is_written(
    store: OrderStore, sqlite_engine: Engine, clock: ManualClock
) -> None:
    downstream = Downstream.create(prices={1: MAX_TOTAL_CENTS})
    saga = order_saga(downstream, store, sqlite_engine, clock)
    with pytest.raises(InvalidArgument) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, [OrderItem(1, 2)]))
    assert raised.value.field == "items"
    assert downstream.journal.methods == ["BatchGetBooks"]
    assert store.list_for_user(USER, 0, 10) == ([], 0)


def test_a_free_order_is_approved_without_a_charge(
    store: OrderStore, sqlite_engine: Engine, clock: ManualClock
) -> None:
    downstream = Downstream.create(prices={1: 0})
    saga = order_saga(downstream, store, sqlite_engine, clock)
    order = SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, [OrderItem(1, 3)]))
    assert order.status is OrderStatus.APPROVED
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock"]


# The saga's own guarantees: idempotency keys, deadlines, recovery after a crash


def test_every_step_call_and_its_compensation_carry_the_same_idempotency_key(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "lost answer")
    with pytest.raises(DownstreamError):
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    order_id = only_order(store).order_id
    keys = {call.method: call.idempotency_key for call in downstream.journal.calls}
    assert keys == {
        "BatchGetBooks": None,  # a read: nothing to deduplicate
        "ReserveStock": f"{order_id}:reserve",
        "ReleaseStock": f"{order_id}:reserve",
        "Pay": f"{order_id}:pay",
        "Refund": f"{order_id}:pay",
    }
    assert all(call.request.order_id == order_id for call in downstream.journal.calls[1:])


def test_a_payment_answering_after_its_deadline_is_refunded_and_the_order_rejected(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, clock: ManualClock
) -> None:
    # The Pay "succeeds", but only after the step's deadline: it counts as possibly done.
    downstream.journal.on_call = lambda method: clock.advance(DEADLINE_S + 0.5) if method == "Pay" else None
    with pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert downstream.journal.methods[-2:] == ["Refund", "ReleaseStock"]
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason.startswith("payment failed: step pay took longer than its timeout")


def test_a_saga_whose_deadline_passed_does_not_start_the_payment_and_releases_the_stock(
    downstream: Downstream, store: OrderStore, sqlite_engine: Engine, clock: ManualClock
) -> None:
    saga = order_saga(downstream, store, sqlite_engine, clock, deadline_s=DEADLINE_S)
    # The reservation answers just in time, using up the whole saga's budget.
    downstream.journal.on_call = lambda method: (
        clock.advance(DEADLINE_S) if method == "ReserveStock" else None
    )
    with pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "ReleaseStock"]
    assert only_order(store).reason == ("payment failed: the saga's deadline passed before step pay started")


def test_a_database_too_slow_to_store_the_order_is_deadline_exceeded_and_calls_nobody(
    downstream: Downstream,
    store: OrderStore,
    saga: OrderSaga,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_pending_in = store.create_pending_in

    def slow_create_pending_in(session: Session, order: Order) -> Order:
        clock.advance(SAGA_DEADLINE_S + 1)
        return create_pending_in(session, order)

    monkeypatch.setattr(store, "create_pending_in", slow_create_pending_in)
    with pytest.raises(DownstreamError) as raised:
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert downstream.journal.methods == ["BatchGetBooks"]
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    assert order.reason == "inventory failed: the saga's deadline passed before step reserve started"


def test_a_broken_database_is_raised_as_is_and_calls_nobody(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: Session, order: Order) -> Order:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "create_pending_in", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert downstream.journal.methods == ["BatchGetBooks"]
    assert saga.saga_log.in_flight() == []


def test_an_order_stays_pending_while_its_saga_runs(
    downstream: Downstream, store: OrderStore, saga: OrderSaga
) -> None:
    seen: list[OrderStatus] = []

    def look(method: str) -> None:
        if method != "BatchGetBooks":  # before the saga, there is no order yet
            seen.append(only_order(store).status)

    downstream.journal.on_call = look
    order = SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert seen == [OrderStatus.PENDING, OrderStatus.PENDING]  # during ReserveStock and Pay
    assert order.status is OrderStatus.APPROVED


# "after:reserve" is gone: a step's SUCCEEDED is committed together with the next step's
# STARTED, so it is the same instant as "before:pay". "before:reserve" is the saga's first
# commit, which also wrote the order; "after:pay" its last, which also approved it.
FORWARD_CRASHES = [
    "before:reserve",
    "returned:reserve",
    "before:pay",
    "returned:pay",
    "after:pay",
]


@pytest.mark.parametrize("crash_at", FORWARD_CRASHES)
def test_an_order_interrupted_by_a_crash_is_approved_by_the_restarted_service(
    downstream: Downstream, store: OrderStore, sqlite_engine: Engine, clock: ManualClock, crash_at: str
) -> None:
    doomed = order_saga(downstream, store, sqlite_engine, clock, crash_at=crash_at)
    with pytest.raises(SimulatedCrash):
        SagaFlow(downstream.deps, store, doomed).place(PlaceOrder.of(USER, basket()))

    restarted = order_saga(downstream, store, sqlite_engine, clock)
    restarted.recover()
    order = only_order(store)
    assert order.status is OrderStatus.APPROVED
    assert restarted.saga_log.in_flight() == []
    # A step interrupted after its call ran is called again, with the same key, never a new one.
    keys = [
        call.idempotency_key for call in downstream.journal.calls if call.method in ("ReserveStock", "Pay")
    ]
    assert set(keys) == {f"{order.order_id}:reserve", f"{order.order_id}:pay"}
    assert "ReleaseStock" not in downstream.journal.methods and "Refund" not in downstream.journal.methods


@pytest.mark.parametrize(
    "crash_at",
    ["failed:pay", "compensating:pay", "compensated:pay", "compensating:reserve", "compensated:reserve"],
)
def test_a_crash_during_compensation_is_compensated_to_the_end_with_the_original_reason(
    downstream: Downstream, store: OrderStore, sqlite_engine: Engine, clock: ManualClock, crash_at: str
) -> None:
    downstream.payment.pay_error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "payment down")
    doomed = order_saga(downstream, store, sqlite_engine, clock, crash_at=crash_at)
    with pytest.raises(SimulatedCrash):
        SagaFlow(downstream.deps, store, doomed).place(PlaceOrder.of(USER, basket()))
    assert only_order(store).status is OrderStatus.PENDING

    restarted = order_saga(downstream, store, sqlite_engine, clock)
    restarted.recover()
    order = only_order(store)
    assert order.status is OrderStatus.REJECTED
    # The restarted process never saw the error; the log kept it.
    assert order.reason.startswith("payment failed: Pay returned UNAVAILABLE: payment down")
    assert {"Refund", "ReleaseStock"} <= set(downstream.journal.methods)
    assert downstream.journal.methods.count("Pay") == 1  # a failed saga never goes forward again
    assert restarted.saga_log.in_flight() == []


def test_replaying_a_request_whose_saga_was_interrupted_finishes_it_without_reserving_again(
    downstream: Downstream, store: OrderStore, sqlite_engine: Engine, clock: ManualClock
) -> None:
    doomed = order_saga(downstream, store, sqlite_engine, clock, crash_at="before:pay")
    with pytest.raises(SimulatedCrash):
        SagaFlow(downstream.deps, store, doomed).place(PlaceOrder.of(USER, basket(), request_id="checkout-9"))

    restarted = order_saga(downstream, store, sqlite_engine, clock)
    order = SagaFlow(downstream.deps, store, restarted).place(
        PlaceOrder.of(USER, basket(), request_id="checkout-9")
    )
    assert order.status is OrderStatus.APPROVED
    assert downstream.journal.methods == ["BatchGetBooks", "ReserveStock", "Pay"]


def test_a_saga_order_takes_three_write_transactions_from_creation_to_approval(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, sqlite_engine: Engine
) -> None:
    writes = WriteTransactions(sqlite_engine)
    order = SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert order.status is OrderStatus.APPROVED
    # Created with the order and reserve STARTED; reserve SUCCEEDED with pay STARTED; pay
    # SUCCEEDED with the saga's end and the approval.
    assert writes.count == 3


def test_a_crash_before_the_first_commit_leaves_neither_an_order_nor_a_saga(
    downstream: Downstream, store: OrderStore, saga: OrderSaga, monkeypatch: pytest.MonkeyPatch
) -> None:
    class PowerCut(BaseException):
        pass

    def cut(session: Session, order: Order) -> Order:
        raise PowerCut

    monkeypatch.setattr(store, "create_pending_in", cut)
    with pytest.raises(PowerCut):
        SagaFlow(downstream.deps, store, saga).place(PlaceOrder.of(USER, basket()))
    assert store.list_for_user(USER, 0, 10) == ([], 0)
    assert saga.saga_log.in_flight() == []
