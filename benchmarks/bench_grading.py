"""Grading throughput: 10 copies of the week 6 solution, ``bookstore grade`` with 2 workers against 1.

Run it with ``.venv/bin/python -m benchmarks.bench_grading [--copies 10]``. Each batch is the
command an instructor types, ``bookstore grade COPIES --week 6 --out DIR --workers N``, in a
process of its own and timed from outside, so the figures include what an instructor waits
for: the interpreter and imports, one cluster per worker slot started and stopped, every
submission's worker process, sandboxed kernel and notebook, and its hidden checks run in the
worker against the kernel. The one-worker batch is the baseline, measured in the same run, so
the ratio says what the second worker buys on this machine whatever its speed. The 1-minute
load average is recorded before and after each batch: on a shared machine it says how much
else was running.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
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
    folder.mkdir()
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
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        one = grade_copies(args.copies, 1, scratch)
        two = grade_copies(args.copies, 2, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = float(one["seconds"] or 0) / float(two["seconds"] or 1)
    rows = {
        "copies": args.copies,
        "one_worker": one,
        "two_workers": two,
        "speedup_two_vs_one": round(ratio, 2),
    }
    print(f"{'workers':>8} {'batch s':>8} {'s/submission':>13} {'full marks':>11} {'load before/after':>18}")
    for workers, row in ((1, one), (2, two)):
        seconds = float(row["seconds"] or 0)
        print(
            f"{workers:>8} {seconds:>8.1f} {seconds / args.copies:>13.2f} {row['full']:>8}/{args.copies}"
            f" {row['load_before']:>9.1f}/{row['load_after']:.1f}"
        )
    print(f"2 workers vs 1 (same run): {ratio:.2f}x faster")
    out = REPO / "build" / "bench_grading.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
