"""Fake catalog, inventory and payment stubs for the order service's unit tests.

They answer with the real protobuf messages, or raise a ``grpc.RpcError`` with a code and
details as a real failed call does, and they write every call into one shared journal so a
test can check what was called, in which order, with which deadline and metadata. A test
can also make a call take time (``on_call``: advance a fake clock) or a release fail a few times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy import Connection, Engine, event

from bookstore.platform.database import READ_ONLY_OPTION
from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import catalog_pb2, inventory_pb2, payment_pb2
from bookstore.saga import Backoff, SagaLog
from bookstore.services.order.clients import Metadata, OrderDependencies
from bookstore.services.order.crash import CrashPoint
from bookstore.services.order.saga import OrderSaga
from bookstore.services.order.store import OrderStore

from ...fakes import FakeRpcError
from ..saga.fakes import FakeSleep

DEADLINE_S = 1.5
PRICES = {1: 1250, 2: 899, 3: 4000}


@dataclass
class Call:
    method: str
    request: Any  # the protobuf request message the fake received
    timeout: float | None
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def idempotency_key(self) -> str | None:
        return dict(self.metadata).get("idempotency-key")


@dataclass
class Journal:
    calls: list[Call] = field(default_factory=list)
    # Called with the method name on every call, before it answers: a test advances its
    # fake clock here to make a call slow.
    on_call: Callable[[str], None] | None = None

    def record(
        self, method: str, request: Any, timeout: float | None, metadata: Metadata | None = None
    ) -> None:
        self.calls.append(Call(method, request, timeout, tuple(metadata or ())))
        if self.on_call is not None:
            self.on_call(method)

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
        self.release_failures: int | None = None  # how many releases fail; None: all of them

    def ReserveStock(
        self,
        request: inventory_pb2.ReserveStockRequest,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> inventory_pb2.ReserveStockResponse:
        self.journal.record("ReserveStock", request, timeout, metadata)
        if self.reserve_error is not None:
            raise self.reserve_error
        return inventory_pb2.ReserveStockResponse(
            order_id=request.order_id, items=request.items, status=inventory_pb2.RESERVATION_STATUS_RESERVED
        )

    def ReleaseStock(
        self,
        request: inventory_pb2.ReleaseStockRequest,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> inventory_pb2.ReleaseStockResponse:
        self.journal.record("ReleaseStock", request, timeout, metadata)
        if self.release_error is not None and (self.release_failures is None or self.release_failures > 0):
            if self.release_failures is not None:
                self.release_failures -= 1
            raise self.release_error
        return inventory_pb2.ReleaseStockResponse(
            order_id=request.order_id, status=inventory_pb2.RESERVATION_STATUS_RELEASED, released_now=True
        )


class FakePayment:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.pay_error: FakeRpcError | None = None
        self.refund_error: FakeRpcError | None = None

    def Pay(
        self, request: payment_pb2.PayRequest, timeout: float | None = None, metadata: Metadata | None = None
    ) -> payment_pb2.PayResponse:
        self.journal.record("Pay", request, timeout, metadata)
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
        self,
        request: payment_pb2.RefundRequest,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> payment_pb2.RefundResponse:
        self.journal.record("Refund", request, timeout, metadata)
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


SAGA_DEADLINE_S = 4.0
NO_WAIT_BACKOFF = Backoff(initial_s=0.0, max_s=0.0, jitter=0.0, max_attempts=5)


def order_saga(
    downstream: Downstream,
    store: OrderStore,
    engine: Engine,
    clock: ManualClock,
    *,
    deadline_s: float = SAGA_DEADLINE_S,
    crash_at: str = "",
) -> OrderSaga:
    """The order service's saga over the fakes, on a clock that moves only when a test says so.

    With the clock frozen, each step's ``timeout=`` is exactly ``DEADLINE_S``; compensations
    are retried without waiting. ``crash_at`` (``"before:pay"``...) makes the saga raise
    ``SimulatedCrash`` there, a BaseException that nothing in the saga catches, as if the
    process had died.
    """
    return OrderSaga(
        downstream.deps,
        store,
        SagaLog(engine, owner="order-0"),
        deadline_s=deadline_s,
        clock=clock,
        sleep=FakeSleep(clock),
        backoff=NO_WAIT_BACKOFF,
        crash_at=CrashPoint.parse(crash_at),
        kill=simulated_kill,
    )


class SimulatedCrash(BaseException):
    """The process "dies" here: no ``except Exception`` stops it, like SIGKILL stops everything."""


def simulated_kill() -> None:
    raise SimulatedCrash


class WriteTransactions:
    """Counts the write transactions committed on ``engine`` from now on (reads are not counted).

    On SQLite each of them takes the database's one write lock, so their number is what a
    flow costs the writers queueing behind it.
    """

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "commit", self._on_commit)

    def _on_commit(self, connection: Connection) -> None:
        if not connection.get_execution_options().get(READ_ONLY_OPTION):
            self.count += 1
