"""The analytics consumer: sales per book and orders per outcome, kept current from events.

A read model built from events: nobody queries the order service's database for a report,
and a report's heavy query never slows an order down. It reads ``order.approved`` (units and
revenue per book) and ``order.rejected`` (counted, with no sales). Counting is the classic
case where a duplicate delivery does visible harm (a sale counted twice), so it leans fully on
the framework's dedupe: the counter update and the message id commit together.

Run: ``python -m bookstore.messaging.consumers.analytics`` (the launcher does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bookstore.messaging.consumer import Handler
from bookstore.messaging.consumers.runtime import ConsumerApp, run_consumer
from bookstore.messaging.events import ORDER_APPROVED, ORDER_REJECTED, Event
from bookstore.messaging.topology import ANALYTICS
from bookstore.platform.settings import Settings


class Base(DeclarativeBase):
    pass


class BookSalesRow(Base):
    __tablename__ = "book_sales"

    book_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    units_sold: Mapped[int] = mapped_column(Integer, default=0)
    revenue_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    orders: Mapped[int] = mapped_column(Integer, default=0)


class OutcomeRow(Base):
    __tablename__ = "order_outcomes"

    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    orders: Mapped[int] = mapped_column(Integer, default=0)


def count(event: Event, session: Session) -> None:
    if event.type not in (ORDER_APPROVED, ORDER_REJECTED):
        return
    outcome = str(event.data.get("status") or event.type.removeprefix("order.").upper())
    # One consumer per queue applies events one at a time, so get-or-create needs no lock.
    tally = session.get(OutcomeRow, outcome) or OutcomeRow(outcome=outcome, orders=0)
    tally.orders += 1
    session.add(tally)
    if event.type != ORDER_APPROVED:
        return
    for item in event.data.get("items", []):
        book_id, quantity = int(item["book_id"]), int(item["quantity"])
        sales = session.get(BookSalesRow, book_id) or BookSalesRow(
            book_id=book_id, units_sold=0, revenue_cents=0, orders=0
        )
        sales.units_sold += quantity
        sales.revenue_cents += quantity * int(item["unit_price_cents"])
        sales.orders += 1
        session.add(sales)


def make_handler(_settings: Settings) -> Handler:
    return count


def list_records(session: Session, limit: int) -> tuple[Sequence[dict[str, Any]], int]:
    """Per-book rows (best sellers first), then one row per outcome."""
    books = session.execute(
        select(BookSalesRow).order_by(BookSalesRow.units_sold.desc(), BookSalesRow.book_id).limit(limit)
    ).scalars()
    outcomes = session.execute(select(OutcomeRow).order_by(OutcomeRow.outcome)).scalars()
    rows: list[dict[str, Any]] = [
        {
            "book_id": b.book_id,
            "units_sold": b.units_sold,
            "revenue_cents": b.revenue_cents,
            "orders": b.orders,
        }
        for b in books
    ]
    rows += [{"outcome": o.outcome, "orders": o.orders} for o in outcomes]
    total = session.execute(select(func.count()).select_from(BookSalesRow)).scalar_one()
    return rows, total


APP = ConsumerApp("analytics", ANALYTICS, Base.metadata, make_handler, list_records)

if __name__ == "__main__":
    run_consumer(APP)
