"""Week 6 benchmark: what one order through the gateway costs, against the calls inside it.

Run it with ``make bench`` or ``.venv/bin/python -m benchmarks.bench_week06`` (add
``--mariadb`` to repeat the cluster measurements once with MariaDB schemas). It prints a
table and writes the figures to ``build/bench_week06.json``.

What is measured, in this order:

1. **Start-up.** ``Cluster().start()`` five times: seconds until all six processes answer
   (five gRPC health checks SERVING and the gateway's ``/healthz``), from
   ``cluster.startup_seconds``. The aim: within 3 s.
2. **The floor of a unary call.** A bare grpcio server in its own process serving only the
   standard health service; sequential ``Check`` calls on loopback: calls/s, p50, p99.
3. **Each hop of the order flow, called directly** with stubs against a running cluster,
   one method at a time in a tight loop: ``catalog.BatchGetBooks``,
   ``inventory.ReserveStock`` (then ``ReleaseStock`` on the same order ids, which puts the
   stock back), ``payment.Pay`` with a new order id each time, and ``order.CreateOrder``,
   which makes those three calls plus the order's own two database writes. Also a health
   check on a real service (the runtime's own cost) and ``GetBook``.
4. **The same three hops chained**, back to back as the order service calls them. A server
   that has just answered the same call answers the next one faster than a server that sat
   idle while its neighbours worked, which is what happens inside an order; the chain shows
   how large that effect is.
5. **One order, profiled.** The order service's own ``place_order`` run in this process
   against the cluster's catalog, inventory and payment and a fresh order store, with a
   timer around every hop and every database write: where the time of one order goes.
6. **Orders through the gateway**: HTTP ``POST /orders`` with a registered user's JWT, from
   1 client and from 16 concurrent clients (threads, each with its own keep-alive
   ``httpx.Client``), with the CPU time each process spent per order; plus ``GET /healthz``
   and ``GET /books/1`` to show what the HTTP edge costs by itself.
7. **Ratios**: one sequential order's p50 over the sum of its hops' p50 (the aim: at most
   3x), and the floor's calls/s over the gateway's orders/s.

Why every baseline is taken in the same run: an absolute figure says more about the machine
than about the code. A laptop on battery, a noisy CI neighbour or another Python version
moves every number, but it moves the baseline and the system alike, so their ratio stays
meaningful. A baseline copied from yesterday's run would not be.

Caveat for reading the figures: the benchmark client shares the CPUs with the six service
processes (2 cores on the reference machine); under 16 clients its own Python competes with
the services it measures, and the CPU table says how much.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bookstore.domain.models import OrderItem, OrderStatus
from bookstore.platform import processes
from bookstore.platform.cluster import ALL_SERVICES, GRPC_SERVICES, Cluster
from bookstore.platform.database import drop_mysql_databases, make_engine
from bookstore.rpc.v1 import catalog_pb2, inventory_pb2, order_pb2, payment_pb2
from bookstore.services.order.flow import OrderDependencies, place_order
from bookstore.services.order.store import OrderStore

REPO = Path(__file__).resolve().parent.parent
JSON_PATH = REPO / "build" / "bench_week06.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_week06"
MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"

AIM_STARTUP_S = 3.0
AIM_ORDER_OVER_HOPS = 3.0
DEADLINE_S = 5.0  # generous: a benchmark call that times out is a failure, not a data point
BOOK_ID = 1  # The Hobbit, 1499 cents: well under the simulated card limit
PRICE_CENTS = 1499
BOOKS_FOR_CONCURRENT_CLIENTS = 16  # client k orders book k+1, so clients do not queue on one row
BUSY_LOAD = 1.0  # a 1-minute load average above this means someone else is using the CPUs
STOCK = 1_000_000  # the most SetStock accepts; no phase here comes close to selling it
ORDER_HOPS = ("catalog.BatchGetBooks", "inventory.ReserveStock", "payment.Pay")
BENCH_CLIENT = "bench client"

# A call under measurement: gets a running index, returns True when the answer was right.
Call = Callable[[int], bool]


@dataclass(frozen=True)
class Counts:
    """How many calls each phase makes; sized so the whole run takes about a minute on 2 cores."""

    startups: int = 5
    raw_calls: int = 2000
    hop_calls: int = 500
    orders: int = 300
    concurrent_clients: int = 16
    orders_per_client: int = 40
    warmup: int = 50


@dataclass(frozen=True)
class Stats:
    """Latency and throughput of one measured phase."""

    name: str
    clients: int
    count: int
    errors: int
    wall_s: float
    per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(
        cls, name: str, latencies_s: Sequence[float], wall_s: float, errors: int = 0, clients: int = 1
    ) -> Stats:
        ordered = sorted(latencies_s)
        return cls(
            name=name,
            clients=clients,
            count=len(ordered),
            errors=errors,
            wall_s=wall_s,
            per_s=len(ordered) / wall_s,
            p50_ms=percentile(ordered, 0.50) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            mean_ms=statistics.fmean(ordered) * 1000,
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list: a value that was actually observed."""
    if not ordered:
        raise ValueError("no samples")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def measure(
    name: str, call: Call, count: int, warmup: int, *, after_warmup: Callable[[], None] | None = None
) -> Stats:
    """Call ``call`` ``warmup`` times untimed, then ``count`` times, one after the other."""
    for index in range(warmup):
        call(index)
    if after_warmup is not None:
        after_warmup()
    latencies: list[float] = []
    errors = 0
    began = time.perf_counter()
    for index in range(warmup, warmup + count):
        start = time.perf_counter()
        ok = call(index)
        latencies.append(time.perf_counter() - start)
        errors += not ok
    return Stats.of(name, latencies, time.perf_counter() - began, errors)


class StepTimer:
    """Wall time of named steps, collected across many runs of a flow."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def clear(self) -> None:
        self.samples.clear()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.samples.setdefault(name, []).append(time.perf_counter() - start)

    def wrap(self, prefix: str, target: Any) -> Any:
        """A stand-in for ``target`` (a stub or a store) that times every method call."""
        return _Timed(self, prefix, target)

    def p50_ms(self) -> dict[str, float]:
        return {name: statistics.median(values) * 1000 for name, values in self.samples.items()}


class _Timed:
    def __init__(self, timer: StepTimer, prefix: str, target: Any) -> None:
        self._timer, self._prefix, self._target = timer, prefix, target

    def __getattr__(self, method: str) -> Callable[..., Any]:
        function = getattr(self._target, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._timer.step(f"{self._prefix}.{method}"):
                return function(*args, **kwargs)

        return timed


# ------------------------------------------------------------------ CPU time per process
def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a whole process (every thread), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_ids(cluster: Cluster) -> dict[str, int]:
    pids = {
        f"{name}[{replica.index}]" if len(cluster.replicas[name]) > 1 else name: replica.pid
        for name in ALL_SERVICES
        for replica in cluster.replicas[name]
        if replica.pid is not None
    }
    return pids | {BENCH_CLIENT: os.getpid()}


@contextlib.contextmanager
def cpu_per_process(pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """Yields a dict filled, on exit, with the CPU seconds each process used meanwhile."""
    used: dict[str, float] = {}
    if not Path("/proc/self/stat").exists():  # not Linux: no figures, nothing breaks
        yield used
        return
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    yield used
    used.update({name: cpu_seconds(pid) - before[name] for name, pid in pids.items()})


# ------------------------------------------------------------------ start-up
def measure_startups(runs: int, db_url: str) -> list[float]:
    """Seconds from ``start()`` until all six answer SERVING, one fresh cluster per run."""
    seconds: list[float] = []
    for _ in range(runs):
        with Cluster(db_url=db_url) as cluster:
            assert cluster.startup_seconds is not None
            seconds.append(cluster.startup_seconds)
    return seconds


# ------------------------------------------------------------------ the floor
@contextlib.contextmanager
def bare_health_server() -> Iterator[str]:
    """A bare grpcio health server in its own process; yields its address, stops it after."""
    port = processes.free_port()
    env = dict(os.environ, BENCH_HEALTH_PORT=str(port))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="bench-health-") as work:
        child = processes.spawn("benchmarks.bare_health_server", env, Path(work) / "server.log")
        try:
            yield f"127.0.0.1:{port}"
        finally:
            processes.terminate([child.pid], reap={child.pid: child})


def measure_floor(counts: Counts) -> Stats:
    with bare_health_server() as address, grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        serving = health_pb2.HealthCheckResponse.SERVING

        def check(_: int) -> bool:
            return bool(stub.Check(request, timeout=DEADLINE_S).status == serving)

        return measure("baseline: bare grpcio health Check", check, counts.raw_calls, counts.warmup * 4)


# ------------------------------------------------------------------ hops, called directly
class Hops:
    """The calls an order makes, each as a plain function of a fresh order id."""

    def __init__(self, cluster: Cluster) -> None:
        self.catalog, self.inventory = cluster.stub("catalog"), cluster.stub("inventory")
        self.payment = cluster.stub("payment")
        self.user_id = str(uuid.uuid4())

    def batch_get_books(self) -> bool:
        request = catalog_pb2.BatchGetBooksRequest(book_ids=[BOOK_ID])
        return len(self.catalog.BatchGetBooks(request, timeout=DEADLINE_S).books) == 1

    def reserve(self, order_id: str) -> bool:
        request = inventory_pb2.ReserveStockRequest(
            order_id=order_id, items=[inventory_pb2.StockItem(book_id=BOOK_ID, quantity=1)]
        )
        reply = self.inventory.ReserveStock(request, timeout=DEADLINE_S)
        return bool(reply.status == inventory_pb2.RESERVATION_STATUS_RESERVED)

    def release(self, order_id: str) -> bool:
        request = inventory_pb2.ReleaseStockRequest(order_id=order_id)
        return bool(self.inventory.ReleaseStock(request, timeout=DEADLINE_S).released_now)

    def pay(self, order_id: str) -> bool:
        request = payment_pb2.PayRequest(order_id=order_id, user_id=self.user_id, amount_cents=PRICE_CENTS)
        payment = self.payment.Pay(request, timeout=DEADLINE_S).payment
        return bool(payment.status == payment_pb2.PAYMENT_STATUS_CHARGED)


def measure_hops(cluster: Cluster, counts: Counts) -> dict[str, Stats]:
    """Each call the order flow makes, and CreateOrder itself, one method at a time."""
    hops = Hops(cluster)
    order, catalog = cluster.stub("order"), cluster.stub("catalog")
    health = health_pb2_grpc.HealthStub(cluster.channel("catalog"))
    n, warm = counts.hop_calls, counts.warmup
    order_ids = [str(uuid.uuid4()) for _ in range(warm + n)]
    serving = health_pb2.HealthCheckResponse.SERVING
    create = order_pb2.CreateOrderRequest(
        user_id=hops.user_id, items=[order_pb2.OrderItem(book_id=BOOK_ID, quantity=1)]
    )

    calls: dict[str, Call] = {
        "catalog health Check": lambda _: bool(
            health.Check(health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE_S).status == serving
        ),
        "catalog.GetBook": lambda _: bool(
            catalog.GetBook(catalog_pb2.GetBookRequest(book_id=BOOK_ID), timeout=DEADLINE_S).book.book_id
            == BOOK_ID
        ),
        "catalog.BatchGetBooks": lambda _: hops.batch_get_books(),
        "inventory.ReserveStock": lambda i: hops.reserve(order_ids[i]),
        # The same order ids, in the same order: every reservation above is released.
        "inventory.ReleaseStock": lambda i: hops.release(order_ids[i]),
        "payment.Pay": lambda _: hops.pay(str(uuid.uuid4())),
        "order.CreateOrder (direct gRPC)": lambda _: bool(
            order.CreateOrder(create, timeout=DEADLINE_S).order.status == order_pb2.ORDER_STATUS_APPROVED
        ),
    }
    return {name: measure(name, call, n, warm) for name, call in calls.items()}


def measure_chain(cluster: Cluster, counts: Counts) -> tuple[Stats, dict[str, float]]:
    """BatchGetBooks, ReserveStock, Pay back to back, as an order makes them (no release)."""
    hops, timer = Hops(cluster), StepTimer()

    def chain(_: int) -> bool:
        order_id = str(uuid.uuid4())
        with timer.step("catalog.BatchGetBooks"):
            priced = hops.batch_get_books()
        with timer.step("inventory.ReserveStock"):
            reserved = hops.reserve(order_id)
        with timer.step("payment.Pay"):
            paid = hops.pay(order_id)
        return priced and reserved and paid

    stats = measure("the three hops chained (one after another)", chain, counts.hop_calls, counts.warmup,
                    after_warmup=timer.clear)
    return stats, timer.p50_ms()


def measure_order_profile(cluster: Cluster, db_url: str, counts: Counts) -> tuple[Stats, dict[str, float]]:
    """The order service's own ``place_order``, run here with a timer around each hop and write.

    Same flow code, same stubs and store, against the cluster's catalog, inventory and
    payment; only the order's own gRPC server edge is missing, and its database is a fresh
    one (a temporary SQLite file, or a MariaDB schema dropped afterwards).
    """
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="bench-orders-") as work:
        url = db_url.replace("{service}", "order_profile") if db_url else f"sqlite:///{work}/order.db"
        engine = make_engine(url)
        try:
            deps = OrderDependencies(
                catalog=timer.wrap("catalog", cluster.stub("catalog")),
                inventory=timer.wrap("inventory", cluster.stub("inventory")),
                payment=timer.wrap("payment", cluster.stub("payment")),
                deadline_s=DEADLINE_S,
            )
            store = timer.wrap("order store", OrderStore(engine))
            user_id = str(uuid.uuid4())
            items = [OrderItem(book_id=BOOK_ID, quantity=1)]

            def one_order(_: int) -> bool:
                return place_order(deps, store, user_id, items).status is OrderStatus.APPROVED

            stats = measure("place_order in-process (profiled)", one_order, counts.hop_calls, counts.warmup,
                            after_warmup=timer.clear)
        finally:
            engine.dispose()
            if db_url:
                drop_mysql_databases(db_url, ["order_profile"])
    return stats, timer.p50_ms()


# ------------------------------------------------------------------ through the gateway
def bearer_headers(gateway_url: str) -> dict[str, str]:
    """Register a fresh user and log in; the headers carry its JWT."""
    credentials = {"username": f"bench_{secrets.token_hex(4)}", "password": "benchmark password"}
    with httpx.Client(base_url=gateway_url, timeout=DEADLINE_S) as client:
        client.post("/auth/register", json=credentials).raise_for_status()
        login = client.post("/auth/login", json=credentials)
        login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def post_order(client: httpx.Client, headers: dict[str, str], book_id: int) -> bool:
    response = client.post("/orders", json={"items": [{"book_id": book_id, "quantity": 1}]}, headers=headers)
    return response.status_code == 201 and response.json()["status"] == "APPROVED"


def measure_gateway_sequential(
    cluster: Cluster, headers: dict[str, str], counts: Counts
) -> tuple[dict[str, Stats], dict[str, float]]:
    """The HTTP floor, a one-hop route, and orders from one client (with CPU per process)."""
    with httpx.Client(base_url=cluster.gateway_url, timeout=DEADLINE_S) as client:
        stats = {
            "gateway GET /healthz": measure(
                "gateway GET /healthz", lambda _: client.get("/healthz").status_code == 200,
                counts.hop_calls, counts.warmup,
            ),
            "gateway GET /books/1": measure(
                "gateway GET /books/1", lambda _: client.get(f"/books/{BOOK_ID}").status_code == 200,
                counts.hop_calls, counts.warmup,
            ),
        }
        for _ in range(counts.warmup):
            post_order(client, headers, BOOK_ID)
        with cpu_per_process(process_ids(cluster)) as cpu:
            stats["gateway POST /orders"] = measure(
                "gateway POST /orders", lambda _: post_order(client, headers, BOOK_ID), counts.orders, 0
            )
    return stats, cpu


def measure_gateway_concurrent(
    cluster: Cluster, headers: dict[str, str], counts: Counts
) -> tuple[Stats, dict[str, float]]:
    """``clients`` threads, each with its own keep-alive client, ordering at once."""
    clients, per_client = counts.concurrent_clients, counts.orders_per_client
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    finished = [0.0] * clients
    failures: list[BaseException] = []
    ready = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        book_id = 1 + k % BOOKS_FOR_CONCURRENT_CLIENTS
        try:
            with httpx.Client(base_url=cluster.gateway_url, timeout=DEADLINE_S) as client:
                for _ in range(max(1, counts.warmup // clients)):
                    post_order(client, headers, book_id)
                ready.wait()
                for _ in range(per_client):
                    start = time.perf_counter()
                    ok = post_order(client, headers, book_id)
                    latencies[k].append(time.perf_counter() - start)
                    errors[k] += not ok
                finished[k] = time.perf_counter()
        except BaseException as error:  # raised below: a silently dead thread would skew the figures
            failures.append(error)
            ready.abort()

    threads = [threading.Thread(target=worker, args=(k,), name=f"bench-client-{k}") for k in range(clients)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    began = time.perf_counter()
    with cpu_per_process(process_ids(cluster)) as cpu:
        for thread in threads:
            thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} benchmark clients failed") from failures[0]
    samples = [s for per_thread in latencies for s in per_thread]
    name = f"gateway POST /orders, {clients} clients"
    return Stats.of(name, samples, max(finished) - began, sum(errors), clients=clients), cpu


def restock(cluster: Cluster) -> None:
    inventory = cluster.stub("inventory")
    for book_id in range(1, BOOKS_FOR_CONCURRENT_CLIENTS + 1):
        inventory.SetStock(inventory_pb2.SetStockRequest(book_id=book_id, quantity=STOCK), timeout=DEADLINE_S)


# ------------------------------------------------------------------ one database setting
@dataclass
class ClusterResult:
    startup_s: float
    sequential: dict[str, Stats]
    chain_steps_p50_ms: dict[str, float]
    profile_steps_p50_ms: dict[str, float]
    concurrent: Stats
    cpu_ms_per_order: dict[str, dict[str, float]]  # phase -> process -> CPU ms per order


def measure_cluster(db_url: str, counts: Counts) -> ClusterResult:
    """Every phase but start-up and the floor, against one freshly started cluster."""
    with Cluster(db_url=db_url) as cluster:
        restock(cluster)
        sequential = measure_hops(cluster, counts)
        sequential["hops chained"], chain_steps = measure_chain(cluster, counts)
        sequential["place_order profiled"], profile_steps = measure_order_profile(cluster, db_url, counts)
        headers = bearer_headers(cluster.gateway_url)
        restock(cluster)
        gateway, cpu_sequential = measure_gateway_sequential(cluster, headers, counts)
        sequential |= gateway
        restock(cluster)
        concurrent, cpu_concurrent = measure_gateway_concurrent(cluster, headers, counts)
        assert cluster.startup_seconds is not None
        startup = cluster.startup_seconds

    def per_order(cpu: dict[str, float], orders: int) -> dict[str, float]:
        return {name: seconds * 1000 / orders for name, seconds in cpu.items()}

    return ClusterResult(
        startup_s=startup,
        sequential=sequential,
        chain_steps_p50_ms=chain_steps,
        profile_steps_p50_ms=profile_steps,
        concurrent=concurrent,
        cpu_ms_per_order={
            "1 client": per_order(cpu_sequential, sequential["gateway POST /orders"].count),
            f"{concurrent.clients} clients": per_order(cpu_concurrent, concurrent.count),
        },
    )


def ratios(floor: Stats, result: ClusterResult) -> dict[str, float]:
    seq = result.sequential
    hops = sum(seq[name].p50_ms for name in ORDER_HOPS)
    order, create = seq["gateway POST /orders"], seq["order.CreateOrder (direct gRPC)"]
    return {
        "hops_p50_sum_ms": hops,
        "order_p50_over_hops": order.p50_ms / hops,
        "order_p50_over_hops_plus_create_order": order.p50_ms / (hops + create.p50_ms),
        "order_p50_over_chained_hops_p50": order.p50_ms / seq["hops chained"].p50_ms,
        "order_p50_over_create_order_p50": order.p50_ms / create.p50_ms,
        "floor_calls_per_s_over_orders_per_s": floor.per_s / order.per_s,
        "order_p50_over_floor_p50": order.p50_ms / floor.p50_ms,
        "concurrent_over_sequential_orders_per_s": result.concurrent.per_s / order.per_s,
        # Differences of medians, not medians of differences: a breakdown, not a measurement.
        "gateway_edge_ms": order.p50_ms - create.p50_ms,
        "order_server_edge_ms": create.p50_ms - seq["place_order profiled"].p50_ms,
    }


# ------------------------------------------------------------------ printing
def row(s: Stats) -> str:
    errors = f"  ({s.errors} errors)" if s.errors else ""
    return (f"  {s.name:<46} {s.clients:>3} {s.count:>6} {s.per_s:>9.0f} {s.p50_ms:>8.2f} "
            f"{s.p99_ms:>8.2f} {s.mean_ms:>8.2f}{errors}")


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_report(label: str, floor: Stats, result: ClusterResult, r: dict[str, float]) -> None:
    seq = result.sequential
    print(f"\n== {label} ==")
    print(f"  {'phase':<46} {'cli':>3} {'n':>6} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    print(row(floor))
    for stats in seq.values():
        print(row(stats))
    print(row(result.concurrent))

    hops, order = r["hops_p50_sum_ms"], seq["gateway POST /orders"]
    met = r["order_p50_over_hops"] <= AIM_ORDER_OVER_HOPS
    print("\n  ratios (every baseline from this run)")
    short = "+".join(name.split(".")[1] for name in ORDER_HOPS)
    print(f"    gateway order p50 / sum of hop p50s ({short} = {hops:.2f} ms): "
          f"{r['order_p50_over_hops']:.2f}x   aim <= {AIM_ORDER_OVER_HOPS:.0f}x: {verdict(met)}")
    lines = {
        "gateway order p50 / (those hops + CreateOrder p50)": r["order_p50_over_hops_plus_create_order"],
        "gateway order p50 / the three hops chained p50": r["order_p50_over_chained_hops_p50"],
        "gateway order p50 / CreateOrder called directly p50": r["order_p50_over_create_order_p50"],
        "bare health calls/s / gateway orders/s at 1 client": r["floor_calls_per_s_over_orders_per_s"],
        "gateway order p50 / bare health Check p50": r["order_p50_over_floor_p50"],
        f"orders/s at {result.concurrent.clients} clients / at 1 client": (
            r["concurrent_over_sequential_orders_per_s"]
        ),
    }
    for text, value in lines.items():
        print(f"    {text:<54} {value:6.2f}x")
    print(f"    ({floor.per_s:.0f} bare calls/s against {order.per_s:.0f} orders/s)")

    print("\n  where one sequential order's time goes (p50 of each step)")
    chain = result.chain_steps_p50_ms
    print(f"    {'step':<34} {'alone':>7} {'chained':>8} {'in the flow':>12}")
    for name, p50 in result.profile_steps_p50_ms.items():
        alone = f"{seq[name].p50_ms:7.2f}" if name in seq else f"{'':7}"
        chained = f"{chain[name]:8.2f}" if name in chain else f"{'':8}"
        print(f"    {name:<34} {alone} {chained} {p50:12.2f}")
    profiled = seq["place_order profiled"].p50_ms
    print(f"    {'= place_order in-process':<34} {'':7} {'':8} {profiled:12.2f}")
    create = seq["order.CreateOrder (direct gRPC)"].p50_ms
    print(f"    {'CreateOrder via the order service':<34} {'':7} {'':8} {create:12.2f}"
          f"   (its gRPC edge: {r['order_server_edge_ms']:+.2f} ms, approx.)")
    print(f"    {'+ gateway HTTP edge (approx.)':<34} {'':7} {'':8} {r['gateway_edge_ms']:12.2f}"
          f"   (GET /healthz alone {seq['gateway GET /healthz'].p50_ms:.2f} ms)")
    print(f"    {'= gateway POST /orders':<34} {'':7} {'':8} {order.p50_ms:12.2f}")

    print("\n  CPU time per order, by process (ms)")
    phases = list(result.cpu_ms_per_order)
    names = list(result.cpu_ms_per_order[phases[0]])
    print(f"    {'process':<14}" + "".join(f" {phase:>11}" for phase in phases))
    for name in names:
        print(f"    {name:<14}" + "".join(f" {result.cpu_ms_per_order[p][name]:11.2f}" for p in phases))
    totals = [sum(result.cpu_ms_per_order[p].values()) for p in phases]
    print(f"    {'total':<14}" + "".join(f" {t:11.2f}" for t in totals))
    cpus = os.cpu_count() or 1
    ceiling = cpus * 1000 / totals[-1]
    print(f"    ({cpus} CPUs: at the last column's CPU cost, {ceiling:.0f} orders/s is the ceiling)")


def startup_summary(seconds: list[float]) -> dict[str, Any]:
    return {"runs_s": seconds, "min_s": min(seconds), "median_s": statistics.median(seconds),
            "max_s": max(seconds), "aim_s": AIM_STARTUP_S, "aim_met_by_max": max(seconds) <= AIM_STARTUP_S}


def print_startup(label: str, summary: dict[str, Any]) -> None:
    runs = ", ".join(f"{s:.2f}" for s in summary["runs_s"])
    print(f"\n== start-up, {label}: Cluster().start() until all six SERVING ==")
    print(f"  runs: {runs} s")
    print(f"  min {summary['min_s']:.2f} s   median {summary['median_s']:.2f} s   "
          f"max {summary['max_s']:.2f} s   aim <= {AIM_STARTUP_S:.0f} s: "
          f"{verdict(summary['aim_met_by_max'])} (judged by the max)")


def mariadb_unreachable() -> str | None:
    """None when MariaDB answers on 127.0.0.1:3306, else why not."""
    try:
        import pymysql

        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=2).close()
    except Exception as error:
        return f"MariaDB on 127.0.0.1:3306 did not answer: {error}"
    return None


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    with contextlib.suppress(OSError, AttributeError):
        return os.getloadavg()[0]
    return None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": load_average(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "httpx": httpx.__version__,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def as_json(result: ClusterResult, r: dict[str, float]) -> dict[str, Any]:
    return {
        "startup_s_of_this_cluster": result.startup_s,
        "sequential": {name: asdict(s) for name, s in result.sequential.items()},
        "concurrent": asdict(result.concurrent),
        "chain_steps_p50_ms": result.chain_steps_p50_ms,
        "profile_steps_p50_ms": result.profile_steps_p50_ms,
        "cpu_ms_per_order": result.cpu_ms_per_order,
        "ratios": r,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mariadb", action="store_true",
                        help="also measure once with MariaDB schemas on 127.0.0.1:3306 (dropped afterwards)")
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the figures")
    args = parser.parse_args(argv)
    counts = Counts()
    began = time.perf_counter()
    info = machine()
    print(f"week 6 benchmark: {info['cpus']} CPUs ({info['processor']}), Python {info['python']}, "
          f"grpcio {info['grpcio']}")
    load = info["load_average_1min_at_start"]
    if load is not None and load > BUSY_LOAD:
        print(f"  warning: the 1-minute load average is {load:.1f}; other work competes for the CPUs "
              "and every figure below will be slower and noisier than on a quiet machine")

    startups = startup_summary(measure_startups(counts.startups, db_url=""))
    print_startup("SQLite", startups)
    floor = measure_floor(counts)
    sqlite = measure_cluster("", counts)
    sqlite_ratios = ratios(floor, sqlite)
    print_report("SQLite (one file per service), loopback", floor, sqlite, sqlite_ratios)
    report: dict[str, Any] = {
        "command": COMMAND + (" --mariadb" if args.mariadb else ""),
        "machine": info,
        "counts": asdict(counts),
        "startup_sqlite": startups,
        "floor": asdict(floor),
        "sqlite": as_json(sqlite, sqlite_ratios),
    }

    if args.mariadb:
        reason = mariadb_unreachable()
        if reason:
            print(f"\n== MariaDB: skipped: {reason} ==")
            report["mariadb"] = {"skipped": reason}
        else:
            db_url = MARIADB_SERVER + f"bench_{secrets.token_hex(4)}_{{service}}"
            try:
                maria = measure_cluster(db_url, counts)
            finally:
                drop_mysql_databases(db_url, list(GRPC_SERVICES))
            maria_ratios = ratios(floor, maria)
            print(f"\n== start-up, MariaDB (one run): {maria.startup_s:.2f} s ==")
            print_report("MariaDB (one schema per service), loopback", floor, maria, maria_ratios)
            report["mariadb"] = as_json(maria, maria_ratios)

    report["total_seconds"] = time.perf_counter() - began
    report["load_average_1min_at_end"] = load_average()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwhole run: {report['total_seconds']:.0f} s; figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
