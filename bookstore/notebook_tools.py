"""Notebook helpers: waiting for something to happen, and committing notebooks without outputs.

``wait_for`` is how a notebook waits for a distributed system: poll a condition with a
deadline, and fail saying what did not happen, instead of sleeping a guessed time (too short
on a busy machine, wasted on a quiet one) or hanging forever.

Outputs in git make diffs unreadable, leak machine-specific details (ports, paths, pids)
and hide whether a notebook still runs. ``python -m bookstore.notebook_tools strip DIR...``
(``make strip``) clears them; a test fails when a committed notebook carries any.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def wait_for(
    condition: Callable[[], object],
    timeout_s: float = 30.0,
    what: str = "the condition",
    poll_s: float = 0.05,
) -> None:
    """Poll until ``condition()`` is true; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(poll_s)


def notebooks_under(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_file() and path.suffix == ".ipynb":
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts)
    return found


def dirty_cells(path: Path) -> list[int]:
    """Indices of code cells that carry outputs or an execution count (-1: saved widget state)."""
    notebook = json.loads(path.read_text())
    cells = notebook["cells"]
    return ([-1] if "widgets" in notebook.get("metadata", {}) else []) + [
        i
        for i, cell in enumerate(cells)
        if cell.get("cell_type") == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


def strip(path: Path) -> bool:
    """Clear outputs and execution counts in place; True if the file changed."""
    original = path.read_text()
    notebook = json.loads(original)
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    # JupyterLab saves the state of every widget a run displayed: outputs by another name.
    notebook.get("metadata", {}).pop("widgets", None)
    text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    if text != original:
        path.write_text(text)
        return True
    return False


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "strip":
        print("usage: python -m bookstore.notebook_tools strip PATH...", file=sys.stderr)
        return 2
    for path in notebooks_under(Path(p) for p in argv[1:]):
        if strip(path):
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
