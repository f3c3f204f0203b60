"""The consumer's decisions, without a broker: attempts, ack / retry / dead-letter, dedupe, batches.

The decisions are pure functions. The settling of deliveries runs against a fake channel that
records acks, nacks and publishes, on a real SQLite file (the dedupe must hold on a database
that really commits and rolls back).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from pathlib import Path

import pika
import pika.exceptions
import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

from bookstore.messaging import dedupe
from bookstore.messaging.consumer import (
    ATTEMPTS_HEADER,
    CONSUMER_HEADER,
    ERROR_HEADER,
    MAX_ERROR_LENGTH,
    ORIGINAL_ROUTING_KEY_HEADER,
    Consumer,
    ConsumerStats,
    Decision,
    _Delivery,
    dead_letter_headers,
    decide,
    delivery_attempt,
    describe_error,
)
from bookstore.messaging.events import ORDER_APPROVED, Event, MalformedEvent
from bookstore.platform.database import initialize, make_engine

# -- attempts ---------------------------------------------------------------------------------


def test_a_first_delivery_is_attempt_one_whether_or_not_the_quorum_queue_sends_a_count() -> None:
    assert delivery_attempt({"x-delivery-count": 0}, redelivered=False) == 1
    assert delivery_attempt(None, redelivered=False) == 1
    assert delivery_attempt({}, redelivered=False) == 1


def test_the_quorum_queue_delivery_count_is_the_number_of_earlier_attempts() -> None:
    assert delivery_attempt({"x-delivery-count": 1}, redelivered=True) == 2
    assert delivery_attempt({"x-delivery-count": 4}, redelivered=True) == 5


def test_the_broker_count_wins_over_what_this_process_remembers() -> None:
    # Another consumer may have failed it too: the broker saw every attempt, we saw ours.
    assert delivery_attempt({"x-delivery-count": 3}, redelivered=True, failures_seen=1) == 4


def test_without_a_count_a_redelivery_is_at_least_the_second_attempt() -> None:
    assert delivery_attempt(None, redelivered=True) == 2
    assert delivery_attempt(None, redelivered=True, failures_seen=3) == 4


def test_a_count_header_that_is_not_a_whole_number_is_ignored() -> None:
    assert delivery_attempt({"x-delivery-count": "7"}, redelivered=False) == 1
    assert delivery_attempt({"x-delivery-count": True}, redelivered=True) == 2
    assert delivery_attempt({"x-delivery-count": -1}, redelivered=False) == 1


# -- decisions --------------------------------------------------------------------------------


def test_a_success_is_acked() -> None:
    assert decide(None, attempt=5, max_attempts=5) is Decision.ACK


def test_a_failure_before_the_last_attempt_is_retried() -> None:
    assert decide(ValueError("x"), attempt=1, max_attempts=5) is Decision.RETRY
    assert decide(ValueError("x"), attempt=4, max_attempts=5) is Decision.RETRY


def test_a_failure_on_the_last_attempt_is_dead_lettered() -> None:
    assert decide(ValueError("x"), attempt=5, max_attempts=5) is Decision.DEAD_LETTER
    assert decide(ValueError("x"), attempt=9, max_attempts=5) is Decision.DEAD_LETTER


def test_a_single_attempt_consumer_never_retries() -> None:
    assert decide(RuntimeError("x"), attempt=1, max_attempts=1) is Decision.DEAD_LETTER


def test_a_malformed_message_is_dead_lettered_on_its_first_attempt() -> None:
    assert decide(MalformedEvent("body is not JSON"), attempt=1, max_attempts=5) is Decision.DEAD_LETTER


# -- dead-letter headers ----------------------------------------------------------------------


def test_dead_letter_headers_say_why_where_from_how_often_and_who() -> None:
    headers = dead_letter_headers(
        {"trace": "abc", "x-delivery-count": 4},
        error=KeyError("book_id"),
        routing_key="order.approved",
        exchange="bookstore.events",
        attempts=5,
        consumer="analytics",
    )
    assert headers[ERROR_HEADER] == "KeyError: 'book_id'"
    assert headers[ORIGINAL_ROUTING_KEY_HEADER] == "order.approved"
    assert headers[ATTEMPTS_HEADER] == 5
    assert headers[CONSUMER_HEADER] == "analytics"
    assert headers["trace"] == "abc"  # the original headers travel along
    assert "x-delivery-count" not in headers  # it counted deliveries from the old queue


def test_an_error_description_is_cut_to_a_readable_length() -> None:
    text = describe_error(ValueError("x" * 5000))
    assert len(text) == MAX_ERROR_LENGTH
    assert text.startswith("ValueError: xxx") and text.endswith("...")


# -- dedupe on SQLite ---------------------------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'consumer.db'}")
    dedupe.create_tables(engine)
    initialize(engine, SALES_METADATA)
    try:
        yield engine
    finally:
        engine.dispose()


def test_a_claimed_message_cannot_be_claimed_again_by_the_same_consumer(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session, session.begin():
        dedupe.claim(session, "analytics", "m-1")
    with Session(sqlite_engine) as session, pytest.raises(dedupe.AlreadyProcessed), session.begin():
        dedupe.claim(session, "analytics", "m-1")


def test_another_consumer_claims_the_same_message_independently(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session, session.begin():
        dedupe.claim(session, "analytics", "m-1")
        dedupe.claim(session, "notification", "m-1")
    assert dedupe.processed_ids(sqlite_engine, "analytics") == {"m-1"}
    assert dedupe.processed_ids(sqlite_engine, "notification") == {"m-1"}


def test_a_claim_rolled_back_with_its_work_is_forgotten(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session, pytest.raises(RuntimeError), session.begin():
        dedupe.claim(session, "analytics", "m-1")
        raise RuntimeError("the handler failed")
    assert dedupe.processed_count(sqlite_engine, "analytics") == 0
    with Session(sqlite_engine) as session, session.begin():
        dedupe.claim(session, "analytics", "m-1")  # the redelivery is applied as a first one
    assert dedupe.processed_count(sqlite_engine, "analytics") == 1


def test_claiming_a_batch_returns_only_ids_never_seen_once_each_in_order(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session, session.begin():
        dedupe.claim(session, "analytics", "b")
    with Session(sqlite_engine) as session, session.begin():
        fresh = dedupe.claim_new(session, "analytics", ["c", "a", "b", "c", "d"])
    assert fresh == ["c", "a", "d"]
    assert dedupe.processed_ids(sqlite_engine, "analytics") == {"a", "b", "c", "d"}


def test_purge_forgets_only_old_records(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as session, session.begin():
        dedupe.claim(session, "analytics", "m-1")
    assert dedupe.purge(sqlite_engine, older_than_s=3600) == 0
    time.sleep(0.01)
    assert dedupe.purge(sqlite_engine, older_than_s=0) == 1
    assert dedupe.processed_count(sqlite_engine, "analytics") == 0


# -- settling deliveries, against a fake channel ------------------------------------------------

SALES_METADATA = MetaData()
SALES = Table(
    "sales",
    SALES_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
)


class FakeChannel:
    """Settles deliveries the way a broker does (``multiple`` acks every outstanding tag up to the
    one given); can refuse publishes like a broker would."""

    is_open = True

    def __init__(self, publish_error: Exception | None = None) -> None:
        self.outstanding: set[int] = set()
        self.acked: list[int] = []
        self.requeued: list[int] = []
        self.ack_calls = 0
        self.published: list[tuple[str, str, bytes, pika.BasicProperties]] = []
        self.publish_error = publish_error

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.ack_calls += 1
        settled = {t for t in self.outstanding if t <= delivery_tag} if multiple else {delivery_tag}
        assert settled <= self.outstanding, f"acked a tag that is not outstanding: {delivery_tag}"
        self.outstanding -= settled
        self.acked += sorted(settled)

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        assert delivery_tag in self.outstanding and requeue and not multiple
        self.outstanding.discard(delivery_tag)
        self.requeued.append(delivery_tag)

    def basic_publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties, mandatory: bool
    ) -> None:
        if self.publish_error is not None:
            raise self.publish_error
        self.published.append((exchange, routing_key, body, properties))


class Handler:
    """Records a sale; fails for the message ids in ``failing`` (after writing, to prove rollback)."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.failing = failing or set()
        self.calls: list[str] = []

    def __call__(self, event: Event, session: Session) -> None:
        self.calls.append(event.message_id)
        session.execute(insert(SALES).values(message_id=event.message_id))
        if event.message_id in self.failing:
            raise ValueError(f"cannot apply {event.message_id}")


def make_consumer(
    engine: Engine, handler: Handler, *, batch_size: int = 1, max_attempts: int = 3, prefetch: int = 100
) -> tuple[Consumer, FakeChannel, FakeChannel]:
    consumer = Consumer(
        "amqp://guest:guest@127.0.0.1:1/%2F",  # never connected in these tests
        "q",
        handler,
        engine=engine,
        name="analytics",
        dead_letter_exchange="dlx",
        batch_size=batch_size,
        max_attempts=max_attempts,
        prefetch=prefetch,
    )
    consumer._ensure_tables()
    channel, dead_letters = FakeChannel(), FakeChannel()
    consumer._channel = channel  # type: ignore[assignment]
    consumer._dead_letter_channel = dead_letters  # type: ignore[assignment]
    return consumer, channel, dead_letters


def delivery(tag: int, message_id: str, *, count: int = 0, body: bytes | None = None) -> _Delivery:
    event = Event(ORDER_APPROVED, {"order_id": tag}, message_id=message_id)
    return _Delivery(
        tag=tag,
        exchange="events",
        routing_key=ORDER_APPROVED,
        redelivered=count > 0,
        properties=event.properties(headers={"x-delivery-count": count}),
        body=event.body() if body is None else body,
    )


def hand(consumer: Consumer, *deliveries: _Delivery) -> None:
    """Hand ``deliveries`` to the consumer as pika's callback would, then let it settle them."""
    channel = consumer._channel
    assert isinstance(channel, FakeChannel)
    channel.outstanding |= {d.tag for d in deliveries}
    consumer._received.extend(deliveries)
    consumer._settle_received()


def sales(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(SALES.c.message_id).order_by(SALES.c.id)))


def sales_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(SALES)) or 0)


def test_a_message_is_acked_only_after_its_work_and_its_dedupe_record_committed(
    sqlite_engine: Engine,
) -> None:
    consumer, channel, _ = make_consumer(sqlite_engine, Handler())
    hand(consumer, delivery(1, "m-1"))
    assert channel.acked == [1]
    assert sales(sqlite_engine) == ["m-1"]
    assert dedupe.processed_ids(sqlite_engine, "analytics") == {"m-1"}
    assert consumer.stats().applied == 1


def test_committed_messages_are_acked_together_every_half_prefetch_window_and_when_none_are_left(
    sqlite_engine: Engine,
) -> None:
    acked_when_applied: list[list[int]] = []
    consumer, channel, _ = make_consumer(sqlite_engine, Handler(), prefetch=4)

    def watch(event: Event, session: Session) -> None:
        acked_when_applied.append(list(channel.acked))
        record_sale(event, session)

    consumer._handler = watch
    hand(consumer, *(delivery(tag, f"m-{tag}") for tag in range(1, 6)))
    assert channel.acked == [1, 2, 3, 4, 5]
    assert channel.ack_calls == 3  # after 2, after 4, and the last one when the hand was empty
    # Never before its commit: no message saw itself (or a later one) acked while being applied.
    assert acked_when_applied == [[], [], [1, 2], [1, 2], [1, 2, 3, 4]]


def record_sale(event: Event, session: Session) -> None:
    session.execute(insert(SALES).values(message_id=event.message_id))


def test_a_redelivered_message_already_applied_is_acked_without_running_the_handler(
    sqlite_engine: Engine,
) -> None:
    handler = Handler()
    consumer, channel, _ = make_consumer(sqlite_engine, handler)
    hand(consumer, delivery(1, "m-1"))
    hand(consumer, delivery(2, "m-1", count=1))
    assert channel.acked == [1, 2]
    assert handler.calls == ["m-1"]
    assert sales_count(sqlite_engine) == 1
    stats = consumer.stats()
    assert (stats.applied, stats.duplicates) == (1, 1)


def test_a_failing_handler_is_rolled_back_and_requeued_before_its_last_attempt(sqlite_engine: Engine) -> None:
    consumer, channel, dead_letters = make_consumer(sqlite_engine, Handler(failing={"m-1"}))
    hand(consumer, delivery(1, "m-1", count=0))
    assert channel.requeued == [1]
    assert channel.acked == []
    assert sales_count(sqlite_engine) == 0  # the row the handler wrote went with the rollback
    assert dedupe.processed_count(sqlite_engine, "analytics") == 0
    assert dead_letters.published == []
    assert consumer.stats().retried == 1


def test_a_failing_handler_on_its_last_attempt_is_dead_lettered_with_why_and_then_acked(
    sqlite_engine: Engine,
) -> None:
    consumer, channel, dead_letters = make_consumer(sqlite_engine, Handler(failing={"m-1"}), max_attempts=3)
    hand(consumer, delivery(7, "m-1", count=2))
    assert channel.acked == [7]
    [(exchange, routing_key, body, properties)] = dead_letters.published
    assert (exchange, routing_key) == ("dlx", "q")
    assert properties.message_id == "m-1"
    assert properties.delivery_mode == 2
    assert properties.headers[ERROR_HEADER] == "ValueError: cannot apply m-1"
    assert properties.headers[ATTEMPTS_HEADER] == 3
    assert json.loads(body)["data"] == {"order_id": 7}
    assert consumer.stats().dead_lettered == 1


def test_a_malformed_message_is_dead_lettered_at_once_naming_the_reason(sqlite_engine: Engine) -> None:
    handler = Handler()
    consumer, channel, dead_letters = make_consumer(sqlite_engine, handler)
    hand(consumer, delivery(3, "m-bad", body=b"not json"))
    assert channel.acked == [3]
    assert handler.calls == []
    [(_, _, body, properties)] = dead_letters.published
    assert body == b"not json"
    assert properties.headers[ERROR_HEADER].startswith("MalformedEvent: body is not JSON")
    assert properties.headers[ATTEMPTS_HEADER] == 1


def consumed_metric(outcome: str) -> float:
    """The process's ``messages_consumed_total`` for queue "q" and ``outcome`` (what Prometheus scrapes)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("messages_consumed_total", {"queue": "q", "outcome": outcome}) or 0.0


def test_a_malformed_message_counts_in_the_dead_lettered_metric_like_any_other(sqlite_engine: Engine) -> None:
    consumer, _, _ = make_consumer(sqlite_engine, Handler())
    before = consumed_metric("dead_lettered")
    hand(consumer, delivery(3, "m-bad", body=b"not json"))
    assert consumed_metric("dead_lettered") == before + 1


def test_a_dead_letter_the_broker_refuses_counts_as_retried_in_the_metric_not_dead_lettered(
    sqlite_engine: Engine,
) -> None:
    consumer, _, dead_letters = make_consumer(sqlite_engine, Handler(failing={"m-1"}), max_attempts=1)
    dead_letters.publish_error = pika.exceptions.NackError([])
    before = consumed_metric("dead_lettered"), consumed_metric("retried")
    hand(consumer, delivery(3, "m-1"))
    assert (consumed_metric("dead_lettered"), consumed_metric("retried")) == (before[0], before[1] + 1)


def test_a_dead_letter_the_broker_refuses_is_requeued_not_acked(sqlite_engine: Engine) -> None:
    consumer, channel, dead_letters = make_consumer(sqlite_engine, Handler())
    dead_letters.publish_error = pika.exceptions.NackError([])
    hand(consumer, delivery(3, "m-bad", body=b"{}"))
    assert channel.acked == []
    assert channel.requeued == [3]  # the queue's delivery limit ends the loop, nothing is lost
    assert consumer.stats().dead_lettered == 0


def test_a_batch_commits_once_and_is_acked_with_one_multiple_ack(sqlite_engine: Engine) -> None:
    handler = Handler()
    consumer, channel, _ = make_consumer(sqlite_engine, handler, batch_size=10)
    hand(consumer, *(delivery(tag, f"m-{tag}") for tag in range(1, 6)))
    assert (channel.acked, channel.ack_calls) == ([1, 2, 3, 4, 5], 1)
    assert sales(sqlite_engine) == [f"m-{tag}" for tag in range(1, 6)]
    assert consumer.stats().applied == 5


def test_a_batch_applies_a_message_repeated_inside_it_once(sqlite_engine: Engine) -> None:
    handler = Handler()
    consumer, channel, _ = make_consumer(sqlite_engine, handler, batch_size=10)
    hand(consumer, delivery(1, "m-1"))
    hand(consumer, delivery(2, "m-2"), delivery(3, "m-1", count=1), delivery(4, "m-2"))
    assert channel.acked == [1, 2, 3, 4]
    assert handler.calls == ["m-1", "m-2"]
    stats = consumer.stats()
    assert (stats.applied, stats.duplicates) == (2, 2)


def test_a_batch_with_a_failing_message_falls_back_to_one_at_a_time_and_only_that_one_is_retried(
    sqlite_engine: Engine,
) -> None:
    consumer, channel, _ = make_consumer(sqlite_engine, Handler(failing={"m-2"}), batch_size=10)
    hand(consumer, delivery(1, "m-1"), delivery(2, "m-2"), delivery(3, "m-3"))
    assert channel.acked == [1, 3]
    assert channel.requeued == [2]
    assert sorted(sales(sqlite_engine)) == ["m-1", "m-3"]  # the batch's first try left nothing behind
    stats = consumer.stats()
    assert (stats.applied, stats.retried) == (2, 1)


def test_a_malformed_message_in_a_batch_is_dead_lettered_and_the_rest_applied_together(
    sqlite_engine: Engine,
) -> None:
    consumer, channel, dead_letters = make_consumer(sqlite_engine, Handler(), batch_size=10)
    hand(consumer, delivery(1, "m-1"), delivery(2, "m-2", body=b"[]"), delivery(3, "m-3"))
    assert channel.acked == [2, 1, 3]  # the dead letter's at once, the batch's after its commit
    assert len(dead_letters.published) == 1
    assert sorted(sales(sqlite_engine)) == ["m-1", "m-3"]


def test_stats_are_a_frozen_snapshot() -> None:
    stats = ConsumerStats(applied=2, duplicates=1, retried=1, dead_lettered=1)
    assert stats.settled == 5
    with pytest.raises(FrozenInstanceError):
        stats.applied = 3  # type: ignore[misc]


def test_wait_until_reports_the_stats_when_the_condition_is_not_met(sqlite_engine: Engine) -> None:
    consumer, _, _ = make_consumer(sqlite_engine, Handler())
    with pytest.raises(TimeoutError, match="applied=0"):
        consumer.wait_until(lambda s: s.applied > 0, timeout=0.05)


def test_a_consumer_refuses_the_default_exchange_for_dead_letters(sqlite_engine: Engine) -> None:
    # The default exchange routes by queue name: a dead letter would land back in the queue.
    with pytest.raises(ValueError, match="dead_letter_exchange"):
        Consumer("amqp://x", "q", Handler(), engine=sqlite_engine, name="n", dead_letter_exchange="")
