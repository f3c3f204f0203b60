"""Week 6 benchmark: what one order through the gateway costs, against the calls inside it.

Run it with ``make bench`` or ``.venv/bin/python -m benchmarks.bench_week06``. Add
``--mariadb`` to repeat the cluster measurements once with MariaDB schemas, and
``--order-flow plain`` to measure week 6's plain sequential flow instead of the order
service's default, week 7's saga. It prints a table and writes the figures to
``build/bench_week06.json`` (``build/bench_week06_plain.json`` for the plain flow).

What is measured:

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
6. **Orders through the gateway**: HTTP ``POST /orders`` with a registered user's JWT from
   one client, with the CPU time each process spent per order; plus ``GET /healthz`` and
   ``GET /books/1`` to show what the HTTP edge costs by itself.
7. **Orders from 16 concurrent clients** (threads, each with its own keep-alive
   ``httpx.Client``): orders/s, p50, p99, CPU per order.
8. **Ratios**: one sequential order's p50 over the sum of its hops' p50 (the aim: at most
   3x), and the floor's calls/s over the gateway's orders/s.

Phases 2 to 6 are sequential (one call in flight) and run interleaved: five rounds, each
running a slice of every phase in turn after a few untimed warm-up calls. A machine that
slows down for a few seconds then slows the baseline and the subject alike.

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
import dataclasses
import importlib
import inspect
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine

from benchmarks import common
from benchmarks.common import bearer_headers, load_average, percentile, verdict
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.launcher.cluster import ALL_SERVICES, GRPC_SERVICES, Cluster
from bookstore.platform import processes, service_catalog
from bookstore.platform.database import drop_mysql_databases, make_engine
from bookstore.platform.processes import cpu_seconds
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import catalog_pb2, inventory_pb2, order_pb2, payment_pb2
from bookstore.services.order import flow as order_flow_module
from bookstore.services.order.flow import OrderDependencies
from bookstore.services.order.store import OrderStore

REPO = Path(__file__).resolve().parent.parent
JSON_PATH = REPO / "build" / "bench_week06.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_week06"
MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"

AIM_STARTUP_S = 3.0
AIM_ORDER_OVER_HOPS = 3.0
DEADLINE_S = 5.0  # generous: a benchmark call that times out is a failure, not a data point
SAGA_DEADLINE_S = 5.0  # the order service's default (BOOKSTORE_SAGA_DEADLINE_S), when it has sagas
BOOK_ID = 1  # The Hobbit, 1499 cents: well under the simulated card limit
PRICE_CENTS = 1499
BOOKS_FOR_CONCURRENT_CLIENTS = 16  # client k orders book k+1, so clients do not queue on one row
STOCK = 1_000_000  # the most SetStock accepts; no phase here comes close to selling it
CHAIN = "the three hops chained"
PROFILED = "place_order in-process (profiled)"
PEERS = service_catalog.entry("order").peers  # whom the order service calls
ORDER_HOPS = ("catalog.BatchGetBooks", "inventory.ReserveStock", "payment.Pay")
BENCH_CLIENT = "bench client"

# A call under measurement: gets a running index, returns True when the answer was right.
Call = Callable[[int], bool]


@dataclass(frozen=True)
class Counts:
    """How many calls each phase makes; sized so a run takes about a minute on 2 cores.

    The sequential phases run interleaved, in ``rounds``: every round runs a slice of each
    phase in turn, so a machine that slows down for a few seconds slows baseline and
    subject alike instead of whichever phase happened to run then.
    """

    startups: int = 5
    rounds: int = 5
    floor_calls: int = 400  # per round
    hop_calls: int = 100  # per round
    orders: int = 60  # per round
    concurrent_clients: int = 16
    orders_per_client: int = 40
    warmup: int = 50  # per phase, before the first round
    warmup_per_round: int = 5  # per phase and round, untimed, after switching phases


QUICK = Counts(
    startups=1,
    rounds=1,
    floor_calls=50,
    hop_calls=10,
    orders=10,
    orders_per_client=3,
    warmup=5,
    warmup_per_round=1,
)


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


class StepTimer:
    """Wall time of named steps, collected across many runs of a flow while ``recording``."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.recording = True

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.recording:
                self.samples.setdefault(name, []).append(time.perf_counter() - start)

    def wrap(self, prefix: str, target: Any) -> Any:
        """A stand-in for ``target`` (a stub or a store) that times every method call."""
        return _Timed(self, prefix, target)

    def summary(self, flows: int) -> dict[str, StepSummary]:
        """Per step: p50 of one call, and calls and mean milliseconds per run of the flow."""
        return {
            name: StepSummary(
                p50_ms=statistics.median(values) * 1000,
                calls_per_flow=len(values) / flows,
                ms_per_flow=sum(values) * 1000 / flows,
            )
            for name, values in self.samples.items()
        }


@dataclass(frozen=True)
class StepSummary:
    p50_ms: float  # of one call
    calls_per_flow: float
    ms_per_flow: float  # mean time the step took per run of the flow, all its calls together


class _Timed:
    def __init__(self, timer: StepTimer, prefix: str, target: Any) -> None:
        self._timer, self._prefix, self._target = timer, prefix, target

    def __getattr__(self, method: str) -> Any:
        function = getattr(self._target, method)
        if not callable(function):
            return function

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._timer.step(f"{self._prefix}.{method}"):
                return function(*args, **kwargs)

        return timed


# ------------------------------------------------------------------ CPU time per process
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
    if not pids or not Path("/proc/self/stat").exists():  # not Linux: no figures, nothing breaks
        yield used
        return
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    yield used
    used.update({name: cpu_seconds(pid) - before[name] for name, pid in pids.items()})


# ------------------------------------------------------------------ sequential phases
class Phase:
    """One sequential measurement, run a slice at a time across the rounds.

    ``call`` gets a running index that continues across warm-ups and rounds, so two phases
    with the same counts see the same indexes (ReleaseStock releases what ReserveStock took).
    """

    def __init__(
        self,
        name: str,
        call: Call,
        per_round: int,
        *,
        timer: StepTimer | None = None,
        cpu_of: dict[str, int] | None = None,
    ) -> None:
        self.name, self.call, self.per_round = name, call, per_round
        self.timer = timer
        self.cpu_of = cpu_of or {}
        self.cpu_s: dict[str, float] = {}
        self.latencies: list[float] = []
        self.errors = 0
        self.wall_s = 0.0
        self._next = 0

    def warm(self, count: int) -> None:
        if self.timer is not None:
            self.timer.recording = False
        for _ in range(count):
            self.call(self._take())

    def run(self) -> None:
        if self.timer is not None:
            self.timer.recording = True
        with cpu_per_process(self.cpu_of) as cpu:
            began = time.perf_counter()
            for _ in range(self.per_round):
                index = self._take()
                start = time.perf_counter()
                ok = self.call(index)
                self.latencies.append(time.perf_counter() - start)
                self.errors += not ok
            self.wall_s += time.perf_counter() - began
        for name, seconds in cpu.items():
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + seconds

    def stats(self) -> Stats:
        return Stats.of(self.name, self.latencies, self.wall_s, self.errors)

    def _take(self) -> int:
        index, self._next = self._next, self._next + 1
        return index


def run_interleaved(phases: list[Phase], counts: Counts) -> None:
    for phase in phases:
        phase.warm(counts.warmup)
    for _ in range(counts.rounds):
        for phase in phases:
            phase.warm(counts.warmup_per_round)
            phase.run()


# ------------------------------------------------------------------ start-up
def flow_env(order_flow: str | None) -> dict[str, str]:
    return {"BOOKSTORE_ORDER_FLOW": order_flow} if order_flow else {}


def measure_startups(runs: int, db_url: str, order_flow: str | None) -> list[float]:
    """Seconds from ``start()`` until all six answer SERVING, one fresh cluster per run."""
    seconds: list[float] = []
    for _ in range(runs):
        with Cluster(db_url=db_url, env=flow_env(order_flow)) as cluster:
            assert cluster.startup_seconds is not None
            seconds.append(cluster.startup_seconds)
    return seconds


# ------------------------------------------------------------------ the floor
@contextlib.contextmanager
def bare_health_stub() -> Iterator[Any]:
    """A health stub to a bare grpcio server in its own process, stopped afterwards."""
    port = processes.free_port()
    env = dict(os.environ, BENCH_HEALTH_PORT=str(port))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="bench-health-") as work:
        child = processes.spawn("benchmarks.bare_health_server", env, Path(work) / "server.log")
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                yield health_pb2_grpc.HealthStub(channel)
        finally:
            processes.terminate([child.pid], reap={child.pid: child})


def health_check(stub: Any) -> bool:
    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=DEADLINE_S)
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


# ------------------------------------------------------------------ hops, called directly
class Hops:
    """The calls an order makes, each as a plain function."""

    def __init__(self, cluster: Cluster) -> None:
        self.catalog, self.inventory = cluster.stub("catalog"), cluster.stub("inventory")
        self.payment, self.order = cluster.stub("payment"), cluster.stub("order")
        self.user_id = str(uuid.uuid4())

    def get_book(self) -> bool:
        request = catalog_pb2.GetBookRequest(book_id=BOOK_ID)
        return bool(self.catalog.GetBook(request, timeout=DEADLINE_S).book.book_id == BOOK_ID)

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

    def create_order(self) -> bool:
        request = order_pb2.CreateOrderRequest(
            user_id=self.user_id, items=[order_pb2.OrderItem(book_id=BOOK_ID, quantity=1)]
        )
        return bool(
            self.order.CreateOrder(request, timeout=DEADLINE_S).order.status
            == order_pb2.ORDER_STATUS_APPROVED
        )


def hop_phases(cluster: Cluster, counts: Counts, chain_timer: StepTimer) -> list[Phase]:
    """Each hop alone; then the three chained, as an order makes them."""
    hops, n = Hops(cluster), counts.hop_calls
    health = health_pb2_grpc.HealthStub(cluster.channel("catalog"))
    reservations: dict[int, str] = {}

    def reserve(index: int) -> bool:
        reservations[index] = str(uuid.uuid4())
        return hops.reserve(reservations[index])

    def release(index: int) -> bool:
        # Same counts as the reserve phase, so the same indexes: every reservation is released.
        return hops.release(reservations.pop(index))

    def chain(_: int) -> bool:
        order_id = str(uuid.uuid4())
        with chain_timer.step("catalog.BatchGetBooks"):
            priced = hops.batch_get_books()
        with chain_timer.step("inventory.ReserveStock"):
            reserved = hops.reserve(order_id)
        with chain_timer.step("payment.Pay"):
            paid = hops.pay(order_id)
        return priced and reserved and paid

    return [
        Phase("catalog health Check", lambda _: health_check(health), n),
        Phase("catalog.GetBook", lambda _: hops.get_book(), n),
        Phase("catalog.BatchGetBooks", lambda _: hops.batch_get_books(), n),
        Phase("inventory.ReserveStock", reserve, n),
        Phase("inventory.ReleaseStock", release, n),
        Phase("payment.Pay", lambda _: hops.pay(str(uuid.uuid4())), n),
        Phase("order.CreateOrder (direct gRPC)", lambda _: hops.create_order(), n),
        Phase(CHAIN, chain, n, timer=chain_timer),
    ]


def order_flow_kind(order_flow: str | None) -> str:
    """What the order service runs: ``order_flow`` is BOOKSTORE_ORDER_FLOW, None for its default."""
    if _generation() == "week6":
        return "plain sequence (week 6; this version has no other)"
    if order_flow == "plain":
        return "plain sequence (week 6, BOOKSTORE_ORDER_FLOW=plain)"
    return "saga (week 7: a saga log in the order database)"


def build_order_flow(
    cluster: Cluster, engine: Engine, timer: StepTimer, order_flow: str | None
) -> Callable[[str, list[OrderItem]], Order]:
    """``place_order`` wired as ``bookstore.services.order.__main__`` wires it, every part timed.

    Four wirings are supported: week 6's code, whose only flow is the plain sequence
    ``place_order(deps, store, user_id, items)``; week 7's saga, which adds a saga log in the
    same database (``place_order(deps, store, saga, user_id, items)``); week 7's code told to
    run week 6's flow (``plain_flow.place_order``, BOOKSTORE_ORDER_FLOW=plain); and today's
    flow objects (``SagaFlow`` or ``PlainFlow``, each with ``place(PlaceOrder)``).
    """
    # The service's own constructor: the same channels (and circuit breakers, where it has them).
    settings = Settings(targets={name: cluster.target(name) for name in PEERS}, deadline_s=DEADLINE_S)
    built = OrderDependencies.from_settings(settings)
    deps = dataclasses.replace(
        built,
        catalog=timer.wrap("catalog", built.catalog),
        inventory=timer.wrap("inventory", built.inventory),
        payment=timer.wrap("payment", built.payment),
    )
    store = timer.wrap("order store", OrderStore(engine))
    # Each generation's signature differs, so mypy checks none of them here.
    generation = _generation()
    place: Any = getattr(order_flow_module, "place_order", None)
    if generation == "week6":
        return lambda user_id, items: place(deps, store, user_id, items)
    if generation == "flows":
        return _flow_object(deps, store, engine, timer, order_flow)
    if order_flow == "plain":
        plain: Any = importlib.import_module("bookstore.services.order.plain_flow").place_order
        return lambda user_id, items: plain(deps, store, user_id, items)

    saga_module = importlib.import_module("bookstore.services.order.saga")
    saga_log_class = importlib.import_module("bookstore.saga").SagaLog
    saga_log = timer.wrap("saga log", saga_log_class(engine, owner="bench-profile"))
    saga = saga_module.OrderSaga(deps, store, saga_log, deadline_s=SAGA_DEADLINE_S)
    return lambda user_id, items: place(deps, store, saga, user_id, items)


def _generation() -> str:
    """Which order-flow API this code has: "week6", "week7" (functions) or "flows" (objects)."""
    if hasattr(order_flow_module, "SagaFlow"):
        return "flows"
    if "saga" not in inspect.signature(order_flow_module.place_order).parameters:
        return "week6"
    return "week7"


def _flow_object(
    deps: Any, store: Any, engine: Engine, timer: StepTimer, order_flow: str | None
) -> Callable[[str, list[OrderItem]], Order]:
    """Today's wiring: a flow object chosen once, fed ``PlaceOrder`` commands."""
    commands: Any = importlib.import_module("bookstore.domain.commands")
    flow: Any
    if order_flow == "plain":
        flow = importlib.import_module("bookstore.services.order.plain_flow").PlainFlow(deps, store)
    else:
        saga_log = timer.wrap(
            "saga log", importlib.import_module("bookstore.saga").SagaLog(engine, owner="bench-profile")
        )
        saga = importlib.import_module("bookstore.services.order.saga").OrderSaga(
            deps, store, saga_log, deadline_s=SAGA_DEADLINE_S
        )
        flow = order_flow_module.SagaFlow(deps, store, saga)
    return lambda user_id, items: flow.place(commands.PlaceOrder.of(user_id, items))


@contextlib.contextmanager
def profiled_order_phase(
    cluster: Cluster, db_url: str, counts: Counts, timer: StepTimer, order_flow: str | None
) -> Iterator[Phase | str]:
    """The order service's own ``place_order``, run here with a timer around each hop and write.

    Same flow code, same stubs and store, against the cluster's catalog, inventory and
    payment; only the order's own gRPC server edge is missing, and its database is a fresh
    one (a temporary SQLite file, or a MariaDB schema dropped afterwards). Yields the phase,
    or the reason there is none: the flow's internals are not a public API, and a benchmark
    that breaks whenever they change would soon not be run at all.
    """
    with tempfile.TemporaryDirectory(prefix="bench-orders-") as work:
        url = db_url.replace("{service}", "order_profile") if db_url else f"sqlite:///{work}/order.db"
        engine = make_engine(url)
        try:
            user_id = str(uuid.uuid4())
            items = [OrderItem(book_id=BOOK_ID, quantity=1)]
            timer.recording = False  # the probe call below is not a sample
            try:
                flow = build_order_flow(cluster, engine, timer, order_flow)
                flow(user_id, items)
            except (TypeError, AttributeError, ImportError) as error:
                yield (
                    f"the order flow's wiring changed ({type(error).__name__}: {error}); "
                    "make build_order_flow match bookstore/services/order/__main__.py"
                )
                return

            def one_order(_: int) -> bool:
                return flow(user_id, items).status is OrderStatus.APPROVED

            yield Phase(PROFILED, one_order, counts.hop_calls, timer=timer)
        finally:
            engine.dispose()
            if db_url:
                drop_mysql_databases(db_url, ["order_profile"])


# ------------------------------------------------------------------ through the gateway


class OrderPoster:
    """Places one-book orders through the gateway and counts every failure by what it was."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.failures: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, client: httpx.Client, book_id: int) -> bool:
        body = {"items": [{"book_id": book_id, "quantity": 1}]}
        try:
            response = client.post("/orders", json=body, headers=self.headers)
        except httpx.HTTPError as error:
            return self._failed(f"{type(error).__name__}")
        if response.status_code != 201:
            return self._failed(f"HTTP {response.status_code}: {response.text[:120]}")
        order = response.json()
        if order["status"] != "APPROVED":
            return self._failed(f"order {order['status']}: {order.get('reason', '')[:120]}")
        return True

    def _failed(self, kind: str) -> bool:
        with self._lock:
            self.failures[kind] += 1
        return False


def gateway_phases(cluster: Cluster, client: httpx.Client, post: OrderPoster, counts: Counts) -> list[Phase]:
    """The HTTP floor, a one-hop route, and orders from one client (with CPU per process)."""
    return [
        Phase("gateway GET /healthz", lambda _: client.get("/healthz").status_code == 200, counts.hop_calls),
        Phase(
            "gateway GET /books/1",
            lambda _: client.get(f"/books/{BOOK_ID}").status_code == 200,
            counts.hop_calls,
        ),
        Phase(
            "gateway POST /orders",
            lambda _: post(client, BOOK_ID),
            counts.orders,
            cpu_of=process_ids(cluster),
        ),
    ]


def measure_gateway_concurrent(
    cluster: Cluster, post: OrderPoster, counts: Counts
) -> tuple[Stats, dict[str, float]]:
    """``clients`` threads, each with its own keep-alive client, ordering at once."""
    warm_up = OrderPoster(post.headers)  # its failures are not the measured phase's
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
                    warm_up(client, book_id)
                ready.wait()
                for _ in range(per_client):
                    start = time.perf_counter()
                    ok = post(client, book_id)
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
    floor: Stats
    sequential: dict[str, Stats]
    chain_steps: dict[str, StepSummary]
    profile_steps: dict[str, StepSummary]
    order_flow: str  # which generation of place_order was profiled
    profile_skipped: str  # why there is no profile; empty when there is one
    concurrent: Stats
    order_failures: dict[str, dict[str, int]]  # phase -> what went wrong -> how often
    cpu_ms_per_order: dict[str, dict[str, float]]  # phase -> process -> CPU ms per order


def measure_cluster(db_url: str, counts: Counts, order_flow: str | None) -> ClusterResult:
    """The floor, every hop, the profile and the gateway, interleaved; then 16 clients."""
    chain_timer, profile_timer = StepTimer(), StepTimer()
    with (
        bare_health_stub() as bare,
        Cluster(db_url=db_url, env=flow_env(order_flow)) as cluster,
        profiled_order_phase(cluster, db_url, counts, profile_timer, order_flow) as profiled,
        httpx.Client(base_url=cluster.gateway_url, timeout=DEADLINE_S) as client,
    ):
        restock(cluster)
        headers = bearer_headers(cluster.gateway_url)
        sequential_orders, concurrent_orders = OrderPoster(headers), OrderPoster(headers)
        floor = Phase("baseline: bare grpcio health Check", lambda _: health_check(bare), counts.floor_calls)
        profile = [profiled] if isinstance(profiled, Phase) else []
        phases = [
            floor,
            *hop_phases(cluster, counts, chain_timer),
            *profile,
            *gateway_phases(cluster, client, sequential_orders, counts),
        ]
        run_interleaved(phases, counts)
        restock(cluster)
        concurrent, cpu_concurrent = measure_gateway_concurrent(cluster, concurrent_orders, counts)
        assert cluster.startup_seconds is not None
        startup = cluster.startup_seconds

    def per_order(cpu: dict[str, float], orders: int) -> dict[str, float]:
        return {name: seconds * 1000 / orders for name, seconds in cpu.items()}

    sequential = {phase.name: phase.stats() for phase in phases[1:]}
    orders = phases[-1]
    return ClusterResult(
        startup_s=startup,
        floor=floor.stats(),
        sequential=sequential,
        chain_steps=chain_timer.summary(sequential[CHAIN].count),
        profile_steps=profile_timer.summary(sequential[PROFILED].count) if PROFILED in sequential else {},
        order_flow=order_flow_kind(order_flow),
        profile_skipped="" if isinstance(profiled, Phase) else profiled,
        concurrent=concurrent,
        order_failures={
            "1 client": dict(sequential_orders.failures),
            f"{concurrent.clients} clients": dict(concurrent_orders.failures),
        },
        cpu_ms_per_order={
            "1 client": per_order(orders.cpu_s, len(orders.latencies)),
            f"{concurrent.clients} clients": per_order(cpu_concurrent, concurrent.count),
        },
    )


def ratios(result: ClusterResult) -> dict[str, float]:
    seq, floor = result.sequential, result.floor
    hops = sum(seq[name].p50_ms for name in ORDER_HOPS)
    order, create = seq["gateway POST /orders"], seq["order.CreateOrder (direct gRPC)"]
    return {
        "hops_p50_sum_ms": hops,
        "order_p50_over_hops": order.p50_ms / hops,
        "order_p50_over_hops_plus_create_order": order.p50_ms / (hops + create.p50_ms),
        "order_p50_over_chained_hops_p50": order.p50_ms / seq[CHAIN].p50_ms,
        "order_p50_over_create_order_p50": order.p50_ms / create.p50_ms,
        "floor_calls_per_s_over_orders_per_s": floor.per_s / order.per_s,
        "order_p50_over_floor_p50": order.p50_ms / floor.p50_ms,
        "concurrent_over_sequential_orders_per_s": result.concurrent.per_s / order.per_s,
        # Differences of medians, not medians of differences: a breakdown, not a measurement.
        "gateway_edge_ms": order.p50_ms - create.p50_ms,
        **({"order_server_edge_ms": create.p50_ms - seq[PROFILED].p50_ms} if PROFILED in seq else {}),
    }


# ------------------------------------------------------------------ printing
def row(s: Stats) -> str:
    errors = f"  ({s.errors} errors)" if s.errors else ""
    return (
        f"  {s.name:<46} {s.clients:>3} {s.count:>6} {s.per_s:>9.0f} {s.p50_ms:>8.2f} "
        f"{s.p99_ms:>8.2f} {s.mean_ms:>8.2f}{errors}"
    )


def print_report(label: str, result: ClusterResult, r: dict[str, float]) -> None:
    seq, floor = result.sequential, result.floor
    print(f"\n== {label} ==")
    print(f"  {'phase':<46} {'cli':>3} {'n':>6} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    print(row(floor))
    for stats in seq.values():
        print(row(stats))
    print(row(result.concurrent))
    for phase, failures in result.order_failures.items():
        for kind, times in failures.items():
            print(f"    failed orders, {phase}: {times} x {kind}")

    hops, order = r["hops_p50_sum_ms"], seq["gateway POST /orders"]
    met = r["order_p50_over_hops"] <= AIM_ORDER_OVER_HOPS
    print("\n  ratios (every baseline from this run)")
    short = "+".join(name.split(".")[1] for name in ORDER_HOPS)
    print(
        f"    gateway order p50 / sum of hop p50s ({short} = {hops:.2f} ms): "
        f"{r['order_p50_over_hops']:.2f}x   aim <= {AIM_ORDER_OVER_HOPS:.0f}x: {verdict(met)}"
    )
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

    print(f"\n  where one sequential order's time goes (order flow: {result.order_flow})")
    chain, profile = result.chain_steps, result.profile_steps
    print(f"    {'step':<30} {'alone':>6} {'chained':>8} {'in the flow:':>13} {'calls':>6} {'ms/order':>9}")
    print(f"    {'':<30} {'p50':>6} {'p50':>8} {'p50/call':>13} {'/order':>6} {'(mean)':>9}")
    for name in profile or chain:
        alone = f"{seq[name].p50_ms:6.2f}" if name in seq else f"{'':6}"
        chained = f"{chain[name].p50_ms:8.2f}" if name in chain else f"{'':8}"
        step = profile.get(name)
        in_flow = f"{step.p50_ms:13.2f} {step.calls_per_flow:6.1f} {step.ms_per_flow:9.2f}" if step else ""
        print(f"    {name:<30} {alone} {chained} {in_flow}")
    if PROFILED in seq:
        flow = seq[PROFILED]
        timed = sum(step.ms_per_flow for step in profile.values())
        print(f"    {'sum of the steps above':<30} {'':6} {'':8} {'':13} {'':6} {timed:9.2f}")
        print(
            f"    {'= place_order in-process':<30} {'':6} {'':8} {flow.p50_ms:13.2f} {'':6} "
            f"{flow.mean_ms:9.2f}   (p50, and mean)"
        )
    else:
        print(f"    (no profile of the flow: {result.profile_skipped})")
    create = seq["order.CreateOrder (direct gRPC)"].p50_ms
    edge = f"   (its gRPC edge: {r['order_server_edge_ms']:+.2f} ms, approx.)" if PROFILED in seq else ""
    print(f"    {'CreateOrder via the order service':<44} {create:13.2f}{edge}")
    print(
        f"    {'+ gateway HTTP edge (approx.)':<44} {r['gateway_edge_ms']:13.2f}"
        f"   (GET /healthz alone {seq['gateway GET /healthz'].p50_ms:.2f} ms)"
    )
    print(f"    {'= gateway POST /orders':<44} {order.p50_ms:13.2f}")

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
    return {
        "runs_s": seconds,
        "min_s": min(seconds),
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
        "aim_s": AIM_STARTUP_S,
        "aim_met_by_max": max(seconds) <= AIM_STARTUP_S,
    }


def print_startup(label: str, summary: dict[str, Any]) -> None:
    runs = ", ".join(f"{s:.2f}" for s in summary["runs_s"])
    print(f"\n== start-up, {label}: Cluster().start() until all six SERVING ==")
    print(f"  runs: {runs} s")
    print(
        f"  min {summary['min_s']:.2f} s   median {summary['median_s']:.2f} s   "
        f"max {summary['max_s']:.2f} s   aim <= {AIM_STARTUP_S:.0f} s: "
        f"{verdict(summary['aim_met_by_max'])} (judged by the max)"
    )


def mariadb_unreachable() -> str | None:
    """None when MariaDB answers on 127.0.0.1:3306, else why not."""
    try:
        import pymysql

        pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=2).close()
    except Exception as error:
        return f"MariaDB on 127.0.0.1:3306 did not answer: {error}"
    return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def as_json(result: ClusterResult, r: dict[str, float]) -> dict[str, Any]:
    return {
        "startup_s_of_this_cluster": result.startup_s,
        "floor": asdict(result.floor),
        "sequential": {name: asdict(s) for name, s in result.sequential.items()},
        "concurrent": asdict(result.concurrent),
        "order_failures": result.order_failures,
        "order_flow": result.order_flow,
        "chain_steps": {name: asdict(step) for name, step in result.chain_steps.items()},
        "profile_steps": {name: asdict(step) for name, step in result.profile_steps.items()},
        "profile_skipped": result.profile_skipped,
        "cpu_ms_per_order": result.cpu_ms_per_order,
        "ratios": r,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--mariadb",
        action="store_true",
        help="also measure once with MariaDB schemas on 127.0.0.1:3306 (dropped afterwards)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help=f"where to write the figures (default {JSON_PATH.relative_to(REPO)}, "
        "or bench_week06_plain.json with --order-flow plain)",
    )
    parser.add_argument(
        "--order-flow",
        choices=("saga", "plain"),
        default=None,
        help="BOOKSTORE_ORDER_FLOW for the order service: week 7's saga (its default) "
        "or week 6's plain sequence",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few calls per phase: checks that the benchmark runs; its figures mean little",
    )
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else Counts()
    began = time.perf_counter()
    info = common.machine("grpcio", "httpx", processor=_cpu_model())
    print(
        f"week 6 benchmark: {info['cpus']} CPUs ({info['processor']}), Python {info['python']}, "
        f"grpcio {info['grpcio']}; order flow: {order_flow_kind(args.order_flow)}"
    )
    common.warn_if_busy(
        info,
        "other work competes for the CPUs "
        "and every figure below will be slower and noisier than on a quiet machine",
        show_cpus=False,
    )

    startups = startup_summary(measure_startups(counts.startups, "", args.order_flow))
    print_startup("SQLite", startups)
    sqlite = measure_cluster("", counts, args.order_flow)
    sqlite_ratios = ratios(sqlite)
    print_report("SQLite (one file per service), loopback", sqlite, sqlite_ratios)
    report: dict[str, Any] = {
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "order_flow": order_flow_kind(args.order_flow),
        "machine": info,
        "counts": asdict(counts),
        "startup_sqlite": startups,
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
                maria = measure_cluster(db_url, counts, args.order_flow)
            finally:
                drop_mysql_databases(db_url, list(GRPC_SERVICES))
            maria_ratios = ratios(maria)
            print(f"\n== start-up, MariaDB (one run): {maria.startup_s:.2f} s ==")
            print_report("MariaDB (one schema per service), loopback", maria, maria_ratios)
            report["mariadb"] = as_json(maria, maria_ratios)

    report["total_seconds"] = time.perf_counter() - began
    report["load_average_1min_at_end"] = load_average()
    path: Path = args.json or (
        JSON_PATH.with_name("bench_week06_plain.json") if args.order_flow == "plain" else JSON_PATH
    )
    common.write_report(path, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
