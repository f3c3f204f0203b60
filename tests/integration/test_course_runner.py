"""`bookstore course run` as `make course` runs it: real kernels, output captured as a CI log would.

Tiny notebooks stand in for the weeks, so the test takes seconds; what is checked is the
runner's own output: a line per week with its time and load average, no kernel transport
warning, and no terminal colour codes when the output is not a terminal.
"""

from __future__ import annotations

import os
import re
import socket
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


def course_run(
    tmp_path: Path, weeks: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process with stdout and stderr captured (pipes: not a terminal)."""
    folders = ["--notebooks", str(tmp_path / "notebooks"), "--out", str(tmp_path / "out")]
    command = [sys.executable, "-m", "bookstore.cli", "course", "run", "--weeks", weeks, *folders]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=env)


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


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


def test_without_a_broker_the_week_says_how_to_get_one_and_the_next_week_still_runs(tmp_path: Path) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    # What weeks 9 and 10 do first: find a broker. Here none answers and no Docker engine does.
    tiny_notebook(
        folder,
        "week96_needs_a_broker.ipynb",
        "from bookstore.messaging.broker import resolve_rabbitmq_url",
        f"resolve_rabbitmq_url(local_url='amqp://guest:guest@127.0.0.1:{closed_port()}/%2F')",
    )
    tiny_notebook(folder, "week97_fine.ipynb", "print('still here')")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}"}
    env.pop("BOOKSTORE_RABBITMQ_URL", None)
    run = course_run(tmp_path, "96-97", env=env)
    assert run.returncode == 1
    assert "week 96: week96_needs_a_broker.ipynb FAILED after" in run.stdout
    assert "BrokerUnavailable: no RabbitMQ broker found" in run.stdout, run.stdout
    assert "BOOKSTORE_RABBITMQ_URL" in run.stdout and "rabbitmq-server -detached" in run.stdout
    assert "Traceback" not in run.stdout and 'File "' not in run.stdout, run.stdout  # the message alone
    assert re.search(r"week 97: week97_fine\.ipynb ran in", run.stdout), run.stdout
    assert "1 of 2 failed: week 96 (BrokerUnavailable)" in run.stdout, run.stdout
