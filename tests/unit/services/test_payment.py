import uuid

import grpc
import pytest
from sqlalchemy import Engine

from bookstore.domain.errors import FailedPrecondition, NotFound
from bookstore.domain.models import PaymentStatus
from bookstore.rpc.v1 import payment_pb2
from bookstore.services.payment.provider import SimulatedProvider
from bookstore.services.payment.servicer import PaymentServicer
from bookstore.services.payment.store import PaymentStore

from .conftest import AbortedCall


@pytest.fixture
def store(sqlite_engine: Engine) -> PaymentStore:
    return PaymentStore(sqlite_engine, SimulatedProvider(limit_cents=10_000))


def new_id() -> str:
    return str(uuid.uuid4())


def test_a_payment_is_charged_once_and_a_repeat_returns_the_first_result(store: PaymentStore) -> None:
    order, user = new_id(), new_id()
    first = store.pay(order, user, 1500)
    again = store.pay(order, user, 1500)
    assert first.status is PaymentStatus.CHARGED
    assert again == first


def test_a_repeat_with_another_amount_is_refused_naming_the_amount(store: PaymentStore) -> None:
    order, user = new_id(), new_id()
    store.pay(order, user, 1500)
    with pytest.raises(FailedPrecondition) as error:
        store.pay(order, user, 1600)
    assert error.value.field == "amount_cents"


def test_an_amount_over_the_card_limit_is_declined_and_stays_declined(store: PaymentStore) -> None:
    order, user = new_id(), new_id()
    for _ in range(2):
        with pytest.raises(FailedPrecondition, match="declined"):
            store.pay(order, user, 20_000)
    assert store.get(order).status is PaymentStatus.DECLINED


def test_a_refund_moves_money_back_once(store: PaymentStore) -> None:
    order, user = new_id(), new_id()
    store.pay(order, user, 500)
    payment, now = store.refund(order)
    assert (payment.status, now) == (PaymentStatus.REFUNDED, True)
    payment, now = store.refund(order)
    assert (payment.status, now) == (PaymentStatus.REFUNDED, False)


def test_a_refund_before_any_charge_voids_the_order_and_bars_a_late_pay(store: PaymentStore) -> None:
    order, user = new_id(), new_id()
    payment, now = store.refund(order)
    assert (payment.status, now) == (PaymentStatus.VOIDED, False)
    with pytest.raises(FailedPrecondition, match="refunded before it was charged"):
        store.pay(order, user, 500)


def test_an_unknown_payment_is_not_found(store: PaymentStore) -> None:
    with pytest.raises(NotFound):
        store.get(new_id())


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"order_id": "nope", "amount_cents": 100}, "order_id"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": -5}, "amount_cents"),
        ({"user_id": "", "amount_cents": 100}, "user_id"),
    ],
)
def test_the_servicer_rejects_bad_requests_naming_the_field(
    store: PaymentStore, context: object, request_fields: dict, field: str
) -> None:
    fields = {"order_id": new_id(), "user_id": new_id(), **request_fields}
    with pytest.raises(AbortedCall) as aborted:
        PaymentServicer(store).Pay(payment_pb2.PayRequest(**fields), context)  # type: ignore[arg-type]
    assert aborted.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert aborted.value.details.startswith(field)


def test_the_servicer_reports_a_decline_as_failed_precondition(store: PaymentStore, context: object) -> None:
    request = payment_pb2.PayRequest(order_id=new_id(), user_id=new_id(), amount_cents=99_999)
    with pytest.raises(AbortedCall) as aborted:
        PaymentServicer(store).Pay(request, context)  # type: ignore[arg-type]
    assert aborted.value.code is grpc.StatusCode.FAILED_PRECONDITION
