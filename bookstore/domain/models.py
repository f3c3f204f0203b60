"""The bookstore's entities as frozen dataclasses.

Stores return these, servicers translate them to protobuf at the edge. Money is always an
integer number of cents: floats cannot represent 0.10 exactly, and a shop that loses a cent
per thousand orders is a shop with an accounting problem.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from bookstore.domain.errors import FailedPrecondition


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    created_at_unix: int


@dataclass(frozen=True)
class Book:
    book_id: int
    title: str
    author: str
    isbn: str
    price_cents: int
    year: int


@dataclass(frozen=True)
class StockItem:
    book_id: int
    quantity: int


class ReservationStatus(enum.Enum):
    RESERVED = "RESERVED"
    RELEASED = "RELEASED"


@dataclass(frozen=True)
class Reservation:
    order_id: str
    status: ReservationStatus
    items: tuple[StockItem, ...] = ()


class PaymentStatus(enum.Enum):
    CHARGED = "CHARGED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"


@dataclass(frozen=True)
class Payment:
    payment_id: str
    order_id: str
    user_id: str
    amount_cents: int
    status: PaymentStatus
    reason: str = ""


class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"

    @property
    def final(self) -> bool:
        return self is not OrderStatus.PENDING


@dataclass(frozen=True)
class OrderItem:
    book_id: int
    quantity: int
    unit_price_cents: int = 0


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    items: tuple[OrderItem, ...]
    status: OrderStatus
    created_at_unix: int
    reason: str = ""
    request_id: str = ""
    total_cents: int = field(default=0)

    @staticmethod
    def total_of(items: tuple[OrderItem, ...]) -> int:
        return sum(item.quantity * item.unit_price_cents for item in items)

    # Status transitions. An order is PENDING until its flow ends, then APPROVED or REJECTED
    # for good. Repeating the final status is a no-op (a recovery may settle an order twice);
    # anything else is refused: an APPROVED order turning REJECTED would mean two flows ran
    # for one order.

    def approve(self) -> Order:
        """This order APPROVED; refused unless it is PENDING (or APPROVED already)."""
        return self.moved_to(OrderStatus.APPROVED)

    def reject(self, reason: str) -> Order:
        """This order REJECTED with ``reason``; refused unless it is PENDING (or REJECTED already)."""
        return self.moved_to(OrderStatus.REJECTED, reason)

    def moved_to(self, status: OrderStatus, reason: str = "") -> Order:
        """This order in ``status``; itself, unchanged, when it is in that final status already."""
        if status is self.status and status.final:
            return self
        if self.status.final or not status.final:
            raise FailedPrecondition(
                f"order {self.order_id} is already {self.status.value}, cannot become {status.value}",
                field="order_id",
            )
        return replace(self, status=status, reason=reason)
