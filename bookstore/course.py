"""The headless course runner: execute every week's notebook in order, as CI and learners do.

The course is week 0 (start here: the map, the terms, this machine's environment check) and
weeks 6 to 10; ``DEFAULT_WEEKS`` names them, so weeks 1-5 (another course's) are not
reported missing.

Each notebook runs in a fresh kernel (nbclient), from the notebooks folder so relative paths
work; the executed copy lands in ``build/course/`` (and HTML beside it with ``--html``). A
week that fails prints its failing cell and error, and the next week still runs: every
notebook starts its own services, so one week's failure (often a missing backing service,
say no RabbitMQ for weeks 9 and 10) tells nothing about the others. The last line names the
weeks that failed, and the exit status is non-zero if any did.

Each week's line gives its wall time and the 1-minute load average when it ended: on a
shared or busy machine a week takes longer, and the load says how busy the machine was, so
two runs' times can be compared honestly.

The output is meant to be read in a terminal and in a CI log alike, so it stays quiet:

* kernels talk to the runner over IPC (Unix sockets in a private temporary folder) instead
  of loopback TCP. ipykernel warns, once per kernel, that TCP is unencrypted; with IPC there
  is nothing to warn about, and no other user of the machine can connect to the kernel.
* a missed wake-up is bounded. With IPC sockets (and with encrypted TCP), the asyncio poll
  that waits for a cell's reply sometimes sleeps through the message: the reply has arrived,
  but the poll only sees it when its timeout ends. Week 8's live breaker experiment then
  "took" the whole cell timeout (300 s) although the kernel answered after 5 s. The runner's
  kernel client therefore polls in one-second slices (``bookstore.kernel_client``): a missed
  wake-up costs at most a second, and a real timeout still ends at its deadline.
* IPython colours tracebacks with ANSI escape codes. They are kept in the executed notebooks
  (Jupyter and the HTML show them as colour) but stripped from a failure printed to a file
  or a pipe, where they would show as ``\\x1b[31m`` noise.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bookstore.kernel_client import CLIENT_CLASS

if TYPE_CHECKING:
    from traitlets.config import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
CELL_TIMEOUT_S = 300
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
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


def notebook_for(week: int, folder: Path = NOTEBOOKS) -> Path | None:
    matches = sorted(folder.glob(f"week{week:02d}_*.ipynb"))
    return matches[0] if matches else None


def load_average() -> str:
    """The 1-minute load average, as printed beside each time ("n/a" where the OS has none)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # getloadavg exists on Linux and macOS; elsewhere it may be unobtainable
        return "n/a"


def for_stream(text: str, stream: TextIO) -> str:
    """``text`` as it should be written to ``stream``: colour codes only for a terminal."""
    return text if stream.isatty() else ANSI_ESCAPE.sub("", text)


def ipc_kernel(socket_prefix: Path) -> Config:
    """Configuration for nbclient's kernel manager: IPC sockets named ``socket_prefix-1`` to ``-5``.

    The path is absolute because the kernel runs in the notebook's folder, and the runner not.
    Given as configuration, not as a ready-made manager, so nbclient still owns the kernel and
    shuts it down after the notebook (a manager handed in is left running).
    """
    from traitlets.config import Config

    return Config(
        {
            "KernelManager": {
                "transport": "ipc",
                "ip": str(socket_prefix.absolute()),
                "client_class": CLIENT_CLASS,
            }
        }
    )


def run_course(weeks: list[int], *, html: bool, out_dir: Path, notebooks: Path = NOTEBOOKS) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    present = [(week, path) for week in weeks if (path := notebook_for(week, notebooks)) is not None]
    for week in sorted(set(weeks) - {w for w, _ in present}):
        print(f"week {week}: no notebook yet, skipped")
    failed: list[str] = []
    course_began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bookstore-kernels-") as sockets:
        for week, path in tqdm(present, desc="course", unit="notebook", file=sys.stderr):
            notebook = nbformat.read(path, as_version=4)
            client = NotebookClient(
                notebook,
                config=ipc_kernel(Path(sockets) / f"week{week}"),
                timeout=CELL_TIMEOUT_S,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
            )
            began = time.perf_counter()
            try:
                client.execute()
            except CellExecutionError as error:
                failed.append(f"week {week} ({error.ename})")
                elapsed = time.perf_counter() - began
                print(
                    f"week {week}: {path.name} FAILED after {elapsed:.1f} s (load {load_average()})\n"
                    + for_stream(str(error), sys.stdout)
                )
            else:
                elapsed = time.perf_counter() - began
                print(f"week {week}: {path.name} ran in {elapsed:.1f} s (load {load_average()})")
            target = out_dir / path.name
            nbformat.write(notebook, target)
            if html:
                from nbconvert import HTMLExporter

                body, _ = HTMLExporter().from_notebook_node(notebook)
                target.with_suffix(".html").write_text(body)
    total = time.perf_counter() - course_began
    print(f"{len(present)} notebooks ran in {total:.1f} s (load {load_average()})")
    print(f"executed notebooks are in {out_dir}")
    if failed:
        print(f"{len(failed)} of {len(present)} failed: {', '.join(failed)}; see each one's error above")
        return 1
    return 0
