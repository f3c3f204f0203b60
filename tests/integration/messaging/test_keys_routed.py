"""``keys_routed`` reports what the real broker routes, for the bindings it is given."""

from __future__ import annotations

from bookstore.messaging.topology import keys_routed


def test_a_queue_receives_exactly_the_keys_its_bindings_match(rabbitmq_url: str) -> None:
    keys = ["order.approved", "order.approved.eu", "payment.charged", "order"]
    assert keys_routed(rabbitmq_url, ["order.*", "payment.#"], keys) == ["order.approved", "payment.charged"]


def test_no_binding_receives_nothing(rabbitmq_url: str) -> None:
    assert keys_routed(rabbitmq_url, [], ["order.approved", "x"]) == []


def test_overlapping_bindings_report_each_key_once(rabbitmq_url: str) -> None:
    bindings = ["#", "order.#", "order.approved"]
    assert keys_routed(rabbitmq_url, bindings, ["order.approved"]) == ["order.approved"]
