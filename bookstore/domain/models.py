"""The bookstore's entities as frozen dataclasses.

Stores return these, servicers translate them to protobuf at the edge. Money is always an
integer number of cents: floats cannot represent 0.10 exactly, and a shop that loses a cent
per thousand orders is a shop with an accounting problem.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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
