"""The order service's payment breaker against a real failing payment process, end to end.

Week 8's story one layer down from the gateway: payment starts failing every Pay (an
injected fault), orders placed through the gateway fail, and the order service's breaker
in front of payment opens (its AdminService's ``GetStats`` shows it). From then on an order
is answered 503 with ``Retry-After`` without a Pay ever leaving the order service, the stock
it reserved is released, and nothing is charged. Once the fault is cleared the breaker
half-opens after its open timeout, its trial Pays succeed, it closes, and orders are
APPROVED again.

The cluster is this module's own, with a short ``BOOKSTORE_BREAKER_OPEN_TIMEOUT_S`` and a
small ``BOOKSTORE_BREAKER_MINIMUM_CALLS``, rather than the shared one that other tests
expect healthy. "Fast" is shown without a clock: while the breaker stays open, the payment
process's own Pay counter does not move. Every wait is a bounded poll; nothing asserts on time.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.rpc.v1 import admin_pb2, inventory_pb2, payment_pb2

pytestmark = pytest.mark.integration

OPEN_TIMEOUT_S = 2.0
MINIMUM_CALLS = 5
POLL_LIMIT_S = 60.0  # a generous bound for a slow machine, not an expectation
BOOK = 3
STOCK = 1000  # enough that no order in this test is short of stock
DEADLINE = 10
ORDER = {"items": [{"book_id": BOOK, "quantity": 1}]}


@pytest.fixture(scope="module")
def order_breaker_cluster() -> Iterator[Cluster]:
    running = Cluster(
        env={
            "BOOKSTORE_BREAKER_OPEN_TIMEOUT_S": str(OPEN_TIMEOUT_S),
            "BOOKSTORE_BREAKER_MINIMUM_CALLS": str(MINIMUM_CALLS),
        }
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def http(order_breaker_cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=order_breaker_cluster.gateway_url, timeout=DEADLINE) as client:
        yield client


@pytest.fixture
def customer(http: httpx.Client) -> dict[str, str]:
    """A freshly registered user's bearer token."""
    credentials = {"username": f"buyer_{secrets.token_hex(4)}", "password": "correct horse"}
    assert http.post("/auth/register", json=credentials).status_code == 201
    login = http.post("/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


# ----------------------------------------------------------------------------- what each process says


def payment_breaker(cluster: Cluster) -> admin_pb2.BreakerState:
    """The order service's breaker in front of payment, as its AdminService reports it."""
    (stats,) = cluster.stats("order")
    return next(breaker for breaker in stats.breakers if breaker.name == "payment")


def pay_calls(cluster: Cluster) -> int:
    """Pay calls that reached the payment process (failed by the fault or not)."""
    return sum(stats.calls_by_method.get("Pay", 0) for stats in cluster.stats("payment"))


def gateway_breaker(http: httpx.Client, name: str) -> dict[str, Any]:
    return next(b for b in http.get("/internal/breakers").json()["breakers"] if b["name"] == name)


def stock(cluster: Cluster) -> int:
    request = inventory_pb2.GetStockRequest(book_id=BOOK)
    return int(cluster.stub("inventory").GetStock(request, timeout=DEADLINE).available)


def charged(cluster: Cluster, order_id: str) -> bool:
    request = payment_pb2.GetPaymentRequest(order_id=order_id)
    try:
        payment = cluster.stub("payment").GetPayment(request, timeout=DEADLINE).payment
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return False  # no Pay ever reached payment for this order
        raise
    return bool(payment.status == payment_pb2.PAYMENT_STATUS_CHARGED)


def orders(http: httpx.Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    token = ""
    while True:
        page = http.get("/orders", params={"page_size": 100, "page_token": token}, headers=headers).json()
        found.extend(page["orders"])
        token = page["next_page_token"]
        if not token:
            return found


def poll(step: Callable[[], bool], what: str) -> None:
    """Run ``step`` until it returns True; fail, naming ``what``, if that takes too long."""
    give_up = time.monotonic() + POLL_LIMIT_S
    while not step():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.1)


# ----------------------------------------------------------------------------- the story


def test_a_failing_payment_opens_the_order_services_breaker_and_it_closes_once_the_fault_is_cleared(
    order_breaker_cluster: Cluster, http: httpx.Client, customer: dict[str, str]
) -> None:
    cluster = order_breaker_cluster
    cluster.stub("inventory").SetStock(
        inventory_pb2.SetStockRequest(book_id=BOOK, quantity=STOCK), timeout=DEADLINE
    )
    first = http.post("/orders", json=ORDER, headers=customer)
    assert first.status_code == 201 and first.json()["status"] == "APPROVED", first.text
    assert payment_breaker(cluster).state == "CLOSED"
    stock_before_the_outage = stock(cluster)

    cluster.inject_fault("payment", "Pay", error_rate=1.0)

    def failing_orders_open_the_breaker() -> bool:
        # 503 when the Pay fails; 504 only if undoing it outlasts the gateway's deadline; 202
        # when the Refund that undoes it is refused too (the breaker just opened): still PENDING.
        response = http.post("/orders", json=ORDER, headers=customer)
        assert response.status_code in (202, 503, 504), response.text
        assert response.headers["Location"].startswith("/orders/")
        return payment_breaker(cluster).state == "OPEN"

    poll(failing_orders_open_the_breaker, "the order service's payment breaker to open")

    def an_order_is_refused_without_calling_payment() -> bool:
        before, pays_before = payment_breaker(cluster), pay_calls(cluster)
        response = http.post("/orders", json=ORDER, headers=customer)
        after, pays_after = payment_breaker(cluster), pay_calls(cluster)
        if not (before.state == after.state == "OPEN" and before.generation == after.generation):
            return False  # the breaker moved on (a trial call) in between: look again
        assert response.status_code == 503, response.text
        assert 1 <= int(response.headers["Retry-After"]) <= math.ceil(OPEN_TIMEOUT_S)
        # The refusal is the order service's, passed on by the gateway, not the gateway's own.
        assert response.json()["detail"].startswith("a service behind the gateway is failing")
        assert "circuit open" in response.json()["detail"]
        assert pays_after == pays_before
        assert after.rejected > before.rejected
        return True

    poll(an_order_is_refused_without_calling_payment, "a refusal while the breaker stays open")
    # The order service answered every refusal at once, so the gateway has nothing against it:
    # its own order breakers stay closed, and reading orders works throughout.
    assert gateway_breaker(http, "order/writes")["state"] == "CLOSED"
    assert gateway_breaker(http, "order/reads")["state"] == "CLOSED"

    placed: list[dict[str, Any]] = []

    def every_failed_order_is_settled() -> bool:
        placed[:] = orders(http, customer)
        return all(order["status"] != "PENDING" for order in placed)

    poll(every_failed_order_is_settled, "the failed orders to be compensated")
    rejected = [order for order in placed if order["status"] == "REJECTED"]
    assert len(rejected) == len(placed) - 1  # all but the first
    assert stock(cluster) == stock_before_the_outage  # every failed order's stock came back
    assert not any(charged(cluster, order["order_id"]) for order in rejected)

    cluster.clear_faults("payment", "Pay")

    def orders_are_approved_and_the_breaker_closes() -> bool:
        response = http.post("/orders", json=ORDER, headers=customer)
        if response.status_code == 503:
            return False  # still open, or a trial is in flight: try again
        assert response.status_code == 201, response.text
        return response.json()["status"] == "APPROVED" and payment_breaker(cluster).state == "CLOSED"

    poll(
        orders_are_approved_and_the_breaker_closes, "the payment breaker to close after the fault was cleared"
    )

    again = http.post("/orders", json=ORDER, headers=customer)
    assert again.status_code == 201 and again.json()["status"] == "APPROVED"
    closed = payment_breaker(cluster)
    assert closed.generation >= 3  # CLOSED -> OPEN -> HALF_OPEN -> CLOSED at least


PAYMENT_ERROR_RATE = 0.6
CREATES = 30  # with 60% of Pays failing, 30 creates without a single failure: 0.4**30, about 1e-12


def test_while_payment_fails_most_of_the_time_orders_stay_readable_and_each_failure_names_its_order(
    order_breaker_cluster: Cluster, http: httpx.Client, customer: dict[str, str]
) -> None:
    cluster = order_breaker_cluster
    cluster.stub("inventory").SetStock(
        inventory_pb2.SetStockRequest(book_id=BOOK, quantity=STOCK), timeout=DEADLINE
    )
    # Without its own breaker the order service calls payment every time, so every failed Pay
    # reaches the gateway as payment's UNAVAILABLE passed on, never as a quick refusal: the
    # case that once opened the gateway's one order breaker and cut off reads.
    cluster.restart("order", env={"BOOKSTORE_BREAKER_ENABLED": "0"})
    poll(lambda: http.get("/orders", headers=customer).status_code == 200, "the order service to be back")
    cluster.inject_fault("payment", "Pay", error_rate=PAYMENT_ERROR_RATE)
    try:
        # Creates only, as a burst of checkouts would: reads in between would dilute the failures.
        placed = [http.post("/orders", json=ORDER, headers=customer) for _ in range(CREATES)]
    finally:
        cluster.clear_faults("payment", "Pay")
    try:
        failed = [answer for answer in placed if answer.status_code != 201]
        assert failed, "payment never failed: the fault was not injected"
        for answer in placed:
            assert answer.status_code in (201, 202, 503, 504), answer.text
        for answer in failed:
            # The order exists, and the client is told where: it can follow it to the end.
            assert answer.headers["Location"] == f"/orders/{answer.json()['order_id']}", answer.text
        # Reads never needed payment: they work, whatever the creates answered.
        first_page = http.get("/orders", headers=customer)
        assert first_page.status_code == 200, first_page.text
        listed = orders(http, customer)
        assert {answer.json()["order_id"] for answer in placed} <= {order["order_id"] for order in listed}
        for answer in failed:
            followed = http.get(answer.headers["Location"], headers=customer)
            assert followed.status_code == 200, followed.text
    finally:
        cluster.restart("order", env={"BOOKSTORE_BREAKER_ENABLED": "1"})

    # Every failure was payment's, passed on by a healthy order service: no gateway breaker opened.
    assert gateway_breaker(http, "order/writes")["state"] == "CLOSED"
    assert gateway_breaker(http, "order/reads")["state"] == "CLOSED"
