"""The topology's names and queue arguments, and how the broker is found; no broker needed.

The broker-finding tests live here too (they are few and share this folder's no-I/O rule):
every probe of a real broker is replaced by a stand-in.
"""

from __future__ import annotations

import re
import sys
import types

import pytest

from bookstore.messaging import broker
from bookstore.messaging.broker import BrokerUnavailable, connection_parameters, resolve_rabbitmq_url
from bookstore.messaging.events import ORDER_APPROVED, ORDER_CREATED, ORDER_EVENTS, ORDER_REJECTED
from bookstore.messaging.publisher import PublishFailed, Unroutable
from bookstore.messaging.topology import (
    ANALYTICS,
    DEAD_LETTER_EXCHANGE_TYPE,
    DELIVERY_LIMIT,
    EXCHANGE_TYPE,
    INVENTORY,
    NOTIFICATION,
    QUEUE_BINDINGS,
    Topology,
    random_prefix,
)
from bookstore.platform.settings import Settings


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more words."""
    regex = re.escape(pattern).replace(r"\*", r"[^.]+").replace(r"\#", r".*")
    return re.fullmatch(regex, routing_key) is not None


def receivers(routing_key: str) -> set[str]:
    return {
        queue for queue, keys in QUEUE_BINDINGS.items() if any(topic_matches(k, routing_key) for k in keys)
    }


# ----------------------------------------------------------------------------- names


def test_the_default_topology_uses_the_plain_names() -> None:
    topology = Topology()
    assert topology.exchange == "bookstore.events"
    assert topology.dead_letter_exchange == "bookstore.dead-letters"
    assert topology.queues == ("order.notification", "order.analytics", "order.inventory")
    assert topology.dead_letter_queue(NOTIFICATION) == "order.notification.dead"


def test_every_name_starts_with_the_prefix() -> None:
    topology = Topology(prefix="run42.")
    names = [
        topology.exchange,
        topology.dead_letter_exchange,
        *topology.queues,
        *(topology.dead_letter_queue(name) for name in QUEUE_BINDINGS),
        topology.queue("teaching.demo"),
    ]
    assert all(name.startswith("run42.") for name in names)
    assert topology.queue(ANALYTICS) == "run42.order.analytics"
    assert topology.dead_letter_queue(ANALYTICS) == "run42.order.analytics.dead"


def test_binding_keys_are_event_types_and_never_carry_the_prefix() -> None:
    bindings = Topology(prefix="run42.").bindings()
    assert ("run42.order.notification", "order.*") in bindings
    assert all(not key.startswith("run42.") for _, key in bindings)
    assert len(bindings) == sum(len(keys) for keys in QUEUE_BINDINGS.values())


def test_random_prefixes_differ_and_end_with_a_dot() -> None:
    prefixes = {random_prefix() for _ in range(100)}
    assert len(prefixes) == 100
    assert all(prefix.endswith(".") for prefix in prefixes)


def test_topologies_are_values_compared_by_prefix_and_limit() -> None:
    assert Topology("a.") == Topology("a.")
    assert Topology("a.") != Topology("b.")
    assert Topology("a.", delivery_limit=1) != Topology("a.")


# ----------------------------------------------------------------------------- routing


def test_notification_hears_every_order_event() -> None:
    assert all(NOTIFICATION in receivers(event) for event in ORDER_EVENTS)


def test_analytics_and_inventory_hear_only_outcomes() -> None:
    assert receivers(ORDER_CREATED) == {NOTIFICATION}
    assert receivers(ORDER_APPROVED) == {NOTIFICATION, ANALYTICS, INVENTORY}
    assert receivers(ORDER_REJECTED) == {NOTIFICATION, ANALYTICS, INVENTORY}


def test_an_event_outside_the_order_family_reaches_no_queue() -> None:
    assert receivers("payment.refunded") == set()
    assert receivers("order.created.late") == set()  # `*` is exactly one word


def test_the_exchanges_are_a_topic_for_events_and_a_direct_one_for_dead_letters() -> None:
    assert EXCHANGE_TYPE == "topic"
    assert DEAD_LETTER_EXCHANGE_TYPE == "direct"


# ----------------------------------------------------------------------------- arguments


def test_every_queue_is_a_quorum_queue_with_a_bounded_number_of_deliveries() -> None:
    topology = Topology(prefix="p.")
    for name in QUEUE_BINDINGS:
        arguments = topology.queue_arguments(name)
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-delivery-limit"] == DELIVERY_LIMIT


def test_a_queue_dead_letters_to_its_own_dead_letter_queue_only() -> None:
    topology = Topology(prefix="p.")
    for name in QUEUE_BINDINGS:
        arguments = topology.queue_arguments(name)
        assert arguments["x-dead-letter-exchange"] == "p.bookstore.dead-letters"
        # The direct dead-letter exchange routes by this key, and the dead-letter queue binds it.
        assert arguments["x-dead-letter-routing-key"] == topology.queue(name)


def test_dead_lettering_is_at_least_once_which_requires_reject_publish() -> None:
    arguments = Topology().queue_arguments(INVENTORY)
    assert arguments["x-dead-letter-strategy"] == "at-least-once"
    assert arguments["x-overflow"] == "reject-publish"


def test_the_delivery_limit_is_a_setting_of_the_topology() -> None:
    assert Topology(delivery_limit=1).queue_arguments(NOTIFICATION)["x-delivery-limit"] == 1


def test_dead_letter_queues_are_durable_quorum_queues_that_never_dead_letter_again() -> None:
    arguments = Topology.dead_letter_queue_arguments()
    assert arguments == {"x-queue-type": "quorum"}


# ----------------------------------------------------------------------------- publishing errors


def test_unroutable_names_its_message_ids() -> None:
    error = Unroutable(["m-1", "m-2"])
    assert error.message_ids == ("m-1", "m-2")
    assert "m-1" in str(error) and "m-2" in str(error)


def test_publish_failed_says_why_and_shortens_long_lists() -> None:
    error = PublishFailed([f"m-{i}" for i in range(12)], "nacked by the broker")
    assert error.reason == "nacked by the broker"
    assert len(error.message_ids) == 12
    assert "nacked by the broker" in str(error) and "and 7 more" in str(error)


# ----------------------------------------------------------------------------- finding the broker


def test_an_explicit_url_wins_without_probing_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_probe(*_args: object, **_kwargs: object) -> bool:
        raise AssertionError("probed a broker although the URL was given")

    monkeypatch.setattr(broker, "broker_answers", no_probe)
    settings = Settings(rabbitmq_url="amqp://u:p@broker.example:5672/%2F")
    assert resolve_rabbitmq_url(settings) == "amqp://u:p@broker.example:5672/%2F"


def test_the_local_broker_is_used_when_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "broker_answers", lambda url, *_: url == broker.LOCAL_URL)
    assert resolve_rabbitmq_url(Settings()) == "amqp://guest:guest@127.0.0.1:5672/%2F"


def fake_containers(*, docker: bool, url: str = "amqp://guest:guest@127.0.0.1:32768/%2F") -> types.ModuleType:
    module = types.ModuleType("bookstore.platform.containers")
    module.docker_available = lambda: docker  # type: ignore[attr-defined]
    module.rabbitmq_url = lambda: url  # type: ignore[attr-defined]
    return module


def test_a_container_is_used_when_no_local_broker_answers_but_docker_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker, "broker_answers", lambda *_: False)
    monkeypatch.setitem(sys.modules, "bookstore.platform.containers", fake_containers(docker=True))
    assert resolve_rabbitmq_url(Settings()) == "amqp://guest:guest@127.0.0.1:32768/%2F"


def test_without_any_broker_the_error_names_the_three_ways_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker, "broker_answers", lambda *_: False)
    monkeypatch.setitem(sys.modules, "bookstore.platform.containers", fake_containers(docker=False))
    with pytest.raises(BrokerUnavailable) as raised:
        resolve_rabbitmq_url(Settings())
    message = str(raised.value)
    assert "BOOKSTORE_RABBITMQ_URL" in message
    assert "127.0.0.1:5672" in message
    assert "Docker engine" in message


def test_a_missing_containers_module_means_no_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "broker_answers", lambda *_: False)
    monkeypatch.setitem(sys.modules, "bookstore.platform.containers", None)  # import raises ImportError
    with pytest.raises(BrokerUnavailable):
        resolve_rabbitmq_url(Settings())


def test_connections_carry_a_name_a_heartbeat_and_a_blocked_timeout() -> None:
    parameters = connection_parameters("amqp://guest:guest@127.0.0.1:5672/%2F", "notification-consumer")
    assert parameters.client_properties["connection_name"] == "notification-consumer"
    assert parameters.heartbeat == broker.HEARTBEAT_S
    assert parameters.blocked_connection_timeout == broker.BLOCKED_CONNECTION_TIMEOUT_S
    assert parameters.connection_attempts == broker.CONNECTION_ATTEMPTS
    assert parameters.virtual_host == "/"


def test_settings_in_the_url_win_over_the_defaults() -> None:
    parameters = connection_parameters("amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=7", "x")
    assert parameters.heartbeat == 7
