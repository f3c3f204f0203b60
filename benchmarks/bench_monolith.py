"""The microservice tax: the same order journey on the monolith and on the services.

Run it with ``.venv/bin/python -m benchmarks.bench_monolith`` (``--quick`` checks that it
runs; its figures mean little; ``--mariadb`` puts both sides' databases in MariaDB schemas on
127.0.0.1:3306, dropped afterwards). It prints a table and writes the figures to
``build/bench_monolith.json``.

What is measured: one registered user per side places one-copy orders over HTTP, with the
same client code (``bookstore.monolith.tax.place_orders``) against two servers started in
the same run, both on SQLite files in a fresh work directory (or both on MariaDB):

* **the monolith**: one process (``bookstore.monolith``), one database, one transaction per
  order;
* **the services**: the gateway and the five services (``Cluster()``, the order service on
  week 7's saga, as it starts by default), one database each.

At 1 client and at 8 concurrent clients (threads, each with its own keep-alive connection;
client k orders book k+1), per side: orders/s, p50 and p99 of one order, and the CPU time
per order summed over the server's processes (``/proc``; the client's own CPU is not in it).
The ratios divide the services' figure by the monolith's, measured in the same run.

The sides run **interleaved**: ``rounds`` rounds, each running every (concurrency, side) slice
once, so that a machine that slows down for a few seconds slows both. Percentiles use the
nearest rank over all rounds.

What the figures do not say: everything is on loopback, so a hop costs no network round
trip; on real machines the services' latency grows by a round trip per hop in sequence,
while the CPU figures stay. The client shares the two cores with the servers.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import load_average
from bookstore.launcher.cluster import GRPC_SERVICES, Cluster
from bookstore.monolith.launcher import MonolithProcess
from bookstore.monolith.modules import NAME
from bookstore.monolith.tax import OrderRun, place_orders, sign_up
from bookstore.platform.database import drop_mysql_databases, mysql_unavailable_reason

REPO = Path(__file__).resolve().parent.parent
JSON_PATH = REPO / "build" / "bench_monolith.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_monolith"
# Every client orders one book over and over: give each book enough copies for the whole run.
STOCK_ENV = {"BOOKSTORE_INITIAL_STOCK": "1000000"}
SIDES = ("monolith", "services")
MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"


@dataclass(frozen=True)
class Counts:
    """Orders per (concurrency, side) slice and round; sized for about a minute on 2 cores."""

    rounds: int = 3
    concurrency: tuple[int, ...] = (1, 8)
    orders: int = 120
    warmup: int = 10


QUICK = Counts(rounds=1, orders=16, warmup=2)


def merged(runs: list[OrderRun]) -> OrderRun:
    """One run made of several slices: all their latencies, answers, wall and CPU time."""
    return OrderRun(
        name=runs[0].name,
        clients=runs[0].clients,
        latencies_s=[latency for run in runs for latency in run.latencies_s],
        statuses=sum((run.statuses for run in runs), Counter()),
        wall_s=sum(run.wall_s for run in runs),
        cpu_s=sum(run.cpu_s for run in runs),
    )


def measure(counts: Counts, db_url: str = "") -> dict[int, dict[str, OrderRun]]:
    """Start both sides, run the rounds, stop both; the merged runs by concurrency and side."""
    cluster, monolith = Cluster(env=STOCK_ENV, db_url=db_url), MonolithProcess(env=STOCK_ENV, db_url=db_url)
    with cluster, monolith:
        servers = {
            "monolith": (monolith.url, [monolith.pid]),
            "services": (cluster.gateway_url, [r.pid for rs in cluster.replicas.values() for r in rs]),
        }
        headers = {side: sign_up(url) for side, (url, _) in servers.items()}
        slices: dict[int, dict[str, list[OrderRun]]] = {c: {s: [] for s in SIDES} for c in counts.concurrency}
        for _ in range(counts.rounds):
            for clients in counts.concurrency:
                for side in SIDES:
                    url, pids = servers[side]
                    pids_alive = [pid for pid in pids if pid is not None]
                    run = place_orders(
                        side,
                        url,
                        headers[side],
                        orders=counts.orders,
                        clients=clients,
                        pids=pids_alive,
                        warmup=counts.warmup if not slices[clients][side] else 1,
                    )
                    slices[clients][side].append(run)
    return {c: {s: merged(runs) for s, runs in by_side.items()} for c, by_side in slices.items()}


def ratios(run: dict[str, OrderRun]) -> dict[str, float]:
    """The services' figure over the monolith's (orders/s the other way round: > 1 means slower)."""
    mono, services = run["monolith"], run["services"]
    return {
        "p50": services.p50_ms / mono.p50_ms,
        "p99": services.p99_ms / mono.p99_ms,
        "cpu_per_order": services.cpu_ms_per_order / mono.cpu_ms_per_order,
        "orders_per_s_monolith_over_services": mono.orders_per_s / services.orders_per_s,
    }


def print_report(results: dict[int, dict[str, OrderRun]]) -> None:
    head = f"{'orders':>6} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/order':>13}"
    print(f"\n  {'clients':>7} {'side':<9} {head}")
    for clients, by_side in results.items():
        for side, run in by_side.items():
            failures = {status: n for status, n in run.statuses.items() if status != 201}
            note = f"   failed: {failures}" if failures else ""
            print(
                f"  {clients:>7} {side:<9} {run.orders:>6} {run.orders_per_s:>9.0f} {run.p50_ms:>8.2f} "
                f"{run.p99_ms:>8.2f} {run.cpu_ms_per_order:>13.2f}{note}"
            )
    print("\n  the tax: services / monolith, same run")
    print(f"  {'clients':>7} {'p50':>7} {'p99':>7} {'CPU/order':>10} {'orders/s (mono/services)':>25}")
    for clients, by_side in results.items():
        r = ratios(by_side)
        print(
            f"  {clients:>7} {r['p50']:>6.2f}x {r['p99']:>6.2f}x {r['cpu_per_order']:>9.2f}x "
            f"{r['orders_per_s_monolith_over_services']:>24.2f}x"
        )


def as_json(run: OrderRun) -> dict[str, Any]:
    return {
        "clients": run.clients,
        "orders": run.orders,
        "statuses": dict(run.statuses),
        "wall_s": run.wall_s,
        "orders_per_s": run.orders_per_s,
        "p50_ms": run.p50_ms,
        "p99_ms": run.p99_ms,
        "mean_ms": run.mean_ms,
        "cpu_ms_per_order": run.cpu_ms_per_order,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few orders: checks that it runs")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the figures (default build/bench_monolith.json, "
        "or bench_monolith_mariadb.json with --mariadb)",
    )
    parser.add_argument(
        "--mariadb", action="store_true", help="both sides on MariaDB schemas (127.0.0.1:3306), dropped after"
    )
    args = parser.parse_args(argv)
    counts = QUICK if args.quick else Counts()
    began = time.perf_counter()
    info = common.machine("httpx", "uvicorn", "grpcio")
    print(f"monolith against services: {info['cpus']} CPUs, Python {info['python']}, {asdict(counts)}")
    common.warn_if_busy(info, "every figure below is slower and noisier than on a quiet machine")
    db_url = f"{MARIADB_SERVER}bench_{secrets.token_hex(4)}_{{service}}" if args.mariadb else ""
    if db_url and (reason := mysql_unavailable_reason(MARIADB_SERVER)):
        print(f"--mariadb: {reason}")
        return 1
    try:
        results = measure(counts, db_url)
    finally:
        if db_url:
            drop_mysql_databases(db_url, [*GRPC_SERVICES, NAME])
    print(f"\n  databases: {'MariaDB schemas' if db_url else 'SQLite files'}")
    print_report(results)
    report = {
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "machine": info,
        "counts": asdict(counts),
        "databases": "mariadb" if db_url else "sqlite",
        "runs": {str(c): {s: as_json(run) for s, run in by_side.items()} for c, by_side in results.items()},
        "ratios": {str(c): ratios(by_side) for c, by_side in results.items()},
        "total_seconds": time.perf_counter() - began,
        "load_average_1min_at_end": load_average(),
    }
    default = JSON_PATH.with_name("bench_monolith_mariadb.json") if args.mariadb else JSON_PATH
    common.write_report(args.json or default, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
