"""``python -m bookstore.services.payment``: serve the payment service."""

from __future__ import annotations

import grpc

from bookstore.observability.runtime import run_service
from bookstore.platform.database import service_engine
from bookstore.platform.server import ServiceDefinition
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import payment_pb2, payment_pb2_grpc
from bookstore.services.payment.servicer import PaymentServicer
from bookstore.services.payment.store import PaymentStore


def register(server: grpc.Server, settings: Settings) -> None:
    store = PaymentStore(service_engine(settings))
    payment_pb2_grpc.add_PaymentServiceServicer_to_server(PaymentServicer(store), server)


DEFINITION = ServiceDefinition(
    name="payment",
    grpc_service_names=[payment_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name],
    register=register,
)

if __name__ == "__main__":
    run_service(DEFINITION)
