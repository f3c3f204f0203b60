"""Week 10 benchmark: what tracing and metrics cost an order, against no telemetry in the same run.

Run it with ``.venv/bin/python -m benchmarks.bench_tracing`` (about two minutes on 2 cores;
``--quick`` only checks that it runs). It prints two tables and writes the figures to
``build/bench_tracing.json``. It exits 1 only when something is broken (an order not
approved, a trace missing spans), never because of a figure: a missed aim is reported.

What is measured:

1. **Orders through the whole system.** Five clusters run side by side, identical but for
   their telemetry:

   * ``off``: no tracing, no per-request metrics (``BOOKSTORE_TRACING=0 BOOKSTORE_METRICS=0``);
   * ``lean``: every process traces at 100% sampling with the course's interceptors and
     middleware, exporting over OTLP/gRPC in batches to an embedded collector process;
   * ``stock``: the same, but gRPC spans by ``opentelemetry-instrumentation-grpc``'s
     interceptors (HTTP and saga spans stay the course's);
   * ``metrics``: no tracing; per-request metrics on, every process serving ``/metrics``;
   * ``lean+metrics``: both, as the course runs in week 10.

   Orders go through the gateway's ``POST /orders`` (HTTP -> gateway -> order -> catalog,
   inventory, payment: 13 spans from 5 processes per order) at 1 client and at 4
   concurrent clients, and straight to the order service's ``CreateOrder``; and a lighter
   chain, ``GET /books/{id}`` (gateway -> catalog), shows the cost on a cheap request. Every
   slice runs interleaved in rounds over the five clusters, so a machine that slows down
   for a while slows all of them alike. Ratios are against ``off`` from the same rounds;
   the aim for ``lean`` is at least 0.8x the orders/s of ``off``.
2. **The micro-benchmark behind the aim.** Sequential unary gRPC calls on loopback, client
   and server in this one process (where the stock interceptors measured 2-2.6x slower):
   no interceptors, the lean ones, the stock ones, each exporting to the collector.

The collectors run as their own processes, so the CPU spent receiving spans is not charged
to the services; it is reported on its own (``collector CPU ms/order``). Spans per order
checks that nothing was dropped: a tracer that silently drops spans would look cheap.

What the figures said on the 2-core development machine (numbers in BENCHMARKS.md): a span
costs a Python service about 90-100 us of CPU all told (the SDK creating and ending it, the
interceptor, batching and encoding), several times what the same code costs in a tight loop.
An order does 15-18 ms of CPU work and makes 13 spans, so tracing every order costs it 6-10%
of its throughput: the aim holds for the lean and the stock interceptors alike. An empty
echo call does 0.25 ms of work and makes 2 spans, so there tracing costs 40% whichever
interceptors make them; only sampling changes that. What keeps the cost down is keeping work
off the request path (batching; a lean encoder on the exporter's thread; ``start_span``
rather than ``start_as_current_span``), not one clever interceptor.

Caveat: the benchmark's clients, five clusters and the collectors share the machine's CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from opentelemetry.sdk.trace import TracerProvider

from benchmarks.bench_week07 import restock, run_clients
from benchmarks.common import (
    bearer_headers,
    load_average,
    machine,
    percentile,
    verdict,
    warn_if_busy,
    write_report,
)
from bookstore.launcher.cluster import GRPC_SERVICES, Cluster
from bookstore.observability import tracing
from bookstore.observability.collector import CollectorProcess
from bookstore.observability.grpc_client import TelemetryClientInterceptor
from bookstore.observability.grpc_server import TelemetryServerInterceptor
from bookstore.platform.processes import cpu_seconds, free_port
from bookstore.rpc.v1 import catalog_pb2, catalog_pb2_grpc, order_pb2

REPO = Path(__file__).resolve().parent.parent
JSON_PATH = REPO / "build" / "bench_tracing.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_tracing"

AIM_LEAN_OVER_OFF = 0.8
MODES = ("off", "lean", "stock", "metrics", "lean+metrics")  # the baseline first
TRACED = ("lean", "stock", "lean+metrics")
WITH_METRICS = ("metrics", "lean+metrics")
DEADLINE_S = 10.0
BOOKS = tuple(range(1, 9))


@dataclass(frozen=True)
class Counts:
    rounds: int = 4
    orders_one_client: int = 30  # gateway POST /orders, per round and mode
    clients: int = 4
    orders_per_client: int = 10
    grpc_orders: int = 30  # CreateOrder straight to the order service
    book_reads: int = 150  # GET /books/{id}
    warmup: int = 10
    micro_calls: int = 2000  # per mode and round of the micro-benchmark
    micro_rounds: int = 5


QUICK = Counts(
    rounds=1,
    orders_one_client=3,
    orders_per_client=1,
    grpc_orders=3,
    book_reads=5,
    warmup=2,
    micro_calls=50,
    micro_rounds=1,
)


# ----------------------------------------------------------------------------- the clusters


class Shop:
    """One cluster with one telemetry mode, and the clients that shop there."""

    def __init__(self, mode: str, cluster: Cluster, collector: CollectorProcess | None, clients: int) -> None:
        self.mode = mode
        self.cluster = cluster
        self.collector = collector
        self.order_stub = cluster.stub("order")
        self.headers = bearer_headers(cluster.gateway_url)
        self.http = [httpx.Client(base_url=cluster.gateway_url, timeout=DEADLINE_S) for _ in range(clients)]
        self.user_id = self._user_id()

    def _user_id(self) -> str:
        body = {"items": [{"book_id": BOOKS[0], "quantity": 1}]}
        return str(self.http[0].post("/orders", json=body, headers=self.headers).json()["user_id"])

    def close(self) -> None:
        for client in self.http:
            client.close()

    def pids(self) -> list[int]:
        return [r.pid for replicas in self.cluster.replicas.values() for r in replicas if r.pid is not None]

    def cpu_s(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def collector_cpu_s(self) -> float:
        if self.collector is None or self.collector.process is None:
            return 0.0
        return cpu_seconds(self.collector.process.pid)

    def post_order(self, k: int) -> bool:
        body = {"items": [{"book_id": BOOKS[k % len(BOOKS)], "quantity": 1}]}
        try:
            response = self.http[k].post("/orders", json=body, headers=self.headers)
        except httpx.HTTPError:
            return False
        return response.status_code == 201 and response.json()["status"] == "APPROVED"

    def create_order(self, k: int) -> bool:
        request = order_pb2.CreateOrderRequest(
            user_id=self.user_id, items=[order_pb2.OrderItem(book_id=BOOKS[k % len(BOOKS)], quantity=1)]
        )
        try:
            order = self.order_stub.CreateOrder(request, timeout=DEADLINE_S).order
        except grpc.RpcError:
            return False
        return bool(order.status == order_pb2.ORDER_STATUS_APPROVED)

    def get_book(self, k: int) -> bool:
        try:
            return self.http[k].get(f"/books/{BOOKS[k % len(BOOKS)]}").status_code == 200
        except httpx.HTTPError:
            return False


def mode_env(mode: str, collector: CollectorProcess | None) -> dict[str, str]:
    env = {"BOOKSTORE_METRICS": "1" if mode in WITH_METRICS else "0"}
    if collector is None:
        env["BOOKSTORE_TRACING"] = "0"
    else:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.otlp_endpoint
        env["BOOKSTORE_TRACING_INTERCEPTORS"] = "stock" if mode == "stock" else "lean"
    return env


def serve_metrics(cluster: Cluster) -> dict[str, str]:
    """Give every gRPC service a /metrics port (one restart each); the scrape addresses."""
    addresses = {}
    for service in GRPC_SERVICES:
        port = free_port()
        cluster.restart(service, env={"BOOKSTORE_METRICS_PORT": str(port)})
        addresses[service] = f"127.0.0.1:{port}"
    addresses["gateway"] = cluster.address("gateway")
    return addresses


# ----------------------------------------------------------------------------- statistics


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    cpu_s: float = 0.0
    collector_cpu_s: float = 0.0


@dataclass(frozen=True)
class Row:
    mode: str
    slice: str
    count: int
    errors: int
    per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    collector_cpu_ms_per_request: float

    @classmethod
    def of(cls, mode: str, name: str, tally: Tally) -> Row:
        ordered = sorted(tally.latencies_s)
        n = len(ordered)
        return cls(
            mode=mode,
            slice=name,
            count=n,
            errors=tally.errors,
            per_s=n / tally.wall_s,
            p50_ms=percentile(ordered, 0.5) * 1000,
            p99_ms=percentile(ordered, 0.99) * 1000,
            cpu_ms_per_request=tally.cpu_s * 1000 / n,
            collector_cpu_ms_per_request=tally.collector_cpu_s * 1000 / n,
        )


@dataclass(frozen=True)
class Slice:
    name: str
    clients: int
    per_client: int
    call: Callable[[Shop], Callable[[int], bool]]


def slices(counts: Counts) -> list[Slice]:
    return [
        Slice("POST /orders, 1 client", 1, counts.orders_one_client, lambda shop: shop.post_order),
        Slice(
            f"POST /orders, {counts.clients} clients",
            counts.clients,
            counts.orders_per_client,
            lambda shop: shop.post_order,
        ),
        Slice("gRPC CreateOrder, 1 client", 1, counts.grpc_orders, lambda shop: shop.create_order),
        Slice("GET /books/{id}, 1 client", 1, counts.book_reads, lambda shop: shop.get_book),
    ]


def measure_clusters(counts: Counts, work_dir: Path) -> tuple[list[Row], dict[str, float]]:
    plan = slices(counts)
    tallies: dict[tuple[str, str], Tally] = {}
    spans_per_order: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        shops: dict[str, Shop] = {}
        for mode in MODES:
            collector = None
            if mode in TRACED:
                collector = stack.enter_context(CollectorProcess(work_dir / f"collector-{mode}.log"))
            cluster = stack.enter_context(Cluster(db_url="", env=mode_env(mode, collector)))
            if mode in WITH_METRICS:
                serve_metrics(cluster)
            restock(cluster, BOOKS)
            shop = Shop(mode, cluster, collector, counts.clients)
            stack.callback(shop.close)
            shops[mode] = shop
        for shop in shops.values():
            for part in plan:
                run_clients(part.call(shop), part.clients, max(1, counts.warmup // part.clients))
        for _ in range(counts.rounds):
            for part in plan:
                for mode, shop in shops.items():
                    cpu, collector_cpu = shop.cpu_s(), shop.collector_cpu_s()
                    latencies, wall_s, errors = run_clients(part.call(shop), part.clients, part.per_client)
                    tally = tallies.setdefault((mode, part.name), Tally())
                    tally.latencies_s += latencies
                    tally.wall_s += wall_s
                    tally.errors += errors
                    tally.cpu_s += shop.cpu_s() - cpu
                    tally.collector_cpu_s += shop.collector_cpu_s() - collector_cpu
        for mode in TRACED:
            spans_per_order[mode] = spans_of_one_order(shops[mode])
    rows = [Row.of(mode, part.name, tallies[(mode, part.name)]) for part in plan for mode in MODES]
    return rows, spans_per_order


def spans_of_one_order(shop: Shop) -> float:
    """Place one more order and count its trace's spans once they have all arrived."""
    assert shop.collector is not None
    client = shop.collector.client()
    before = {t.trace_id for t in client.traces(operation="POST /orders", limit=1000)}
    assert shop.post_order(0), "an order was not approved"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        fresh = [t for t in client.traces(operation="POST /orders", limit=5) if t.trace_id not in before]
        if fresh:
            time.sleep(1.5)  # the last batches of the five processes
            return float(len(client.trace(fresh[0].trace_id)))
        time.sleep(0.1)
    return 0.0


# ----------------------------------------------------------------------------- micro-benchmark


class Echo(catalog_pb2_grpc.CatalogServiceServicer):
    def GetBook(self, request: catalog_pb2.GetBookRequest, context: grpc.ServicerContext) -> Any:
        return catalog_pb2.GetBookResponse(book=catalog_pb2.Book(book_id=request.book_id, title="t"))


def micro_setup(mode: str, provider: TracerProvider | None) -> tuple[grpc.Server, grpc.Channel]:
    server_interceptors: list[grpc.ServerInterceptor] = []
    if mode == "lean" and provider is not None:
        server_interceptors.append(
            TelemetryServerInterceptor(provider.get_tracer("bench"), with_metrics=False)
        )
    elif mode == "stock" and provider is not None:
        from opentelemetry.instrumentation.grpc import server_interceptor

        server_interceptors.append(server_interceptor(tracer_provider=provider))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=server_interceptors)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel: grpc.Channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    if mode == "lean" and provider is not None:
        channel = grpc.intercept_channel(
            channel, TelemetryClientInterceptor(provider.get_tracer("bench"), with_metrics=False)
        )
    elif mode == "stock" and provider is not None:
        from opentelemetry.instrumentation.grpc import client_interceptor
        from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

        channel = intercept_channel(channel, client_interceptor(tracer_provider=provider))
    return server, channel


def measure_micro(counts: Counts, work_dir: Path) -> dict[str, dict[str, float]]:
    """Calls/s and CPU us per call (this process: client, server and exporter) per mode; medians."""
    per_mode: dict[str, list[float]] = {mode: [] for mode in ("off", "lean", "stock")}
    cpu_per_mode: dict[str, list[float]] = {mode: [] for mode in per_mode}
    with CollectorProcess(work_dir / "collector-micro.log") as collector:
        providers = {
            mode: TracerProvider(resource=tracing.make_resource(f"micro-{mode}"))
            for mode in ("lean", "stock")
        }
        for provider in providers.values():
            provider.add_span_processor(
                tracing.batch_processor(tracing.otlp_exporter(collector.otlp_endpoint))
            )
        setups = {mode: micro_setup(mode, providers.get(mode)) for mode in per_mode}
        try:
            for _ in range(counts.micro_rounds):
                for mode, (_server, channel) in setups.items():
                    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
                    request = catalog_pb2.GetBookRequest(book_id=1)
                    for _ in range(50):
                        stub.GetBook(request, timeout=DEADLINE_S)
                    began, cpu = time.perf_counter(), time.process_time()
                    for _ in range(counts.micro_calls):
                        stub.GetBook(request, timeout=DEADLINE_S)
                    per_mode[mode].append(counts.micro_calls / (time.perf_counter() - began))
                    cpu_per_mode[mode].append((time.process_time() - cpu) * 1e6 / counts.micro_calls)
        finally:
            for server, channel in setups.values():
                channel.close()
                server.stop(None)
            for provider in providers.values():
                provider.shutdown()
    return {
        mode: {
            "calls_per_s": statistics.median(rates),
            "cpu_us_per_call": statistics.median(cpu_per_mode[mode]),
        }
        for mode, rates in per_mode.items()
    }


# ----------------------------------------------------------------------------- report


def ratios(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Per slice and mode: requests/s and CPU per request over ``off``'s."""
    base = {row.slice: row for row in rows if row.mode == "off"}
    result: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.mode == "off":
            continue
        off = base[row.slice]
        result[f"{row.mode} | {row.slice}"] = {
            "per_s": row.per_s / off.per_s,
            "p50": row.p50_ms / off.p50_ms,
            "cpu_per_request": row.cpu_ms_per_request / off.cpu_ms_per_request,
        }
    return result


def print_report(
    rows: list[Row],
    by: dict[str, dict[str, float]],
    spans: dict[str, float],
    micro: dict[str, dict[str, float]],
) -> None:
    print("\n== requests through five clusters, interleaved rounds ==")
    print(
        f"  {'mode':<13} {'slice':<28} {'n':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU ms/req':>11} {'collector CPU':>14}"
    )
    for row in rows:
        errors = f"  ({row.errors} failed)" if row.errors else ""
        print(
            f"  {row.mode:<13} {row.slice:<28} {row.count:>5} {row.per_s:>8.1f} {row.p50_ms:>8.2f} "
            f"{row.p99_ms:>8.2f} {row.cpu_ms_per_request:>11.2f} "
            f"{row.collector_cpu_ms_per_request:>14.2f}{errors}"
        )
    print(
        "\n  ratios against off (same run); "
        f"aim for lean and lean+metrics: req/s at least {AIM_LEAN_OVER_OFF}x"
    )
    print(f"    {'mode | slice':<44} {'req/s':>7} {'p50':>7} {'CPU/req':>8}")
    for name, r in by.items():
        judged = name.split(" | ")[0] in ("lean", "lean+metrics")
        mark = verdict(r["per_s"] >= AIM_LEAN_OVER_OFF) if judged else ""
        print(f"    {name:<44} {r['per_s']:>6.2f}x {r['p50']:>6.2f}x {r['cpu_per_request']:>7.2f}x   {mark}")
    print(
        "\n  spans in the trace of one POST /orders: " + ", ".join(f"{m} {n:.0f}" for m, n in spans.items())
    )
    print("\n== micro: sequential unary gRPC calls, client and server in one process, 100% sampled ==")
    off = micro["off"]
    for mode, figures in micro.items():
        rate, cpu = figures["calls_per_s"], figures["cpu_us_per_call"]
        print(
            f"  {mode:<6} {rate:>8.0f} calls/s  {rate / off['calls_per_s']:.2f}x of off   "
            f"CPU {cpu:>5.0f} us/call  (+{cpu - off['cpu_us_per_call']:.0f} us)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few requests each: checks that it runs")
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the figures")
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else Counts()
    began = time.perf_counter()
    info = machine("grpcio")
    print(f"week 10 benchmark: {info['cpus']} CPUs, Python {info['python']}, grpcio {info['grpcio']}")
    warn_if_busy(info, "other work competes for the CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        rows, spans = measure_clusters(counts, Path(tmp))
        micro = measure_micro(counts, Path(tmp))
    by = ratios(rows)
    print_report(rows, by, spans, micro)
    broken = [row for row in rows if row.errors] or [mode for mode, n in spans.items() if n < 13]
    report: dict[str, Any] = {
        "command": COMMAND + (" --quick" if args.quick else ""),
        "machine": info,
        "counts": asdict(counts),
        "aim_lean_over_off_per_s": AIM_LEAN_OVER_OFF,
        "rows": [asdict(row) for row in rows],
        "ratios_against_off": by,
        "spans_per_order": spans,
        "micro_calls_per_s": micro,
        "load_average_1min_at_end": load_average(),
        "total_seconds": time.perf_counter() - began,
    }
    write_report(args.json, report)
    if broken:
        print(f"BROKEN: {broken}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
