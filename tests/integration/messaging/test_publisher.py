"""The publisher against the real RabbitMQ: complete, ordered, persistent; unroutable; outages.

The broker-restart test stops and starts the RabbitMQ application of a node of its own
(``private_broker``), never the shared broker other tests and notebooks use; it skips, saying
why, where no such node can be started.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest
from pika.adapters.blocking_connection import BlockingChannel

from bookstore.messaging.broker import broker_answers, connect
from bookstore.messaging.events import CONTENT_TYPE, ORDER_APPROVED, ORDER_EVENTS, PERSISTENT, Event
from bookstore.messaging.publisher import Publisher, PublishFailed, Unroutable
from bookstore.messaging.topology import ANALYTICS, NOTIFICATION, Topology, temporary_topology
from tests.integration.messaging.private_broker import PrivateBroker

from .conftest import count, read_all

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0  # generous: reaching it means the behaviour is wrong, not slow


def order_events(count: int, first: int = 0) -> list[Event]:
    return [
        Event(ORDER_EVENTS[i % 3], {"order_id": i, "total": "19.90"}, correlation_id=f"order-{i}")
        for i in range(first, first + count)
    ]


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting, after {timeout_s:.0f} s, for {what}")
        time.sleep(0.05)


def publisher_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.endswith("-io")]


# ----------------------------------------------------------------------------- delivery


def test_a_batch_arrives_complete_in_order_persistent_and_with_every_property(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    events = order_events(2_000)
    with Publisher(rabbitmq_url, topology) as publisher:
        publisher.publish(events)

    received = read_all(channel, topology.queue(NOTIFICATION), expected=len(events))
    assert [properties.message_id for _, properties, _ in received] == [e.message_id for e in events]
    for (method, properties, body), event in zip(received, events, strict=True):
        assert properties.delivery_mode == PERSISTENT
        assert properties.content_type == CONTENT_TYPE
        assert properties.type == event.type == method.routing_key
        assert properties.correlation_id == event.correlation_id
        assert properties.timestamp == int(event.occurred_at)
        assert Event.from_message(properties, body) == event
    outcomes = [e for e in events if e.type != "order.created"]
    assert count(channel, topology.queue(ANALYTICS)) == len(outcomes)


def test_publish_one_returns_once_the_event_is_in_its_queues(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    with Publisher(rabbitmq_url, topology) as publisher:
        publisher.publish_one(Event(ORDER_APPROVED, {"order_id": 1}), headers={"traceparent": "00-ab-cd-01"})
    for queue in topology.queues:
        assert count(channel, queue) == 1  # confirmed means enqueued: no waiting needed
    _, properties, _ = channel.basic_get(topology.queue(NOTIFICATION), auto_ack=True)
    assert properties.headers["traceparent"] == "00-ab-cd-01"


def test_an_event_no_queue_is_bound_for_raises_unroutable_naming_its_message_id(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    routable = Event(ORDER_APPROVED, {"order_id": 1})
    stray = Event("payment.refunded", {"order_id": 1})
    with Publisher(rabbitmq_url, topology) as publisher:
        with pytest.raises(Unroutable) as raised:
            publisher.publish([routable, stray])
        assert raised.value.message_ids == (stray.message_id,)
        assert stray.message_id in str(raised.value)
        publisher.publish_one(routable)  # the publisher carries on
    assert count(channel, topology.queue(NOTIFICATION)) == 2


def test_several_threads_publishing_at_once_deliver_every_message_once_in_each_threads_order(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    per_thread = [order_events(50, first=1_000 * t) for t in range(4)]
    errors: list[BaseException] = []

    def publish_all(events: list[Event], publisher: Publisher) -> None:
        try:
            for start in range(0, len(events), 5):
                publisher.publish(events[start : start + 5])
        except BaseException as error:
            errors.append(error)

    with Publisher(rabbitmq_url, topology) as publisher:
        threads = [threading.Thread(target=publish_all, args=(events, publisher)) for events in per_thread]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []

    received = [p.message_id for _, p, _ in read_all(channel, topology.queue(NOTIFICATION), expected=200)]
    assert sorted(received) == sorted(e.message_id for events in per_thread for e in events)
    for events in per_thread:
        ids = {e.message_id for e in events}
        assert [mid for mid in received if mid in ids] == [e.message_id for e in events]


def test_messages_the_broker_refuses_raise_publish_failed_naming_each_of_them(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    # A queue that holds one message and refuses (nacks) publishes beyond that.
    full = topology.queue("test.full")
    arguments = {"x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish"}
    channel.queue_declare(full, durable=True, arguments=arguments)
    channel.queue_bind(full, topology.exchange, routing_key="test.full")
    try:
        with Publisher(rabbitmq_url, topology) as publisher:
            for _ in range(10):  # the queue notices it is full a message or two late
                try:
                    publisher.publish_one(Event("test.full", {}))
                except PublishFailed:
                    break
            refused = [Event("test.full", {"i": i}) for i in range(5)]
            with pytest.raises(PublishFailed) as raised:
                publisher.publish(refused)
    finally:
        channel.queue_delete(full)
    assert raised.value.message_ids == tuple(e.message_id for e in refused)
    assert "nacked" in raised.value.reason


# ----------------------------------------------------------------------------- lifecycle and failures


def test_closing_the_publisher_leaves_no_thread_behind(rabbitmq_url: str, topology: Topology) -> None:
    before = set(threading.enumerate())
    publisher = Publisher(rabbitmq_url, topology, name="closing-test")
    publisher.publish(order_events(10))
    publisher.close()
    publisher.close()  # closing twice is harmless
    assert set(threading.enumerate()) <= before
    with pytest.raises(RuntimeError, match="closed"):
        publisher.publish(order_events(1))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_publish_while_no_broker_answers_fails_after_its_timeout_naming_every_message(
    topology: Topology,
) -> None:
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    events = order_events(3)
    with (
        Publisher(nowhere, topology, confirm_timeout_s=0.5, declare=False) as publisher,
        pytest.raises(PublishFailed) as raised,
    ):
        publisher.publish(events)
    assert raised.value.message_ids == tuple(e.message_id for e in events)
    assert "not connected" in raised.value.reason
    assert publisher_threads() == []


def test_a_deleted_exchange_fails_the_publish_and_the_publisher_declares_it_again(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    with Publisher(rabbitmq_url, topology, confirm_timeout_s=5.0) as publisher:
        publisher.publish(order_events(5))
        topology.delete(channel)  # a careless notebook cell
        with pytest.raises(PublishFailed):
            publisher.publish(order_events(5))  # 404 NOT_FOUND closes the channel
        probe = order_events(1)

        def probe_published() -> bool:
            try:
                publisher.publish(probe)
            except PublishFailed:
                return False
            return True

        wait_until(probe_published, "a publish after the publisher reconnected and redeclared")
    assert count(channel, topology.queue(NOTIFICATION)) == 1  # the old queue and its messages are gone


# ----------------------------------------------------------------------------- broker restart


class Stream:
    """Publishes batches in a thread until stopped, remembering what was confirmed and what failed."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.confirmed: list[str] = []
        self.failures: list[PublishFailed] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-stream")

    def _run(self) -> None:
        first = 0
        while not self._stop.is_set():
            batch = order_events(20, first)
            first += 20
            try:
                self.publisher.publish(batch)
            except PublishFailed as failure:
                self.failures.append(failure)
                time.sleep(0.05)  # an outage: do not spin
                continue
            self.confirmed.extend(e.message_id for e in batch)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_broker_restart_fails_the_publishes_in_between_and_loses_no_confirmed_message(
    private_broker: PrivateBroker,
) -> None:
    with temporary_topology(private_broker.url) as topology:
        confirmed = restart_while_publishing(private_broker, topology)
    assert confirmed


def restart_while_publishing(broker: PrivateBroker, topology: Topology) -> list[str]:
    rabbitmq_url = broker.url
    with Publisher(rabbitmq_url, topology, name="restart-test", confirm_timeout_s=2.0) as publisher:
        with Stream(publisher) as stream:
            wait_until(lambda: len(stream.confirmed) >= 200, "confirmed messages before the restart")
            failed_before = len(stream.failures)
            try:
                broker.stop_app()
                assert not broker_answers(rabbitmq_url), "the private broker still answers after stop_app"
                wait_until(lambda: len(stream.failures) > failed_before, "a failed publish during the outage")
            finally:
                broker.start_app()
            confirmed_before = len(stream.confirmed)
            wait_until(lambda: len(stream.confirmed) >= confirmed_before + 200, "confirms after the restart")
        assert publisher.connections_opened >= 2

    assert all(failure.message_ids and failure.reason for failure in stream.failures)
    with connect(rabbitmq_url, "test-after-restart") as connection:
        reader = connection.channel()
        received = {p.message_id for _, p, _ in read_all(reader, topology.queue(NOTIFICATION))}
    missing = set(stream.confirmed) - received
    assert not missing, f"{len(missing)} confirmed messages lost in the restart, e.g. {sorted(missing)[:3]}"
    return stream.confirmed
