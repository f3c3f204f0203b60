"""Choreography: the order saga with no conductor, each service reacting to the others' events.

**What.** Week 7's saga is *orchestrated*: the order service calls inventory, then payment, and
when payment fails it calls inventory again to release the stock; one place knows the whole
flow and records it in its saga log. Here the same saga is *choreographed*: nobody calls
anybody. Each participant owns its database and a queue bound to the event types it cares
about, reacts to an event with one local transaction, and states the outcome as a new event::

    order     --order.placed-->     inventory reserves  --stock.reserved-->  payment charges
    payment   --payment.charged-->  order approves
    payment   --payment.failed-->   inventory releases (the compensation)  --stock.released-->
                                    order rejects
    inventory --stock.refused-->    order rejects

The compensation is an event like any other: ``payment.failed`` concerns inventory (it releases
what it reserved) and order (it rejects); payment knows neither of them.

**Built from the week's reliable parts.** A choreography is only as reliable as each hop. Each
participant reads with the ``Consumer`` (each event applied once: the dedupe row commits with
the work) and announces through its own outbox, *in the same transaction* as its state change
(``add_event``), published by an ``OutboxRelay``. So a participant that dies between changing
its state and announcing it loses nothing: the announcement is a row that commits or not with
the change. Compensations are idempotent (a reservation released once stays released), because
a relay may publish an event twice with a new delivery, and a buggy publisher with a new id.

**What it costs.** No single place holds the flow: to learn where an order stands, ask every
participant, or watch the events go by. The rule "release the stock when the payment fails"
lives in inventory's handler, far from the payment that fails; adding a step changes the
services that must react to it; and while the events travel, the participants disagree
(stock reserved, order still PENDING). Orchestrate when a caller waits for the outcome (the
bookstore's checkout does); choreograph the follow-ups nobody waits for.

**A partition, and the choice it forces (CAP).** ``cut_off("payment")`` stops payment's
consumer: payment is cut off from the broker, its events wait in its queue, and ``heal``
reconnects it. While a participant the order needs (inventory, payment) is cut off, the order
service must choose, and ``on_partition`` is that choice, made in this one place:

* ``OnPartition.REFUSE`` (consistency): ``place_order`` raises ``OrderRefused`` and writes
  nothing. Every order it did accept can be settled now, so no customer waits on an answer
  nobody can give; the price is that nobody can buy.
* ``OnPartition.ACCEPT`` (availability, the default): the order is stored PENDING and its
  event waits in the queues; it settles when the partition heals. Every customer can buy; the
  price is that for as long as the partition lasts, the order's status says nothing final.

The order service learns of the partition from the broker: a queue with no consumer attached
(``reachable``). That is a *detector*, and like every detector it can be late: a consumer whose
network died without closing its connection counts as attached until the broker's heartbeat
gives up on it (a minute by default). In that window even REFUSE accepts, and the order waits.

This is a teaching model: one process, a SQLite database per participant, threads for the
consumers and relays; the bookstore's services are separate processes and orchestrate.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from sqlalchemy import Boolean, Engine, Integer, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bookstore.messaging.broker import connect
from bookstore.messaging.consumer import Consumer, Handler
from bookstore.messaging.events import Event
from bookstore.messaging.outbox import Outbox, OutboxRelay, add_event
from bookstore.messaging.publisher import Publisher
from bookstore.messaging.topology import Topology
from bookstore.platform.database import initialize, make_engine, read_session_factory, session_factory

ORDER_PLACED = "order.placed"
STOCK_RESERVED = "stock.reserved"
STOCK_REFUSED = "stock.refused"
PAYMENT_CHARGED = "payment.charged"
PAYMENT_FAILED = "payment.failed"
STOCK_RELEASED = "stock.released"

# participant -> the event types its queue is bound to: the only place the flow is written down
SUBSCRIPTIONS: Mapping[str, tuple[str, ...]] = {
    "inventory": (ORDER_PLACED, PAYMENT_FAILED),
    "payment": (STOCK_RESERVED,),
    "order": (STOCK_REFUSED, PAYMENT_CHARGED, PAYMENT_FAILED),
}

PENDING, APPROVED, REJECTED = "PENDING", "APPROVED", "REJECTED"

# The participants an order cannot settle without: the order service's own dependencies.
ORDER_NEEDS = ("inventory", "payment")


class OnPartition(enum.StrEnum):
    """What the order service does with a new order while a participant it needs is cut off."""

    REFUSE = "refuse"  # consistency: no answer we cannot stand by; nobody can buy
    ACCEPT = "accept"  # availability: PENDING now, settled after the partition heals


class OrderRefused(Exception):
    """``place_order`` under ``OnPartition.REFUSE`` while a needed participant is cut off; nothing written."""

    def __init__(self, order_id: str, cut_off: list[str]) -> None:
        super().__init__(f"order {order_id} refused: {', '.join(cut_off)} cut off from the broker")
        self.order_id = order_id
        self.cut_off = cut_off


class OrderBase(DeclarativeBase):
    pass


class OrderRow(OrderBase):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")


class InventoryBase(DeclarativeBase):
    pass


class StockRow(InventoryBase):
    __tablename__ = "stock"

    book_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    available: Mapped[int] = mapped_column(Integer)


class ReservationRow(InventoryBase):
    __tablename__ = "reservations"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    book_id: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    released: Mapped[bool] = mapped_column(Boolean, default=False)


class PaymentBase(DeclarativeBase):
    pass


class ChargeRow(PaymentBase):
    __tablename__ = "charges"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    charged: Mapped[bool] = mapped_column(Boolean)


def _announce(session: Session, event_type: str, order_id: str, **data: object) -> None:
    """Stage the next event in this participant's outbox: it goes out only if the work commits."""
    add_event(session, Event(event_type, {"order_id": order_id, **data}, correlation_id=order_id))


def inventory(event: Event, session: Session) -> None:
    """Reserve on ``order.placed``; release on ``payment.failed`` (the compensation, idempotent)."""
    order_id = str(event.data["order_id"])
    if event.type == ORDER_PLACED:
        book_id, quantity = int(event.data["book_id"]), int(event.data["quantity"])
        stock = session.get(StockRow, book_id)
        if stock is None or stock.available < quantity:
            _announce(session, STOCK_REFUSED, order_id, reason=f"book {book_id}: not enough stock")
            return
        stock.available -= quantity
        session.add(ReservationRow(order_id=order_id, book_id=book_id, quantity=quantity, released=False))
        _announce(session, STOCK_RESERVED, order_id, amount_cents=int(event.data["amount_cents"]))
    elif event.type == PAYMENT_FAILED:
        reservation = session.get(ReservationRow, order_id)
        if reservation is None or reservation.released:
            return  # nothing reserved, or released before: undoing twice must change nothing
        reservation.released = True
        stock = session.get(StockRow, reservation.book_id)
        assert stock is not None, "a reservation always has its stock row"
        stock.available += reservation.quantity
        _announce(session, STOCK_RELEASED, order_id, book_id=reservation.book_id)


@dataclass(frozen=True)
class Payment:
    """Charge on ``stock.reserved``; a charge above ``card_limit_cents`` is declined."""

    card_limit_cents: int

    def __call__(self, event: Event, session: Session) -> None:
        order_id, amount = str(event.data["order_id"]), int(event.data["amount_cents"])
        charged = amount <= self.card_limit_cents
        session.add(ChargeRow(order_id=order_id, amount_cents=amount, charged=charged))
        if charged:
            _announce(session, PAYMENT_CHARGED, order_id)
        else:
            _announce(session, PAYMENT_FAILED, order_id, reason=f"card declined: {amount} cents")


def order(event: Event, session: Session) -> None:
    """Settle the order: approved on ``payment.charged``, rejected (with the reason) otherwise."""
    row = session.get(OrderRow, str(event.data["order_id"]))
    if row is None or row.status != PENDING:
        return  # settled before (a second failure event for the same order changes nothing)
    row.status = APPROVED if event.type == PAYMENT_CHARGED else REJECTED
    row.reason = str(event.data.get("reason", ""))


@dataclass
class Participant:
    """One service of the choreography: its database, the consumer of its queue, its outbox relay."""

    name: str
    engine: Engine
    consumer: Consumer
    relay: OutboxRelay


class Choreography:
    """Inventory, payment and order reacting to each other's events on ``topology``'s exchange.

    Each participant has its own SQLite database in ``directory``. ``stock`` seeds inventory
    (book id -> copies available). Use as a context manager: it starts every consumer and relay,
    and stops them (the queues go with the topology).
    """

    def __init__(
        self,
        url: str,
        topology: Topology,
        directory: Path,
        *,
        stock: Mapping[int, int],
        card_limit_cents: int = 10_000,
        on_partition: OnPartition = OnPartition.ACCEPT,
    ) -> None:
        self.url = url
        self.on_partition = OnPartition(on_partition)
        self._broker: BlockingConnection | None = None  # the order service's line to ask the broker
        self._detector: BlockingChannel | None = None
        self._broker_lock = threading.Lock()
        handlers: dict[str, tuple[Handler, type[DeclarativeBase]]] = {
            "inventory": (inventory, InventoryBase),
            "payment": (Payment(card_limit_cents), PaymentBase),
            "order": (order, OrderBase),
        }
        self.participants: dict[str, Participant] = {}
        with connect(url, f"{topology.prefix}choreography-declare") as connection:
            channel = connection.channel()
            topology.declare(channel)
            for name, (handler, base) in handlers.items():
                queue = topology.declare_queue_for(channel, f"choreography.{name}", SUBSCRIPTIONS[name])
                engine = make_engine(f"sqlite:///{directory / name}.db")
                initialize(engine, base.metadata)
                consumer = Consumer(
                    url,
                    queue,
                    handler,
                    engine=engine,
                    name=name,
                    dead_letter_exchange=topology.dead_letter_exchange,
                )
                relay = OutboxRelay(
                    Outbox(engine),
                    partial(Publisher, url, topology, name=f"choreography-{name}", declare=False),
                    exchange=topology.exchange,
                )
                self.participants[name] = Participant(name, engine, consumer, relay)
        with session_factory(self.participants["inventory"].engine).begin() as session:
            session.add_all(StockRow(book_id=book, available=copies) for book, copies in stock.items())

    def __enter__(self) -> Choreography:
        for participant in self.participants.values():
            participant.relay.start()
            participant.consumer.start()
        for participant in self.participants.values():
            participant.consumer.wait_consuming()
        return self

    def __exit__(self, *_exc: object) -> None:
        for participant in self.participants.values():
            participant.consumer.stop()
            participant.relay.stop()
            participant.engine.dispose()
        with self._broker_lock:
            if self._broker is not None and self._broker.is_open:
                self._broker.close()
            self._broker = None

    def cut_off(self, name: str) -> None:
        """Partition participant ``name`` from the broker: its consumer disconnects, its events wait."""
        self.participants[name].consumer.stop()

    def heal(self, name: str) -> None:
        """End the partition: ``name``'s consumer reconnects and works through what waited."""
        consumer = self.participants[name].consumer
        consumer.start()
        if not consumer.wait_consuming():
            raise TimeoutError(f"{name} did not reconnect to the broker")

    def reachable(self, name: str) -> bool:
        """Whether the broker has a consumer attached to ``name``'s queue right now."""
        queue = self.participants[name].consumer.queue
        with self._broker_lock:
            for attempt in (1, 2):  # an idle line may have been dropped: one fresh try
                try:
                    if self._broker is None or not self._broker.is_open:
                        self._broker = connect(self.url, "choreography-order-detector")
                        self._detector = self._broker.channel()
                    assert self._detector is not None
                    declared = self._detector.queue_declare(queue, passive=True)
                    return int(declared.method.consumer_count) > 0
                except pika.exceptions.AMQPConnectionError:
                    self._broker = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def place_order(self, order_id: str, book_id: int, quantity: int, amount_cents: int) -> None:
        """The order service's whole part: a PENDING order and ``order.placed``, in one transaction.

        Under ``OnPartition.REFUSE`` it first asks the broker whether inventory and payment are
        attached, and raises ``OrderRefused`` (nothing written) when one is not.
        """
        if self.on_partition is OnPartition.REFUSE:
            missing = [name for name in ORDER_NEEDS if not self.reachable(name)]
            if missing:
                raise OrderRefused(order_id, missing)
        with session_factory(self.participants["order"].engine).begin() as session:
            session.add(OrderRow(order_id=order_id, status=PENDING, reason=""))
            _announce(
                session, ORDER_PLACED, order_id, book_id=book_id, quantity=quantity, amount_cents=amount_cents
            )
        self.participants["order"].relay.wake()

    def order_status(self, order_id: str) -> tuple[str, str]:
        """(status, reason) as the order service sees it now."""
        with read_session_factory(self.participants["order"].engine)() as session:
            row = session.get(OrderRow, order_id)
            return (row.status, row.reason) if row else ("UNKNOWN", "")

    def order_counts(self) -> Counter[str]:
        """Orders per status, as the order service sees them now (the customers' view)."""
        with read_session_factory(self.participants["order"].engine)() as session:
            rows = session.execute(select(OrderRow.status, func.count()).group_by(OrderRow.status))
            return Counter({status: int(n) for status, n in rows})

    def charged(self) -> int:
        """Orders whose card payment charged, as payment sees them now."""
        with read_session_factory(self.participants["payment"].engine)() as session:
            return int(session.scalar(select(func.count()).where(ChargeRow.charged.is_(True))) or 0)

    def available(self, book_id: int) -> int:
        """Copies of ``book_id`` available, as inventory sees it now."""
        with read_session_factory(self.participants["inventory"].engine)() as session:
            row = session.get(StockRow, book_id)
            return row.available if row else 0
