"""The learner's copy of the course: everything a learner runs, nothing an instructor grades with.

    bookstore exercises release DIR

writes into DIR (new, or empty, and outside this repository) the notebooks, the exercises, the
``bookstore`` package, the protos, ``infra/``, the container files, the README and the
requirements, so that ``make course`` and ``make lab`` work there; and leaves out
``solutions/`` (the answers and the hidden checks), the tests and the benchmarks (which grade
and measure against the solutions) and the instructor's guide. Instructors hand out, or push
to a repository of its own, this copy; learners clone that, never the instructor's repository.

Why an allow-list of what goes in, rather than a list of what stays out: a file added to the
repository later (a new solutions folder, a draft with answers) is left out until someone
decides it belongs to learners. A leak costs a course; a missing file costs one release.

The release refuses to run when a committed exercise is not what its solution builds (a
learner would get a stale exercise, or one that asks what the checks no longer test), and
checks its own output: no file under ``solutions/``, and no hidden check's ``@check(...)``
line in any released file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bookstore.grading.regions import EXERCISES_DIR, REPO_ROOT, SOLUTIONS_DIR, build_all

# What learners get, relative to the repository root: folders whole, files as they are.
RELEASED = (
    "README.md",
    "requirements.txt",
    "pyproject.toml",
    "Makefile",
    "Dockerfile",
    "docker-compose.yml",
    ".dockerignore",
    ".gitignore",
    "bookstore",
    "notebooks",
    "exercises",
    "protos",
    "infra",
    "docs",
)
# Inside the folders above, still for instructors only.
WITHHELD = ("docs/instructors.md",)
# Make targets that need folders a release does not have (tests/, benchmarks/).
WITHHELD_MAKE_TARGETS = ("test", "unit", "integration", "bench")
_ABSENT_PATHS = re.compile(r"\s(?:solutions/checks|solutions|tests|benchmarks)(?=\s|$)")
_NEVER_COPIED = re.compile(r"(^|/)(__pycache__|\.ipynb_checkpoints|\.pytest_cache)(/|$)|\.pyc$")


class ReleaseError(RuntimeError):
    """The release cannot be written (a bad target folder, stale exercises, a leak)."""


@dataclass(frozen=True)
class Release:
    target: Path
    files: tuple[str, ...]  # relative paths written


def release(
    target: Path,
    *,
    repo_root: Path = REPO_ROOT,
    solutions_dir: Path = SOLUTIONS_DIR,
    exercises_dir: Path = EXERCISES_DIR,
) -> Release:
    """Write the learner's copy of the course into ``target``; see the module docstring."""
    target = Path(target).absolute().resolve()
    root = repo_root.resolve()
    if target == root or root in target.parents:
        raise ReleaseError(f"{target} is inside the repository; release to a folder outside it")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ReleaseError(f"{target} is not an empty folder; release into a new or empty one")
    if solutions_dir.is_dir():
        stale = build_all(solutions_dir, exercises_dir, check=True)
        if stale:
            listed = "; ".join(str(d) for d in stale)
            raise ReleaseError(f"exercises are out of date ({listed}): run `bookstore exercises build` first")

    files = [f for f in _repository_files(root) if _released(f)]
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if name == "Makefile":
            makefile = learner_makefile((root / name).read_text(encoding="utf-8"))
            destination.write_text(makefile, encoding="utf-8")
        else:
            shutil.copy2(root / name, destination)
    try:
        _check_no_leak(target, files, solutions_dir)
    except ReleaseError:
        shutil.rmtree(target, ignore_errors=True)  # it was new or empty: leave no half-leaked copy
        raise
    return Release(target, tuple(files))


def _released(name: str) -> bool:
    top = name.split("/", 1)[0]
    return top in RELEASED and name not in WITHHELD and not _NEVER_COPIED.search(name)


def _repository_files(root: Path) -> list[str]:
    """The files git tracks (so no .venv, build output or local database), else every file."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()
        names = [n for n in listed.split("\0") if n and (root / n).is_file()]
        if names:
            return sorted(names)
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout (an unpacked archive): every file, minus the usual litter
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def learner_makefile(text: str) -> str:
    """The Makefile without the targets that need tests/ or benchmarks/, and without paths a
    release does not have in the recipes that stay (``ruff check bookstore``, nbval on notebooks/)."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        rule = re.match(r"^([A-Za-z_][\w.-]*)\s*:(?!=)", line)
        if rule:
            skipping = rule.group(1) in WITHHELD_MAKE_TARGETS
        elif skipping and line and not line.startswith("\t"):
            skipping = False
        if skipping:
            continue
        if line.startswith(".PHONY:"):
            kept = [t for t in line.split()[1:] if t not in WITHHELD_MAKE_TARGETS]
            line = " ".join([".PHONY:", *kept])
        elif line.startswith("\t"):
            line = _ABSENT_PATHS.sub("", line)
        elif line.startswith("#"):
            line = line.replace("`make test` runs the tests", "`make lab` opens it in JupyterLab")
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def _check_no_leak(target: Path, files: list[str], solutions_dir: Path) -> None:
    """Belt and braces: nothing from solutions/, and no check's ``@check(...)`` line in any file.

    A decorator line names the question, the points and the title, so it is unique to its
    check; ordinary code lines of a check module (``except grpc.RpcError as error:``) are not,
    and would find "leaks" in the package itself.
    """
    if (target / "solutions").exists():
        raise ReleaseError("solutions/ ended up in the release")
    telling: set[str] = set()
    for module in sorted((solutions_dir / "checks").glob("*.py")) if solutions_dir.is_dir() else []:
        for line in module.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("@check(") and len(line.strip()) > 20:  # not a bare "@check("
                telling.add(line.strip())
    for name in files:
        try:
            text = (target / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary: not where check source hides
        leaked = next((line for line in telling if line in text), None)
        if leaked is not None:
            raise ReleaseError(f"{name} contains a hidden check: {leaked[:80]!r}")
