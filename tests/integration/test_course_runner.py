"""`bookstore course run` as `make course` runs it: real kernels, output captured as a CI log would.

Tiny notebooks stand in for the weeks, so the test takes seconds; what is checked is the
runner's own output: a line per week with its time and load average, no kernel transport
warning, and no terminal colour codes when the output is not a terminal.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbclient", reason="the course runner executes notebooks with nbclient")

WEEK_LINE = re.compile(r"week 98: week98_tiny\.ipynb ran in [0-9.]+ s \(load ([0-9.]+|n/a)\)")


def tiny_notebook(folder: Path, name: str, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(nb, folder / name)


def course_run(tmp_path: Path, weeks: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process with stdout and stderr captured (pipes: not a terminal)."""
    folders = ["--notebooks", str(tmp_path / "notebooks"), "--out", str(tmp_path / "out")]
    command = [sys.executable, "-m", "bookstore.cli", "course", "run", "--weeks", weeks, *folders]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    tiny_notebook(folder, "week98_tiny.ipynb", "import time\ntime.sleep(0.1)", "print('hello')")
    tiny_notebook(folder, "week99_broken.ipynb", "def divide(a, b):\n    return a / b", "divide(1, 0)")
    return folder


def test_a_week_that_runs_prints_its_time_and_the_load_and_nothing_else(
    tmp_path: Path, notebooks: Path
) -> None:
    run = course_run(tmp_path, "98")
    assert run.returncode == 0, run.stdout + run.stderr
    assert WEEK_LINE.search(run.stdout), run.stdout
    assert re.search(r"1 notebooks ran in [0-9.]+ s \(load ", run.stdout), run.stdout
    output = run.stdout + run.stderr
    assert "without encryption" not in output and "WARNING" not in output, output
    assert (tmp_path / "out" / "week98_tiny.ipynb").exists()


def test_a_failing_week_shows_its_traceback_without_colour_codes_in_a_log(
    tmp_path: Path, notebooks: Path
) -> None:
    run = course_run(tmp_path, "98-99")
    assert run.returncode == 1
    assert "week 99: week99_broken.ipynb FAILED after" in run.stdout
    assert "ZeroDivisionError" in run.stdout and "return a / b" in run.stdout, run.stdout
    assert "\x1b[" not in run.stdout + run.stderr, run.stdout + run.stderr
    assert "without encryption" not in run.stderr, run.stderr
    # The executed notebook keeps IPython's colours: Jupyter and the HTML export show them.
    executed = nbformat.read(tmp_path / "out" / "week99_broken.ipynb", as_version=4)
    error = next(o for o in executed.cells[1].outputs if o.output_type == "error")
    assert any("\x1b[" in line for line in error.traceback)
