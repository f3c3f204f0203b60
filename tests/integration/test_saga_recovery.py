"""The order saga against real processes: killed at every step boundary, replayed, and run hard.

Every check reads each service's own state through its RPCs (GetOrder and ListOrders,
GetStock, GetPayment): what a customer, a warehouse and an accountant would each see, and
they must agree. The crash tests arm the order service with ``BOOKSTORE_CRASH_AT`` (it
SIGKILLs itself at that point of the saga), then restart it without, and the restarted
service must settle the order on its own.
"""

from __future__ import annotations

import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.platform.database import make_engine
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import inventory_pb2, order_pb2, payment_pb2
from bookstore.saga import SagaLog

from ..databases import cluster_on

DEADLINE = 10
SETTLE_TIMEOUT_S = 30.0
PENDING = order_pb2.ORDER_STATUS_PENDING
APPROVED = order_pb2.ORDER_STATUS_APPROVED
REJECTED = order_pb2.ORDER_STATUS_REJECTED


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def saga_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with cluster_on(request.param, prefix="bookstore_saga") as running:
        yield running


# ----------------------------------------------------------------------------- helpers


def in_flight_sagas(cluster: Cluster) -> list[str]:
    """Sagas the order service's log still holds unfinished (read from its database)."""
    url = Settings(work_dir=cluster.work_dir, db_url_template=cluster.db_url).database_url("order")
    engine = make_engine(url)
    try:
        return [record.saga_id for record in SagaLog(engine, owner="test-reader").in_flight()]
    finally:
        engine.dispose()


def orders_of(cluster: Cluster, user_id: str) -> list[order_pb2.Order]:
    orders: list[order_pb2.Order] = []
    token = ""
    while True:
        page = cluster.stub("order").ListOrders(
            order_pb2.ListOrdersRequest(user_id=user_id, page_size=100, page_token=token), timeout=DEADLINE
        )
        orders.extend(page.orders)
        token = page.next_page_token
        if not token:
            return orders


def settled_orders(cluster: Cluster, user_ids: list[str], expected: int) -> list[order_pb2.Order]:
    """Every order of ``user_ids``, once there are ``expected`` of them and none is PENDING."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        orders = [order for user_id in user_ids for order in orders_of(cluster, user_id)]
        if len(orders) == expected and all(order.status != PENDING for order in orders):
            return orders
        if time.monotonic() > deadline:
            statuses = Counter(order_pb2.OrderStatus.Name(order.status) for order in orders)
            pytest.fail(
                f"after {SETTLE_TIMEOUT_S:.0f} s: {len(orders)} of {expected} orders, {dict(statuses)}"
            )
        time.sleep(0.1)


def stock_of(cluster: Cluster, book_id: int) -> int:
    return int(
        cluster.stub("inventory")
        .GetStock(inventory_pb2.GetStockRequest(book_id=book_id), timeout=DEADLINE)
        .available
    )


def set_stock(cluster: Cluster, book_id: int, quantity: int) -> None:
    cluster.stub("inventory").SetStock(
        inventory_pb2.SetStockRequest(book_id=book_id, quantity=quantity), timeout=DEADLINE
    )


def payment_of(cluster: Cluster, order_id: str) -> payment_pb2.Payment | None:
    try:
        response = cluster.stub("payment").GetPayment(
            payment_pb2.GetPaymentRequest(order_id=order_id), timeout=DEADLINE
        )
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return response.payment


def pay_calls(cluster: Cluster) -> int:
    return sum(stats.calls_by_method.get("Pay", 0) for stats in cluster.stats("payment"))


def order_request(
    user_id: str, book_id: int, quantity: int = 1, request_id: str = ""
) -> order_pb2.CreateOrderRequest:
    return order_pb2.CreateOrderRequest(
        user_id=user_id,
        items=[order_pb2.OrderItem(book_id=book_id, quantity=quantity)],
        request_id=request_id,
    )


def assert_books_agree(cluster: Cluster, order: order_pb2.Order, book_id: int, initial_stock: int) -> None:
    """Stock and money agree with the order's status: the whole invariant for one order."""
    sold = sum(item.quantity for item in order.items) if order.status == APPROVED else 0
    assert stock_of(cluster, book_id) == initial_stock - sold
    payment = payment_of(cluster, order.order_id)
    if order.status == APPROVED:
        assert payment is not None
        assert (payment.status, payment.amount_cents) == (
            payment_pb2.PAYMENT_STATUS_CHARGED,
            order.total_cents,
        )
    else:
        assert payment is None or payment.status != payment_pb2.PAYMENT_STATUS_CHARGED


def crash_once(cluster: Cluster, crash_at: str, request: order_pb2.CreateOrderRequest) -> None:
    """Arm the order service, send ``request``, watch it die, restart it disarmed."""
    cluster.restart("order", env={"BOOKSTORE_CRASH_AT": crash_at})
    try:
        with pytest.raises(grpc.RpcError) as died:
            cluster.stub("order").CreateOrder(request, timeout=DEADLINE)
        # The caller learns nothing about the order: the connection just went away.
        assert died.value.code() is grpc.StatusCode.UNAVAILABLE
        replica = cluster.replicas["order"][0]
        deadline = time.monotonic() + 5
        while replica.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not replica.running(), "the order service was armed but did not crash"
    finally:
        cluster.restart("order", env={"BOOKSTORE_CRASH_AT": ""})


# ------------------------------------------------------------------- killed at each boundary

# A step's SUCCEEDED is committed with the next step's STARTED, so "after:reserve" is the
# same instant as "before:pay". "before:reserve" follows the saga's first commit (which also
# wrote the order PENDING); "after:pay" its last (which also approved it).
FORWARD_BOUNDARIES = [
    *(f"{moment}:{step}" for step in ("reserve", "pay") for moment in ("before", "returned")),
    "after:pay",
]
COMPENSATION_BOUNDARIES = [
    "failed:pay",
    "compensating:pay",
    "compensated:pay",
    "compensating:reserve",
    "compensated:reserve",
]


@pytest.mark.parametrize("crash_at", FORWARD_BOUNDARIES)
def test_an_order_service_killed_mid_saga_approves_the_order_after_restart_and_charges_once(
    saga_cluster: Cluster, crash_at: str
) -> None:
    book_id = 21 + FORWARD_BOUNDARIES.index(crash_at)
    set_stock(saga_cluster, book_id, 10)
    user_id = str(uuid.uuid4())
    pays_before = pay_calls(saga_cluster)

    crash_once(saga_cluster, crash_at, order_request(user_id, book_id, quantity=2))

    (order,) = settled_orders(saga_cluster, [user_id], expected=1)
    assert order.status == APPROVED, order.reason
    assert_books_agree(saga_cluster, order, book_id, initial_stock=10)
    # Pay runs twice only when the crash fell between its answer and its log line; the
    # second call carries the same order id and key, and is answered, not charged again.
    assert pay_calls(saga_cluster) - pays_before == (2 if crash_at == "returned:pay" else 1)
    assert in_flight_sagas(saga_cluster) == []


@pytest.mark.parametrize("crash_at", COMPENSATION_BOUNDARIES)
def test_an_order_service_killed_while_compensating_rejects_the_order_after_restart_and_returns_everything(
    saga_cluster: Cluster, crash_at: str
) -> None:
    book_id = 31 + COMPENSATION_BOUNDARIES.index(crash_at)
    set_stock(saga_cluster, book_id, 10)
    user_id = str(uuid.uuid4())
    saga_cluster.inject_fault("payment", "Pay", error_rate=1.0, code="UNAVAILABLE")
    try:
        crash_once(saga_cluster, crash_at, order_request(user_id, book_id, quantity=3))
    finally:
        saga_cluster.clear_faults("payment")

    (order,) = settled_orders(saga_cluster, [user_id], expected=1)
    assert order.status == REJECTED
    # The restarted process never saw the failure; the saga log kept the reason.
    assert order.reason.startswith("payment failed: Pay returned UNAVAILABLE: injected fault on Pay")
    assert_books_agree(saga_cluster, order, book_id, initial_stock=10)
    assert in_flight_sagas(saga_cluster) == []


def test_a_request_replayed_after_a_crash_gets_the_same_order_reserved_and_charged_once(
    saga_cluster: Cluster,
) -> None:
    book_id = 41
    set_stock(saga_cluster, book_id, 10)
    user_id = str(uuid.uuid4())
    request = order_request(user_id, book_id, quantity=1, request_id=f"checkout-{secrets.token_hex(4)}")

    crash_once(saga_cluster, "before:pay", request)
    # The customer's browser retries; the recovery thread may be at it too. If recovery holds
    # the saga at that moment, the replay answers the same order as it stands (PENDING), and
    # recovery finishes it; either way there is one order, approved and charged once.
    first = saga_cluster.stub("order").CreateOrder(request, timeout=DEADLINE).order
    (settled,) = settled_orders(saga_cluster, [user_id], expected=1)
    again = saga_cluster.stub("order").CreateOrder(request, timeout=DEADLINE).order

    assert first.order_id == settled.order_id and first.status in (PENDING, APPROVED)
    assert settled.status == APPROVED
    assert again == settled
    assert_books_agree(saga_cluster, settled, book_id, initial_stock=10)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("FAILED_PRECONDITION", "payment declined: "),
        ("UNAVAILABLE", "payment failed: Pay returned UNAVAILABLE"),
    ],
)
def test_a_failing_payment_rejects_the_order_with_its_reason_and_returns_the_stock(
    saga_cluster: Cluster, code: str, reason: str
) -> None:
    book_id = 42
    set_stock(saga_cluster, book_id, 10)
    user_id = str(uuid.uuid4())
    saga_cluster.inject_fault("payment", "Pay", error_rate=1.0, code=code)
    try:
        if code == "FAILED_PRECONDITION":
            # A refusal is an answer: the request succeeded, the order is REJECTED.
            order = (
                saga_cluster.stub("order")
                .CreateOrder(order_request(user_id, book_id, 4), timeout=DEADLINE)
                .order
            )
        else:
            # A broken payment service is an error the caller must see, with its code.
            with pytest.raises(grpc.RpcError) as raised:
                saga_cluster.stub("order").CreateOrder(order_request(user_id, book_id, 4), timeout=DEADLINE)
            assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
            (order,) = orders_of(saga_cluster, user_id)
    finally:
        saga_cluster.clear_faults("payment")
    assert order.status == REJECTED
    assert order.reason.startswith(reason)
    assert_books_agree(saga_cluster, order, book_id, initial_stock=10)


# ------------------------------------------------------------------------------ the invariant run

CLIENTS = 20
ORDERS_PER_CLIENT = 50
BOOKS = (1, 2, 3, 4, 5)
INITIAL_STOCK = 250
STEP_DEADLINE_S = 1.0


@pytest.fixture(scope="module")
def stressed_cluster() -> Iterator[Cluster]:
    """SQLite only: this run is about the saga's invariants, which the crash tests check on both."""
    running = Cluster(deadline_s=STEP_DEADLINE_S, env={"BOOKSTORE_SAGA_DEADLINE_S": "3.0"}).start()
    try:
        yield running
    finally:
        running.stop()


@dataclass
class ClientTally:
    answered: Counter[str]
    errors: Counter[str]


def run_client(cluster: Cluster, user_id: str, seed: int) -> ClientTally:
    """One customer placing orders back to back: one or two books, one or two copies each."""
    rng = random.Random(seed)
    tally = ClientTally(Counter(), Counter())
    for _ in range(ORDERS_PER_CLIENT):
        books = rng.sample(BOOKS, rng.choice((1, 2)))
        request = order_pb2.CreateOrderRequest(
            user_id=user_id,
            items=[order_pb2.OrderItem(book_id=book, quantity=rng.choice((1, 2))) for book in books],
        )
        try:
            order = cluster.stub("order").CreateOrder(request, timeout=DEADLINE).order
            tally.answered[order_pb2.OrderStatus.Name(order.status)] += 1
        except grpc.RpcError as error:
            tally.errors[error.code().name] += 1
    return tally


def test_a_thousand_orders_under_failing_and_slow_payments_all_settle_conserving_stock_and_money(
    stressed_cluster: Cluster,
) -> None:
    cluster = stressed_cluster
    for book in BOOKS:
        set_stock(cluster, book, INITIAL_STOCK)
    # 30% of payments fail; 10% take longer than the step deadline, so the order service
    # times out not knowing whether the card was charged.
    cluster.inject_fault(
        "payment", "Pay", error_rate=0.3, latency_ms=int(STEP_DEADLINE_S * 1500), slow_rate=0.1
    )
    users = [str(uuid.uuid4()) for _ in range(CLIENTS)]
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            tallies = list(pool.map(run_client, [cluster] * CLIENTS, users, range(CLIENTS)))
    finally:
        cluster.clear_faults("payment")
    answered = sum((t.answered for t in tallies), Counter())
    errors = sum((t.errors for t in tallies), Counter())
    assert sum(answered.values()) + sum(errors.values()) == CLIENTS * ORDERS_PER_CLIENT

    # Every order ends APPROVED or REJECTED, and no saga is left in flight.
    orders = settled_orders(cluster, users, expected=CLIENTS * ORDERS_PER_CLIENT)
    assert in_flight_sagas(cluster) == []
    approved = [order for order in orders if order.status == APPROVED]
    rejected = [order for order in orders if order.status == REJECTED]
    assert len(approved) + len(rejected) == len(orders)

    # Stock is conserved: what is left plus what approved orders took is what there was.
    for book in BOOKS:
        sold = sum(item.quantity for order in approved for item in order.items if item.book_id == book)
        assert stock_of(cluster, book) + sold == INITIAL_STOCK, f"book {book}"

    # Money is conserved, order by order: an approved order is charged its total, exactly once
    # (one payment row per order, CHARGED); a rejected one keeps no charge.
    payments = {order.order_id: payment_of(cluster, order.order_id) for order in orders}
    for order in approved:
        payment = payments[order.order_id]
        assert payment is not None and payment.status == payment_pb2.PAYMENT_STATUS_CHARGED, order.order_id
        assert payment.amount_cents == order.total_cents
    for order in rejected:
        payment = payments[order.order_id]
        assert payment is None or payment.status != payment_pb2.PAYMENT_STATUS_CHARGED, order.order_id
    charged = sum(
        p.amount_cents
        for p in payments.values()
        if p is not None
        and p.status in (payment_pb2.PAYMENT_STATUS_CHARGED, payment_pb2.PAYMENT_STATUS_REFUNDED)
    )
    refunded = sum(
        p.amount_cents
        for p in payments.values()
        if p is not None and p.status == payment_pb2.PAYMENT_STATUS_REFUNDED
    )
    assert charged == refunded + sum(order.total_cents for order in approved)

    # The run did exercise every path it claims to: refusals, failures and timeouts.
    reasons = Counter(order.reason.split(":")[0] for order in rejected)
    assert answered["ORDER_STATUS_APPROVED"] > 0 and errors["UNAVAILABLE"] > 0, (answered, errors)
    assert errors["DEADLINE_EXCEEDED"] > 0, (answered, errors)
    assert reasons["payment failed"] > 0, reasons
