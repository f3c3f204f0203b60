"""Fake catalog, inventory and payment stubs for the order service's unit tests.

They answer with the real protobuf messages, or raise a ``grpc.RpcError`` with a code and
details as a real failed call does, and they write every call into one shared journal so a
test can check what was called, in which order, and with which deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc

from bookstore.rpc.v1 import catalog_pb2, inventory_pb2, payment_pb2
from bookstore.services.order.flow import OrderDependencies

DEADLINE_S = 1.5
PRICES = {1: 1250, 2: 899, 3: 4000}


class FakeRpcError(grpc.RpcError):
    """What a stub raises when a call fails: an RpcError that knows its code and details."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@dataclass
class Call:
    method: str
    request: Any  # the protobuf request message the fake received
    timeout: float | None


@dataclass
class Journal:
    calls: list[Call] = field(default_factory=list)

    def record(self, method: str, request: Any, timeout: float | None) -> None:
        self.calls.append(Call(method, request, timeout))

    @property
    def methods(self) -> list[str]:
        return [call.method for call in self.calls]


class FakeCatalog:
    def __init__(self, journal: Journal, prices: dict[int, int]) -> None:
        self.journal = journal
        self.prices = prices
        self.error: FakeRpcError | None = None
        self.drop_unknown = False  # answer without the unknown books instead of NOT_FOUND

    def BatchGetBooks(
        self, request: catalog_pb2.BatchGetBooksRequest, timeout: float | None = None
    ) -> catalog_pb2.BatchGetBooksResponse:
        self.journal.record("BatchGetBooks", request, timeout)
        if self.error is not None:
            raise self.error
        for index, book_id in enumerate(request.book_ids):
            if book_id not in self.prices and not self.drop_unknown:
                raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"book_ids[{index}]: no book with id {book_id}")
        return catalog_pb2.BatchGetBooksResponse(
            books=[
                catalog_pb2.Book(book_id=book_id, title=f"Book {book_id}", price_cents=self.prices[book_id])
                for book_id in request.book_ids
                if book_id in self.prices
            ]
        )


class FakeInventory:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.reserve_error: FakeRpcError | None = None
        self.release_error: FakeRpcError | None = None

    def ReserveStock(
        self, request: inventory_pb2.ReserveStockRequest, timeout: float | None = None
    ) -> inventory_pb2.ReserveStockResponse:
        self.journal.record("ReserveStock", request, timeout)
        if self.reserve_error is not None:
            raise self.reserve_error
        return inventory_pb2.ReserveStockResponse(
            order_id=request.order_id, items=request.items, status=inventory_pb2.RESERVATION_STATUS_RESERVED
        )

    def ReleaseStock(
        self, request: inventory_pb2.ReleaseStockRequest, timeout: float | None = None
    ) -> inventory_pb2.ReleaseStockResponse:
        self.journal.record("ReleaseStock", request, timeout)
        if self.release_error is not None:
            raise self.release_error
        return inventory_pb2.ReleaseStockResponse(
            order_id=request.order_id, status=inventory_pb2.RESERVATION_STATUS_RELEASED, released_now=True
        )


class FakePayment:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.pay_error: FakeRpcError | None = None
        self.refund_error: FakeRpcError | None = None

    def Pay(self, request: payment_pb2.PayRequest, timeout: float | None = None) -> payment_pb2.PayResponse:
        self.journal.record("Pay", request, timeout)
        if self.pay_error is not None:
            raise self.pay_error
        return payment_pb2.PayResponse(
            payment=payment_pb2.Payment(
                payment_id="p-1",
                order_id=request.order_id,
                user_id=request.user_id,
                amount_cents=request.amount_cents,
                status=payment_pb2.PAYMENT_STATUS_CHARGED,
            )
        )

    def Refund(
        self, request: payment_pb2.RefundRequest, timeout: float | None = None
    ) -> payment_pb2.RefundResponse:
        self.journal.record("Refund", request, timeout)
        if self.refund_error is not None:
            raise self.refund_error
        return payment_pb2.RefundResponse(
            payment=payment_pb2.Payment(
                order_id=request.order_id, status=payment_pb2.PAYMENT_STATUS_REFUNDED
            ),
            refunded_now=True,
        )


@dataclass
class Downstream:
    """The three fakes, their shared journal, and the OrderDependencies built from them."""

    journal: Journal
    catalog: FakeCatalog
    inventory: FakeInventory
    payment: FakePayment

    @classmethod
    def create(cls, prices: dict[int, int] | None = None) -> Downstream:
        journal = Journal()
        return cls(
            journal,
            FakeCatalog(journal, dict(PRICES if prices is None else prices)),
            FakeInventory(journal),
            FakePayment(journal),
        )

    @property
    def deps(self) -> OrderDependencies:
        return OrderDependencies(
            catalog=self.catalog, inventory=self.inventory, payment=self.payment, deadline_s=DEADLINE_S
        )
