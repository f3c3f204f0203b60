"""The headless course runner: execute every week's notebook in order, as CI and learners do.

The course is week 0 (start here: the map, the terms, this machine's environment check) and
weeks 6 to 10; ``DEFAULT_WEEKS`` names them, so weeks 1-5 (another course's) are not
reported missing.

Each notebook runs in a fresh kernel (nbclient), from the notebooks folder so relative paths
work; the executed copy lands in ``build/course/`` (and HTML beside it with ``--html``). On
the first failure the runner prints the failing cell and its error and exits non-zero.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
CELL_TIMEOUT_S = 300
DEFAULT_WEEKS = "0,6-10"


def parse_weeks(spec: str) -> list[int]:
    """``"6-10"`` -> [6..10]; ``"0,6,9"`` -> [0, 6, 9]."""
    weeks: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise SystemExit(f"--weeks takes numbers like 0, 6, 6-8 or 0,6-10; got {spec!r}")
        weeks.extend(range(int(low), int(high or low) + 1))
    return weeks


def notebook_for(week: int) -> Path | None:
    matches = sorted(NOTEBOOKS.glob(f"week{week:02d}_*.ipynb"))
    return matches[0] if matches else None


def run_course(weeks: list[int], *, html: bool, out_dir: Path) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    present = [(week, path) for week in weeks if (path := notebook_for(week)) is not None]
    for week in sorted(set(weeks) - {w for w, _ in present}):
        print(f"week {week}: no notebook yet, skipped")
    failed = False
    for week, path in tqdm(present, desc="course", unit="notebook", file=sys.stderr):
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        began = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as error:
            failed = True
            print(f"week {week}: {path.name} FAILED after {time.perf_counter() - began:.1f} s\n{error}")
        else:
            print(f"week {week}: {path.name} ran in {time.perf_counter() - began:.1f} s")
        target = out_dir / path.name
        nbformat.write(notebook, target)
        if html:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_notebook_node(notebook)
            target.with_suffix(".html").write_text(body)
        if failed:
            return 1
    print(f"executed notebooks are in {out_dir}")
    return 0
