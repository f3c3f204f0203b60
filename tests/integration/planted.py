"""Planted submissions: the solution notebook with one plausible mistake, for the proofs that a
submission passing every visible check earns at least 90 % of the week's points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

SHARE_THAT_VISIBLE_PASS_EARNS = 0.9


@dataclass(frozen=True)
class Planted:
    """The solution with ``old`` replaced by ``new`` (``old`` occurs exactly once in it)."""

    name: str
    old: str
    new: str
    passes_visible: bool  # what we expect; the test checks it, so a drifted check is noticed


def plant(solution: Path, mistake: Planted, target: Path) -> Path:
    notebook = nbformat.read(solution, as_version=4)
    found = sum(cell.source.count(mistake.old) for cell in notebook.cells)
    assert found == 1, f"{mistake.name}: the solution should contain its snippet once, found {found}"
    for cell in notebook.cells:
        cell.source = cell.source.replace(mistake.old, mistake.new)
    nbformat.write(notebook, target)
    return target
