"""Fixtures for the messaging tests: the real RabbitMQ, a fresh topology per test, and a private
RabbitMQ node for the tests that stop their broker (``private_broker``).

The broker is found as everywhere (``bookstore.messaging.broker``); the tests skip, saying why,
when none answers. Each test gets its own ``temporary_topology`` (a random name prefix, deleted
afterwards), so tests, parallel runs and open notebooks never see each other's messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from bookstore.messaging.broker import connect
from bookstore.messaging.topology import Topology, temporary_topology
from tests.integration.messaging.private_broker import PrivateBroker, private_rabbitmq, unavailable_reason


@pytest.fixture(scope="session")
def private_broker() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of this test session's own, for tests that stop the broker (never the shared one)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with private_rabbitmq() as node:
        yield node


@pytest.fixture
def topology(rabbitmq_url: str) -> Iterator[Topology]:
    with temporary_topology(rabbitmq_url) as declared:
        yield declared


@pytest.fixture
def channel(rabbitmq_url: str) -> Iterator[BlockingChannel]:
    """A channel of the test's own, to look into queues."""
    with connect(rabbitmq_url, "test-reader") as connection:
        yield connection.channel()


Message = tuple[pika.spec.Basic.Deliver, pika.BasicProperties, bytes]


def read_all(
    channel: BlockingChannel, queue: str, expected: int | None = None, timeout_s: float = 10.0
) -> list[Message]:
    """Consume (and ack) ``queue``: until ``expected`` messages came (or the deadline passed), or
    with ``expected=None`` until it stays quiet for a second."""
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    channel.basic_qos(prefetch_count=500)
    for method, properties, body in channel.consume(queue, inactivity_timeout=1.0):
        if method is None:  # a quiet second
            if expected is None or time.monotonic() > deadline:
                break
            continue
        messages.append((method, properties, body))
        channel.basic_ack(method.delivery_tag)
        if expected is not None and len(messages) >= expected:
            break
    channel.cancel()
    return messages


def count(channel: BlockingChannel, queue: str) -> int:
    """Messages ready in ``queue`` (passive declare: never creates it)."""
    return int(channel.queue_declare(queue, passive=True).method.message_count)
