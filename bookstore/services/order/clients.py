"""The services an order needs, as the order service sees them: three stubs and a deadline.

The protocols below are the exact slice of each generated stub the order service calls, so
unit tests can pass plain fakes and mypy still checks every call. Saga steps pass
``metadata``: the idempotency key of the step (``"<order id>:reserve"``) travels as gRPC
metadata next to the order id in the request, the same on every attempt of that step.

Each stub sits on a *protected* channel (week 8, ``bookstore.resilience.interceptor``): its
calls pass a circuit breaker for that peer, all three kept in one ``BreakerRegistry``. When
payment fails, its breaker opens and a Pay is refused in microseconds with
``CircuitOpenRpcError`` instead of waiting out its deadline; the saga knows such a Pay was
never sent (``bookstore.saga.definition.classify_failure``), so it owes no Refund.
Compensations go through the same breakers and are refused too while one is open; the saga
retries them until they succeed, the service's periodic recovery long after the breaker's
open timeout. ``BOOKSTORE_BREAKER_ENABLED=0`` builds plain channels instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from bookstore.platform import service_catalog
from bookstore.platform.channels import open_channel
from bookstore.platform.settings import Settings
from bookstore.resilience import BreakerRegistry, log_state_change, protected_channel
from bookstore.rpc.v1 import catalog_pb2, inventory_pb2, payment_pb2

Metadata = Sequence[tuple[str, str]]
# Whom the order service calls: its catalog entry says so, and names each peer's stub class.
PEERS = service_catalog.entry("order").peers


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
    budget, ``Settings.saga_deadline_s``. ``breakers`` are the circuit breakers guarding
    the stubs' channels (``None`` when there are none).
    """

    catalog: CatalogClient
    inventory: InventoryClient
    payment: PaymentClient
    deadline_s: float
    breakers: BreakerRegistry | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OrderDependencies:
        """Open one channel per peer; a channel is reused by every call, so open them once.

        Opening a channel does not connect, so this succeeds while a peer is still starting.
        A missing target raises ``RuntimeError`` naming the variable to set.
        """
        targets = {name: settings.target(name) for name in PEERS}  # all known before any channel opens
        breakers = (
            BreakerRegistry.from_settings(settings, listeners=[log_state_change])
            if settings.breaker_enabled
            else None
        )
        channels: dict[str, grpc.Channel] = {}
        for name, target in targets.items():
            if breakers is None:
                channels[name] = open_channel(target)
                continue
            # The deadline default only catches a call that forgot its own; every call here passes one.
            channels[name] = protected_channel(target, name, breakers, default_timeout_s=settings.deadline_s)
            if name not in breakers.per_method:
                breakers.breaker(name)  # made now, so GetStats lists it before the first order
        return cls(
            **service_catalog.stubs(channels),  # one field per peer, holding its generated stub
            deadline_s=settings.deadline_s,
            breakers=breakers,
        )
