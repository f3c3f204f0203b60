"""`bookstore exercises release DIR`: the learner's copy runs, and holds no answer and no check.

The release of this very repository is written to a temporary folder, then searched for
anything an instructor grades with, and used the way a learner uses it: the package and
every module the exercises import come from the release, and `make` knows its targets.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bookstore.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHECKS = REPO / "solutions" / "checks"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("release") / "bookstore-course"
    assert main(["exercises", "release", str(target)]) == 0
    return target


def check_titles() -> list[str]:
    """The ``@check(...)`` lines of the hidden checks: each is unique to its check."""
    lines = [
        line.strip()
        for module in sorted(CHECKS.glob("*.py"))
        for line in module.read_text().splitlines()
        if line.strip().startswith("@check(") and "title=" in line
    ]
    assert lines, "the hidden checks have no @check lines to look for"
    return lines


def exercise_imports(exercises: Path) -> set[str]:
    """Every ``bookstore`` module the exercise notebooks import."""
    modules: set[str] = set()
    for notebook in exercises.glob("*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            source = "".join(cell["source"]) if cell["cell_type"] == "code" else ""
            modules |= set(re.findall(r"^\s*(?:from|import)\s+(bookstore[\w.]*)", source, re.MULTILINE))
    return modules


def test_the_release_holds_no_solutions_no_checks_and_no_instructor_files(released: Path) -> None:
    files = [p for p in released.rglob("*") if p.is_file()]
    assert not (released / "solutions").exists()
    assert not (released / "tests").exists() and not (released / "benchmarks").exists()
    assert not (released / "docs" / "instructors.md").exists()
    assert not [p for p in files if "__pycache__" in p.parts or p.suffix == ".pyc"]
    titles = check_titles()
    for path in files:
        text = path.read_text(errors="replace")
        leaked = [t for t in titles if t in text]
        assert not leaked, f"{path.relative_to(released)} holds a hidden check: {leaked[0]}"
        if path.suffix == ".ipynb":
            assert "# BEGIN SOLUTION" not in text, f"{path.relative_to(released)} holds a solution region"


def test_the_package_and_the_exercises_helper_modules_import_from_the_release(released: Path) -> None:
    modules = exercise_imports(released / "exercises")
    assert "bookstore.grading.selfcheck" in modules
    code = (
        "import importlib, bookstore\n"
        f"for name in {sorted(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(bookstore.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=released, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(released), "bookstore was imported from elsewhere"


def test_make_knows_the_learner_targets_and_nothing_needs_what_was_left_out(released: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("no make on PATH")
    makefile = (released / "Makefile").read_text()
    assert not re.search(r"\b(solutions|tests|benchmarks)\b", makefile)
    for target in ("course", "lab", "notebooks", "lint", "up"):
        dry = subprocess.run(
            ["make", "-n", target], cwd=released, capture_output=True, text=True, timeout=60
        )
        assert dry.returncode == 0, dry.stderr


def test_release_refuses_a_folder_inside_the_repository_or_one_that_is_not_empty(tmp_path: Path) -> None:
    assert main(["exercises", "release", str(REPO / "build" / "release")]) == 1
    assert not (REPO / "build" / "release").exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["exercises", "release", str(tmp_path / "taken")]) == 1
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_exercises_build_in_a_release_refuses_instead_of_deleting_the_exercises(released: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bookstore.cli", "exercises", "build"],
        cwd=released,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "only the instructor's repository has" in done.stderr
    assert len(list((released / "exercises").glob("week*.ipynb"))) == 5
