"""Measuring the microservice tax: one order journey, run against any bookstore URL.

The monolith and the gateway speak the same HTTP API, so one client measures both:
``place_orders(url, ...)`` places orders from ``clients`` threads (each with its own
keep-alive connection, as browsers and load generators do) and records, per order, the wall
time from request to answer; and, around the whole run, the CPU time that the server's
processes spent (``bookstore.platform.processes.cpu_seconds`` of each PID, from ``/proc``).
Divided by the orders placed, that is the CPU one order costs: the monolith's one process
against the gateway plus the five services.

What the figures mean, and when they do not hold:

* Everything runs on **loopback**: a hop between services costs serialisation, system calls
  and a thread hand-off, but no network. Across machines, each hop also pays a round trip
  (0.1-0.5 ms in one data centre, tens of ms across regions), and an order makes several
  hops in sequence: the latency tax grows with it; the CPU tax does not.
* The client shares the CPUs with the servers. On a busy machine (see the load average) every
  figure grows and the spread with it; the *ratio* of the two, measured in the same run, is
  what carries over to another machine, and even that only roughly.
* A 2-core machine cannot run six processes in parallel: at higher concurrency, the services'
  extra CPU per order becomes extra latency, because the cores are full.
"""

from __future__ import annotations

import secrets
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx

from bookstore.observability.plots import percentiles
from bookstore.platform.processes import cpu_seconds

PASSWORD = "measure the tax"
DEFAULT_TIMEOUT_S = 30.0
REFUSED = "no answer"
"""What ``what_answers`` reports for a request that no process answered (connection refused)."""


@dataclass(frozen=True)
class OrderRun:
    """Orders placed against one URL: the latency of each, the answers, the CPU the server spent."""

    name: str
    clients: int
    latencies_s: list[float]
    statuses: Counter[int] = field(compare=False)
    wall_s: float
    cpu_s: float

    @property
    def orders(self) -> int:
        return len(self.latencies_s)

    @property
    def p50_ms(self) -> float:
        return self._percentile_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self._percentile_ms(0.99)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_s) * 1000

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.wall_s

    @property
    def cpu_ms_per_order(self) -> float:
        return self.cpu_s * 1000 / self.orders

    def _percentile_ms(self, share: float) -> float:
        return percentiles(self.latencies_s, [share])[share] * 1000

    def summary(self) -> str:
        return (
            f"{self.name:<9} {self.clients} client(s), {self.orders} orders: p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, {self.orders_per_s:.0f} orders/s, "
            f"CPU {self.cpu_ms_per_order:.1f} ms/order; answers {dict(self.statuses)}"
        )


def sign_up(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """Register a fresh user at ``url`` and log in; the headers carry its bearer token."""
    credentials = {"username": f"buyer_{secrets.token_hex(4)}", "password": PASSWORD}
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        client.post("/auth/register", json=credentials).raise_for_status()
        login = client.post("/auth/login", json=credentials)
        login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def place_orders(
    name: str,
    url: str,
    headers: Mapping[str, str],
    *,
    orders: int,
    clients: int = 1,
    pids: Iterable[int] = (),
    warmup: int = 3,
    first_book: int = 1,
) -> OrderRun:
    """Place ``orders`` one-copy orders from ``clients`` threads; CPU summed over ``pids``.

    Client ``k`` orders book ``first_book + k``: different clients touch different stock rows.
    Each client first places ``warmup`` orders that are not measured (connections, caches).
    Every answer is counted by status; a failed order still counts with its latency.
    """
    per_client = [orders // clients + (1 if k < orders % clients else 0) for k in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    statuses: list[Counter[int]] = [Counter() for _ in range(clients)]
    warmed = threading.Barrier(clients + 1)
    go = threading.Event()  # set once the CPU counters are read, so no measured order runs before

    def client(k: int) -> None:
        body = {"items": [{"book_id": first_book + k, "quantity": 1}]}
        with httpx.Client(base_url=url, headers=dict(headers), timeout=DEFAULT_TIMEOUT_S) as http:
            for _ in range(warmup):
                http.post("/orders", json=body)
            warmed.wait()
            go.wait()
            for _ in range(per_client[k]):
                started = time.perf_counter()
                status = http.post("/orders", json=body).status_code
                latencies[k].append(time.perf_counter() - started)
                statuses[k][status] += 1

    threads = [threading.Thread(target=client, args=(k,), name=f"buyer-{k}") for k in range(clients)]
    for thread in threads:
        thread.start()
    warmed.wait()  # every client has warmed up: measure from here
    watched = list(pids)
    cpu_before = sum(cpu_seconds(pid) for pid in watched)
    began = time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - began
    cpu_s = sum(cpu_seconds(pid) for pid in watched) - cpu_before
    return OrderRun(
        name=name,
        clients=clients,
        latencies_s=[latency for one in latencies for latency in one],
        statuses=sum(statuses, Counter()),
        wall_s=wall_s,
        cpu_s=cpu_s,
    )


def what_answers(url: str, headers: Mapping[str, str], *, timeout_s: float = 5.0) -> dict[str, str]:
    """Browse and order once: each request's HTTP status (or ``REFUSED``) and how long it took."""
    requests = {
        "GET /books": ("GET", "/books", None),
        "POST /orders": ("POST", "/orders", {"items": [{"book_id": 1, "quantity": 1}]}),
    }
    answers: dict[str, str] = {}
    with httpx.Client(base_url=url, headers=dict(headers), timeout=timeout_s) as http:
        for label, (method, path, body) in requests.items():
            started = time.perf_counter()
            try:
                status = str(http.request(method, path, json=body).status_code)
            except httpx.TransportError:
                status = REFUSED
            answers[label] = f"{status} after {time.perf_counter() - started:.2f} s"
    return answers
