"""One checkout, one trace, through the broker: HTTP -> gRPC -> outbox relay -> RabbitMQ -> consumers.

The cluster wires telemetry itself (``Cluster(telemetry=True, messaging=True)``: the embedded
collector, an OTLP endpoint per process). The test sends its own ``traceparent`` so it knows
the trace id, and checks that the producer span the outbox relay makes is a child of the saga
step that wrote the event, and each consumer's span a child of that producer span.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.rpc.v1 import inventory_pb2

CONSUMERS = {"notification", "analytics", "inventory_sync"}
WAIT_S = 30.0  # a bound for a slow machine, not an expectation


@pytest.fixture(scope="module")
def cluster(rabbitmq_url: str) -> Iterator[Cluster]:
    with Cluster(telemetry=True, prometheus=True, messaging=True, rabbitmq_url=rabbitmq_url) as running:
        running.stub("inventory").SetStock(inventory_pb2.SetStockRequest(book_id=4, quantity=100), timeout=5)
        yield running


def test_the_launcher_runs_a_trace_store_and_every_process_exports_to_it(cluster: Cluster) -> None:
    assert cluster.trace_backend in {"embedded collector", "jaeger container", "configured"}
    assert len(cluster.metrics_urls()) == len(cluster.services)  # one /metrics per process


def test_prometheus_scrapes_every_process_of_the_cluster_consumers_included(cluster: Cluster) -> None:
    if cluster.prometheus is None:
        pytest.skip("no Prometheus here (no binary, no Docker engine, no BOOKSTORE_PROMETHEUS_URL)")
    up = cluster.prometheus.wait_for_targets(cluster.services, timeout_s=WAIT_S)  # "job/address" -> up
    assert {target.split("/", 1)[0] for target in up} == set(cluster.services)
    assert set(up.values()) == {1.0}
    consumed = cluster.prometheus.query("sum by (job) (up)")
    assert {sample.labels["job"] for sample in consumed} >= CONSUMERS


def test_a_checkout_is_one_trace_from_the_gateway_through_rabbitmq_to_every_consumer(
    cluster: Cluster,
) -> None:
    trace_id, test_span = secrets.token_hex(16), secrets.token_hex(8)
    with httpx.Client(base_url=cluster.gateway_url, timeout=15) as http:
        credentials = {"username": f"tracer_{secrets.token_hex(4)}", "password": "correct horse"}
        http.post("/auth/register", json=credentials)
        token = http.post("/auth/login", json=credentials).json()["access_token"]
        answer = http.post(
            "/orders",
            json={"items": [{"book_id": 4, "quantity": 1}]},
            headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{trace_id}-{test_span}-01"},
        )
    assert answer.status_code == 201 and answer.json()["status"] == "APPROVED", answer.text

    spans = cluster.traces.wait_for_trace(
        trace_id,
        min_spans=18,  # 19 before the order row moved into the saga log's commits (no "step order" span)
        services={"gateway", "order", "catalog", "inventory", "payment", *CONSUMERS},
        timeout_s=WAIT_S,
    )
    by_id = {s.span_id: s for s in spans}
    assert len({s.service for s in spans}) >= 8
    assert [s.name for s in spans if s.parent_id not in by_id] == ["POST /orders"]

    producers = [s for s in spans if s.kind == "PRODUCER"]
    assert sorted(p.name for p in producers) == ["publish order.approved", "publish order.created"]
    for producer in producers:
        # The relay publishes in its own thread, yet its span continues the request that wrote
        # the event: its ancestors run through the order service's CreateOrder to the gateway.
        ancestors = []
        span = producer
        while span.parent_id in by_id:
            span = by_id[span.parent_id or ""]
            ancestors.append(f"{span.service}: {span.name}")
        assert "order: bookstore.rpc.v1.OrderService/CreateOrder" in ancestors, ancestors
        assert ancestors[-1] == "gateway: POST /orders"

    consumed: list[tuple[str, str]] = []
    for consumer in (s for s in spans if s.kind == "CONSUMER"):
        producer = by_id[consumer.parent_id or ""]
        assert producer.kind == "PRODUCER", consumer
        consumed.append((consumer.service, producer.name.removeprefix("publish ")))
    # notification takes both events; analytics and inventory_sync bind order.approved only
    assert sorted(consumed) == sorted(
        [
            ("notification", "order.created"),
            ("notification", "order.approved"),
            ("analytics", "order.approved"),
            ("inventory_sync", "order.approved"),
        ]
    )
