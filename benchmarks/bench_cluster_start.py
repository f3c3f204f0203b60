"""Starting a cluster: services forked from a zygote against six fresh interpreters.

Run it with ``.venv/bin/python -m benchmarks.bench_cluster_start [--rounds 5]``. Each round
starts the default cluster (user, catalog, inventory, payment, order, gateway) both ways, in
alternating order, and stops it again:

* ``fresh``: ``Cluster(fork_services=False)``, every service a ``python -m`` of its own that
  imports its libraries itself (the baseline, measured in the same run);
* ``forked``: ``Cluster()``, the services forked from one zygote that imported them once
  (``bookstore.platform.forkserver``).

For each it reports the wall time until every service is SERVING (``startup_seconds``) and the
CPU seconds the cluster's processes spent to get there (the zygote's included), read from
``/proc`` before the cluster stops. The medians of the rounds are compared: CPU is what a
second cluster costs a 2-core machine that is already busy (the grader's second worker slot).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.common import machine, warn_if_busy, write_report
from bookstore.launcher.cluster import Cluster
from bookstore.platform.processes import cpu_seconds

REPORT = Path(__file__).resolve().parents[1] / "build" / "bench_cluster_start.json"
WAYS = ("fresh", "forked")


def start_once(way: str) -> tuple[float, float]:
    """(seconds until SERVING, CPU seconds of the cluster's processes) for one start."""
    cluster = Cluster(fork_services=way == "forked").start()
    try:
        pids = [r.pid for replicas in cluster.replicas.values() for r in replicas]
        cpu = sum(cpu_seconds(pid) for pid in (*pids, cluster.forkserver_pid))
        return float(cluster.startup_seconds or 0.0), cpu
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    began = time.perf_counter()
    info = machine("grpcio", "sqlalchemy")
    warn_if_busy(info, "start-up times compete with that load")
    start_once("forked")  # warm the page cache and the bytecode caches for both ways
    figures: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
    for round_ in range(args.rounds):
        for way in WAYS if round_ % 2 == 0 else reversed(WAYS):
            figures[way].append(start_once(way))
    medians = {
        way: (statistics.median(s for s, _ in runs), statistics.median(c for _, c in runs))
        for way, runs in figures.items()
    }
    print(f"{'way':<8} {'SERVING after s':>16} {'CPU s':>7} {'x fresh (wall)':>15} {'x fresh (CPU)':>14}")
    base_wall, base_cpu = medians["fresh"]
    for way, (wall, cpu) in medians.items():
        print(f"{way:<8} {wall:>16.2f} {cpu:>7.2f} {wall / base_wall:>15.2f} {cpu / base_cpu:>14.2f}")
    write_report(
        REPORT,
        {
            "machine": info,
            "rounds": args.rounds,
            "runs": {way: [{"startup_s": s, "cpu_s": c} for s, c in runs] for way, runs in figures.items()},
            "medians": {way: {"startup_s": s, "cpu_s": c} for way, (s, c) in medians.items()},
            "total_seconds": time.perf_counter() - began,
        },
    )


if __name__ == "__main__":
    main()
