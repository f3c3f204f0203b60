"""The payment service's database: one row per order, keyed by order id.

Keying the table by order id is what makes Pay and Refund idempotent: the first call for an
order writes the row, every repeat finds it and answers from it. A Refund that arrives
before any Pay (a saga compensating a Pay that timed out before it ran) writes a VOIDED
row, so the late Pay is refused instead of charging an order that was already undone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from sqlalchemy import BigInteger, Engine, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bookstore.domain.errors import FailedPrecondition, NotFound
from bookstore.domain.models import Payment, PaymentStatus
from bookstore.platform.database import initialize, session_factory
from bookstore.services.payment.provider import SimulatedProvider


class Base(DeclarativeBase):
    pass


class PaymentRow(Base):
    __tablename__ = "payments"

    order_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(36), unique=True)
    user_id: Mapped[str] = mapped_column(String(36))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")
    updated_at_unix: Mapped[int] = mapped_column(BigInteger)

    def to_domain(self) -> Payment:
        return Payment(
            payment_id=self.payment_id,
            order_id=self.order_id,
            user_id=self.user_id,
            amount_cents=self.amount_cents,
            status=PaymentStatus(self.status),
            reason=self.reason,
        )


def declined(payment: Payment) -> FailedPrecondition:
    """The refusal of a DECLINED charge, naming the amount and the provider's reason."""
    return FailedPrecondition(f"payment declined: {payment.reason}", field="amount_cents")


class PaymentStore:
    def __init__(self, engine: Engine, provider: SimulatedProvider | None = None) -> None:
        initialize(engine, Base.metadata)
        self._sessions = session_factory(engine)
        self._provider = provider or SimulatedProvider()

    def pay(self, order_id: str, user_id: str, amount_cents: int) -> Payment:
        """Charge once per order; a repeat returns the first outcome. Declines raise."""
        payment = self._insert_once(order_id, lambda: self._new_charge(order_id, user_id, amount_cents))
        if payment.amount_cents != amount_cents and payment.status is not PaymentStatus.VOIDED:
            raise FailedPrecondition(
                f"order {order_id} was already paid with amount {payment.amount_cents}, not {amount_cents}",
                field="amount_cents",
            )
        if payment.status is PaymentStatus.VOIDED:
            raise FailedPrecondition(f"order {order_id} was refunded before it was charged", field="order_id")
        if payment.status is PaymentStatus.DECLINED:
            raise declined(payment)
        return payment

    def charge_in(self, session: Session, order_id: str, user_id: str, amount_cents: int) -> Payment:
        """Charge inside the caller's transaction; a decline raises and writes nothing.

        Unlike ``pay``, which commits a DECLINED row of its own (the record a later retry
        answers from), a decline here leaves the caller's transaction to roll back, this
        payment with it: the in-process monolith (``bookstore.monolith``) charges this way,
        in the one transaction of its order. No idempotency check either: that transaction
        is new, and its order id too.
        """
        row = self._new_charge(order_id, user_id, amount_cents)
        payment = row.to_domain()
        if payment.status is PaymentStatus.DECLINED:
            raise declined(payment)
        session.add(row)
        session.flush()
        return payment

    def refund(self, order_id: str) -> tuple[Payment, bool]:
        """Return the money once; refunding an uncharged order voids it. Returns (payment, refunded_now)."""
        with self._sessions.begin() as session:
            row = session.execute(
                select(PaymentRow).where(PaymentRow.order_id == order_id).with_for_update()
            ).scalar_one_or_none()
            if row is not None and row.status == PaymentStatus.CHARGED.value:
                row.status = PaymentStatus.REFUNDED.value
                row.updated_at_unix = int(time.time())
                return row.to_domain(), True
            if row is not None:
                return row.to_domain(), False
        voided = self._insert_once(order_id, lambda: self._new_row(order_id, "", 0, PaymentStatus.VOIDED, ""))
        return voided, False

    def get(self, order_id: str) -> Payment:
        with self._sessions() as session:
            row = session.get(PaymentRow, order_id)
            if row is None:
                raise NotFound(f"no payment for order {order_id}", field="order_id")
            return row.to_domain()

    def _new_charge(self, order_id: str, user_id: str, amount_cents: int) -> PaymentRow:
        decision = self._provider.charge(amount_cents)
        status = PaymentStatus.CHARGED if decision.approved else PaymentStatus.DECLINED
        return self._new_row(order_id, user_id, amount_cents, status, decision.reason)

    @staticmethod
    def _new_row(order_id: str, user_id: str, amount: int, status: PaymentStatus, reason: str) -> PaymentRow:
        return PaymentRow(
            order_id=order_id,
            payment_id=str(uuid.uuid4()),
            user_id=user_id,
            amount_cents=amount,
            status=status.value,
            reason=reason,
            updated_at_unix=int(time.time()),
        )

    def _insert_once(self, order_id: str, make_row: Callable[[], PaymentRow]) -> Payment:
        """Insert the row built by ``make_row`` unless one exists; return whichever row wins."""
        for _ in range(3):
            try:
                with self._sessions.begin() as session:
                    existing = session.get(PaymentRow, order_id, with_for_update=True)
                    if existing is not None:
                        return existing.to_domain()
                    row = make_row()
                    session.add(row)
                    session.flush()
                    return row.to_domain()
            except IntegrityError:
                continue  # a concurrent call for the same order inserted first: read its row
        raise RuntimeError(f"could not settle the payment row for order {order_id}")
