"""PaymentService: validate, call the store, translate to protobuf."""

from __future__ import annotations

import grpc

from bookstore.domain import validation as v
from bookstore.domain.models import Payment, PaymentStatus
from bookstore.platform.status import translate_errors
from bookstore.rpc.v1 import payment_pb2, payment_pb2_grpc
from bookstore.services.payment.store import PaymentStore

MAX_AMOUNT_CENTS = 100_000_000

_STATUS_TO_PB = {
    PaymentStatus.CHARGED: payment_pb2.PAYMENT_STATUS_CHARGED,
    PaymentStatus.DECLINED: payment_pb2.PAYMENT_STATUS_DECLINED,
    PaymentStatus.REFUNDED: payment_pb2.PAYMENT_STATUS_REFUNDED,
    PaymentStatus.VOIDED: payment_pb2.PAYMENT_STATUS_VOIDED,
}


def payment_to_pb(payment: Payment) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        payment_id=payment.payment_id,
        order_id=payment.order_id,
        user_id=payment.user_id,
        amount_cents=payment.amount_cents,
        status=_STATUS_TO_PB[payment.status],
        reason=payment.reason,
    )


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, store: PaymentStore) -> None:
        self._store = store

    @translate_errors
    def Pay(self, request: payment_pb2.PayRequest, context: grpc.ServicerContext) -> payment_pb2.PayResponse:
        order_id = v.require_uuid("order_id", request.order_id)
        user_id = v.require_uuid("user_id", request.user_id)
        amount = v.require_int_range("amount_cents", request.amount_cents, low=1, high=MAX_AMOUNT_CENTS)
        return payment_pb2.PayResponse(payment=payment_to_pb(self._store.pay(order_id, user_id, amount)))

    @translate_errors
    def Refund(
        self, request: payment_pb2.RefundRequest, context: grpc.ServicerContext
    ) -> payment_pb2.RefundResponse:
        order_id = v.require_uuid("order_id", request.order_id)
        payment, refunded_now = self._store.refund(order_id)
        return payment_pb2.RefundResponse(payment=payment_to_pb(payment), refunded_now=refunded_now)

    @translate_errors
    def GetPayment(
        self, request: payment_pb2.GetPaymentRequest, context: grpc.ServicerContext
    ) -> payment_pb2.GetPaymentResponse:
        order_id = v.require_uuid("order_id", request.order_id)
        return payment_pb2.GetPaymentResponse(payment=payment_to_pb(self._store.get(order_id)))
