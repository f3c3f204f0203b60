"""The bookstore's events end to end: order service -> outbox -> RabbitMQ -> three consumer processes.

Everything is real: the cluster's processes, the order service's outbox relay, the broker, the
consumers' databases. The outage tests are in ``test_broker_outage``: they stop a RabbitMQ node
of their own, never this shared one.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.launcher.cluster import Cluster
from bookstore.platform.database import make_engine
from bookstore.rpc.v1 import inventory_pb2
from bookstore.services.order.store import OrderStore

from ...databases import cluster_on

CONSUMER_NAMES = ("notification", "analytics", "inventory_sync")


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def cluster(request: pytest.FixtureRequest, rabbitmq_url: str) -> Iterator[Cluster]:
    with cluster_on(
        request.param, prefix="bookstore_msg", messaging=True, rabbitmq_url=rabbitmq_url
    ) as running:
        yield running


def eventually(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def draft_order(item: OrderItem) -> Order:
    return Order(
        order_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        items=(item,),
        status=OrderStatus.PENDING,
        created_at_unix=0,
        total_cents=Order.total_of((item,)),
    )


def mails_for(cluster: Cluster, order_ids: set[str]) -> list[dict[str, Any]]:
    """The e-mails about these orders, in the order they were recorded (the latest 10,000 looked at)."""
    latest = cluster.records("notification", limit=10_000)
    return sorted((r for r in latest if r["order_id"] in order_ids), key=lambda r: int(r["id"]))


def sold(cluster: Cluster, book_id: int) -> int:
    return sum(
        int(r["units_sold"])
        for r in cluster.records("analytics", limit=10_000)
        if r.get("book_id") == book_id
    )


def ledger(cluster: Cluster, book_id: int) -> int:
    return sum(
        int(r["units_committed"])
        for r in cluster.records("inventory_sync", limit=10_000)
        if r.get("book_id") == book_id
    )


def test_each_order_reaches_every_consumer_that_binds_its_events(
    cluster: Cluster, http: httpx.Client, auth_headers: dict[str, str]
) -> None:
    cluster.stub("inventory").SetStock(inventory_pb2.SetStockRequest(book_id=11, quantity=2), timeout=5)
    placed = [
        http.post("/orders", json={"items": [{"book_id": 11, "quantity": 1}]}, headers=auth_headers).json()
        for _ in range(3)
    ]
    assert [o.get("status") for o in placed] == ["APPROVED", "APPROVED", "REJECTED"], placed
    ids = {o["order_id"] for o in placed}

    eventually(lambda: len(mails_for(cluster, ids)) == 6, what="an e-mail per created and per settled order")
    kinds = sorted(str(m["event_type"]) for m in mails_for(cluster, ids))
    assert kinds == ["order.approved"] * 2 + ["order.created"] * 3 + ["order.rejected"]
    eventually(lambda: sold(cluster, 11) == 2, what="analytics counting two copies of book 11")
    eventually(lambda: ledger(cluster, 11) == 2, what="the warehouse ledger committing two copies")


def test_ten_thousand_orders_written_through_the_outbox_are_each_consumed_exactly_once(
    cluster: Cluster,
) -> None:
    orders = 10_000
    book_id = 70_000 + secrets.randbelow(10_000)  # a book no other test touches
    before = {name: cluster.consumer_stats(name).applied for name in CONSUMER_NAMES}
    # The order service's own store, on its own database: exactly what its saga writes.
    engine = make_engine(cluster.database_url("order"))
    store = OrderStore(engine)
    try:
        for _ in range(orders):
            order = store.create_pending(draft_order(OrderItem(book_id, 1, 500)))
            store.mark(order.order_id, OrderStatus.APPROVED)
    finally:
        engine.dispose()

    expected = {"notification": 2 * orders, "analytics": orders, "inventory_sync": orders}
    for name in CONSUMER_NAMES:
        eventually(
            lambda name=name: cluster.consumer_stats(name).applied - before[name] >= expected[name],
            timeout_s=300,
            what=f"{name} applying its {expected[name]} events",
        )
    time.sleep(0.5)  # anything extra (a duplicate applied twice) would show up now
    for name in CONSUMER_NAMES:
        assert cluster.consumer_stats(name).applied - before[name] == expected[name], name
    assert sold(cluster, book_id) == orders
    assert ledger(cluster, book_id) == orders
