"""The gateway's catalog breaker against a real failing catalog process, end to end.

The story of week 8 on real processes: the catalog starts failing every call (an injected
fault), the gateway's breaker for it opens, books the gateway has seen are served from its
last-known-good cache, others get 503 at once with ``Retry-After``, and once the fault is
cleared the breaker half-opens, its trial calls succeed and it closes.

The cluster here is this module's own, with a short ``BOOKSTORE_BREAKER_OPEN_TIMEOUT_S`` so
that recovery comes quickly, rather than the shared one that other tests expect healthy.
"Fast" is shown without a clock: while the breaker is open, the catalog's own call counter
does not move. Every wait is a bounded poll; nothing asserts on time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bookstore.gateway.fallback import FALLBACK_HEADER
from bookstore.launcher.cluster import Cluster

pytestmark = pytest.mark.integration

OPEN_TIMEOUT_S = 2.0
POLL_LIMIT_S = 60.0  # a generous bound for a slow machine, not an expectation
CACHED_BOOK = 1
UNCACHED_BOOK = 2


@pytest.fixture(scope="module")
def breaker_cluster() -> Iterator[Cluster]:
    running = Cluster(env={"BOOKSTORE_BREAKER_OPEN_TIMEOUT_S": str(OPEN_TIMEOUT_S)}).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def http(breaker_cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=breaker_cluster.gateway_url, timeout=10) as client:
        yield client


def catalog_breaker(http: httpx.Client) -> dict[str, Any]:
    breakers = http.get("/internal/breakers").json()["breakers"]
    return next(breaker for breaker in breakers if breaker["name"] == "catalog")


def get_book_calls(cluster: Cluster) -> int:
    """GetBook calls that reached the catalog's processes (failed or not)."""
    return sum(stats.calls_by_method.get("GetBook", 0) for stats in cluster.stats("catalog"))


def poll(step: Callable[[], bool], what: str) -> None:
    """Run ``step`` until it returns True; fail, naming ``what``, if that takes too long."""
    give_up = time.monotonic() + POLL_LIMIT_S
    while not step():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def test_a_failing_catalog_opens_the_gateways_breaker_and_it_closes_once_the_fault_is_cleared(
    breaker_cluster: Cluster, http: httpx.Client
) -> None:
    fresh = http.get(f"/books/{CACHED_BOOK}")
    assert fresh.status_code == 200 and FALLBACK_HEADER not in fresh.headers
    assert catalog_breaker(http)["state"] == "CLOSED"

    breaker_cluster.inject_fault("catalog", "*", error_rate=1.0)

    def failing_calls_open_the_breaker() -> bool:
        assert http.get(f"/books/{UNCACHED_BOOK}").status_code == 503
        return catalog_breaker(http)["state"] == "OPEN"

    poll(failing_calls_open_the_breaker, "the catalog breaker to open")

    def an_uncached_book_is_refused_without_calling_the_catalog() -> bool:
        before, calls_before = catalog_breaker(http), get_book_calls(breaker_cluster)
        response = http.get(f"/books/{UNCACHED_BOOK}")
        after, calls_after = catalog_breaker(http), get_book_calls(breaker_cluster)
        if not (before["state"] == after["state"] == "OPEN" and before["generation"] == after["generation"]):
            return False  # the breaker moved on (a trial call) in between: look again
        assert response.status_code == 503, response.text
        assert 1 <= int(response.headers["Retry-After"]) <= math.ceil(OPEN_TIMEOUT_S)
        assert "circuit open" in response.json()["detail"]
        assert calls_after == calls_before
        return True

    poll(an_uncached_book_is_refused_without_calling_the_catalog, "a refusal while the breaker stays open")

    stale = http.get(f"/books/{CACHED_BOOK}")
    assert stale.status_code == 200
    assert stale.json() == fresh.json()
    assert stale.headers[FALLBACK_HEADER] == "cache"
    assert int(stale.headers["Age"]) >= 0

    breaker_cluster.clear_faults("catalog")

    def trial_calls_close_the_breaker() -> bool:
        response = http.get(f"/books/{UNCACHED_BOOK}")
        return response.status_code == 200 and catalog_breaker(http)["state"] == "CLOSED"

    poll(trial_calls_close_the_breaker, "the catalog breaker to close after the fault was cleared")

    recovered = http.get(f"/books/{CACHED_BOOK}")
    assert recovered.status_code == 200 and FALLBACK_HEADER not in recovered.headers
    assert catalog_breaker(http)["totals"]["rejected"] >= 1
