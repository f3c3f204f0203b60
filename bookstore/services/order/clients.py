"""The services an order needs, as the order service sees them: three stubs and a deadline.

The protocols below are the exact slice of each generated stub the order service calls, so
unit tests can pass plain fakes and mypy still checks every call. Saga steps pass
``metadata``: the idempotency key of the step (``"<order id>:reserve"``) travels as gRPC
metadata next to the order id in the request, the same on every attempt of that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bookstore.platform.channels import open_channel
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    payment_pb2,
    payment_pb2_grpc,
)

Metadata = Sequence[tuple[str, str]]


class CatalogClient(Protocol):
    def BatchGetBooks(
        self, request: catalog_pb2.BatchGetBooksRequest, timeout: float | None = None
    ) -> catalog_pb2.BatchGetBooksResponse: ...


class InventoryClient(Protocol):
    def ReserveStock(
        self,
        request: inventory_pb2.ReserveStockRequest,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> inventory_pb2.ReserveStockResponse: ...

    def ReleaseStock(
        self,
        request: inventory_pb2.ReleaseStockRequest,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> inventory_pb2.ReleaseStockResponse: ...


class PaymentClient(Protocol):
    def Pay(
        self, request: payment_pb2.PayRequest, timeout: float | None = None, metadata: Metadata | None = None
    ) -> payment_pb2.PayResponse: ...

    def Refund(
        self,
        request: payment_pb2.RefundRequest,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> payment_pb2.RefundResponse: ...


@dataclass(frozen=True)
class OrderDependencies:
    """The services an order needs, and how long to wait for each answer.

    The generated gRPC stubs satisfy the client protocols; unit tests pass plain fakes.
    ``deadline_s`` bounds each call (and each saga step); the saga as a whole has its own
    budget, ``Settings.saga_deadline_s``.
    """

    catalog: CatalogClient
    inventory: InventoryClient
    payment: PaymentClient
    deadline_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderDependencies:
        """Open one channel per peer; a channel is reused by every call, so open them once."""
        return cls(
            catalog=catalog_pb2_grpc.CatalogServiceStub(open_channel(settings.target("catalog"))),
            inventory=inventory_pb2_grpc.InventoryServiceStub(open_channel(settings.target("inventory"))),
            payment=payment_pb2_grpc.PaymentServiceStub(open_channel(settings.target("payment"))),
            deadline_s=settings.deadline_s,
        )
