"""One order, one trace: spans from the gateway and four services, linked parent to child.

This module's cluster exports every process's spans over OTLP to an embedded collector the
test runs (``OTEL_EXPORTER_OTLP_ENDPOINT``). The test sends its own ``traceparent`` with the
HTTP request, so it knows the trace id to ask the collector for. Spans arrive in batches
from five processes, so every read is a bounded poll; nothing asserts on time.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.observability.collector import CollectorClient, EmbeddedCollector, SpanRecord
from bookstore.rpc.v1 import inventory_pb2

pytestmark = pytest.mark.integration

SERVICES = {"gateway", "order", "catalog", "inventory", "payment"}
BOOK = 2
MINIMUM_CALLS = 4  # the order service's breaker in front of Pay judges after this many calls
WAIT_S = 30.0  # a bound for a slow machine, not an expectation


@pytest.fixture(scope="module")
def collector() -> Iterator[EmbeddedCollector]:
    with EmbeddedCollector() as running:
        yield running


@pytest.fixture(scope="module")
def cluster(collector: EmbeddedCollector) -> Iterator[Cluster]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp_endpoint,
        "BOOKSTORE_BREAKER_MINIMUM_CALLS": str(MINIMUM_CALLS),
        "BOOKSTORE_BREAKER_OPEN_TIMEOUT_S": "60",
        # Pay's own breaker: the Refunds that compensate failed Pays succeed, and would keep a
        # breaker shared by all of payment's methods from ever seeing half its calls fail.
        "BOOKSTORE_BREAKER_PER_METHOD": "payment",
    }
    with Cluster(env=env) as running:
        running.stub("inventory").SetStock(
            inventory_pb2.SetStockRequest(book_id=BOOK, quantity=1000), timeout=5
        )
        yield running


@pytest.fixture(scope="module")
def http(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.gateway_url, timeout=15) as client:
        credentials = {"username": f"tracer_{secrets.token_hex(4)}", "password": "correct horse"}
        assert client.post("/auth/register", json=credentials).status_code == 201
        token = client.post("/auth/login", json=credentials).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def place_order(http: httpx.Client) -> tuple[httpx.Response, str, str]:
    """POST /orders inside a trace this test starts; the answer, the trace id, the test's span id."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    answer = http.post(
        "/orders",
        json={"items": [{"book_id": BOOK, "quantity": 1}]},
        headers={"traceparent": f"00-{trace_id}-{span_id}-01"},
    )
    return answer, trace_id, span_id


def only(spans: list[SpanRecord], service: str, name: str) -> SpanRecord:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, f"{service} {name}: {[(s.service, s.name) for s in spans]}"
    return found[0]


def test_an_order_is_one_trace_across_five_processes_with_correct_parent_links(
    collector: EmbeddedCollector, http: httpx.Client
) -> None:
    answer, trace_id, test_span = place_order(http)
    assert answer.status_code == 201, answer.text
    order = answer.json()
    spans = CollectorClient(collector.query_url).wait_for_trace(
        trace_id, min_spans=12, services=SERVICES, timeout_s=WAIT_S
    )
    by_id = {s.span_id: s for s in spans}
    assert {s.service for s in spans} == SERVICES
    assert all(s.trace_id == trace_id for s in spans)

    root = only(spans, "gateway", "POST /orders")
    assert root.parent_id == test_span
    assert [s for s in spans if s.parent_id not in by_id] == [root], (
        "every other span's parent is in the trace"
    )

    for server in (s for s in spans if s.kind == "SERVER" and s.service != "gateway"):
        client = by_id[server.parent_id or ""]
        assert client.kind == "CLIENT" and client.name == server.name and client.service != server.service

    create = only(spans, "order", "bookstore.rpc.v1.OrderService/CreateOrder")
    saga = only(spans, "order", "saga place_order")
    assert saga.parent_id == create.span_id
    steps = {s.name: s for s in spans if s.parent_id == saga.span_id}
    assert {"step reserve", "step pay"} <= set(steps)  # the order row rides in the log's commits
    reserve_call = only(spans, "order", "bookstore.rpc.v1.InventoryService/ReserveStock")
    assert reserve_call.parent_id == steps["step reserve"].span_id
    assert (
        only(spans, "inventory", "bookstore.rpc.v1.InventoryService/ReserveStock").parent_id
        == reserve_call.span_id
    )

    assert root.attributes["user.id"] == order["user_id"]
    assert root.attributes["order.id"] == order["order_id"]
    assert create.attributes["order.id"] == order["order_id"]
    assert create.attributes["order.status"] == "approved"


def test_a_declined_payment_shows_the_failed_step_and_the_compensation(
    cluster: Cluster, collector: EmbeddedCollector, http: httpx.Client
) -> None:
    cluster.inject_fault("payment", "Pay", error_rate=1.0, code="FAILED_PRECONDITION")
    try:
        answer, trace_id, _ = place_order(http)
    finally:
        cluster.clear_faults("payment")
    assert answer.status_code == 201 and answer.json()["status"] == "REJECTED", answer.text
    # The saga's span ends after its steps and compensations, so it often comes in a later
    # batch than they do: wait for every span read below, not for a count.
    read_below = {
        ("order", "step pay"),
        ("order", "compensate reserve"),
        ("order", "saga place_order"),
        ("payment", "bookstore.rpc.v1.PaymentService/Pay"),
    }
    spans = CollectorClient(collector.query_url).wait_for_trace(
        trace_id, min_spans=15, services=SERVICES, span_names=read_below, timeout_s=WAIT_S
    )
    pay = only(spans, "order", "step pay")
    assert pay.is_error and "FAILED_PRECONDITION" in pay.status_message
    assert (
        only(spans, "order", "compensate reserve").parent_id
        == only(spans, "order", "saga place_order").span_id
    )
    assert (
        only(spans, "payment", "bookstore.rpc.v1.PaymentService/Pay").attributes["rpc.grpc.status_code"] == 9
    )
    assert only(spans, "order", "saga place_order").attributes["saga.outcome"] == "compensated"


def test_an_open_breaker_is_an_event_on_the_step_whose_call_it_refused(
    cluster: Cluster, collector: EmbeddedCollector, http: httpx.Client
) -> None:
    # The gateway's order breaker stays closed meanwhile: the order service passes payment's
    # failures on marked as such (bookstore-dependency), and no gateway breaker counts them.
    cluster.inject_fault("payment", "Pay", error_rate=1.0, code="UNAVAILABLE")
    try:
        for _ in range(MINIMUM_CALLS):
            place_order(http)
        answer, trace_id, _ = place_order(http)
    finally:
        cluster.clear_faults("payment")
    assert answer.status_code == 503, answer.text
    spans = CollectorClient(collector.query_url).wait_for_trace(
        trace_id, min_spans=10, services={"gateway", "order", "inventory"}, timeout_s=WAIT_S
    )
    pay = only(spans, "order", "step pay")
    rejected = [e for e in pay.events if e.name == "circuit_breaker.rejected"]
    assert rejected and rejected[0].attributes["breaker"] == "payment/Pay"
    assert not [s for s in spans if s.service == "payment"], "a refused call never reaches payment"
