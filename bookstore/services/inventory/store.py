"""The inventory service's database: stock per book, and reservations keyed by order id.

Three tables:

* ``stock``: one row per stocked book with the copies still available. A CHECK constraint
  keeps it from going negative, but the real guard is the conditional UPDATE below.
* ``reservations``: one row per order id, RESERVED or RELEASED. The order id is the primary
  key, which makes the order id an idempotency key: the first call inserts the row, every
  repeat finds it and answers from it.
* ``reservation_items``: the books and quantities a reservation holds, so a release knows
  exactly what to put back.

How a reservation stays all-or-nothing and never oversells, in one transaction:

1. Insert the reservation row first. Its primary key serialises concurrent calls for the
   same order: a second caller waits on the key, then finds the winner's row.
2. For each item, in ascending book id order, run
   ``UPDATE stock SET available = available - :n WHERE book_id = :id AND available >= :n``.
   The check and the write are one statement, so no other transaction can slip in between.
   The fixed order means two orders for the same books lock rows in the same order and
   cannot deadlock (MySQL/MariaDB locks rows; SQLite takes one write lock per transaction).
3. If any UPDATE matched no row, raise: the transaction rolls back, the reservation row and
   every stock change with it. A failed reservation leaves no trace.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar, cast

from sqlalchemy import BigInteger, CheckConstraint, Engine, ForeignKey, Integer, String, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from bookstore.domain.errors import FailedPrecondition, NotFound
from bookstore.domain.models import Reservation, ReservationStatus, StockItem
from bookstore.platform.database import initialize, retry_on_lock, session_factory

INITIAL_STOCK_ENV = "BOOKSTORE_INITIAL_STOCK"
DEFAULT_INITIAL_STOCK = 100
MAX_STOCK = 1_000_000

# Two concurrent first calls for one order id: one inserts, the other hits the primary key.
# One retry reads the winner; a few more cover a winner that rolled back in between.
_INSERT_ATTEMPTS = 3

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class StockRow(Base):
    __tablename__ = "stock"
    __table_args__ = (CheckConstraint("available >= 0", name="stock_never_negative"),)

    book_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    available: Mapped[int] = mapped_column(Integer)


class ReservationRow(Base):
    __tablename__ = "reservations"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    updated_at_unix: Mapped[int] = mapped_column(BigInteger)
    items: Mapped[list[ReservationItemRow]] = relationship(
        order_by="ReservationItemRow.position", lazy="selectin", cascade="all, delete-orphan"
    )

    def to_domain(self) -> Reservation:
        return Reservation(
            order_id=self.order_id,
            status=ReservationStatus(self.status),
            items=tuple(StockItem(book_id=item.book_id, quantity=item.quantity) for item in self.items),
        )


class ReservationItemRow(Base):
    __tablename__ = "reservation_items"

    order_id: Mapped[str] = mapped_column(ForeignKey("reservations.order_id"), primary_key=True)
    book_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("stock.book_id"), primary_key=True, autoincrement=False
    )
    quantity: Mapped[int] = mapped_column(Integer)
    # The caller's item order, so a replay answers with the items as they were first sent.
    position: Mapped[int] = mapped_column(Integer)


def initial_stock_from_env(environ: Mapping[str, str] | None = None) -> int:
    """The copies each book starts with: ``BOOKSTORE_INITIAL_STOCK``, default 100."""
    env = os.environ if environ is None else environ
    raw = env.get(INITIAL_STOCK_ENV, "").strip()
    if not raw:
        return DEFAULT_INITIAL_STOCK
    try:
        quantity = int(raw)
    except ValueError:
        raise ValueError(f"{INITIAL_STOCK_ENV} must be an integer, got {raw!r}") from None
    if not 0 <= quantity <= MAX_STOCK:
        raise ValueError(f"{INITIAL_STOCK_ENV} must be between 0 and {MAX_STOCK}, got {quantity}")
    return quantity


def catalog_size() -> int:
    """How many books the catalog sells; their ids are 1..N."""
    # Imported here, not at the top: the inventory process needs the catalog's book list
    # only once, to seed an empty database, and must not depend on it otherwise.
    from bookstore.services.catalog.books import BOOKS

    return len(BOOKS)


def seed_stock(session: Session, *, quantity: int, book_count: int) -> None:
    """Stock books 1..book_count with ``quantity`` copies each, unless any stock exists."""
    if session.scalar(select(func.count()).select_from(StockRow)):
        return
    session.add_all(StockRow(book_id=book_id, available=quantity) for book_id in range(1, book_count + 1))


def _item_field(index: int, name: str) -> str:
    return f"items[{index}].{name}"


def _same_items(held: Sequence[StockItem], asked: Sequence[StockItem]) -> bool:
    def key(items: Sequence[StockItem]) -> list[tuple[int, int]]:
        return sorted((item.book_id, item.quantity) for item in items)

    return key(held) == key(asked)


def _with_lock_retry(action: Callable[[], T]) -> T:
    return cast(T, retry_on_lock(action))


class InventoryStore:
    """Stock and reservations. Every method is one transaction and safe to call from many threads.

    ``initial_stock`` (default: ``BOOKSTORE_INITIAL_STOCK`` or 100) and ``book_count``
    (default: the size of the catalog) only matter when the database is empty.
    """

    def __init__(
        self, engine: Engine, *, initial_stock: int | None = None, book_count: int | None = None
    ) -> None:
        quantity = initial_stock_from_env() if initial_stock is None else initial_stock

        def seed(session: Session) -> None:
            books = catalog_size() if book_count is None else book_count
            seed_stock(session, quantity=quantity, book_count=books)

        initialize(engine, Base.metadata, seed)
        self._sessions = session_factory(engine)

    def get_stock(self, book_id: int) -> int:
        with self._sessions() as session:
            available = session.scalar(select(StockRow.available).where(StockRow.book_id == book_id))
            if available is None:
                raise NotFound(f"book {book_id} is not stocked", field="book_id")
            return available

    def set_stock(self, book_id: int, quantity: int) -> int:
        """Overwrite the available copies of a stocked book (restocking); returns the new level."""

        def attempt() -> int:
            with self._sessions.begin() as session:
                result = session.connection().execute(
                    update(StockRow).where(StockRow.book_id == book_id).values(available=quantity)
                )
                if result.rowcount == 0:
                    raise NotFound(f"book {book_id} is not stocked", field="book_id")
                return quantity

        return _with_lock_retry(attempt)

    def reserve(self, order_id: str, items: Sequence[StockItem]) -> Reservation:
        """Reserve every item for ``order_id`` or none; a repeat returns the first reservation.

        ``items`` must be validated already (distinct books, positive quantities). Raises
        ``NotFound`` for an unstocked book, ``FailedPrecondition`` when stock is short or the
        order was reserved with other items or released.
        """
        for _ in range(_INSERT_ATTEMPTS):
            try:
                reservation = _with_lock_retry(lambda: self._reserve_once(order_id, items))
            except IntegrityError:
                continue  # a concurrent call for the same order inserted first: read its row
            return self._check_replay(reservation, items)
        raise RuntimeError(f"could not settle the reservation row for order {order_id}")

    def release(self, order_id: str) -> tuple[Reservation, bool]:
        """Put a reservation's items back once. Returns (reservation, released_now).

        Releasing an order that holds nothing records a RELEASED tombstone, which bars a
        ReserveStock that arrives later for the same order.
        """
        for _ in range(_INSERT_ATTEMPTS):
            try:
                return _with_lock_retry(lambda: self._release_once(order_id))
            except IntegrityError:
                continue  # a concurrent reserve or release inserted the row first: read it
        raise RuntimeError(f"could not settle the reservation row for order {order_id}")

    def reservation(self, order_id: str) -> Reservation:
        with self._sessions() as session:
            row = session.get(ReservationRow, order_id)
            if row is None:
                raise NotFound(f"no reservation for order {order_id}", field="order_id")
            return row.to_domain()

    def reserve_in(self, session: Session, order_id: str, items: Sequence[StockItem]) -> Reservation:
        """``reserve``'s work inside the caller's transaction, which commits or rolls it back.

        No retries and no replay check: the caller owns the transaction, so a refusal here
        (NotFound, FailedPrecondition) must roll back everything the caller did in it too.
        The in-process monolith (``bookstore.monolith``) reserves this way, in its one
        transaction per order. An order id that holds a reservation already returns it.
        """
        existing = session.get(ReservationRow, order_id, with_for_update=True)
        if existing is not None:
            return existing.to_domain()
        row = ReservationRow(
            order_id=order_id,
            status=ReservationStatus.RESERVED.value,
            updated_at_unix=int(time.time()),
            items=[],
        )
        session.add(row)
        # Insert now, before touching stock: the key is what a concurrent call for the
        # same order waits on (MySQL) or fails on, so it never takes stock twice.
        session.flush()
        for index, item in sorted(enumerate(items), key=lambda pair: pair[1].book_id):
            self._take(session, index, item)
        row.items.extend(
            ReservationItemRow(book_id=item.book_id, quantity=item.quantity, position=index)
            for index, item in enumerate(items)
        )
        return Reservation(order_id=order_id, status=ReservationStatus.RESERVED, items=tuple(items))

    def _reserve_once(self, order_id: str, items: Sequence[StockItem]) -> Reservation:
        with self._sessions.begin() as session:
            return self.reserve_in(session, order_id, items)

    @staticmethod
    def _take(session: Session, index: int, item: StockItem) -> None:
        """Lower one book's stock, or raise (which rolls the whole reservation back)."""
        result = session.connection().execute(
            update(StockRow)
            .where(StockRow.book_id == item.book_id, StockRow.available >= item.quantity)
            .values(available=StockRow.available - item.quantity)
        )
        if result.rowcount == 1:
            return
        available = session.scalar(select(StockRow.available).where(StockRow.book_id == item.book_id))
        if available is None:
            raise NotFound(f"book {item.book_id} is not stocked", field=_item_field(index, "book_id"))
        raise FailedPrecondition(
            f"only {available} left of book {item.book_id}, asked for {item.quantity}",
            field=_item_field(index, "quantity"),
        )

    @staticmethod
    def _check_replay(reservation: Reservation, asked: Sequence[StockItem]) -> Reservation:
        """Answer a call from the reservation row it found or wrote."""
        if reservation.status is ReservationStatus.RELEASED:
            raise FailedPrecondition(
                f"order {reservation.order_id} was released; it cannot reserve stock again",
                field="order_id",
            )
        if not _same_items(reservation.items, asked):
            held = ", ".join(f"book {item.book_id} x{item.quantity}" for item in reservation.items)
            raise FailedPrecondition(
                f"order {reservation.order_id} already holds a reservation for other items ({held})",
                field="order_id",
            )
        return reservation

    def _release_once(self, order_id: str) -> tuple[Reservation, bool]:
        with self._sessions.begin() as session:
            row = session.get(ReservationRow, order_id, with_for_update=True)
            if row is None:
                tombstone = ReservationRow(
                    order_id=order_id,
                    status=ReservationStatus.RELEASED.value,
                    updated_at_unix=int(time.time()),
                    items=[],
                )
                session.add(tombstone)
                session.flush()
                return tombstone.to_domain(), False
            if row.status == ReservationStatus.RELEASED.value:
                return row.to_domain(), False
            # Ascending book ids, like reserve: the same lock order everywhere prevents deadlocks.
            for item in sorted(row.items, key=lambda held: held.book_id):
                session.connection().execute(
                    update(StockRow)
                    .where(StockRow.book_id == item.book_id)
                    .values(available=StockRow.available + item.quantity)
                )
            row.status = ReservationStatus.RELEASED.value
            row.updated_at_unix = int(time.time())
            return row.to_domain(), True
