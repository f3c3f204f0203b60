"""Week 8 benchmark: what our circuit breaker costs, against pybreaker and a bare call, in one run.

Run it with ``.venv/bin/python -m benchmarks.bench_breaker`` (about 20 s). It prints two tables
and writes the figures to ``build/bench_breaker.json``.

What is measured:

1. **Overhead per protected call, one thread.** A no-op function called in a tight loop:
   bare, through ``breaker.call(fn)``, through a ``@breaker``-decorated function, in a
   ``with breaker:`` block, and through pybreaker's ``CircuitBreaker.call(fn)``. Nanoseconds
   per call, best of several rounds (for a CPU-bound loop the fastest round is the one the
   rest of the machine disturbed least); the rounds of all variants are interleaved so that
   drift in the machine's speed hits them alike. The loop's own cost is inside every
   figure, so "overhead" is a variant minus the bare call.
2. **Throughput of a 1 ms call from 8 threads.** ``time.sleep(0.001)`` stands in for a remote
   call: it takes time and releases the GIL, as a gRPC call waiting on the network does.
   Eight threads call it for a fixed time, bare, through our breaker and through pybreaker.
   pybreaker holds its lock across the protected call, so its eight threads take turns; ours
   locks only to admit and to record, so its eight threads wait for their calls together.

Why the baselines are taken in the same run: absolute figures say more about the machine than
about the code; the ratios survive a change of machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pybreaker

from benchmarks.common import machine, warn_if_busy, write_report
from bookstore.resilience import CircuitBreaker, State

REPO = Path(__file__).resolve().parents[1]
JSON_PATH = REPO / "build" / "bench_breaker.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_breaker"

CALLS_PER_ROUND = 200_000
ROUNDS = 7
THREADS = 8
SLOW_CALL_S = 0.001
THROUGHPUT_SECONDS = 3.0


def noop() -> None:
    pass


def slow_call() -> None:
    time.sleep(SLOW_CALL_S)


# ----------------------------------------------------------------------------- overhead


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """As ``timeit`` does: a collection in the middle of a round is noise, not breaker cost."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def loop_bare(n: int) -> None:
    fn = noop
    for _ in range(n):
        fn()


def loop_ours_call(n: int, breaker: CircuitBreaker) -> None:
    call, fn = breaker.call, noop
    for _ in range(n):
        call(fn)


def loop_ours_decorated(n: int, breaker: CircuitBreaker) -> None:
    fn = breaker(noop)
    for _ in range(n):
        fn()


def loop_ours_with(n: int, breaker: CircuitBreaker) -> None:
    fn = noop
    for _ in range(n):
        with breaker:
            fn()


def loop_pybreaker(n: int, breaker: pybreaker.CircuitBreaker) -> None:
    call, fn = breaker.call, noop
    for _ in range(n):
        call(fn)


@dataclass
class Overhead:
    variant: str
    best_ns: float
    median_ns: float


def measure_overhead() -> list[Overhead]:
    ours = CircuitBreaker("bench")
    theirs = pybreaker.CircuitBreaker(name="bench")
    variants: dict[str, Callable[[int], None]] = {
        "bare call": loop_bare,
        "ours: breaker.call(fn)": lambda n: loop_ours_call(n, ours),
        "ours: @breaker": lambda n: loop_ours_decorated(n, ours),
        "ours: with breaker:": lambda n: loop_ours_with(n, ours),
        "pybreaker: breaker.call(fn)": lambda n: loop_pybreaker(n, theirs),
    }
    for loop in variants.values():  # warm up: first calls pay for attribute caches and allocation
        loop(CALLS_PER_ROUND // 10)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):  # interleaved: a slow spell of the machine hits every variant
        for name, loop in variants.items():
            with gc_paused():
                began = time.perf_counter_ns()
                loop(CALLS_PER_ROUND)
                elapsed = time.perf_counter_ns() - began
            samples[name].append(elapsed / CALLS_PER_ROUND)
    assert ours.state is State.CLOSED and theirs.current_state == pybreaker.STATE_CLOSED
    return [Overhead(name, min(ns), statistics.median(ns)) for name, ns in samples.items()]


# ----------------------------------------------------------------------------- throughput


@dataclass
class Throughput:
    variant: str
    calls: int
    seconds: float

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds


def run_threads(protected: Callable[[], None]) -> tuple[int, float]:
    """Calls made by THREADS threads calling ``protected`` for THROUGHPUT_SECONDS, and the time taken."""
    start = threading.Barrier(THREADS + 1)
    counts = [0] * THREADS
    stop_at = 0.0

    def worker(index: int) -> None:
        start.wait()
        made = 0
        while time.perf_counter() < stop_at:
            protected()
            made += 1
        counts[index] = made

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at = began + THROUGHPUT_SECONDS
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - began


def measure_throughput() -> list[Throughput]:
    ours = CircuitBreaker("bench")
    theirs = pybreaker.CircuitBreaker(name="bench")
    variants: dict[str, Callable[[], None]] = {
        "bare call": slow_call,
        "ours: breaker.call(fn)": lambda: ours.call(slow_call),
        "pybreaker: breaker.call(fn)": lambda: theirs.call(slow_call),
    }
    results = []
    for name, protected in variants.items():
        calls, seconds = run_threads(protected)
        results.append(Throughput(name, calls, seconds))
    snapshot = ours.snapshot()
    assert snapshot.state is State.CLOSED and snapshot.totals.successes == results[1].calls
    return results


def one_slow_call_s() -> float:
    """What ``time.sleep(0.001)`` really takes here (the OS rounds sleeps up), median of 200."""
    durations = []
    for _ in range(200):
        began = time.perf_counter()
        slow_call()
        durations.append(time.perf_counter() - began)
    return statistics.median(durations)


# ----------------------------------------------------------------------------- report


def print_overhead(rows: list[Overhead]) -> dict[str, float]:
    by_name = {row.variant: row for row in rows}
    bare = by_name["bare call"].best_ns
    ours = by_name["ours: breaker.call(fn)"].best_ns
    theirs = by_name["pybreaker: breaker.call(fn)"].best_ns
    print(
        f"\n== overhead per protected call, 1 thread, a no-op function, "
        f"{CALLS_PER_ROUND:,} calls x {ROUNDS} rounds =="
    )
    print(f"{'variant':<30} {'best ns/call':>13} {'median':>9} {'over bare':>10} {'x bare':>8}")
    for row in rows:
        print(
            f"{row.variant:<30} {row.best_ns:>13.0f} {row.median_ns:>9.0f} "
            f"{row.best_ns - bare:>10.0f} {row.best_ns / bare:>8.1f}"
        )
    ratios = {
        "pybreaker_ns_over_ours_ns": theirs / ours,
        "pybreaker_overhead_over_ours_overhead": (theirs - bare) / (ours - bare),
        "ours_ns_over_bare_ns": ours / bare,
    }
    print(
        f"pybreaker / ours per call: {ratios['pybreaker_ns_over_ours_ns']:.2f}x; "
        f"added cost, pybreaker / ours: {ratios['pybreaker_overhead_over_ours_overhead']:.2f}x"
    )
    return ratios


def print_throughput(rows: list[Throughput], one_call_s: float) -> dict[str, float]:
    by_name = {row.variant: row for row in rows}
    bare = by_name["bare call"].calls_per_s
    ours = by_name["ours: breaker.call(fn)"].calls_per_s
    theirs = by_name["pybreaker: breaker.call(fn)"].calls_per_s
    ideal = THREADS / one_call_s
    print(
        f"\n== throughput, {THREADS} threads, a {SLOW_CALL_S * 1000:.0f} ms call "
        f"(really {one_call_s * 1000:.3f} ms here), {THROUGHPUT_SECONDS:.0f} s each =="
    )
    print(f"{'variant':<30} {'calls':>8} {'calls/s':>9} {'x bare':>8} {'of ideal':>9}")
    for row in rows:
        print(
            f"{row.variant:<30} {row.calls:>8,} {row.calls_per_s:>9,.0f} "
            f"{row.calls_per_s / bare:>8.2f} {row.calls_per_s / ideal:>8.0%}"
        )
    ratios = {
        "ours_over_pybreaker": ours / theirs,
        "ours_over_bare": ours / bare,
        "pybreaker_over_bare": theirs / bare,
    }
    print(
        f"ours / pybreaker: {ratios['ours_over_pybreaker']:.1f}x the calls; "
        f"ideal ({THREADS} threads / one call's time): {ideal:,.0f} calls/s"
    )
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the figures")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    info = machine("pybreaker")
    print(
        f"week 8 breaker benchmark: {info['cpus']} CPUs, Python {info['python']}, "
        f"pybreaker {info['pybreaker']}"
    )

    warn_if_busy(
        info,
        "other work competes for them, so absolute figures are slower and noisier than on a quiet machine",
    )

    overhead = measure_overhead()
    overhead_ratios = print_overhead(overhead)
    one_call_s = one_slow_call_s()
    throughput = measure_throughput()
    throughput_ratios = print_throughput(throughput, one_call_s)

    report: dict[str, Any] = {
        "command": COMMAND,
        "machine": info,
        "overhead": {
            "calls_per_round": CALLS_PER_ROUND,
            "rounds": ROUNDS,
            "rows": [asdict(row) for row in overhead],
            "ratios": overhead_ratios,
        },
        "throughput": {
            "threads": THREADS,
            "call_s": SLOW_CALL_S,
            "measured_call_s": one_call_s,
            "seconds_each": THROUGHPUT_SECONDS,
            "rows": [asdict(row) | {"calls_per_s": row.calls_per_s} for row in throughput],
            "ratios": throughput_ratios,
        },
        "total_seconds": time.perf_counter() - began,
    }
    write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
