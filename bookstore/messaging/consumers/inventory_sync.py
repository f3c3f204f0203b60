"""The inventory-sync consumer: the warehouse's ledger, and a safety net for rejected orders.

* ``order.approved``: the ordered units are added to a per-book ledger of committed stock
  (what the warehouse must ship), kept in this consumer's own database.
* ``order.rejected``: it asks the inventory service to release the order's reservation.
  The saga already compensated in the normal case, and ReleaseStock is idempotent per order,
  so this costs one cheap call; but if a compensation was ever lost, this returns the stock.
  ``released_now`` in the answer says whether it had to, and that is recorded.

A handler that calls another service must expect it to fail: the call carries a deadline,
and an error (inventory down) raises, so the framework gives the message back to the queue
and it is retried, up to the limit, then dead-lettered with the reason.

Run: ``python -m bookstore.messaging.consumers.inventory_sync`` (the launcher does; it needs
BOOKSTORE_INVENTORY_TARGET).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bookstore.messaging.consumer import Handler
from bookstore.messaging.consumers.runtime import ConsumerApp, run_consumer
from bookstore.messaging.events import ORDER_APPROVED, ORDER_REJECTED, Event
from bookstore.messaging.topology import INVENTORY
from bookstore.platform.channels import open_channel
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import inventory_pb2, inventory_pb2_grpc


class Base(DeclarativeBase):
    pass


class LedgerRow(Base):
    __tablename__ = "stock_ledger"

    book_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    units_committed: Mapped[int] = mapped_column(Integer, default=0)
    orders: Mapped[int] = mapped_column(Integer, default=0)


class ReleaseRow(Base):
    __tablename__ = "releases"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    released_now: Mapped[bool] = mapped_column(Boolean)
    released_at: Mapped[float] = mapped_column()


class InventorySync:
    def __init__(self, inventory: Any, deadline_s: float) -> None:
        self.inventory = inventory
        self.deadline_s = deadline_s

    def __call__(self, event: Event, session: Session) -> None:
        if event.type == ORDER_APPROVED:
            for item in event.data.get("items", []):
                book_id = int(item["book_id"])
                row = session.get(LedgerRow, book_id) or LedgerRow(
                    book_id=book_id, units_committed=0, orders=0
                )
                row.units_committed += int(item["quantity"])
                row.orders += 1
                session.add(row)
        elif event.type == ORDER_REJECTED:
            order_id = str(event.data["order_id"])
            answer = self.inventory.ReleaseStock(
                inventory_pb2.ReleaseStockRequest(order_id=order_id), timeout=self.deadline_s
            )
            session.merge(
                ReleaseRow(order_id=order_id, released_now=answer.released_now, released_at=time.time())
            )


def make_handler(settings: Settings) -> Handler:
    stub = inventory_pb2_grpc.InventoryServiceStub(open_channel(settings.target("inventory")))
    return InventorySync(stub, settings.deadline_s)


def list_records(session: Session, limit: int) -> tuple[Sequence[dict[str, Any]], int]:
    """Per-book ledger rows, then the releases that actually returned stock."""
    ledger = session.execute(select(LedgerRow).order_by(LedgerRow.book_id).limit(limit)).scalars()
    rows: list[dict[str, Any]] = [
        {"book_id": r.book_id, "units_committed": r.units_committed, "orders": r.orders} for r in ledger
    ]
    releases = session.execute(
        select(ReleaseRow)
        .where(ReleaseRow.released_now.is_(True))
        .order_by(ReleaseRow.released_at)
        .limit(limit)
    ).scalars()
    rows += [{"order_id": r.order_id, "released_now": True, "released_at": r.released_at} for r in releases]
    total = session.execute(select(func.count()).select_from(LedgerRow)).scalar_one()
    return rows, total


APP = ConsumerApp("inventory_sync", INVENTORY, Base.metadata, make_handler, list_records)

if __name__ == "__main__":
    run_consumer(APP)
