"""The order service's database: orders and the items in them.

An order is written PENDING before any other service is asked to do anything, and only
then moves to APPROVED or REJECTED (the rules are ``Order``'s own; the store persists what
they allow). Writing first is what makes the flow recoverable: if
the process dies half-way, the PENDING row is the evidence that work was started and may
need undoing (the saga log next to it says how far it got). PENDING is also a *semantic
lock*: whoever reads the order learns that its saga is still running and nothing about it
is final yet. An order never leaves APPROVED or REJECTED.

Idempotency: a client that sends ``request_id`` (say, the id of a checkout page) may resend
the same request after a timeout without buying twice. The pair (user_id, request_id) is a
UNIQUE key, scoped per user so one user's key can never collide with another's. The check
"is this key known?" and the insert run in one transaction, and when two requests race past
the check anyway, the database's unique key decides: the loser reads the winner's order.

Events: every change of an order also writes its event (``order.created``, ``order.approved``,
``order.rejected``) into the ``outbox`` table, in the same transaction; the outbox relay
publishes them to RabbitMQ (``bookstore.messaging.outbox``). ``on_event`` is called after such
a commit, so the relay can look at once instead of at its next poll.

Newest first: ``created_at_unix`` (seconds) is what the API shows, but several orders fit in
one second, so listing sorts on ``created_at_ns``, with the order id as the last tie-break
so that paging is stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import BigInteger, Engine, ForeignKey, Index, Integer, String, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from bookstore.domain.errors import NotFound
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.messaging.outbox import add_event, create_outbox_table
from bookstore.platform.database import initialize, read_session_factory, session_factory
from bookstore.services.order.events import order_event

MAX_REASON_CHARS = 500
MAX_REQUEST_ID_CHARS = 100


class Base(DeclarativeBase):
    pass


class OrderItemRow(Base):
    __tablename__ = "order_items"

    order_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True
    )
    # Part of the key, so the database itself refuses the same book twice in one order.
    book_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Items come back in the order the customer listed them.
    line: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        # NULLs never collide in a UNIQUE key, so orders without a request id are unconstrained.
        UniqueConstraint("user_id", "request_id", name="uq_orders_user_request"),
        Index("ix_orders_user_created", "user_id", "created_at_ns"),
        # Recovery looks for the few PENDING orders among many final ones.
        Index("ix_orders_status", "status"),
    )

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(MAX_REASON_CHARS), default="")
    total_cents: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str | None] = mapped_column(String(MAX_REQUEST_ID_CHARS), nullable=True)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    # selectin: a page of orders loads all its items with one extra query, not one per order.
    items: Mapped[list[OrderItemRow]] = relationship(
        order_by=OrderItemRow.line, cascade="all, delete-orphan", lazy="selectin"
    )

    def to_domain(self) -> Order:
        return Order(
            order_id=self.order_id,
            user_id=self.user_id,
            items=tuple(
                OrderItem(
                    book_id=item.book_id, quantity=item.quantity, unit_price_cents=item.unit_price_cents
                )
                for item in self.items
            ),
            status=OrderStatus(self.status),
            created_at_unix=self.created_at_unix,
            reason=self.reason,
            request_id=self.request_id or "",
            total_cents=self.total_cents,
        )


class OrderStore:
    """Orders of one order service; every method is one short transaction.

    Pure reads use ``read_session_factory``: on SQLite they take no write lock.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        on_event: Callable[[], None] | None = None,
    ) -> None:
        initialize(engine, Base.metadata)
        create_outbox_table(engine)
        self._sessions = session_factory(engine)
        self._reads = read_session_factory(engine)
        self._clock_ns = clock_ns
        self.on_event = on_event

    def create_pending(self, order: Order) -> Order:
        """Store ``order`` as PENDING, stamped with the store's clock, and return it as stored.

        If the user already placed an order with the same ``request_id``, nothing is written
        and that earlier order is returned, whatever its status: compare the returned
        ``order_id`` with yours to tell a replay from a fresh order. Storing the same
        ``order_id`` again (a saga step re-run after a crash) returns the stored order too.
        """
        request_id = order.request_id or None
        # Two tries: the second one runs only after losing an insert race, and then finds the winner.
        for _ in range(2):
            try:
                with self._sessions.begin() as session:
                    stored = self.create_pending_in(session, order)
                if stored.order_id == order.order_id:
                    self.notify()
                return stored
            except IntegrityError:
                if request_id is None:
                    raise  # a duplicate order id is a bug, not a race to resolve
                continue
        raise RuntimeError(f"could not settle the order for request {request_id!r} of user {order.user_id}")

    def create_pending_in(self, session: Session, order: Order) -> Order:
        """``create_pending`` inside the caller's transaction (the saga's first commit).

        Call ``notify`` after that transaction committed. A lost insert race surfaces as
        IntegrityError when the caller's transaction flushes or commits.
        """
        again = session.get(OrderRow, order.order_id)
        if again is not None:
            return again.to_domain()
        request_id = order.request_id or None
        if request_id is not None:
            existing = self._find_request(session, order.user_id, request_id)
            if existing is not None:
                return existing.to_domain()
        return self._add(session, order, request_id, OrderStatus.PENDING)

    def add_in(self, session: Session, order: Order) -> Order:
        """Store ``order`` with its own status, and its event, inside the caller's transaction.

        For the in-process monolith (``bookstore.monolith``), whose order is final when it is
        written: the same transaction took the stock and the money, so there is no PENDING.
        A ``request_id`` the user has used before breaks the unique key (IntegrityError),
        which rolls back the caller's whole transaction: the loser of a race takes nothing.
        """
        return self._add(session, order, order.request_id or None, order.status)

    def _add(self, session: Session, order: Order, request_id: str | None, status: OrderStatus) -> Order:
        """Insert ``order`` as ``status``, stamped with the store's clock, and its event."""
        row = self._new_row(order, request_id, status)
        session.add(row)
        session.flush()
        stored = row.to_domain()
        add_event(session, order_event(stored))
        return stored

    def find_by_request(self, user_id: str, request_id: str) -> Order | None:
        """The order ``user_id`` placed with ``request_id``, if any."""
        with self._reads() as session:
            row = self._find_request(session, user_id, request_id)
            return row.to_domain() if row is not None else None

    def mark(self, order_id: str, status: OrderStatus, reason: str = "") -> Order:
        """Persist the move of an order to ``status`` that ``Order.moved_to`` allows, with its event.

        Repeating a final status is a no-op; FailedPrecondition for a move the order refuses.
        """
        with self._sessions.begin() as session:
            changed = self.mark_in(session, order_id, status, reason)
        self.notify()
        return changed

    def mark_in(self, session: Session, order_id: str, status: OrderStatus, reason: str = "") -> Order:
        """``mark`` inside the caller's transaction (the saga's last commit); then call ``notify``."""
        row = session.get(OrderRow, order_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no order {order_id}", field="order_id")
        stored = row.to_domain()
        moved = stored.moved_to(status, reason)  # the domain decides; FailedPrecondition if not allowed
        if moved is stored:
            return stored
        row.status = moved.status.value
        # Reasons often quote a downstream error message, whose length nobody promised.
        row.reason = moved.reason[:MAX_REASON_CHARS]
        changed = row.to_domain()
        add_event(session, order_event(changed))
        return changed

    def notify(self) -> None:
        """Tell the outbox relay (``on_event``) that a committed transaction added an event."""
        if self.on_event is not None:
            self.on_event()

    def pending_ids(self, limit: int = 1000) -> list[str]:
        """Ids of PENDING orders, oldest first: the orders whose saga may still need a hand."""
        with self._reads() as session:
            return list(
                session.execute(
                    select(OrderRow.order_id)
                    .where(OrderRow.status == OrderStatus.PENDING.value)
                    .order_by(OrderRow.created_at_ns, OrderRow.order_id)
                    .limit(limit)
                ).scalars()
            )

    def get(self, order_id: str) -> Order:
        with self._reads() as session:
            row = session.get(OrderRow, order_id)
            if row is None:
                raise NotFound(f"no order {order_id}", field="order_id")
            return row.to_domain()

    def list_for_user(self, user_id: str, offset: int, limit: int) -> tuple[list[Order], int]:
        """One page of ``user_id``'s orders, newest first, and how many orders the user has."""
        with self._reads() as session:
            total = session.execute(
                select(func.count()).select_from(OrderRow).where(OrderRow.user_id == user_id)
            ).scalar_one()
            rows = session.execute(
                select(OrderRow)
                .where(OrderRow.user_id == user_id)
                .order_by(OrderRow.created_at_ns.desc(), OrderRow.order_id.desc())
                .offset(offset)
                .limit(limit)
            ).scalars()
            return [row.to_domain() for row in rows], total

    @staticmethod
    def _find_request(session: Session, user_id: str, request_id: str) -> OrderRow | None:
        return session.execute(
            select(OrderRow).where(OrderRow.user_id == user_id, OrderRow.request_id == request_id)
        ).scalar_one_or_none()

    def _new_row(self, order: Order, request_id: str | None, status: OrderStatus) -> OrderRow:
        now_ns = self._clock_ns()
        return OrderRow(
            order_id=order.order_id,
            user_id=order.user_id,
            status=status.value,
            reason="",
            total_cents=order.total_cents,
            request_id=request_id,
            created_at_unix=now_ns // 1_000_000_000,
            created_at_ns=now_ns,
            items=[
                OrderItemRow(
                    book_id=item.book_id,
                    line=line,
                    quantity=item.quantity,
                    unit_price_cents=item.unit_price_cents,
                )
                for line, item in enumerate(order.items)
            ],
        )
