"""The events the order service publishes, through its outbox, when an order changes.

``order.created`` when an order is stored PENDING, then exactly one of ``order.approved`` or
``order.rejected`` when its saga ends. Each is written in the same transaction as the change
it reports (``bookstore.messaging.outbox``), so no event is lost and none is invented.
"""

from __future__ import annotations

from bookstore.domain.models import Order, OrderStatus
from bookstore.messaging.events import ORDER_APPROVED, ORDER_CREATED, ORDER_REJECTED, Event

EVENT_OF_STATUS = {
    OrderStatus.PENDING: ORDER_CREATED,
    OrderStatus.APPROVED: ORDER_APPROVED,
    OrderStatus.REJECTED: ORDER_REJECTED,
}


def order_event(order: Order) -> Event:
    """The event reporting that ``order`` reached its current status."""
    return Event(
        type=EVENT_OF_STATUS[order.status],
        correlation_id=order.order_id,
        data={
            "order_id": order.order_id,
            "user_id": order.user_id,
            "status": order.status.value,
            "reason": order.reason,
            "total_cents": order.total_cents,
            "items": [
                {"book_id": i.book_id, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents}
                for i in order.items
            ],
        },
    )
