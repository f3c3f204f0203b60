"""OrderStore against SQLite and, when it answers, the MariaDB on 127.0.0.1:3306."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bookstore.domain.errors import FailedPrecondition, NotFound
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.services.order.store import MAX_REASON_CHARS, OrderRow, OrderStore

START_NS = 1_700_000_000 * 1_000_000_000


class FakeClock:
    """Nanoseconds since the epoch, moving ``step_ns`` on every reading: no sleeping in tests."""

    def __init__(self, step_ns: int = 1_000_000) -> None:
        self.now_ns = START_NS
        self.step_ns = step_ns

    def __call__(self) -> int:
        self.now_ns += self.step_ns
        return self.now_ns


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(engine: Engine, clock: FakeClock) -> OrderStore:
    return OrderStore(engine, clock_ns=clock)


def new_id() -> str:
    return str(uuid.uuid4())


def draft(user_id: str, *, request_id: str = "", items: tuple[OrderItem, ...] | None = None) -> Order:
    items = items or (OrderItem(3, 1, 4000), OrderItem(1, 2, 1250))
    return Order(
        order_id=new_id(),
        user_id=user_id,
        items=items,
        status=OrderStatus.PENDING,
        created_at_unix=0,
        request_id=request_id,
        total_cents=Order.total_of(items),
    )


def count_orders(engine: Engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(OrderRow)).scalar_one()


# create_pending and get


def test_a_new_order_is_stored_pending_with_its_items_in_the_order_given(store: OrderStore) -> None:
    order = draft(new_id())
    stored = store.create_pending(order)
    assert stored.status is OrderStatus.PENDING
    assert stored.items == (OrderItem(3, 1, 4000), OrderItem(1, 2, 1250))
    assert stored.total_cents == 6500
    assert store.get(order.order_id) == stored


def test_the_store_stamps_the_creation_time_from_its_clock(store: OrderStore, clock: FakeClock) -> None:
    stored = store.create_pending(draft(new_id()))
    assert stored.created_at_unix == clock.now_ns // 1_000_000_000


def test_a_taken_request_id_returns_the_existing_order_and_writes_nothing(
    store: OrderStore, engine: Engine
) -> None:
    user = new_id()
    first = store.create_pending(draft(user, request_id="checkout-1"))
    store.mark(first.order_id, OrderStatus.APPROVED)
    again = store.create_pending(draft(user, request_id="checkout-1", items=(OrderItem(2, 5, 899),)))
    assert again.order_id == first.order_id
    assert again.status is OrderStatus.APPROVED
    assert again.request_id == "checkout-1"
    assert count_orders(engine) == 1
    assert store.find_by_request(user, "checkout-1") == again


def test_the_same_request_id_from_two_users_makes_two_orders(store: OrderStore) -> None:
    mine = store.create_pending(draft(new_id(), request_id="checkout-1"))
    theirs = store.create_pending(draft(new_id(), request_id="checkout-1"))
    assert mine.order_id != theirs.order_id


def test_orders_without_a_request_id_never_collide(store: OrderStore, engine: Engine) -> None:
    user = new_id()
    for _ in range(3):
        store.create_pending(draft(user))
    assert count_orders(engine) == 3
    assert store.find_by_request(user, "") is None


def test_losing_the_insert_race_on_a_request_id_returns_the_winners_order(
    store: OrderStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = new_id()
    winner = store.create_pending(draft(user, request_id="checkout-1"))
    # Replay the race: the loser's check ran before the winner committed, so it saw nothing.
    real_find = OrderStore._find_request
    lookups: list[OrderRow | None] = []

    def find_after_one_miss(session: Session, user_id: str, request_id: str) -> OrderRow | None:
        found = real_find(session, user_id, request_id) if lookups else None
        lookups.append(found)
        return found

    monkeypatch.setattr(OrderStore, "_find_request", staticmethod(find_after_one_miss))
    loser = store.create_pending(draft(user, request_id="checkout-1"))
    assert loser == winner
    assert len(lookups) == 2  # the insert hit the unique key, and the retry found the winner
    assert count_orders(engine) == 1


# mark


def test_marking_a_pending_order_sets_its_final_status_and_reason(store: OrderStore) -> None:
    order = store.create_pending(draft(new_id()))
    rejected = store.mark(order.order_id, OrderStatus.REJECTED, "out of stock: book 3")
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.reason == "out of stock: book 3"
    assert store.get(order.order_id) == rejected


def test_repeating_a_final_status_changes_nothing(store: OrderStore) -> None:
    order = store.create_pending(draft(new_id()))
    first = store.mark(order.order_id, OrderStatus.REJECTED, "first reason")
    assert store.mark(order.order_id, OrderStatus.REJECTED, "second reason") == first


def test_a_final_order_refuses_another_status_naming_order_id(store: OrderStore) -> None:
    order = store.create_pending(draft(new_id()))
    store.mark(order.order_id, OrderStatus.APPROVED)
    with pytest.raises(FailedPrecondition) as error:
        store.mark(order.order_id, OrderStatus.REJECTED, "too late")
    assert error.value.field == "order_id"
    assert store.get(order.order_id).status is OrderStatus.APPROVED


def test_a_long_reason_is_cut_to_fit_its_column(store: OrderStore) -> None:
    order = store.create_pending(draft(new_id()))
    marked = store.mark(order.order_id, OrderStatus.REJECTED, "x" * (MAX_REASON_CHARS + 50))
    assert len(marked.reason) == MAX_REASON_CHARS


def test_an_unknown_order_is_not_found_naming_order_id(store: OrderStore) -> None:
    unknown = new_id()
    for action in (lambda: store.get(unknown), lambda: store.mark(unknown, OrderStatus.APPROVED)):
        with pytest.raises(NotFound) as error:
            action()
        assert error.value.field == "order_id"


# list_for_user


def test_a_users_orders_list_newest_first_page_by_page_with_the_total(store: OrderStore) -> None:
    user = new_id()
    created = [store.create_pending(draft(user)).order_id for _ in range(5)]
    store.create_pending(draft(new_id()))  # someone else's order never shows
    first_page, total = store.list_for_user(user, 0, 2)
    second_page, _ = store.list_for_user(user, 2, 2)
    last_page, _ = store.list_for_user(user, 4, 2)
    assert total == 5
    listed = [order.order_id for order in [*first_page, *second_page, *last_page]]
    assert listed == list(reversed(created))
    assert all(len(order.items) == 2 for order in first_page)


def test_orders_placed_within_one_second_still_list_newest_first(engine: Engine) -> None:
    store = OrderStore(engine, clock_ns=FakeClock(step_ns=1000))
    user = new_id()
    created = [store.create_pending(draft(user)) for _ in range(3)]
    assert len({order.created_at_unix for order in created}) == 1
    listed, _ = store.list_for_user(user, 0, 10)
    assert [order.order_id for order in listed] == [order.order_id for order in reversed(created)]


def test_a_user_without_orders_gets_an_empty_page(store: OrderStore) -> None:
    assert store.list_for_user(new_id(), 0, 20) == ([], 0)
