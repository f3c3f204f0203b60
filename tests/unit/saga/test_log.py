"""SagaLog against SQLite and, when it answers, the MariaDB on 127.0.0.1:3306."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from bookstore.platform.database import make_engine
from bookstore.saga import SagaLog, SagaNotFound, SagaOwnershipLost, SagaState, StepEventKind
from bookstore.saga.log import MAX_ERROR_CHARS, NewEvent
from bookstore.services.order.store import OrderStore

from .fakes import FakeWallClock

SAGA_ID = "0b8e2f4c-5d1a-4c3e-9f6b-7a2d1e0c9b8a"
PAYLOAD = {
    "order_id": SAGA_ID,
    "user_id": "u-1",
    "items": [{"book_id": 3, "quantity": 1}],
    "total_cents": 4000,
}


@pytest.fixture
def wall() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
def saga_log(engine: Engine, wall: FakeWallClock) -> SagaLog:
    return SagaLog(engine, owner="order-0", lease_s=30, clock_ns=wall)


def kinds(saga_log: SagaLog, saga_id: str = SAGA_ID) -> list[tuple[str, StepEventKind]]:
    return [(event.step, event.kind) for event in saga_log.get(saga_id).events]


def test_a_new_saga_is_running_with_its_payload_and_deadline(saga_log: SagaLog, wall: FakeWallClock) -> None:
    assert saga_log.create(SAGA_ID, "place_order", PAYLOAD, deadline_s=2.3) is True

    record = saga_log.get(SAGA_ID)
    assert record.state is SagaState.RUNNING and not record.finished
    assert (record.definition, record.payload, record.deadline_s) == ("place_order", PAYLOAD, 2.3)
    assert (record.failed_step, record.error, record.events) == (None, "", ())
    assert record.owner == "order-0"
    assert record.created_at_ns == wall.now_ns
    assert record.lease_until_ns == wall.now_ns + 30 * 1_000_000_000


def test_creating_a_saga_twice_writes_nothing_the_second_time(saga_log: SagaLog) -> None:
    saga_log.create(SAGA_ID, "place_order", PAYLOAD, deadline_s=5)

    assert saga_log.create(SAGA_ID, "place_order", {"other": True}, deadline_s=9) is False
    assert saga_log.get(SAGA_ID).payload == PAYLOAD


def test_step_events_are_kept_in_the_order_they_were_recorded(saga_log: SagaLog, wall: FakeWallClock) -> None:
    saga_log.create(SAGA_ID, "place_order", PAYLOAD, deadline_s=5)
    script = [
        ("reserve", StepEventKind.STARTED),
        ("reserve", StepEventKind.SUCCEEDED),
        ("pay", StepEventKind.STARTED),
        ("pay", StepEventKind.SUCCEEDED),
        ("confirm", StepEventKind.STARTED),
    ]
    for step, kind in script:
        wall.advance(0.001)
        saga_log.record(SAGA_ID, step, kind)

    record = saga_log.get(SAGA_ID)
    assert kinds(saga_log) == script
    assert [event.at_ns for event in record.events] == sorted(event.at_ns for event in record.events)
    assert record.state is SagaState.RUNNING


def test_a_failed_step_moves_the_saga_to_compensating_with_the_first_error(saga_log: SagaLog) -> None:
    saga_log.create(SAGA_ID, "place_order", PAYLOAD, deadline_s=5)
    saga_log.record(SAGA_ID, "pay", StepEventKind.STARTED)
    saga_log.record(SAGA_ID, "pay", StepEventKind.FAILED, error="DEADLINE_EXCEEDED: slow", possibly_done=True)
    saga_log.record(SAGA_ID, "pay", StepEventKind.COMPENSATING)
    saga_log.record(SAGA_ID, "pay", StepEventKind.COMPENSATION_FAILED, error="UNAVAILABLE: down")
    saga_log.record(SAGA_ID, "pay", StepEventKind.COMPENSATING, attempt=2)
    saga_log.record(SAGA_ID, "pay", StepEventKind.COMPENSATED, attempt=2)
    saga_log.record(SAGA_ID, "reserve", StepEventKind.FAILED, error="a later failure", possibly_done=False)

    record = saga_log.get(SAGA_ID)
    assert record.state is SagaState.COMPENSATING
    assert (record.failed_step, record.error) == ("pay", "DEADLINE_EXCEEDED: slow")
    failed = record.events[1]
    assert (failed.kind, failed.possibly_done, failed.error) == (
        StepEventKind.FAILED,
        True,
        "DEADLINE_EXCEEDED: slow",
    )
    assert [e.attempt for e in record.events if e.kind is StepEventKind.COMPENSATING] == [1, 2]
    assert record.events[3].error == "UNAVAILABLE: down"


def test_a_finished_saga_leaves_the_in_flight_list_and_accepts_no_more_events(saga_log: SagaLog) -> None:
    for index, state in enumerate([SagaState.SUCCEEDED, SagaState.COMPENSATED, None, None]):
        saga_id = f"saga-{index}"
        saga_log.create(saga_id, "place_order", {}, deadline_s=5)
        if index == 3:
            saga_log.record(saga_id, "pay", StepEventKind.FAILED, error="declined", possibly_done=False)
        if state is not None:
            saga_log.finish(saga_id, state)

    in_flight = saga_log.in_flight()
    assert [(r.saga_id, r.state) for r in in_flight] == [
        ("saga-2", SagaState.RUNNING),
        ("saga-3", SagaState.COMPENSATING),
    ]
    assert saga_log.get("saga-1").state is SagaState.COMPENSATED and saga_log.get("saga-1").finished
    with pytest.raises(SagaOwnershipLost, match="already SUCCEEDED"):
        saga_log.record("saga-0", "pay", StepEventKind.STARTED)
    with pytest.raises(SagaOwnershipLost):
        saga_log.finish("saga-0", SagaState.COMPENSATED)
    with pytest.raises(ValueError, match="SUCCEEDED or COMPENSATED"):
        saga_log.finish("saga-2", SagaState.COMPENSATING)


def test_the_in_flight_list_is_oldest_first(saga_log: SagaLog, wall: FakeWallClock) -> None:
    for saga_id in ["c", "a", "b"]:
        wall.advance(1)
        saga_log.create(saga_id, "place_order", {}, deadline_s=5)

    assert [r.saga_id for r in saga_log.in_flight()] == ["c", "a", "b"]


def test_only_the_owner_writes_and_another_may_claim_only_after_the_lease(
    engine: Engine, saga_log: SagaLog, wall: FakeWallClock
) -> None:
    other = SagaLog(engine, owner="order-1", lease_s=30, clock_ns=wall)
    saga_log.create(SAGA_ID, "place_order", {}, deadline_s=5)

    with pytest.raises(SagaOwnershipLost, match="owned by order-0"):
        other.record(SAGA_ID, "reserve", StepEventKind.STARTED)
    assert other.claim(SAGA_ID) is False
    wall.advance(29)
    saga_log.record(SAGA_ID, "reserve", StepEventKind.STARTED)  # renews the lease
    wall.advance(29)
    assert other.claim(SAGA_ID) is False
    wall.advance(2)
    assert other.claim(SAGA_ID) is True

    other.record(SAGA_ID, "reserve", StepEventKind.SUCCEEDED)
    with pytest.raises(SagaOwnershipLost, match="owned by order-1"):
        saga_log.record(SAGA_ID, "pay", StepEventKind.STARTED)
    assert saga_log.get(SAGA_ID).owner == "order-1"
    assert kinds(saga_log) == [("reserve", StepEventKind.STARTED), ("reserve", StepEventKind.SUCCEEDED)]


def test_an_owner_reclaims_its_own_saga_at_once_and_nobody_claims_a_finished_one(saga_log: SagaLog) -> None:
    saga_log.create(SAGA_ID, "place_order", {}, deadline_s=5)
    assert saga_log.claim(SAGA_ID) is True  # same owner, even with the lease still running
    saga_log.finish(SAGA_ID, SagaState.SUCCEEDED)
    assert saga_log.claim(SAGA_ID) is False


def test_unknown_sagas_are_reported_as_such(saga_log: SagaLog) -> None:
    with pytest.raises(SagaNotFound):
        saga_log.get("nope")
    with pytest.raises(SagaNotFound):
        saga_log.record("nope", "pay", StepEventKind.STARTED)
    assert saga_log.find("nope") is None
    assert saga_log.claim("nope") is False


def test_long_errors_are_cut_to_fit(saga_log: SagaLog) -> None:
    saga_log.create(SAGA_ID, "place_order", {}, deadline_s=5)
    saga_log.record(SAGA_ID, "pay", StepEventKind.FAILED, error="x" * 5000, possibly_done=True)

    record = saga_log.get(SAGA_ID)
    assert record.error == "x" * MAX_ERROR_CHARS
    assert record.events[0].error == "x" * MAX_ERROR_CHARS


def test_a_payload_must_be_a_json_object(saga_log: SagaLog) -> None:
    with pytest.raises(TypeError, match="JSON"):
        saga_log.create(SAGA_ID, "place_order", {"amount": float("nan")}, deadline_s=5)
    with pytest.raises(TypeError, match="mapping"):
        saga_log.create(SAGA_ID, "place_order", [1, 2], deadline_s=5)  # type: ignore[arg-type]
    assert saga_log.find(SAGA_ID) is None


def test_the_log_lives_next_to_the_order_tables_in_one_database(engine: Engine) -> None:
    OrderStore(engine)
    SagaLog(engine)
    SagaLog(engine)  # creating the tables twice (a restart) is harmless

    tables = set(inspect(engine).get_table_names())
    assert {"orders", "order_items", "saga_instances", "saga_step_events"} <= tables


def test_what_was_recorded_survives_a_new_engine(engine: Engine, saga_log: SagaLog) -> None:
    saga_log.create(SAGA_ID, "place_order", PAYLOAD, deadline_s=5)
    saga_log.record(SAGA_ID, "reserve", StepEventKind.STARTED)
    url = engine.url.render_as_string(hide_password=False)

    fresh = make_engine(url)
    try:
        record = SagaLog(fresh, owner="order-0").get(SAGA_ID)
    finally:
        fresh.dispose()
    assert record.payload == PAYLOAD
    assert [(e.step, e.kind) for e in record.events] == [("reserve", StepEventKind.STARTED)]


def test_append_writes_several_events_and_the_end_in_one_go(saga_log: SagaLog) -> None:
    first = NewEvent("reserve", StepEventKind.STARTED)
    assert saga_log.create(SAGA_ID, "place_order", PAYLOAD, deadline_s=5, first_event=first) is True
    assert kinds(saga_log) == [("reserve", StepEventKind.STARTED)]

    saga_log.append(
        SAGA_ID, [NewEvent("reserve", StepEventKind.SUCCEEDED), NewEvent("pay", StepEventKind.STARTED)]
    )
    saga_log.append(SAGA_ID, [NewEvent("pay", StepEventKind.SUCCEEDED)], finish=SagaState.SUCCEEDED)

    record = saga_log.get(SAGA_ID)
    assert record.state is SagaState.SUCCEEDED
    assert kinds(saga_log) == [
        ("reserve", StepEventKind.STARTED),
        ("reserve", StepEventKind.SUCCEEDED),
        ("pay", StepEventKind.STARTED),
        ("pay", StepEventKind.SUCCEEDED),
    ]
    with pytest.raises(SagaOwnershipLost):
        saga_log.append(SAGA_ID, [NewEvent("pay", StepEventKind.STARTED)])


def test_reads_do_not_wait_for_a_writer_holding_the_sqlite_write_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'order.db'}")
    try:
        saga_log = SagaLog(engine, owner="order-0")
        saga_log.create(SAGA_ID, "place_order", PAYLOAD, deadline_s=5)
        writer = sqlite3.connect(tmp_path / "order.db", isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # holds the write lock until rolled back
            started = time.monotonic()
            assert saga_log.get(SAGA_ID).state is SagaState.RUNNING
            assert [r.saga_id for r in saga_log.in_flight()] == [SAGA_ID]
            assert time.monotonic() - started < 1.0  # the busy timeout is 15 s
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    finally:
        engine.dispose()
