"""Placing an order in the monolith: four modules, one local ACID transaction.

The steps are the services' steps, in the same order, with the same rules::

    validate -> replay? -> BEGIN -> price (catalog) -> reserve (inventory)
             -> charge (payment) -> store APPROVED (orders) -> COMMIT

Every step after ``BEGIN`` works inside one database transaction (each store's ``*_in``
method). Any refusal (a book that does not exist, stock short, a card declined) raises a
domain error, and leaving the ``with`` block rolls the transaction back: the stock taken a
moment before is back, no payment row exists, no order row either. Nothing to compensate,
no PENDING state that someone must settle after a crash: if the process dies before the
commit, the database discards the transaction when it recovers. This is the "local ACID
transaction" of Phase 1 that the services give up (week 7 rebuilds it as a saga).

What it costs: the transaction holds its locks for the whole order. On SQLite that is the
one write lock of the file (``BEGIN IMMEDIATE``), so orders commit one at a time (they queue
on ``Modules.writers``, a lock in this process, rather than in SQLite's busy handler); on
MySQL/MariaDB the rows of the books ordered, locked in ascending id order so that two orders
cannot deadlock. A transient lock error (a deadlock victim, a lock wait timeout) re-runs the
whole order, as a unit, which is safe precisely because nothing of it was kept.

Idempotency: a replayed ``request_id`` returns the user's first order before any work. Two
requests with the same ``request_id`` racing past that check both do the work, but only one
can insert the order (the unique key): the loser's whole transaction rolls back, its stock
and its charge with it, and it answers with the winner's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy.exc import IntegrityError

from bookstore.domain.commands import PlaceOrder
from bookstore.domain.models import Order, OrderItem, OrderStatus, StockItem
from bookstore.monolith.modules import Modules
from bookstore.platform.database import retry_on_lock
from bookstore.services.order.flow import ValidOrderRequest, new_order, validate_order_request, with_prices


def place_order(modules: Modules, user_id: str, items: Sequence[OrderItem], request_id: str = "") -> Order:
    """The order APPROVED and committed, or a domain error with nothing written.

    Raises InvalidArgument (a bad request), NotFound (an unknown book) or FailedPrecondition
    (stock short, payment declined); the message names the field, as the services' do.
    """
    valid = validate_order_request(PlaceOrder.of(user_id, items, request_id))
    if valid.request_id:
        known = modules.orders.find_by_request(valid.user_id, valid.request_id)
        if known is not None:
            return known
    try:
        return cast(Order, retry_on_lock(lambda: _place_in_one_transaction(modules, valid)))
    except IntegrityError:
        winner = modules.orders.find_by_request(valid.user_id, valid.request_id) if valid.request_id else None
        if winner is None:
            raise
        return winner


def _place_in_one_transaction(modules: Modules, valid: ValidOrderRequest) -> Order:
    with modules.writers, modules.transactions.begin() as session:
        books = modules.catalog.find_in(session, [item.book_id for item in valid.items])
        priced = with_prices(valid.items, {book_id: book.price_cents for book_id, book in books.items()})
        order = new_order(valid, priced, OrderStatus.APPROVED)
        stock = [StockItem(book_id=item.book_id, quantity=item.quantity) for item in order.items]
        modules.inventory.reserve_in(session, order.order_id, stock)
        if order.total_cents:  # payment refuses a zero amount; the services skip it too
            modules.payment.charge_in(session, order.order_id, order.user_id, order.total_cents)
        return modules.orders.add_in(session, order)
