"""Keep committed notebooks free of outputs and execution counts.

Outputs in git make diffs unreadable, leak machine-specific details (ports, paths, pids)
and hide whether a notebook still runs. ``python -m bookstore.notebook_tools strip DIR...``
(``make strip``) clears them; a test fails when a committed notebook carries any.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path


def notebooks_under(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_file() and path.suffix == ".ipynb":
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts)
    return found


def dirty_cells(path: Path) -> list[int]:
    """Indices of code cells that carry outputs or an execution count."""
    cells = json.loads(path.read_text())["cells"]
    return [
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
