"""Week 7 benchmark: orders/s on the saga against week 6's plain flow, and recovery of 100 sagas.

Run it with ``.venv/bin/python -m benchmarks.bench_week07`` (about a minute on 2 cores;
``--no-gateway`` skips the HTTP half, ``--quick`` only checks that it runs). It prints two
tables and writes the figures to ``build/bench_week07.json``. Every cluster uses the default
SQLite files (a ``BOOKSTORE_DB_URL`` in the environment is ignored). It exits 1 when the
recovery check fails (an order not final, stock or money not adding up), never because of
a figure: a missed aim is reported, not failed.

What is measured:

1. **What the saga log costs.** Two clusters run side by side: one started with
   ``BOOKSTORE_ORDER_FLOW=plain`` (week 6's sequential flow, ``plain_flow``: no saga log) and
   one with the default saga, every book's stock set high on both. Orders are placed through
   the order service's own ``CreateOrder`` stub at 1 client and at 8 concurrent clients
   (threads, each its own user and its own book, so they never queue on one stock row), and
   through the gateway's ``POST /orders`` the same way: orders/s, p50, p99, and the CPU the
   order service spent per order. Every slice runs interleaved in rounds (plain, saga,
   plain, saga, ...), so a machine that slows down for a few seconds slows both flows
   alike. The ratio saga/plain of orders/s is judged against the aim: at least 0.7x.
2. **Recovery of 100 sagas in flight.** A third cluster, with payment's ``Pay`` made slow
   (fault injection) so that 100 concurrent ``CreateOrder`` calls all sit in their saga's
   pay step. Once the order database's saga log shows them RUNNING and payment has received
   every Pay, the order service is SIGKILLed, the fault is cleared, and the service is
   restarted. Measured: seconds from the restart until the saga log holds no saga in flight
   (and until no order is PENDING), polling the log in the order service's SQLite file; then
   every order must be APPROVED or REJECTED, the stock must add up, and every APPROVED order
   must be charged its total once. That cluster runs with a step deadline longer than the
   injected latency (otherwise the Pays would time out and compensate before the kill) and
   with enough server threads for 100 calls at once (the default 16 would queue the rest
   outside the saga).

Why the baseline is taken in the same run: an absolute orders/s says more about the machine
(and whoever else uses it) than about the code; the ratio of two flows measured on the same
machine at the same moment survives a change of machine.

Caveat for reading the figures: the benchmark's clients share the CPUs with the six service
processes of each cluster, as they would on a learner's laptop.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from sqlalchemy import make_url

from benchmarks import common
from benchmarks.common import bearer_headers, load_average, percentile, verdict
from bookstore.launcher.cluster import Cluster
from bookstore.platform.processes import cpu_seconds
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import inventory_pb2, order_pb2, payment_pb2
from bookstore.saga.log import IN_FLIGHT_STATES, SagaInstanceRow
from bookstore.services.order.store import OrderRow

REPO = Path(__file__).resolve().parent.parent
JSON_PATH = REPO / "build" / "bench_week07.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_week07"

AIM_SAGA_OVER_PLAIN = 0.7
FLOWS = ("plain", "saga")  # the baseline first
DEADLINE_S = 10.0  # generous: a benchmark call that times out is a failure, not a data point
STOCK = 1_000_000  # the most SetStock accepts; no phase comes close to selling it
BOOKS = tuple(range(1, 9))  # client k orders book BOOKS[k % 8]

# The recovery phase.
RECOVERY_BOOK = 20
PAY_LATENCY_MS = 8_000  # long enough for 100 sagas to reach Pay on a busy 2-core machine
RECOVERY_STEP_DEADLINE_S = 20.0  # longer than the latency: the Pays wait instead of timing out
RECOVERY_SAGA_DEADLINE_S = 60.0
RECOVERY_WORKERS = 128  # server threads per process: 100 CreateOrders (and their Pays) at once
FILL_TIMEOUT_S = PAY_LATENCY_MS / 1000 * 0.75  # kill by then even if fewer sagas made it to Pay
RECOVERY_TIMEOUT_S = 120.0
POLL_S = 0.01


@dataclass(frozen=True)
class Counts:
    """How much each phase does; sized so a run takes about a minute on 2 cores."""

    rounds: int = 5
    orders_one_client: int = 40  # per round and flow
    concurrent_clients: int = 8
    orders_per_client: int = 15  # per round and flow, at 8 clients
    gateway_orders_one_client: int = 20
    gateway_orders_per_client: int = 8
    warmup: int = 20  # orders per flow and path before the first round
    sagas_in_flight: int = 100


QUICK = Counts(
    rounds=1,
    orders_one_client=5,
    orders_per_client=2,
    gateway_orders_one_client=3,
    gateway_orders_per_client=1,
    warmup=3,
    sagas_in_flight=20,
)


# ----------------------------------------------------------------------------- statistics


@dataclass
class Tally:
    """Samples of one flow on one path at one concurrency, summed over the rounds."""

    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    order_cpu_s: float = 0.0  # CPU the order service spent meanwhile

    def add(self, latencies_s: list[float], wall_s: float, errors: int, order_cpu_s: float) -> None:
        self.latencies_s.extend(latencies_s)
        self.wall_s += wall_s
        self.errors += errors
        self.order_cpu_s += order_cpu_s


@dataclass(frozen=True)
class Stats:
    flow: str
    path: str
    clients: int
    count: int
    errors: int
    wall_s: float
    orders_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    order_cpu_ms_per_order: float

    @classmethod
    def of(cls, flow: str, path: str, clients: int, tally: Tally) -> Stats:
        ordered = sorted(tally.latencies_s)
        return cls(
            flow=flow,
            path=path,
            clients=clients,
            count=len(ordered),
            errors=tally.errors,
            wall_s=tally.wall_s,
            orders_per_s=len(ordered) / tally.wall_s,
            p50_ms=percentile(ordered, 0.50) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            mean_ms=statistics.fmean(ordered) * 1000,
            order_cpu_ms_per_order=tally.order_cpu_s * 1000 / len(ordered),
        )


# ----------------------------------------------------------------------------- clients


# One order for client k: True when it came back APPROVED.
OrderCall = Callable[[int], bool]


def run_clients(call: OrderCall, clients: int, per_client: int) -> tuple[list[float], float, int]:
    """``clients`` threads placing ``per_client`` orders each, started together.

    Returns every latency, the wall time from the start until the last client finished, and
    how many orders failed. A client thread that raises fails the run: a silently dead
    thread would skew the figures.
    """
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    finished = [0.0] * clients
    failures: list[BaseException] = []
    ready = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        try:
            ready.wait()
            for _ in range(per_client):
                start = time.perf_counter()
                ok = call(k)
                latencies[k].append(time.perf_counter() - start)
                errors[k] += not ok
            finished[k] = time.perf_counter()
        except BaseException as error:
            failures.append(error)
            ready.abort()

    threads = [threading.Thread(target=client, args=(k,), name=f"bench-client-{k}") for k in range(clients)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} benchmark clients failed") from failures[0]
    return (
        [s for per_client_samples in latencies for s in per_client_samples],
        max(finished) - began,
        sum(errors),
    )


class Shop:
    """One running cluster and the callers that place orders on it, by gRPC and by HTTP."""

    def __init__(self, flow: str, cluster: Cluster, clients: int, gateway: bool) -> None:
        self.flow = flow
        self.cluster = cluster
        self.order_stub = cluster.stub("order")
        self.user_ids = [str(uuid.uuid4()) for _ in range(clients)]
        self.http: list[httpx.Client] = []
        self.headers: dict[str, str] = {}
        if gateway:
            self.headers = bearer_headers(cluster.gateway_url)
            self.http = [
                httpx.Client(base_url=cluster.gateway_url, timeout=DEADLINE_S) for _ in range(clients)
            ]

    def close(self) -> None:
        for client in self.http:
            client.close()

    def order_pid(self) -> int | None:
        return self.cluster.replicas["order"][0].pid

    def create_order(self, k: int) -> bool:
        request = order_pb2.CreateOrderRequest(
            user_id=self.user_ids[k], items=[order_pb2.OrderItem(book_id=BOOKS[k % len(BOOKS)], quantity=1)]
        )
        try:
            order = self.order_stub.CreateOrder(request, timeout=DEADLINE_S).order
        except grpc.RpcError:
            return False
        return bool(order.status == order_pb2.ORDER_STATUS_APPROVED)

    def post_order(self, k: int) -> bool:
        body = {"items": [{"book_id": BOOKS[k % len(BOOKS)], "quantity": 1}]}
        try:
            response = self.http[k].post("/orders", json=body, headers=self.headers)
        except httpx.HTTPError:
            return False
        return response.status_code == 201 and response.json()["status"] == "APPROVED"


def restock(cluster: Cluster, books: Sequence[int]) -> None:
    inventory = cluster.stub("inventory")
    for book_id in books:
        inventory.SetStock(inventory_pb2.SetStockRequest(book_id=book_id, quantity=STOCK), timeout=DEADLINE_S)


# ----------------------------------------------------------------------------- 1. throughput


@dataclass(frozen=True)
class Slice:
    """One measured slice of a round: a path (grpc or gateway) at a number of clients."""

    path: str
    clients: int
    orders_per_client: int

    def call(self, shop: Shop) -> OrderCall:
        return shop.create_order if self.path == "grpc" else shop.post_order


def slices(counts: Counts, gateway: bool) -> list[Slice]:
    chosen = [
        Slice("grpc", 1, counts.orders_one_client),
        Slice("grpc", counts.concurrent_clients, counts.orders_per_client),
    ]
    if gateway:
        chosen += [
            Slice("gateway", 1, counts.gateway_orders_one_client),
            Slice("gateway", counts.concurrent_clients, counts.gateway_orders_per_client),
        ]
    return chosen


def measure_throughput(counts: Counts, gateway: bool) -> tuple[list[Stats], dict[str, float]]:
    """Both flows, every slice, interleaved in rounds; both clusters stopped at the end."""
    tallies: dict[tuple[str, Slice], Tally] = {}
    plan = slices(counts, gateway)
    with contextlib.ExitStack() as stack:
        shops: dict[str, Shop] = {}
        startup_s: dict[str, float] = {}
        for flow in FLOWS:
            cluster = stack.enter_context(Cluster(db_url="", env={"BOOKSTORE_ORDER_FLOW": flow}))
            assert cluster.startup_seconds is not None
            startup_s[flow] = cluster.startup_seconds
            restock(cluster, BOOKS)
            shop = Shop(flow, cluster, counts.concurrent_clients, gateway)
            stack.callback(shop.close)
            shops[flow] = shop
        for shop in shops.values():  # warm up: channels, connections, SQLite caches, first imports
            for part in plan:
                run_clients(part.call(shop), part.clients, max(1, counts.warmup // part.clients))
        for _ in range(counts.rounds):
            for part in plan:
                for flow, shop in shops.items():
                    pid = shop.order_pid()
                    cpu_before = cpu_seconds(pid)
                    latencies, wall_s, errors = run_clients(
                        part.call(shop), part.clients, part.orders_per_client
                    )
                    tally = tallies.setdefault((flow, part), Tally())
                    tally.add(latencies, wall_s, errors, cpu_seconds(pid) - cpu_before)
    rows = [Stats.of(flow, part.path, part.clients, tallies[(flow, part)]) for part in plan for flow in FLOWS]
    return rows, startup_s


def ratios(rows: list[Stats]) -> dict[str, dict[str, float]]:
    """Per path and concurrency: saga over plain, for orders/s, p50 and CPU per order."""
    by_key = {(row.flow, row.path, row.clients): row for row in rows}
    result: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.flow != "saga":
            continue
        plain = by_key[("plain", row.path, row.clients)]
        result[f"{row.path}, {row.clients} client{'s' if row.clients > 1 else ''}"] = {
            "orders_per_s": row.orders_per_s / plain.orders_per_s,
            "p50": row.p50_ms / plain.p50_ms,
            "p99": row.p99_ms / plain.p99_ms,
            "order_cpu_per_order": row.order_cpu_ms_per_order / plain.order_cpu_ms_per_order
            if plain.order_cpu_ms_per_order
            else math.nan,
        }
    return result


# ----------------------------------------------------------------------------- 2. recovery


class OrderDatabase:
    """Reads the order service's SQLite file directly, as a watcher from outside would.

    Plain ``sqlite3`` in autocommit: each SELECT is a short read of a WAL snapshot, which
    never blocks the service's writers. (An engine from ``make_engine`` begins every
    transaction with ``BEGIN IMMEDIATE``, so polling through it would take the write lock
    a hundred times a second, and slow down the very recovery being timed.)
    """

    def __init__(self, cluster: Cluster) -> None:
        url = make_url(Settings(work_dir=cluster.work_dir).database_url("order"))
        assert url.database is not None
        self.connection = sqlite3.connect(
            url.database, timeout=15.0, isolation_level=None, check_same_thread=False
        )

    def close(self) -> None:
        self.connection.close()

    def saga_states(self) -> Counter[str]:
        """How many sagas the log holds in each state."""
        rows = self.connection.execute(
            f"SELECT state, COUNT(*) FROM {SagaInstanceRow.__tablename__} GROUP BY state"
        ).fetchall()
        return Counter({str(state): int(count) for state, count in rows})

    def in_flight(self) -> int:
        states = self.saga_states()
        return sum(states[state] for state in IN_FLIGHT_STATES)

    def order_statuses(self, user_id: str) -> Counter[str]:
        rows = self.connection.execute(
            f"SELECT status, COUNT(*) FROM {OrderRow.__tablename__} WHERE user_id = ? GROUP BY status",
            (user_id,),
        ).fetchall()
        return Counter({str(status): int(count) for status, count in rows})


@dataclass
class Recovery:
    sagas_requested: int
    pay_latency_ms: int
    fill_s: float  # from the first CreateOrder until the kill
    pays_received_at_kill: int
    saga_states_at_kill: dict[str, int]
    in_flight_at_kill: int
    callers_saw: dict[str, int]  # what the 100 callers got back when the service died
    restart_until_serving_s: float
    restart_until_no_saga_in_flight_s: float
    restart_until_no_order_pending_s: float
    orders: dict[str, int]
    all_final: bool
    stock_agrees: bool
    payments_agree: bool
    payment_problems: list[str]
    timed_out: str = ""

    @property
    def ok(self) -> bool:
        return self.all_final and self.stock_agrees and self.payments_agree and not self.timed_out


def pay_calls(cluster: Cluster) -> int:
    return sum(stats.calls_by_method.get("Pay", 0) for stats in cluster.stats("payment"))


def list_orders(cluster: Cluster, user_id: str) -> list[order_pb2.Order]:
    orders: list[order_pb2.Order] = []
    token = ""
    while True:
        page = cluster.stub("order").ListOrders(
            order_pb2.ListOrdersRequest(user_id=user_id, page_size=100, page_token=token), timeout=DEADLINE_S
        )
        orders.extend(page.orders)
        token = page.next_page_token
        if not token:
            return orders


def payment_problem(cluster: Cluster, order: order_pb2.Order) -> str:
    """Why ``order``'s money disagrees with its status, or "" when it agrees."""
    try:
        payment: payment_pb2.Payment | None = (
            cluster.stub("payment")
            .GetPayment(payment_pb2.GetPaymentRequest(order_id=order.order_id), timeout=DEADLINE_S)
            .payment
        )
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.NOT_FOUND:
            raise
        payment = None
    charged = payment is not None and payment.status == payment_pb2.PAYMENT_STATUS_CHARGED
    if order.status == order_pb2.ORDER_STATUS_APPROVED:
        if not charged or payment is None or payment.amount_cents != order.total_cents:
            return f"{order.order_id}: APPROVED but payment is {payment}"
    elif charged:
        return f"{order.order_id}: {order_pb2.OrderStatus.Name(order.status)} but charged"
    return ""


def wait_until(condition: Callable[[], bool], timeout_s: float) -> float | None:
    """Poll ``condition``; the seconds it took to hold, or None when ``timeout_s`` ran out."""
    began = time.perf_counter()
    while not condition():
        if time.perf_counter() - began > timeout_s:
            return None
        time.sleep(POLL_S)
    return time.perf_counter() - began


def fill_with_sagas(
    cluster: Cluster, database: OrderDatabase, user_id: str, sagas: int, pool: ThreadPoolExecutor
) -> tuple[list[Future[str]], float, int]:
    """Start ``sagas`` concurrent CreateOrders and wait until each one's Pay reached payment.

    Returns the callers' futures, the seconds it took, and how many Pays had arrived (fewer
    than ``sagas`` only when FILL_TIMEOUT_S ran out first).
    """
    stub = cluster.stub("order")
    request = order_pb2.CreateOrderRequest(
        user_id=user_id, items=[order_pb2.OrderItem(book_id=RECOVERY_BOOK, quantity=1)]
    )

    def place() -> str:
        try:
            order = stub.CreateOrder(request, timeout=RECOVERY_SAGA_DEADLINE_S).order
        except grpc.RpcError as error:
            return str(error.code().name)
        return str(order_pb2.OrderStatus.Name(order.status))

    pays_before = pay_calls(cluster)
    began = time.perf_counter()
    futures = [pool.submit(place) for _ in range(sagas)]

    def all_paying() -> bool:
        return pay_calls(cluster) - pays_before >= sagas and database.saga_states()["RUNNING"] >= sagas

    wait_until(all_paying, FILL_TIMEOUT_S)
    return futures, time.perf_counter() - began, pay_calls(cluster) - pays_before


def measure_recovery(sagas: int) -> Recovery:
    """Kill the order service with ``sagas`` sagas waiting on Pay; time the restarted one's recovery."""
    env = {
        "BOOKSTORE_SAGA_DEADLINE_S": str(RECOVERY_SAGA_DEADLINE_S),
        "BOOKSTORE_GRPC_WORKERS": str(RECOVERY_WORKERS),
    }
    user_id = str(uuid.uuid4())
    with (
        Cluster(db_url="", deadline_s=RECOVERY_STEP_DEADLINE_S, env=env) as cluster,
        ThreadPoolExecutor(sagas, thread_name_prefix="bench-caller") as pool,
    ):
        restock(cluster, [RECOVERY_BOOK])
        database = OrderDatabase(cluster)
        try:
            cluster.inject_fault("payment", "Pay", error_rate=0.0, latency_ms=PAY_LATENCY_MS)
            futures, fill_s, pays = fill_with_sagas(cluster, database, user_id, sagas, pool)
            cluster.kill("order")
            states_at_kill = database.saga_states()  # frozen: nobody writes the log now
            callers_saw = Counter(future.result(timeout=DEADLINE_S) for future in futures)
            cluster.clear_faults("payment")

            # The poller runs in a thread and the restart in this one: the launcher ties each
            # child to the thread that spawned it (PR_SET_PDEATHSIG is per thread), so a service
            # restarted from a short-lived thread would be sent SIGTERM when that thread ends.
            settled: dict[str, float | None] = {}
            giving_up = threading.Event()
            began = time.perf_counter()

            def watch() -> None:
                settled["no_saga"] = wait_until(
                    lambda: giving_up.is_set() or database.in_flight() == 0, RECOVERY_TIMEOUT_S
                )
                settled["no_pending"] = wait_until(
                    lambda: giving_up.is_set() or database.order_statuses(user_id)["PENDING"] == 0,
                    RECOVERY_TIMEOUT_S,
                )

            watcher = threading.Thread(target=watch, name="bench-watch-saga-log", daemon=True)
            watcher.start()
            try:
                cluster.restart("order")
            except BaseException:
                giving_up.set()
                raise
            serving_s = time.perf_counter() - began
            watcher.join()
            no_saga_s, no_pending_s = settled["no_saga"], settled["no_pending"]
            timed_out = ""
            if no_saga_s is None:
                timed_out = (
                    f"after {RECOVERY_TIMEOUT_S:.0f} s the saga log still holds {database.saga_states()}"
                )
            elif no_pending_s is None:
                timed_out = f"orders still PENDING: {database.order_statuses(user_id)}"
            no_pending_total_s = (no_saga_s or 0.0) + (no_pending_s or 0.0)

            orders = list_orders(cluster, user_id)
            statuses = Counter(order_pb2.OrderStatus.Name(order.status) for order in orders)
            final = (order_pb2.ORDER_STATUS_APPROVED, order_pb2.ORDER_STATUS_REJECTED)
            sold = sum(
                item.quantity
                for order in orders
                if order.status == order_pb2.ORDER_STATUS_APPROVED
                for item in order.items
            )
            stock = cluster.stub("inventory").GetStock(
                inventory_pb2.GetStockRequest(book_id=RECOVERY_BOOK), timeout=DEADLINE_S
            )
            problems = [problem for order in orders if (problem := payment_problem(cluster, order))]
        finally:
            database.close()
    return Recovery(
        sagas_requested=sagas,
        pay_latency_ms=PAY_LATENCY_MS,
        fill_s=fill_s,
        pays_received_at_kill=pays,
        saga_states_at_kill=dict(states_at_kill),
        in_flight_at_kill=sum(states_at_kill[state] for state in IN_FLIGHT_STATES),
        callers_saw=dict(callers_saw),
        restart_until_serving_s=serving_s,
        restart_until_no_saga_in_flight_s=no_saga_s if no_saga_s is not None else math.nan,
        restart_until_no_order_pending_s=no_pending_total_s if not timed_out else math.nan,
        orders=dict(statuses),
        all_final=bool(orders) and all(order.status in final for order in orders),
        stock_agrees=int(stock.available) + sold == STOCK,
        payments_agree=not problems,
        payment_problems=problems[:5],
        timed_out=timed_out,
    )


# ----------------------------------------------------------------------------- report


def print_throughput(rows: list[Stats], by_slice: dict[str, dict[str, float]], counts: Counts) -> None:
    print(f"\n== orders: saga against week 6's plain flow, {counts.rounds} interleaved rounds ==")
    print(
        f"  {'flow':<6} {'path':<8} {'cli':>3} {'orders':>7} {'orders/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'mean ms':>8} {'order CPU ms/order':>19}"
    )
    for row in rows:
        errors = f"  ({row.errors} not approved)" if row.errors else ""
        print(
            f"  {row.flow:<6} {row.path:<8} {row.clients:>3} {row.count:>7} {row.orders_per_s:>9.1f} "
            f"{row.p50_ms:>8.2f} {row.p99_ms:>8.2f} {row.mean_ms:>8.2f} {row.order_cpu_ms_per_order:>19.2f}"
            f"{errors}"
        )
    print(f"\n  saga / plain (baseline from this run; aim: orders/s at least {AIM_SAGA_OVER_PLAIN}x)")
    print(f"    {'path, clients':<20} {'orders/s':>9} {'p50':>7} {'p99':>7} {'order CPU':>10}")
    for name, r in by_slice.items():
        met = verdict(r["orders_per_s"] >= AIM_SAGA_OVER_PLAIN)
        print(
            f"    {name:<20} {r['orders_per_s']:>8.2f}x {r['p50']:>6.2f}x {r['p99']:>6.2f}x "
            f"{r['order_cpu_per_order']:>9.2f}x   {met}"
        )


def print_recovery(recovery: Recovery) -> None:
    print(
        f"\n== recovery: {recovery.sagas_requested} concurrent CreateOrders, Pay slowed by "
        f"{recovery.pay_latency_ms} ms, order service SIGKILLed =="
    )
    lines = {
        "in flight at the kill (saga log)": f"{recovery.in_flight_at_kill} {recovery.saga_states_at_kill}",
        "Pays payment had received": f"{recovery.pays_received_at_kill}",
        "seconds to get them there": f"{recovery.fill_s:.2f}",
        "what the callers got": f"{recovery.callers_saw}",
        "restart -> order service SERVING": f"{recovery.restart_until_serving_s:.2f} s",
        "restart -> no saga in flight": f"{recovery.restart_until_no_saga_in_flight_s:.2f} s",
        "restart -> no order PENDING": f"{recovery.restart_until_no_order_pending_s:.2f} s",
        "orders after recovery": f"{recovery.orders}",
        "every order APPROVED or REJECTED": "yes" if recovery.all_final else "NO",
        "stock adds up": "yes" if recovery.stock_agrees else "NO",
        "money agrees with every order": "yes"
        if recovery.payments_agree
        else f"NO {recovery.payment_problems}",
    }
    for text, value in lines.items():
        print(f"  {text:<36} {value}")
    if recovery.timed_out:
        print(f"  TIMED OUT: {recovery.timed_out}")
    in_flight, seconds = recovery.in_flight_at_kill, recovery.restart_until_no_saga_in_flight_s
    if in_flight and seconds > 0:
        # Recovery starts as the service registers, before it answers health checks.
        print(f"  ({in_flight / seconds:.0f} sagas/s settled, counted from the restart)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--no-gateway", action="store_true", help="skip orders through the gateway")
    parser.add_argument("--quick", action="store_true", help="a few orders each: checks that it runs")
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the figures")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else Counts()
    gateway = not args.no_gateway
    began = time.perf_counter()
    info = common.machine("grpcio")
    print(f"week 7 benchmark: {info['cpus']} CPUs, Python {info['python']}, grpcio {info['grpcio']}")
    common.warn_if_busy(
        info,
        "other work competes for the CPUs, "
        "so absolute figures are slower and noisier than on a quiet machine (the ratios less so)",
        show_cpus=False,
    )

    rows, startup_s = measure_throughput(counts, gateway)
    by_slice = ratios(rows)
    print_throughput(rows, by_slice, counts)
    recovery = measure_recovery(counts.sagas_in_flight)
    print_recovery(recovery)

    report: dict[str, Any] = {
        "command": COMMAND
        + (" --no-gateway" if args.no_gateway else "")
        + (" --quick" if args.quick else ""),
        "machine": info,
        "counts": asdict(counts),
        "aim_saga_over_plain_orders_per_s": AIM_SAGA_OVER_PLAIN,
        "cluster_startup_s": startup_s,
        "throughput": [asdict(row) for row in rows],
        "saga_over_plain": by_slice,
        "recovery": asdict(recovery) | {"ok": recovery.ok},
        "load_average_1min_at_end": load_average(),
        "total_seconds": time.perf_counter() - began,
    }
    common.write_report(args.json, report)
    return 0 if recovery.ok else 1


if __name__ == "__main__":
    sys.exit(main())
