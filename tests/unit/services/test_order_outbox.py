"""The order store's outbox: an event per order change, in the same transaction, relayed in order."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine

from bookstore.domain.errors import FailedPrecondition
from bookstore.domain.models import OrderStatus
from bookstore.messaging.events import Event
from bookstore.messaging.outbox import Outbox, OutboxRelay, add_event
from bookstore.platform.database import session_factory
from bookstore.services.order.store import OrderStore

from .test_order_store import draft


class RecordingPublisher:
    """Publishes into a list; fails the next ``fail_next`` calls as a broker outage would."""

    def __init__(self) -> None:
        self.published: list[Event] = []
        self.headers: list[Mapping[str, Any]] = []
        self.fail_next = 0
        self.closed = 0

    def publish(self, events: Sequence[Event], headers: Sequence[Mapping[str, Any]] | None = None) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("broker unreachable")
        self.published.extend(events)
        self.headers.extend(headers or [{} for _ in events])

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def store(engine: Engine) -> OrderStore:
    return OrderStore(engine)


def test_creating_and_settling_an_order_stages_one_event_each_in_order(
    store: OrderStore, engine: Engine
) -> None:
    order = store.create_pending(draft("u1"))
    store.mark(order.order_id, OrderStatus.APPROVED)

    pending = Outbox(engine).pending()

    assert [p.event.type for p in pending] == ["order.created", "order.approved"]
    assert {p.event.correlation_id for p in pending} == {order.order_id}
    assert pending[1].event.data["status"] == "APPROVED"
    assert pending[1].event.data["items"] == [
        {"book_id": 3, "quantity": 1, "unit_price_cents": 4000},
        {"book_id": 1, "quantity": 2, "unit_price_cents": 1250},
    ]
    assert len({p.event.message_id for p in pending}) == 2


def test_a_rejection_event_carries_the_reason(store: OrderStore, engine: Engine) -> None:
    order = store.create_pending(draft("u1"))
    store.mark(order.order_id, OrderStatus.REJECTED, "out of stock: book 3")

    rejected = Outbox(engine).pending()[-1].event

    assert rejected.type == "order.rejected" and rejected.data["reason"] == "out of stock: book 3"


def test_replays_and_refused_changes_stage_no_event(store: OrderStore, engine: Engine) -> None:
    order = store.create_pending(draft("u1", request_id="basket-1"))
    store.create_pending(draft("u1", request_id="basket-1"))  # a replay returns the first order
    store.mark(order.order_id, OrderStatus.APPROVED)
    store.mark(order.order_id, OrderStatus.APPROVED)  # repeating a final status is a no-op
    with pytest.raises(FailedPrecondition):
        store.mark(order.order_id, OrderStatus.REJECTED)

    assert [p.event.type for p in Outbox(engine).pending()] == ["order.created", "order.approved"]


def test_an_event_is_staged_only_if_its_transaction_commits(engine: Engine) -> None:
    outbox = Outbox(engine)
    sessions = session_factory(engine)
    with pytest.raises(RuntimeError), sessions.begin() as session:
        add_event(session, Event("order.created", {"order_id": "x"}))
        raise RuntimeError("the order change failed")

    assert outbox.pending() == []


def test_the_store_calls_on_event_after_each_commit_that_staged_one(engine: Engine) -> None:
    woken: list[int] = []
    store = OrderStore(engine, on_event=lambda: woken.append(1))
    order = store.create_pending(draft("u1"))
    store.mark(order.order_id, OrderStatus.APPROVED)
    assert len(woken) == 2


def test_the_relay_publishes_oldest_first_and_marks_what_the_broker_confirmed(
    store: OrderStore, engine: Engine
) -> None:
    orders = [store.create_pending(draft(f"u{i}")) for i in range(3)]
    publisher = RecordingPublisher()
    relay = OutboxRelay(Outbox(engine), lambda: publisher, batch=2)

    assert relay.relay_once() == 2
    assert relay.relay_once() == 1
    assert relay.relay_once() == 0

    assert [e.correlation_id for e in publisher.published] == [o.order_id for o in orders]
    assert Outbox(engine).backlog() == 0


def test_a_failed_publish_leaves_the_events_waiting_and_the_next_try_sends_them_in_order(
    store: OrderStore, engine: Engine
) -> None:
    first, second = store.create_pending(draft("u1")), store.create_pending(draft("u2"))
    publisher = RecordingPublisher()
    publisher.fail_next = 1
    relay = OutboxRelay(Outbox(engine), lambda: publisher)

    with pytest.raises(ConnectionError):
        relay.relay_once()
    assert Outbox(engine).backlog() == 2

    relay.relay_once()
    assert [e.correlation_id for e in publisher.published] == [first.order_id, second.order_id]
    assert Outbox(engine).backlog() == 0


def test_a_relay_that_died_before_marking_publishes_the_same_message_ids_again(
    store: OrderStore, engine: Engine
) -> None:
    store.create_pending(draft("u1"))
    outbox = Outbox(engine)
    publisher = RecordingPublisher()
    crashing = OutboxRelay(outbox, lambda: publisher)
    # The crash: the broker confirmed, but the rows were never marked published.
    original_mark, outbox.mark_published = outbox.mark_published, lambda ids: None  # type: ignore[method-assign]
    crashing.relay_once()
    outbox.mark_published = original_mark  # type: ignore[method-assign]

    OutboxRelay(outbox, lambda: publisher).relay_once()

    first, again = publisher.published
    assert first.message_id == again.message_id  # so the consumers' dedupe recognises it


def test_the_background_relay_catches_up_after_an_outage(store: OrderStore, engine: Engine) -> None:
    publisher = RecordingPublisher()
    publisher.fail_next = 2
    relay = OutboxRelay(Outbox(engine), lambda: publisher, poll_s=0.01, max_backoff_s=0.02)
    store.on_event = relay.wake
    relay.start()
    try:
        orders = [store.create_pending(draft(f"u{i}")) for i in range(5)]
        outbox = Outbox(engine)
        deadline = time.monotonic() + 10
        while outbox.backlog() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        relay.stop()
    assert [e.correlation_id for e in publisher.published] == [o.order_id for o in orders]
    assert relay.failures == 2
    assert publisher.closed >= 2  # a failed publisher is dropped, and a new one made
