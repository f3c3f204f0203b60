"""A cluster's Prometheus follows ``scale()``: new replicas are scraped, removed ones dropped.

The binary started by the cluster discovers its targets from files the launcher rewrites on
every change (``file_sd_configs``), so no restart and no reload happens in between. Each read
is a bounded poll: Prometheus notices a file change within seconds, and nothing asserts how
many.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.observability.prometheus import prometheus_binary

pytestmark = pytest.mark.integration

WAIT_S = 60.0  # a bound for a loaded machine, not an expectation


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if prometheus_binary() is None:
        pytest.skip("no `prometheus` binary on PATH (apt-get install -y --no-install-recommends prometheus)")
    with Cluster(prometheus=True) as running:
        if running.prometheus is None:
            pytest.skip("the cluster found no Prometheus it could start")
        yield running


def scraped_up(cluster: Cluster, job: str) -> dict[str, float]:
    """instance -> up, for every target of ``job`` Prometheus scrapes now."""
    assert cluster.prometheus is not None
    return {s.labels["instance"]: s.value for s in cluster.prometheus.query(f'up{{job="{job}"}}')}


def wait_for_instances(cluster: Cluster, job: str, expected: set[str]) -> dict[str, float]:
    deadline = time.monotonic() + WAIT_S
    while True:
        seen = scraped_up(cluster, job)
        if set(seen) == expected and set(seen.values()) == {1.0}:
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus scrapes {seen} for {job} at {WAIT_S:g} s; expected {sorted(expected)}")
        time.sleep(0.5)


def test_a_replica_added_by_scale_is_scraped_and_a_removed_one_dropped_without_a_restart(
    cluster: Cluster,
) -> None:
    assert cluster.prometheus is not None
    server = cluster.prometheus.server
    assert server is not None, "a binary Prometheus was expected (the cluster started it)"
    pid_before = server.process.pid
    one = set(cluster.metrics_targets()["catalog"])
    wait_for_instances(cluster, "catalog", one)

    cluster.scale("catalog", 2)
    two = set(cluster.metrics_targets()["catalog"])
    assert len(two) == 2 and one < two
    wait_for_instances(cluster, "catalog", two)

    cluster.scale("catalog", 1)
    wait_for_instances(cluster, "catalog", one)
    # The same Prometheus process throughout: it followed, it was not restarted.
    assert server.process.pid == pid_before and server.process.poll() is None
