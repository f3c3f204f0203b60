"""The consumer against the real RabbitMQ: every message applied once, through retries, dead
letters, a SIGKILL, a clean stop and a broker restart.

Each test declares its own queues under a random prefix and deletes them afterwards (see
``consumer_helpers``). The database is an SQLite file, and MariaDB too where the test takes
the ``engine`` fixture (skipped, saying why, when MariaDB does not answer). Nothing here
asserts on time: every wait polls a condition against a generous deadline. The broker restart
stops a RabbitMQ node of the test session's own (``private_broker``), never the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bookstore.messaging import dedupe
from bookstore.messaging.consumer import (
    ATTEMPTS_HEADER,
    CONSUMER_HEADER,
    ERROR_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    Consumer,
    Handler,
)
from bookstore.messaging.events import ORDER_APPROVED, Event
from bookstore.platform.database import make_engine
from tests.integration.messaging.consumer_helpers import (
    TestQueues,
    broker_unavailable_reason,
    broker_url,
    create_sales_table,
    kill,
    order_events,
    publish,
    publish_raw,
    record_sale,
    sales_counts,
    slow,
    spawn_consumer,
    temporary_queues,
    wait_for,
)
from tests.integration.messaging.private_broker import PrivateBroker

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0  # generous: reaching it means the behaviour is wrong, not slow


@pytest.fixture(scope="module")
def url() -> str:
    found = broker_url()
    reason = broker_unavailable_reason(found)
    if reason is not None:
        pytest.skip(reason)
    return found


@pytest.fixture
def queues(url: str) -> Iterator[TestQueues]:
    with temporary_queues(url) as declared:
        yield declared


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'consumer.db'}")
    create_sales_table(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def consumer_for(
    queues: TestQueues, engine: Engine, handler: Handler = record_sale, **options: int | float
) -> Consumer:
    return Consumer(
        queues.url,
        queues.queue,
        handler,
        engine=engine,
        name="sales",
        dead_letter_exchange=queues.dead_letter_exchange,
        **options,  # type: ignore[arg-type]
    )


def queue_settled(queues: TestQueues) -> bool:
    return queues.depth() == (0, 0)


@pytest.mark.parametrize("batch_size", [1, 50])
def test_every_message_is_applied_exactly_once(queues: TestQueues, engine: Engine, batch_size: int) -> None:
    create_sales_table(engine)
    events = order_events(400)
    publish(queues, events)
    with consumer_for(queues, engine, batch_size=batch_size) as consumer:
        stats = consumer.wait_until(lambda s: s.applied >= len(events), timeout=DEADLINE_S)
    assert (stats.applied, stats.duplicates, stats.retried, stats.dead_lettered) == (400, 0, 0, 0)
    assert sales_counts(engine) == (400, 400)
    assert dedupe.processed_ids(engine, "sales") == {e.message_id for e in events}
    assert queue_settled(queues)


@pytest.mark.parametrize("batch_size", [1, 50])
def test_a_message_published_twice_with_the_same_id_is_applied_once(
    queues: TestQueues, engine: Engine, batch_size: int
) -> None:
    create_sales_table(engine)
    events = order_events(20)
    publish(queues, [*events, events[3], events[17]])  # an outbox relay that published two again
    with consumer_for(queues, engine, batch_size=batch_size) as consumer:
        stats = consumer.wait_until(lambda s: s.applied + s.duplicates >= 22, timeout=DEADLINE_S)
    assert (stats.applied, stats.duplicates) == (20, 2)
    assert sales_counts(engine) == (20, 20)


def test_a_handler_failing_twice_then_succeeding_is_applied_once_after_two_retries(
    queues: TestQueues, sqlite_engine: Engine
) -> None:
    calls = 0

    def flaky(event: Event, session: Session) -> None:
        nonlocal calls
        calls += 1
        record_sale(event, session)  # written, then rolled back by the failure
        if calls <= 2:
            raise ConnectionError(f"the warehouse did not answer (call {calls})")

    publish(queues, order_events(1))
    with consumer_for(queues, sqlite_engine, flaky, max_attempts=5) as consumer:
        stats = consumer.wait_until(lambda s: s.applied == 1, timeout=DEADLINE_S)
    assert (stats.retried, stats.applied, stats.dead_lettered) == (2, 1, 0)
    assert calls == 3
    assert sales_counts(sqlite_engine) == (1, 1)
    assert queues.depth(queues.dead_letter_queue) == (0, 0)


def test_a_handler_that_always_fails_ends_in_the_dead_letter_queue_saying_why(
    queues: TestQueues, sqlite_engine: Engine
) -> None:
    def broken(event: Event, _session: Session) -> None:
        raise LookupError(f"no such book {event.data['book_id']}")

    [event] = order_events(1, start=41)
    publish(queues, [event])
    with consumer_for(queues, sqlite_engine, broken, max_attempts=3) as consumer:
        stats = consumer.wait_until(lambda s: s.dead_lettered == 1, timeout=DEADLINE_S)
    assert (stats.retried, stats.applied) == (2, 0)
    [(properties, body)] = queues.take(queues.dead_letter_queue, 1, timeout=DEADLINE_S)
    headers = properties.headers
    assert headers[ERROR_HEADER] == "LookupError: no such book 7"
    assert headers[ATTEMPTS_HEADER] == 3
    assert headers[CONSUMER_HEADER] == "sales"
    assert headers[ORIGINAL_ROUTING_KEY_HEADER] == ORDER_APPROVED
    assert properties.message_id == event.message_id
    assert body == event.body()
    assert queue_settled(queues)
    assert sales_counts(sqlite_engine) == (0, 0)


def test_a_malformed_message_is_dead_lettered_at_once_with_the_reason(
    queues: TestQueues, sqlite_engine: Engine
) -> None:
    publish_raw(queues, b"<order id=1/>", pika.BasicProperties(message_id="not-json", delivery_mode=2))
    publish_raw(queues, Event(ORDER_APPROVED, {"order_id": 1}).body(), pika.BasicProperties(delivery_mode=2))
    with consumer_for(queues, sqlite_engine, max_attempts=5) as consumer:
        stats = consumer.wait_until(lambda s: s.dead_lettered == 2, timeout=DEADLINE_S)
    assert (stats.retried, stats.applied) == (0, 0)
    letters = queues.take(queues.dead_letter_queue, 2, timeout=DEADLINE_S)
    errors = sorted(properties.headers[ERROR_HEADER] for properties, _ in letters)
    assert errors[0].startswith("MalformedEvent: body is not JSON")
    assert errors[1] == "MalformedEvent: message_id property is missing"
    assert {properties.headers[ATTEMPTS_HEADER] for properties, _ in letters} == {1}


def test_a_consumer_killed_mid_batch_is_finished_by_another_with_every_message_applied_once(
    queues: TestQueues, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'sales.db'}"
    engine = make_engine(db_url)
    create_sales_table(engine)
    publish(queues, order_events(600))
    child = spawn_consumer(queues, db_url, name="sales", delay_s=0.002, batch_size=20)
    try:
        wait_for(lambda: sales_counts(engine)[0] >= 100, DEADLINE_S, "the child applied 100 messages")
    finally:
        kill(child)
    assert sales_counts(engine)[0] < 600, "the child finished before it was killed: kill it sooner"
    with consumer_for(queues, engine) as successor:
        successor.wait_until(lambda _: sales_counts(engine)[0] >= 600, timeout=DEADLINE_S)
    assert sales_counts(engine) == (600, 600)
    assert dedupe.processed_count(engine, "sales") == 600
    assert queue_settled(queues)
    engine.dispose()


def test_a_crash_between_commit_and_ack_is_redelivered_and_acked_as_a_duplicate(
    queues: TestQueues, tmp_path: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'sales.db'}"
    engine = make_engine(db_url)
    create_sales_table(engine)
    publish(queues, order_events(200))
    child = spawn_consumer(queues, db_url, name="sales", crash_after_commits=50)
    try:
        assert child.wait(timeout=DEADLINE_S) == -9  # it SIGKILLed itself after commit 50, before its ack
    finally:
        kill(child)
    assert sales_counts(engine) == (50, 50)
    with consumer_for(queues, engine) as successor:
        successor.wait_until(lambda s: s.applied >= 150, timeout=DEADLINE_S)
        wait_for(lambda: queues.depth()[0] == 0, DEADLINE_S, "the queue drained")
    stats = successor.stats()
    # Commit 50 was never acked, and maybe the commits before it (acks go out a few at a time):
    # each came back, found its dedupe row, and was acked without being applied again.
    assert stats.applied == 150
    assert 1 <= stats.duplicates <= 50
    assert sales_counts(engine) == (200, 200)
    assert queue_settled(queues)
    engine.dispose()


def test_a_clean_stop_settles_what_is_in_flight_and_leaves_nothing_unacked(
    queues: TestQueues, sqlite_engine: Engine
) -> None:
    publish(queues, order_events(400))
    consumer = consumer_for(queues, sqlite_engine, slow(record_sale, 0.003)).start()
    consumer.wait_until(lambda s: s.applied >= 30, timeout=DEADLINE_S)
    assert consumer.stop(timeout=DEADLINE_S)
    stats = consumer.stats()
    # The broker learns of the closed channel a moment later (under load, a noticeable one), and
    # only then counts the consumer gone and puts back what it held unacked: wait for that.
    ready, _ = wait_for(
        lambda: (depth := queues.depth())[1] == 0 and depth, DEADLINE_S, "the broker seeing the consumer go"
    )
    rows, distinct = sales_counts(sqlite_engine)
    assert rows == distinct == stats.applied
    # Nothing committed was left unacked (it would be back in the queue: more than 400 in all),
    # and nothing was acked without being committed (fewer than 400).
    assert rows + ready == 400
    assert stats.applied < 400, "the consumer finished before it was stopped: stop it sooner"


def test_a_stopped_consumer_can_be_started_again_and_finishes_the_queue(
    queues: TestQueues, sqlite_engine: Engine
) -> None:
    publish(queues, order_events(100))
    consumer = consumer_for(queues, sqlite_engine, slow(record_sale, 0.002)).start()
    consumer.wait_until(lambda s: s.applied >= 10, timeout=DEADLINE_S)
    assert consumer.stop(timeout=DEADLINE_S)
    consumer.start()
    consumer.wait_until(lambda s: s.applied >= 100, timeout=DEADLINE_S)
    assert consumer.stop(timeout=DEADLINE_S)
    assert sales_counts(sqlite_engine) == (100, 100)


def test_a_consumer_whose_broker_does_not_answer_keeps_trying_and_still_stops_at_once(
    sqlite_engine: Engine,
) -> None:
    consumer = Consumer(
        "amqp://guest:guest@127.0.0.1:1/%2F",  # nothing listens on port 1
        "nowhere",
        record_sale,
        engine=sqlite_engine,
        name="sales",
        dead_letter_exchange="nowhere",
        reconnect_max_s=0.2,
    ).start()
    assert consumer.running
    assert consumer.stop(timeout=DEADLINE_S)
    assert not consumer.running
    assert consumer.stats().received == 0


def test_the_consumer_reconnects_after_a_broker_restart_and_loses_nothing(
    private_broker: PrivateBroker, sqlite_engine: Engine
) -> None:
    with temporary_queues(private_broker.url) as queues:  # a node of our own: we stop it
        restart_under_a_consumer(private_broker, queues, sqlite_engine)


def restart_under_a_consumer(broker: PrivateBroker, queues: TestQueues, sqlite_engine: Engine) -> None:
    publish(queues, order_events(1500))  # confirmed: on disk in the quorum queue before the restart
    consumer = consumer_for(queues, sqlite_engine, slow(record_sale, 0.002), reconnect_max_s=1.0).start()
    try:
        consumer.wait_until(lambda s: s.applied >= 100, timeout=DEADLINE_S)
        try:
            broker.stop_app()
            applied_before_restart = consumer.stats().applied
        finally:
            broker.start_app()
        stats = consumer.wait_until(lambda s: s.reconnects >= 1 and s.applied >= 1500, timeout=DEADLINE_S)
    finally:
        consumer.stop(timeout=DEADLINE_S)
    assert applied_before_restart < 1500, "the stream ended before the restart: slow the handler down"
    assert (stats.applied, stats.dead_lettered) == (1500, 0)
    assert sales_counts(sqlite_engine) == (1500, 1500)
    wait_for(lambda: queue_settled(queues), DEADLINE_S, "the queue empty, no consumer")
