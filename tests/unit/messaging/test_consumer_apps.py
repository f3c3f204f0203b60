"""The three consumers' handlers, on a real SQLite file, with a fake inventory stub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bookstore.messaging.consumers import analytics, inventory_sync, notification
from bookstore.messaging.consumers.runtime import ConsumerApp
from bookstore.messaging.events import ORDER_APPROVED, ORDER_CREATED, ORDER_REJECTED, Event
from bookstore.platform.database import initialize, make_engine, session_factory
from bookstore.rpc.v1 import inventory_pb2


def order_event(kind: str, order_id: str = "o-1", **data: Any) -> Event:
    items = data.pop("items", [{"book_id": 3, "quantity": 2, "unit_price_cents": 1250}])
    return Event(
        kind,
        {
            "order_id": order_id,
            "user_id": "u-1",
            "status": kind.removeprefix("order.").upper(),
            "total_cents": 2500,
            "items": items,
            **data,
        },
        correlation_id=order_id,
    )


def engine_for(app: ConsumerApp, tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / (app.name + '.db')}")
    initialize(engine, app.metadata)
    return engine


def apply(engine: Engine, handler: Any, *events: Event) -> None:
    sessions = session_factory(engine)
    for event in events:
        with sessions.begin() as session:
            handler(event, session)


def records(app: ConsumerApp, engine: Engine, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    with Session(engine) as session:
        rows, total = app.list_records(session, limit)
        return list(rows), total


def test_notification_records_one_mail_per_event_naming_the_order_and_the_reason(tmp_path: Path) -> None:
    engine = engine_for(notification.APP, tmp_path)
    apply(
        engine,
        notification.notify,
        order_event(ORDER_CREATED),
        order_event(ORDER_REJECTED, reason="card declined"),
        Event("order.shipped", {"order_id": "o-1"}),  # no template: skipped, not an error
    )
    rows, total = records(notification.APP, engine)
    assert total == 2
    # Newest first, numbered in the order recorded.
    assert [r["subject"] for r in rows] == [
        "We could not complete your order o-1",
        "We received your order o-1",
    ]
    assert rows[0]["id"] > rows[1]["id"]
    assert rows[0]["body"] == "Total 25.00. Reason: card declined"


def test_analytics_counts_units_and_revenue_of_approved_orders_and_every_outcome(tmp_path: Path) -> None:
    engine = engine_for(analytics.APP, tmp_path)
    two_books = [
        {"book_id": 3, "quantity": 2, "unit_price_cents": 1250},
        {"book_id": 5, "quantity": 1, "unit_price_cents": 999},
    ]
    apply(
        engine,
        analytics.count,
        order_event(ORDER_CREATED),  # not a sale yet
        order_event(ORDER_APPROVED, "o-1", items=two_books),
        order_event(ORDER_APPROVED, "o-2"),
        order_event(ORDER_REJECTED, "o-3"),
    )
    rows, total = records(analytics.APP, engine)
    assert total == 2
    assert rows == [
        {"book_id": 3, "units_sold": 4, "revenue_cents": 5000, "orders": 2},
        {"book_id": 5, "units_sold": 1, "revenue_cents": 999, "orders": 1},
        {"outcome": "APPROVED", "orders": 2},
        {"outcome": "REJECTED", "orders": 1},
    ]


def test_analytics_fails_on_items_it_cannot_read_so_the_message_is_retried_then_dead_lettered(
    tmp_path: Path,
) -> None:
    engine = engine_for(analytics.APP, tmp_path)
    with pytest.raises(ValueError):
        apply(engine, analytics.count, order_event(ORDER_APPROVED, items=[{"book_id": "x", "quantity": 1}]))
    assert records(analytics.APP, engine)[0] == []  # nothing half-written


class FakeInventory:
    def __init__(self, released_now: bool = True, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, float | None]] = []
        self.released_now = released_now
        self.error = error

    def ReleaseStock(
        self, request: inventory_pb2.ReleaseStockRequest, timeout: float | None = None
    ) -> inventory_pb2.ReleaseStockResponse:
        self.calls.append((request.order_id, timeout))
        if self.error is not None:
            raise self.error
        return inventory_pb2.ReleaseStockResponse(order_id=request.order_id, released_now=self.released_now)


def test_inventory_sync_commits_approved_units_and_releases_rejected_orders_with_a_deadline(
    tmp_path: Path,
) -> None:
    engine = engine_for(inventory_sync.APP, tmp_path)
    inventory = FakeInventory(released_now=True)
    handler = inventory_sync.InventorySync(inventory, deadline_s=1.5)
    apply(engine, handler, order_event(ORDER_APPROVED, "o-1"), order_event(ORDER_REJECTED, "o-2"))

    assert inventory.calls == [("o-2", 1.5)]
    rows, total = records(inventory_sync.APP, engine)
    assert total == 1
    assert rows[0] == {"book_id": 3, "units_committed": 2, "orders": 1}
    assert rows[1]["order_id"] == "o-2" and rows[1]["released_now"] is True


def test_inventory_sync_raises_when_inventory_is_down_so_the_event_is_retried(tmp_path: Path) -> None:
    engine = engine_for(inventory_sync.APP, tmp_path)
    handler = inventory_sync.InventorySync(FakeInventory(error=ConnectionError("inventory is down")), 1.0)
    with pytest.raises(ConnectionError):
        apply(engine, handler, order_event(ORDER_REJECTED, "o-9"))
    assert records(inventory_sync.APP, engine) == ([], 0)
