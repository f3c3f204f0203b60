"""The week 9 exercise's routing answers are RabbitMQ's own: the real broker is asked.

The hidden checks say which (binding key, routing key) pairs a topic exchange routes. If one
of those answers were wrong, learners who got it right would lose points; so every pair is
bound and published on the real broker, and the reference solution is held to it too.
"""

from __future__ import annotations

import importlib.util
import secrets
from pathlib import Path
from types import ModuleType

import nbformat
import pika
import pytest

from bookstore.grading.regions import BEGIN_MARKER, END_MARKER

ROOT = Path(__file__).resolve().parents[2]
URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def checks_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("week09_checks", ROOT / "solutions/checks/week09.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_cases() -> list[tuple[str, str, bool]]:
    checks = checks_module()
    return [
        *checks.WORDS_AND_STAR,
        *checks.HASH_AT_THE_END,
        *checks.HASH_ZERO_WORDS,
        *checks.HASH_IN_THE_MIDDLE,
    ]


@pytest.fixture(scope="module")
def channel() -> pika.adapters.blocking_connection.BlockingChannel:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(URL + "?socket_timeout=2"))
    except pika.exceptions.AMQPError as error:
        pytest.skip(f"RabbitMQ does not answer on 127.0.0.1:5672 ({error!r})")
    channel = connection.channel()
    # With confirms, a mandatory publish that no queue takes raises UnroutableError: an exact,
    # synchronous answer to "did the exchange route it?".
    channel.confirm_delivery()
    yield channel
    connection.close()


def routed_by_rabbitmq(channel, binding_key: str, routing_key: str) -> bool:  # type: ignore[no-untyped-def]
    exchange = f"routing-reference-{secrets.token_hex(4)}"
    channel.exchange_declare(exchange, "topic", auto_delete=False)
    try:
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, exchange, routing_key=binding_key)
        try:
            channel.basic_publish(exchange, routing_key, b"?", mandatory=True)
        except pika.exceptions.UnroutableError:
            return False
        return True
    finally:
        channel.exchange_delete(exchange)


@pytest.mark.parametrize("binding_key, routing_key, routed", all_cases())
def test_each_graded_routing_answer_is_what_rabbitmq_does(channel, binding_key, routing_key, routed) -> None:  # type: ignore[no-untyped-def]
    assert routed_by_rabbitmq(channel, binding_key, routing_key) is routed


def test_the_reference_solution_routes_every_graded_pair_as_rabbitmq_does() -> None:
    notebook = nbformat.read(ROOT / "solutions/week09_messaging.ipynb", as_version=4)
    source = next(c.source for c in notebook.cells if c.source.startswith("def topic_matches"))
    namespace: dict[str, object] = {}
    exec(source.replace(BEGIN_MARKER, "").replace(END_MARKER, ""), namespace)
    matches = namespace["topic_matches"]
    assert callable(matches)
    wrong = [(b, r) for b, r, routed in all_cases() if matches(b, r) is not routed]
    assert wrong == []
