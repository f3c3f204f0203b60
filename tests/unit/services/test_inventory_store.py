"""InventoryStore against SQLite and, when it answers, the MariaDB on 127.0.0.1:3306."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from bookstore.domain.errors import BookstoreError, FailedPrecondition, NotFound
from bookstore.domain.models import ReservationStatus, StockItem
from bookstore.services.inventory.store import (
    DEFAULT_INITIAL_STOCK,
    INITIAL_STOCK_ENV,
    InventoryStore,
    ReservationRow,
    initial_stock_from_env,
)

BOOKS = 10
STOCK = 100


@pytest.fixture
def store(engine: Engine) -> InventoryStore:
    return InventoryStore(engine, initial_stock=STOCK, book_count=BOOKS)


def new_order() -> str:
    return str(uuid.uuid4())


def items(*pairs: tuple[int, int]) -> tuple[StockItem, ...]:
    return tuple(StockItem(book_id=book_id, quantity=quantity) for book_id, quantity in pairs)


# Seeding


def test_an_empty_database_is_seeded_with_every_catalog_book(engine: Engine) -> None:
    from bookstore.services.catalog.books import BOOKS as CATALOG

    store = InventoryStore(engine, initial_stock=7)
    assert store.get_stock(1) == 7
    assert store.get_stock(len(CATALOG)) == 7
    with pytest.raises(NotFound):
        store.get_stock(len(CATALOG) + 1)


def test_the_initial_stock_comes_from_the_environment(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INITIAL_STOCK_ENV, "12")
    store = InventoryStore(engine, book_count=3)
    assert [store.get_stock(book_id) for book_id in (1, 2, 3)] == [12, 12, 12]


def test_the_initial_stock_defaults_to_one_hundred_and_rejects_nonsense() -> None:
    assert initial_stock_from_env({}) == DEFAULT_INITIAL_STOCK == 100
    with pytest.raises(ValueError, match=INITIAL_STOCK_ENV):
        initial_stock_from_env({INITIAL_STOCK_ENV: "lots"})
    with pytest.raises(ValueError, match=INITIAL_STOCK_ENV):
        initial_stock_from_env({INITIAL_STOCK_ENV: "-1"})


def test_a_second_start_does_not_reseed_a_database_that_has_stock(engine: Engine) -> None:
    InventoryStore(engine, initial_stock=STOCK, book_count=BOOKS).set_stock(1, 3)
    again = InventoryStore(engine, initial_stock=999, book_count=BOOKS + 5)
    assert again.get_stock(1) == 3
    with pytest.raises(NotFound):
        again.get_stock(BOOKS + 1)


# GetStock and SetStock


def test_stock_of_an_unstocked_book_is_not_found_naming_book_id(store: InventoryStore) -> None:
    with pytest.raises(NotFound) as error:
        store.get_stock(BOOKS + 1)
    assert error.value.field == "book_id"
    assert str(BOOKS + 1) in error.value.message


def test_set_stock_overwrites_the_level_of_a_stocked_book(store: InventoryStore) -> None:
    assert store.set_stock(4, 0) == 0
    assert store.get_stock(4) == 0
    assert store.set_stock(4, 250) == 250
    assert store.get_stock(4) == 250


def test_set_stock_of_an_unstocked_book_is_not_found(store: InventoryStore) -> None:
    with pytest.raises(NotFound) as error:
        store.set_stock(BOOKS + 1, 5)
    assert error.value.field == "book_id"


# ReserveStock


def test_a_reservation_takes_every_item_from_stock(store: InventoryStore) -> None:
    order = new_order()
    reservation = store.reserve(order, items((3, 2), (1, 5)))
    assert reservation.status is ReservationStatus.RESERVED
    assert reservation.items == items((3, 2), (1, 5))
    assert (store.get_stock(1), store.get_stock(3)) == (STOCK - 5, STOCK - 2)
    assert store.reservation(order) == reservation


def test_a_short_item_fails_the_whole_reservation_naming_the_item_and_what_is_left(
    store: InventoryStore,
) -> None:
    store.set_stock(7, 3)
    order = new_order()
    with pytest.raises(FailedPrecondition) as error:
        store.reserve(order, items((2, 1), (7, 5)))
    assert str(error.value) == "items[1].quantity: only 3 left of book 7, asked for 5"
    assert (store.get_stock(2), store.get_stock(7)) == (STOCK, 3)


def test_a_failed_reservation_writes_nothing_so_the_order_can_try_again(store: InventoryStore) -> None:
    store.set_stock(7, 3)
    order = new_order()
    with pytest.raises(FailedPrecondition):
        store.reserve(order, items((7, 5), (2, 1)))
    with pytest.raises(NotFound):
        store.reservation(order)
    store.set_stock(7, 5)
    assert store.reserve(order, items((7, 5), (2, 1))).status is ReservationStatus.RESERVED
    assert store.get_stock(7) == 0


def test_an_unstocked_book_fails_the_reservation_naming_its_item(store: InventoryStore) -> None:
    order = new_order()
    with pytest.raises(NotFound) as error:
        store.reserve(order, items((1, 1), (BOOKS + 1, 1)))
    assert error.value.field == "items[1].book_id"
    assert store.get_stock(1) == STOCK


def test_a_repeat_with_the_same_items_returns_the_first_result_and_changes_nothing(
    store: InventoryStore,
) -> None:
    order = new_order()
    first = store.reserve(order, items((1, 2), (2, 3)))
    again = store.reserve(order, items((2, 3), (1, 2)))
    assert again == first
    assert (store.get_stock(1), store.get_stock(2)) == (STOCK - 2, STOCK - 3)


def test_a_repeat_still_succeeds_after_the_stock_ran_out(store: InventoryStore) -> None:
    order = new_order()
    first = store.reserve(order, items((5, 4)))
    store.set_stock(5, 0)
    assert store.reserve(order, items((5, 4))) == first


def test_a_repeat_with_other_items_is_refused_naming_order_id(store: InventoryStore) -> None:
    order = new_order()
    store.reserve(order, items((1, 2)))
    with pytest.raises(FailedPrecondition) as error:
        store.reserve(order, items((1, 3)))
    assert error.value.field == "order_id"
    assert store.get_stock(1) == STOCK - 2


def test_a_released_order_cannot_reserve_again(store: InventoryStore) -> None:
    order = new_order()
    store.reserve(order, items((1, 2)))
    store.release(order)
    with pytest.raises(FailedPrecondition, match="was released") as error:
        store.reserve(order, items((1, 2)))
    assert error.value.field == "order_id"
    assert store.get_stock(1) == STOCK


# ReleaseStock


def test_a_release_puts_the_items_back_once(store: InventoryStore) -> None:
    order = new_order()
    store.reserve(order, items((1, 2), (2, 3)))
    reservation, released_now = store.release(order)
    assert (reservation.status, released_now) == (ReservationStatus.RELEASED, True)
    reservation, released_now = store.release(order)
    assert (reservation.status, released_now) == (ReservationStatus.RELEASED, False)
    assert (store.get_stock(1), store.get_stock(2)) == (STOCK, STOCK)


def test_a_release_before_any_reserve_leaves_a_tombstone_that_bars_the_late_reserve(
    store: InventoryStore,
) -> None:
    order = new_order()
    reservation, released_now = store.release(order)
    assert (reservation.status, reservation.items, released_now) == (ReservationStatus.RELEASED, (), False)
    with pytest.raises(FailedPrecondition, match="was released"):
        store.reserve(order, items((1, 1)))
    assert store.get_stock(1) == STOCK
    assert store.release(order) == (reservation, False)


# Concurrency


def test_concurrent_buyers_of_the_last_copies_never_oversell(store: InventoryStore, engine: Engine) -> None:
    store.set_stock(1, 20)
    buyers = 100
    start = threading.Barrier(buyers)

    def buy() -> bool:
        start.wait(timeout=60)  # every thread reaches the database at the same moment
        try:
            store.reserve(new_order(), items((1, 1)))
        except FailedPrecondition:
            return False
        return True

    with ThreadPoolExecutor(max_workers=buyers) as pool:
        outcomes = list(pool.map(lambda _: buy(), range(buyers)))

    assert outcomes.count(True) == 20
    assert store.get_stock(1) == 0
    with engine.connect() as conn:
        reserved = conn.scalar(select(func.count()).select_from(ReservationRow))
    assert reserved == 20


def test_concurrent_first_calls_for_one_order_reserve_it_once(store: InventoryStore) -> None:
    order = new_order()
    callers = 20
    start = threading.Barrier(callers)

    def reserve() -> object:
        start.wait(timeout=60)
        try:
            return store.reserve(order, items((2, 1), (1, 1)))
        except BookstoreError as error:  # a failure would be reported with its message
            return error

    with ThreadPoolExecutor(max_workers=callers) as pool:
        outcomes = list(pool.map(lambda _: reserve(), range(callers)))

    assert outcomes == [store.reservation(order)] * callers
    assert (store.get_stock(1), store.get_stock(2)) == (STOCK - 1, STOCK - 1)


def test_a_first_call_that_loses_the_insert_race_answers_with_the_winners_reservation(
    store: InventoryStore, engine: Engine
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite runs one write transaction at a time, so this race cannot happen there")
    order = new_order()
    wanted = items((1, 2))
    competitor_ran = threading.Event()

    def let_a_competitor_win(session: Session, _context: object, _instances: object) -> None:
        # Fires after our call found no row for the order and before it inserts one: the
        # moment a concurrent first call on another connection can slip in and commit.
        if competitor_ran.is_set() or not any(isinstance(row, ReservationRow) for row in session.new):
            return
        competitor_ran.set()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(store.reserve, order, wanted).result(timeout=60)

    event.listen(Session, "before_flush", let_a_competitor_win)
    try:
        reservation = store.reserve(order, wanted)
    finally:
        event.remove(Session, "before_flush", let_a_competitor_win)

    assert competitor_ran.is_set()
    assert reservation == store.reservation(order)
    assert store.get_stock(1) == STOCK - 2
