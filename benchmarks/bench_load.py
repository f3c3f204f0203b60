"""Load benchmark: Locust's bookstore journey against a cluster, many users against one.

Run it with ``.venv/bin/python -m benchmarks.bench_load`` (``--users 8 --duration 10``). It
prints a table and writes the figures to ``build/bench_load.json``.

What is measured: one cluster (SQLite, the default) and Locust's ``Shopper`` journey
(``bookstore/launcher/locust/journey.py``: sign up, log in, then browse the catalog, open book
pages, order, list orders) run headless through ``bookstore.launcher.locust.runner``, with no
think time (a pace of 1 ms: each user sends its next request as soon as the last answered, a
closed loop), started two a second. First one user, the baseline, then ``--users`` users,
then as many users browsing only (the catalog's two steps: no order, no order list), each run
for ``--duration`` seconds, in the same run. For each: requests/s, failures, and
p50/p95/p99 per request name, as Locust reports them; and the orders the order service's own
database gained, against the ``201`` answers Locust saw.

Why a baseline in the same run: how much one user gets through says more about this machine
than about the code; the ratio of N users to one says how far the bookstore scales on it,
and a busy neighbour moves both runs alike. Locust shares the CPUs with the nine processes it
measures: on two cores, the generator's own CPU is taken from the system under test, so read
the ratio with the load average printed beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import sqlalchemy

from benchmarks.common import load_average, machine, warn_if_busy, write_report
from bookstore.launcher.cluster import Cluster
from bookstore.launcher.locust import LoadPlan, LocustStats, run_locust
from bookstore.platform.database import make_engine

REPORT = Path("build/bench_load.json")
NO_THINK_TIME_S = 0.001
SPAWN_RATE = 2.0  # users a second: sign-ups (Argon2) all at once would outlast the gateway's deadline
SIGN_UP = ("POST /auth/register", "POST /auth/login")
BROWSING = ("browse", "open_book")  # the journey's steps that read the catalog only


def orders_stored(cluster: Cluster) -> int:
    engine = make_engine(cluster.database_url("order"))
    try:
        with engine.connect() as connection:
            return int(connection.execute(sqlalchemy.text("SELECT COUNT(*) FROM orders")).scalar_one())
    finally:
        engine.dispose()


def journey_per_s(stats: LocustStats) -> float:
    """Requests/s of the journey proper: signing up and logging in happen once per user."""
    return sum(stats.by_name[name].requests_per_s for name in stats.names() if name not in SIGN_UP)


def measure(cluster: Cluster, users: int, duration_s: float, steps: tuple[str, ...] = ()) -> dict[str, Any]:
    before = orders_stored(cluster)
    load_before = load_average()
    plan = LoadPlan(users=users, duration_s=duration_s, spawn_rate=SPAWN_RATE, pace_s=NO_THINK_TIME_S,
                    steps=steps)
    stats = run_locust(cluster, plan)
    placed = sum(1 for r in stats.requests if r.name == "POST /orders" and r.outcome == "201")
    return {
        "users": users,
        "steps": list(steps) or "all",
        "duration_s": duration_s,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "journey_requests_per_s": journey_per_s(stats),
        "requests_per_s": stats.requests_per_s,
        "requests": stats.total.requests,
        "failures": stats.failures,
        "errors": dict(stats.errors),
        "orders_answered_201": placed,
        "orders_stored": orders_stored(cluster) - before,
        "table": stats.table(),
        "by_name": {
            name: {
                "requests": s.requests,
                "failures": s.failures,
                "requests_per_s": s.requests_per_s,
                "p50_ms": s.p50_s * 1000,
                "p95_ms": s.p95_s * 1000,
                "p99_ms": s.p99_s * 1000,
            }
            for name, s in stats.by_name.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8, help="users of the second run (the first has 1)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each run")
    args = parser.parse_args()
    started = time.monotonic()
    info = machine("locust", "grpcio")
    warn_if_busy(info, "the figures are those of a busy machine")
    runs = []
    with Cluster() as cluster:
        for users, steps in ((1, ()), (args.users, ()), (args.users, BROWSING)):
            run = measure(cluster, users, args.duration, steps)
            runs.append(run)
            what = "browsing only" if steps else "the whole journey"
            print(f"\n{users} user(s), {what}, {args.duration:g} s "
                  f"(load average {run['load_average_before']:.1f} "
                  f"before, {run['load_average_after']:.1f} after):\n{run['table']}")
            print(f"journey requests/s: {run['journey_requests_per_s']:.1f}; orders answered 201: "
                  f"{run['orders_answered_201']}, stored by the order service: {run['orders_stored']}")
    one, many, browsing = runs
    ratio = many["journey_requests_per_s"] / one["journey_requests_per_s"]
    p50_ratio = many["by_name"]["POST /orders"]["p50_ms"] / one["by_name"]["POST /orders"]["p50_ms"]
    journey_vs_browsing = many["journey_requests_per_s"] / browsing["journey_requests_per_s"]
    print(f"\n{args.users} users against 1: journey requests/s x{ratio:.2f}; "
          f"POST /orders p50 x{p50_ratio:.2f}")
    print(f"{args.users} users, the whole journey against browsing only: "
          f"requests/s x{journey_vs_browsing:.2f}")
    write_report(REPORT, {
        "machine": info,
        "runs": runs,
        "ratio_journey_requests_per_s": ratio,
        "ratio_order_p50": p50_ratio,
        "ratio_journey_to_browsing_requests_per_s": journey_vs_browsing,
        "total_seconds": time.monotonic() - started,
    })  # fmt: skip


if __name__ == "__main__":
    main()
