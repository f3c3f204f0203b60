"""Grading throughput: 10 copies of the week 6 solution, ``bookstore grade`` with 2 workers against 1.

Run it with ``.venv/bin/python -m benchmarks.bench_grading [--copies 10]``. Each batch is the
command an instructor types, ``bookstore grade COPIES --week 6 --out DIR --workers N``, in a
process of its own and timed from outside, so the figures include what an instructor waits
for: the interpreter and imports, one cluster per worker slot started and stopped, every
submission's worker process, sandboxed kernel and notebook, and its hidden checks run in the
worker against the kernel. The one-worker batch is the baseline, measured in the same run, so
the ratio says what the second worker buys on this machine whatever its speed. Each kind runs
``--rounds`` times (default 3), alternating, and the medians are compared: on the shared
course machines one batch alone varies by a quarter from run to run. The 1-minute load
average is recorded before and after each batch: it says how much else was running.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import load_average

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solutions" / "week06_services.ipynb"


def grade_copies(copies: int, workers: int, scratch: Path) -> dict[str, float | int | None]:
    folder = scratch / f"w{workers}"
    folder.mkdir(parents=True)
    submissions = []
    for i in range(copies):
        target = folder / f"learner{i:02d}_week06_services.ipynb"
        shutil.copy(SOLUTION, target)
        submissions.append(str(target))
    out = scratch / f"out{workers}"
    command = [sys.executable, "-m", "bookstore.cli", "grade", *submissions, "--week", "6",
               "--out", str(out), "--workers", str(workers), "--no-progress"]  # fmt: skip
    load_before = load_average()
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    with open(out / "grades.csv", newline="") as handle:
        totals = [r for r in csv.DictReader(handle) if r["question"] == "TOTAL"]
    full = sum(1 for r in totals if float(r["points"]) == float(r["max"]))
    return {"seconds": seconds, "full": full, "load_before": load_before, "load_after": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="batches of each kind, alternating (median)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    runs: dict[int, list[dict[str, float | int | None]]] = {1: [], 2: []}
    try:
        for round_ in range(args.rounds):
            # Alternating (1, 2, then 2, 1, ...): a machine that slows down or speeds up during
            # the run weighs on both kinds alike.
            for workers in (1, 2) if round_ % 2 == 0 else (2, 1):
                runs[workers].append(grade_copies(args.copies, workers, scratch / f"r{round_}"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {w: statistics.median(float(r["seconds"] or 0) for r in rows) for w, rows in runs.items()}
    ratio = medians[1] / medians[2]
    print(f"{'workers':>8} {'batch s (each round)':>28} {'median':>7}", end="")
    print(f" {'s/submission':>13} {'full marks':>11}")
    for workers, rows in runs.items():
        each = " ".join(f"{float(r['seconds'] or 0):.1f}" for r in rows)
        full = min(int(r["full"] or 0) for r in rows)
        print(
            f"{workers:>8} {each:>28} {medians[workers]:>7.1f} {medians[workers] / args.copies:>13.2f}"
            f" {full:>8}/{args.copies}"
        )
    loads = [r["load_before"] for rows in runs.values() for r in rows if r["load_before"] is not None]
    if loads:
        print(f"1-minute load before the batches: {min(loads):.1f} to {max(loads):.1f}")
    print(f"2 workers vs 1 (medians, same run): {ratio:.2f}x faster")
    out = REPO / "build" / "bench_grading.json"
    out.parent.mkdir(exist_ok=True)
    report = {"copies": args.copies, "runs": runs, "speedup_two_vs_one": round(ratio, 2)}
    out.write_text(json.dumps(report, indent=2))

if __name__ == "__main__":
    main()
