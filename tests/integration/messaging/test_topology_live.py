"""The topology on the real broker: declared once or twice, routes as its table says, dead-letters."""

from __future__ import annotations

import time

import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from bookstore.messaging.broker import connect
from bookstore.messaging.events import ORDER_APPROVED, ORDER_CREATED, Event
from bookstore.messaging.publisher import Publisher
from bookstore.messaging.topology import ANALYTICS, INVENTORY, NOTIFICATION, Topology, temporary_topology

from .conftest import count

pytestmark = pytest.mark.integration


def wait_for_count(channel: BlockingChannel, queue: str, expected: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (seen := count(channel, queue)) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return seen


def test_declaring_the_topology_twice_changes_nothing(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    with Publisher(rabbitmq_url, topology) as publisher:
        publisher.publish([Event(ORDER_APPROVED, {"order_id": 1})])
    topology.declare(channel)  # a second process starting up
    topology.declare(channel)
    assert channel.is_open
    for queue in topology.queues:
        assert count(channel, queue) == 1  # redeclaring kept the messages


def test_events_reach_exactly_the_queues_bound_to_their_type(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    with Publisher(rabbitmq_url, topology) as publisher:
        publisher.publish([Event(ORDER_CREATED, {"order_id": 1}), Event(ORDER_APPROVED, {"order_id": 1})])
    assert count(channel, topology.queue(NOTIFICATION)) == 2
    assert count(channel, topology.queue(ANALYTICS)) == 1
    assert count(channel, topology.queue(INVENTORY)) == 1


def test_redeclaring_a_queue_with_other_arguments_is_refused(rabbitmq_url: str, topology: Topology) -> None:
    changed = Topology(prefix=topology.prefix, delivery_limit=topology.delivery_limit + 1)
    with (
        connect(rabbitmq_url, "test-redeclare") as connection,
        pytest.raises(pika.exceptions.ChannelClosedByBroker) as raised,
    ):
        changed.declare(connection.channel())
    assert raised.value.reply_code == 406  # PRECONDITION_FAILED: inequivalent arg 'x-delivery-limit'


def test_a_rejected_message_goes_to_its_own_queues_dead_letters_only(
    rabbitmq_url: str, topology: Topology, channel: BlockingChannel
) -> None:
    event = Event(ORDER_APPROVED, {"order_id": 7})
    with Publisher(rabbitmq_url, topology) as publisher:
        publisher.publish_one(event)
    method, _, _ = channel.basic_get(topology.queue(NOTIFICATION))
    assert method is not None
    channel.basic_reject(method.delivery_tag, requeue=False)

    dead_letters = topology.dead_letter_queue(NOTIFICATION)
    assert wait_for_count(channel, dead_letters, 1) == 1
    method, properties, _ = channel.basic_get(dead_letters, auto_ack=True)
    assert method is not None and properties.message_id == event.message_id
    death = properties.headers["x-death"][0]
    assert death["reason"] == "rejected"
    assert death["routing-keys"] == [ORDER_APPROVED]  # the original key survives in x-death
    assert count(channel, topology.dead_letter_queue(ANALYTICS)) == 0
    assert count(channel, topology.dead_letter_queue(INVENTORY)) == 0


def test_a_poison_message_that_crashes_every_consumer_is_dead_lettered_after_the_delivery_limit(
    rabbitmq_url: str, channel: BlockingChannel
) -> None:
    with temporary_topology(rabbitmq_url, delivery_limit=2) as topology:
        poison = Event(ORDER_CREATED, {"order_id": "poison"})
        with Publisher(rabbitmq_url, topology) as publisher:
            publisher.publish_one(poison)
        queue = topology.queue(NOTIFICATION)
        deliveries = 0
        while deliveries < 10:  # a bound, in case the limit did not work
            with connect(rabbitmq_url, "test-crashing-consumer") as crashing:
                method, _, _ = crashing.channel().basic_get(queue)
                if method is None:
                    break
                deliveries += 1
            # the connection closes without an ack: the message goes back, counted

        assert deliveries == topology.delivery_limit + 1
        dead_letters = topology.dead_letter_queue(NOTIFICATION)
        assert wait_for_count(channel, dead_letters, 1) == 1
        method, properties, _ = channel.basic_get(dead_letters, auto_ack=True)
        assert method is not None and properties.message_id == poison.message_id
        assert properties.headers["x-first-death-reason"] == "delivery_limit"


def test_deleting_a_temporary_topology_removes_every_queue_and_exchange(rabbitmq_url: str) -> None:
    with temporary_topology(rabbitmq_url) as topology, connect(rabbitmq_url, "test-ad-hoc") as connection:
        demo = topology.declare_queue_for(connection.channel(), "teaching.demo", ["order.#"])
    queues = [*topology.queues, *(topology.dead_letter_queue(q) for q in (NOTIFICATION, "teaching.demo"))]
    with connect(rabbitmq_url, "test-after-delete") as connection:
        for name in [*queues, demo]:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as raised:
                connection.channel().queue_declare(name, passive=True)
            assert raised.value.reply_code == 404, name
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as raised:
                connection.channel().exchange_declare(exchange, passive=True)
            assert raised.value.reply_code == 404, exchange
