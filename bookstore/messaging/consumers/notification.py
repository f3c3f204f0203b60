"""The notification consumer: the e-mails a customer would receive about an order.

It reads ``order.*`` (every order event) from its own queue and records one message per
event in its database: "we received your order", "your order is confirmed", or "we could not
complete your order" with the reason. Recording instead of sending keeps the course offline;
a real one would call a mail provider here, after which the dedupe by message id matters even
more: nobody wants the same e-mail twice.

Run: ``python -m bookstore.messaging.consumers.notification`` (the launcher does).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bookstore.messaging.consumer import Handler
from bookstore.messaging.consumers.runtime import ConsumerApp, run_consumer
from bookstore.messaging.events import ORDER_APPROVED, ORDER_CREATED, ORDER_REJECTED, Event
from bookstore.messaging.topology import NOTIFICATION
from bookstore.platform.settings import Settings

SUBJECTS = {
    ORDER_CREATED: "We received your order {order_id}",
    ORDER_APPROVED: "Your order {order_id} is confirmed",
    ORDER_REJECTED: "We could not complete your order {order_id}",
}


class Base(DeclarativeBase):
    pass


class NotificationRow(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    user_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(1000))
    recorded_at: Mapped[float] = mapped_column()


def notify(event: Event, session: Session) -> None:
    """Record the e-mail ``event`` calls for; events it has no template for are skipped."""
    template = SUBJECTS.get(event.type)
    if template is None:
        return
    order_id = str(event.data["order_id"])
    reason = str(event.data.get("reason") or "")
    body = f"Total {int(event.data.get('total_cents', 0)) / 100:.2f}" + (
        f". Reason: {reason}" if reason else ""
    )
    session.add(
        NotificationRow(
            order_id=order_id,
            user_id=str(event.data.get("user_id", "")),
            event_type=event.type,
            subject=template.format(order_id=order_id),
            body=body[:1000],
            recorded_at=time.time(),
        )
    )


def make_handler(_settings: Settings) -> Handler:
    return notify


def list_records(session: Session, limit: int) -> tuple[Sequence[dict[str, Any]], int]:
    """The latest ``limit`` e-mails, newest first; ``id`` numbers them in the order they were recorded."""
    total = session.execute(select(func.count()).select_from(NotificationRow)).scalar_one()
    rows = session.execute(select(NotificationRow).order_by(NotificationRow.id.desc()).limit(limit)).scalars()
    return [
        {
            "id": r.id,
            "order_id": r.order_id,
            "user_id": r.user_id,
            "event_type": r.event_type,
            "subject": r.subject,
            "body": r.body,
            "recorded_at": r.recorded_at,
        }
        for r in rows
    ], total


APP = ConsumerApp("notification", NOTIFICATION, Base.metadata, make_handler, list_records)

if __name__ == "__main__":
    run_consumer(APP)
