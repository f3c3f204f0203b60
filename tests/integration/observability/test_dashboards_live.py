"""Every provisioned dashboard panel returns data from a real Prometheus scraping a busy cluster.

The cluster runs with messaging (so the consumers and the outbox export their metrics) and a
real ``prometheus`` binary scraping every process each second. The traffic is what the panels
are about: orders approved and orders rejected by a payment that fails half the time (so sagas
compensate and breakers count), a search answered 422 and a book not found, and one malformed
event that a consumer dead-letters at once. Each query is then polled, with a little more
traffic between reads, until it returns at least one series; a query that errors, or still
returns nothing at the bound, fails the test by name. Nothing asserts on time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import httpx
import pika
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.messaging.topology import ANALYTICS, Topology
from bookstore.observability.dashboards import Panel, Query, all_panels
from bookstore.observability.prometheus import PrometheusQueryError, prometheus_binary
from bookstore.observability.stack import MetricsBackend

pytestmark = pytest.mark.integration

WAIT_S = 90.0  # a bound for a loaded machine, not an expectation
PANELS = all_panels()


@pytest.fixture(scope="module")
def cluster(rabbitmq_url: str) -> Iterator[Cluster]:
    if prometheus_binary() is None:
        pytest.skip("no `prometheus` binary on PATH (apt-get install -y --no-install-recommends prometheus)")
    with Cluster(messaging=True, rabbitmq_url=rabbitmq_url, prometheus=True) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster) -> MetricsBackend:
    backend = cluster.prometheus
    if backend is None:
        pytest.skip("this cluster found no Prometheus (its metrics come from a direct scrape)")
    backend.wait_for_targets(timeout_s=WAIT_S)
    return backend


@pytest.fixture(scope="module")
def traffic(cluster: Cluster, prometheus: MetricsBackend) -> Iterator[Callable[[], None]]:
    """One round of the journeys the panels show; called again between polls."""
    with httpx.Client(base_url=cluster.gateway_url, timeout=15) as client:
        credentials = {"username": f"dash_{secrets.token_hex(4)}", "password": "correct horse"}
        assert client.post("/auth/register", json=credentials).status_code == 201
        token = client.post("/auth/login", json=credentials).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def round_of_traffic() -> None:
            client.get("/books", params={"q": "the"})
            client.get("/books", params={"q": " "})  # 422: a 4xx in the request counts
            client.get("/books/999999")  # 404 from the catalog, a non-OK gRPC code
            for _ in range(3):
                client.post("/orders", json={"items": [{"book_id": 2, "quantity": 1}]}, headers=headers)

        cluster.inject_fault("payment", "Pay", error_rate=0.5, code="UNAVAILABLE")
        _publish_malformed_event(cluster)
        for _ in range(4):
            round_of_traffic()
        yield round_of_traffic


def _publish_malformed_event(cluster: Cluster) -> None:
    """An event that is not JSON: the analytics consumer dead-letters it on first sight."""
    topology = Topology(prefix=cluster.messaging_prefix)
    connection = pika.BlockingConnection(pika.URLParameters(cluster.rabbitmq_url))
    try:
        channel = connection.channel()
        channel.basic_publish(
            exchange="",
            routing_key=topology.queue(ANALYTICS),
            body=b"<order id=1/>",
            properties=pika.BasicProperties(message_id=f"malformed-{secrets.token_hex(4)}", delivery_mode=2),
        )
    finally:
        connection.close()


def _returns_data(prometheus: MetricsBackend, query: Query, traffic: Callable[[], None]) -> str | None:
    """None once the query returns a series; otherwise why not, at the bound."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if prometheus.query(query.expr):
                return None
            why = "returned no series"
        except PrometheusQueryError as error:
            return f"errored: {error}"
        if time.monotonic() > deadline:
            return f"{why} after {WAIT_S:g} s of traffic"
        traffic()
        time.sleep(0.5)


def test_the_dashboards_have_panels_to_check() -> None:
    assert {panel.dashboard for panel in PANELS} == {
        "bookstore-overview",
        "bookstore-resilience",
        "bookstore-messaging",
    }
    assert sum(len(panel.queries) for panel in PANELS) >= 30


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: f"{p.dashboard}:{p.title}")
def test_every_query_of_the_panel_returns_data_from_a_busy_cluster(
    panel: Panel, prometheus: MetricsBackend, traffic: Callable[[], None]
) -> None:
    failures = {
        query.expr: why for query in panel.queries if (why := _returns_data(prometheus, query, traffic))
    }
    assert not failures, f"panel {panel.title!r}: " + "; ".join(f"{e} {w}" for e, w in failures.items())
