"""A real Prometheus scraping every process of a cluster, and the same numbers without one.

Every gRPC service of this module's cluster is given a ``/metrics`` port (one restart each,
``BOOKSTORE_METRICS_PORT``); the gateway serves ``/metrics`` on its HTTP port. A
``prometheus`` binary (Debian: ``apt-get install prometheus``) is started on them with a 1 s
scrape interval. Its first scrapes come a few seconds after it starts, so every query is a
bounded poll; nothing asserts on time. Without the binary those tests skip, saying why; the
direct-scrape tests run either way.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from bookstore.launcher.cluster import GRPC_SERVICES, Cluster
from bookstore.observability.prometheus import (
    PrometheusServer,
    histogram_quantile,
    metric_types,
    prometheus_binary,
    query,
    scrape,
    start_prometheus,
)
from bookstore.platform.processes import free_port

pytestmark = pytest.mark.integration

WAIT_S = 60.0  # a bound for a slow machine, not an expectation
T = TypeVar("T")


def poll(read: Callable[[], T], done: Callable[[T], bool], what: str, traffic: Callable[[], object]) -> T:
    """Read until ``done``, making a little traffic between reads; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} after {WAIT_S:g} s: last read {value!r}")
        traffic()
        time.sleep(0.25)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as running:
        yield running


@pytest.fixture(scope="module")
def targets(cluster: Cluster) -> dict[str, list[str]]:
    """Job -> scrape addresses: a metrics port for each gRPC service, the gateway's own port."""
    jobs = {}
    for service in GRPC_SERVICES:
        port = free_port()
        cluster.restart(service, env={"BOOKSTORE_METRICS_PORT": str(port)})
        jobs[service] = [f"127.0.0.1:{port}"]
    jobs["gateway"] = [cluster.address("gateway")]
    return jobs


@pytest.fixture(scope="module")
def shop(cluster: Cluster, targets: dict[str, list[str]]) -> Iterator[Callable[[], object]]:
    """Places one order through the gateway per call (and so calls every service)."""
    with httpx.Client(base_url=cluster.gateway_url, timeout=15) as client:
        credentials = {"username": f"scraped_{secrets.token_hex(4)}", "password": "correct horse"}
        assert client.post("/auth/register", json=credentials).status_code == 201
        token = client.post("/auth/login", json=credentials).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def order() -> object:
            answer = client.post("/orders", json={"items": [{"book_id": 1, "quantity": 1}]}, headers=headers)
            assert answer.status_code == 201, answer.text
            return answer

        for _ in range(5):
            order()
        yield order


@pytest.fixture(scope="module")
def prometheus(
    targets: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    if prometheus_binary() is None:
        pytest.skip("no `prometheus` binary on PATH (apt-get install -y --no-install-recommends prometheus)")
    work_dir: Path = tmp_path_factory.mktemp("prometheus")
    with start_prometheus(targets, work_dir, scrape_interval_s=1.0) as server:
        yield server


def test_prometheus_scrapes_every_process_of_the_cluster(
    prometheus: PrometheusServer, targets: dict[str, list[str]]
) -> None:
    health = prometheus.wait_for_targets(targets, timeout_s=WAIT_S)
    expected = {f"{job}/{address}" for job, addresses in targets.items() for address in addresses}
    assert set(health) == expected
    assert set(health.values()) == {1.0}


def test_promql_quantiles_of_request_latency_come_back_as_numbers(
    prometheus: PrometheusServer, shop: Callable[[], object]
) -> None:
    for promql in (
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[10s])))",
        'histogram_quantile(0.5, sum by (le) (rate(grpc_server_handling_seconds_bucket{job="order"}[10s])))',
        "histogram_quantile(0.9, sum by (le) (rate(saga_execution_duration_seconds_bucket[10s])))",
    ):
        samples = poll(
            lambda promql=promql: query(prometheus.url, promql),
            lambda found: bool(found) and all(math.isfinite(s.value) for s in found),
            f"no finite value for {promql}",
            shop,
        )
        assert all(s.value > 0 for s in samples), promql


def test_prometheus_counts_the_orders_the_order_service_created(
    prometheus: PrometheusServer, shop: Callable[[], object]
) -> None:
    found = poll(
        lambda: query(prometheus.url, 'sum(orders_created_total{status="approved"})'),
        lambda found: bool(found) and found[0].value >= 5,
        "orders_created_total below 5",
        shop,
    )
    assert found[0].value >= 5


# ----------------------------------------------------------------------------- without Prometheus


def test_each_process_exposes_its_metrics_with_their_names_and_types(
    targets: dict[str, list[str]], shop: Callable[[], object]
) -> None:
    expected = {
        "gateway": {
            "http_requests": "counter",
            "http_request_duration_seconds": "histogram",
            "gateway_order_admission_bound": "gauge",
        },
        "order": {
            "orders_created": "counter",
            "order_creation_duration_seconds": "histogram",
            "orders_in_progress": "gauge",
            "order_value_cents": "summary",
            "saga_executions": "counter",
            "circuit_breaker_state": "gauge",
            "circuit_breaker_requests": "counter",
            "grpc_client_handled": "counter",
        },
        "inventory": {"grpc_server_handled": "counter", "grpc_server_handling_seconds": "histogram"},
    }
    for job, wanted in expected.items():
        with httpx.Client(timeout=10) as client:
            text = client.get(f"http://{targets[job][0]}/metrics").text
        types = metric_types(text)
        assert {name: types.get(name) for name in wanted} == wanted, job


def test_a_direct_scrape_gives_the_same_kind_of_quantile_without_prometheus(
    targets: dict[str, list[str]], shop: Callable[[], object]
) -> None:
    before = scrape(f"http://{targets['order'][0]}")
    for _ in range(5):
        shop()
    after = scrape(f"http://{targets['order'][0]}")
    p99 = histogram_quantile(0.99, after, before, metric="order_creation_duration_seconds")
    assert math.isfinite(p99) and p99 > 0
    breakers = {s.labels["breaker"] for s in after if s.name == "circuit_breaker_state"}
    assert {"catalog", "inventory", "payment"} <= breakers
