"""The choreographed order saga on the real RabbitMQ: services react to events, and a failed
payment is compensated by an event that inventory reacts to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pika.adapters.blocking_connection import BlockingChannel

from bookstore.messaging.choreography import (
    APPROVED,
    PAYMENT_FAILED,
    PENDING,
    REJECTED,
    STOCK_RELEASED,
    Choreography,
    OnPartition,
    OrderRefused,
)
from bookstore.messaging.events import Event
from bookstore.messaging.publisher import Publisher
from bookstore.messaging.topology import Topology
from bookstore.notebook_tools import wait_for
from tests.integration.messaging.conftest import read_all

BOOK = 7


@pytest.fixture
def shop(rabbitmq_url: str, topology: Topology, tmp_path: Path) -> Iterator[Choreography]:
    with Choreography(rabbitmq_url, topology, tmp_path, stock={BOOK: 5}, card_limit_cents=5_000) as running:
        yield running


def settled(shop: Choreography, order_id: str) -> tuple[str, str]:
    wait_for(lambda: shop.order_status(order_id)[0] != PENDING, timeout_s=20, what=f"{order_id} settled")
    return shop.order_status(order_id)


def test_a_payment_within_the_limit_approves_the_order_and_keeps_the_stock_taken(shop: Choreography) -> None:
    shop.place_order("o-1", BOOK, 2, amount_cents=2_000)
    assert settled(shop, "o-1") == (APPROVED, "")
    assert shop.available(BOOK) == 3


def test_a_declined_payment_rejects_the_order_and_inventory_releases_the_stock(
    shop: Choreography, topology: Topology, channel: BlockingChannel
) -> None:
    tap = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(tap, topology.exchange, routing_key="#")
    shop.place_order("o-2", BOOK, 2, amount_cents=9_000)
    status, reason = settled(shop, "o-2")
    assert status == REJECTED and "card declined" in reason
    wait_for(lambda: shop.available(BOOK) == 5, timeout_s=20, what="the stock released")
    seen = [method.routing_key for method, _props, _body in read_all(channel, tap, expected=4)]
    # payment.failed reaches inventory and order at once; stock.released comes after it
    assert seen == ["order.placed", "stock.reserved", PAYMENT_FAILED, STOCK_RELEASED]


def test_too_little_stock_rejects_without_any_charge(shop: Choreography) -> None:
    shop.place_order("o-3", BOOK, 6, amount_cents=100)
    status, reason = settled(shop, "o-3")
    assert status == REJECTED and "not enough stock" in reason
    assert shop.available(BOOK) == 5


def test_the_compensation_releases_once_when_the_failure_arrives_twice_with_new_ids(
    shop: Choreography, rabbitmq_url: str, topology: Topology
) -> None:
    shop.place_order("o-4", BOOK, 2, amount_cents=9_000)
    # Settled first: the stock starts at 5, so "5 available" alone may be seen before the
    # reservation; a rejected order was reserved (payment reacts to stock.reserved) and failed.
    assert settled(shop, "o-4")[0] == REJECTED
    wait_for(lambda: shop.available(BOOK) == 5, timeout_s=20, what="the stock released")
    inventory = shop.participants["inventory"].consumer
    applied = inventory.stats().applied
    with Publisher(rabbitmq_url, topology, name="test-duplicate-failure", declare=False) as publisher:
        publisher.publish([Event(PAYMENT_FAILED, {"order_id": "o-4", "reason": "again"}) for _ in range(2)])
    wait_for(
        lambda: inventory.stats().applied == applied + 2, timeout_s=20, what="both copies applied"
    )
    assert shop.available(BOOK) == 5


@pytest.fixture
def strict_shop(rabbitmq_url: str, topology: Topology, tmp_path: Path) -> Iterator[Choreography]:
    with Choreography(
        rabbitmq_url, topology, tmp_path, stock={BOOK: 5}, on_partition=OnPartition.REFUSE
    ) as running:
        yield running


def test_the_broker_tells_the_order_service_whether_payment_is_attached(shop: Choreography) -> None:
    assert shop.reachable("payment")
    shop.cut_off("payment")
    assert not shop.reachable("payment")
    shop.heal("payment")
    assert shop.reachable("payment")


def test_refusing_during_a_partition_writes_nothing_and_takes_orders_again_once_healed(
    strict_shop: Choreography,
) -> None:
    strict_shop.cut_off("payment")
    with pytest.raises(OrderRefused) as refused:
        strict_shop.place_order("r-1", BOOK, 1, amount_cents=1_000)
    assert refused.value.cut_off == ["payment"]
    assert strict_shop.order_status("r-1") == ("UNKNOWN", "")
    assert strict_shop.available(BOOK) == 5 and not strict_shop.order_counts()
    strict_shop.heal("payment")
    strict_shop.place_order("r-2", BOOK, 1, amount_cents=1_000)
    assert settled(strict_shop, "r-2") == (APPROVED, "")


def test_accepting_during_a_partition_leaves_the_order_pending_until_it_heals_then_it_converges(
    shop: Choreography,
) -> None:
    shop.cut_off("payment")
    shop.place_order("a-1", BOOK, 2, amount_cents=1_000)
    # inventory has reserved (a write the order's status does not show yet): a stale view
    wait_for(lambda: shop.available(BOOK) == 3, timeout_s=20, what="the stock reserved")
    assert shop.order_status("a-1") == (PENDING, "") and shop.charged() == 0
    shop.heal("payment")
    assert settled(shop, "a-1") == (APPROVED, "")
    assert shop.charged() == 1 and shop.order_counts() == {APPROVED: 1}
