"""Grading throughput: 20 copies of the week 6 solution, graded with 2 workers against 1.

Run it with ``.venv/bin/python -m benchmarks.bench_grading [--copies 20]``. Each submission is a
full run: a worker process, a fresh kernel, the notebook top to bottom, then the hidden checks.
The one-worker batch is the baseline, measured in the same run, so the ratio says what the
parallel workers buy on this machine whatever its speed. Both batches share one bookstore
cluster each (started once per batch, as the grader does), so the figures include that start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bookstore.grading.batch import grade_batch

REPO = Path(__file__).resolve().parents[1]
SOLUTION = REPO / "solutions" / "week06_services.ipynb"


def grade_copies(copies: int, workers: int, scratch: Path) -> tuple[float, int]:
    folder = scratch / f"w{workers}"
    folder.mkdir()
    submissions = []
    for i in range(copies):
        target = folder / f"learner{i:02d}_week06_services.ipynb"
        shutil.copy(SOLUTION, target)
        submissions.append(target)
    started = time.perf_counter()
    batch = grade_batch(
        submissions,
        week=6,
        out_dir=scratch / f"out{workers}",
        workers=workers,
        progress=False,
        echo=lambda _: None,
    )
    seconds = time.perf_counter() - started
    full = sum(1 for r in batch.results if r.total(batch.specs)[0] == r.total(batch.specs)[1])
    return seconds, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        one, full_one = grade_copies(args.copies, 1, scratch)
        two, full_two = grade_copies(args.copies, 2, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = {
        "copies": args.copies,
        "one_worker_s": round(one, 1),
        "two_workers_s": round(two, 1),
        "speedup_two_vs_one": round(one / two, 2),
        "s_per_submission_one_worker": round(one / args.copies, 2),
        "s_per_submission_two_workers": round(two / args.copies, 2),
        "full_marks": [full_one, full_two],
    }
    print(f"{'workers':>8} {'batch s':>8} {'s/submission':>13} {'full marks':>11}")
    print(f"{1:>8} {one:>8.1f} {one / args.copies:>13.2f} {full_one:>8}/{args.copies}")
    print(f"{2:>8} {two:>8.1f} {two / args.copies:>13.2f} {full_two:>8}/{args.copies}")
    print(f"2 workers vs 1 (same run): {one / two:.2f}x faster")
    out = REPO / "build" / "bench_grading.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
