"""Exercises are built from solutions: regions become stubs, the build is deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from bookstore.grading.regions import (
    RegionError,
    build_all,
    build_exercise,
    exercise_source,
    exercise_text,
    render,
)

from .synthetic import ADD_SOLUTION, notebook, solution_notebook, write

STUB = '# TODO: your code here\nraise NotImplementedError("exercise")'


def indented(text: str, indent: str) -> str:
    return "\n".join(indent + line for line in text.splitlines())


def test_a_region_in_a_function_body_becomes_a_stub_at_the_markers_indentation() -> None:
    assert exercise_source(ADD_SOLUTION) == "def add(a, b):\n" + indented(STUB, "    ")


def test_a_region_at_top_level_becomes_an_unindented_stub() -> None:
    source = "x = 1\n# BEGIN SOLUTION\ny = x + 1\n# END SOLUTION\n"
    assert exercise_source(source) == "x = 1\n" + STUB + "\n"


def test_deeper_and_tab_indentation_is_kept_as_written() -> None:
    source = (
        "class A:\n    def f(self):\n        # BEGIN SOLUTION\n        return 1\n        # END SOLUTION\n"
    )
    assert exercise_source(source) == "class A:\n    def f(self):\n" + indented(STUB, "        ") + "\n"
    tabbed = "def f():\n\t# BEGIN SOLUTION\n\treturn 1\n\t# END SOLUTION"
    assert exercise_source(tabbed) == "def f():\n" + indented(STUB, "\t")


def test_several_regions_in_one_cell_keep_the_code_between_them() -> None:
    source = (
        "def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n\n"
        "LIMIT = 3\n\n"
        "def g():\n    # BEGIN SOLUTION\n    return 2\n    # END SOLUTION\n"
    )
    built = exercise_source(source)
    assert built.count("raise NotImplementedError") == 2
    assert "LIMIT = 3" in built
    assert "return 1" not in built and "return 2" not in built


def test_code_after_a_region_stays_and_a_cell_without_regions_is_unchanged() -> None:
    source = "def f():\n    # BEGIN SOLUTION\n    x = 1\n    # END SOLUTION\n    return x\n"
    assert exercise_source(source).endswith("    return x\n")
    plain = "print('hello')\n"
    assert exercise_source(plain) == plain


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n# END SOLUTION\n", "without a BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside another"),
        ("#BEGIN SOLUTION\nx = 1\n#END SOLUTION\n", "looks like a marker"),
        ("# begin solution\nx = 1\n# end solution\n", "looks like a marker"),
        ("# END SOLUTION: done\n", "looks like a marker"),
    ],
)
def test_a_broken_or_misspelt_marker_is_an_error_not_a_published_answer(source: str, complaint: str) -> None:
    with pytest.raises(RegionError, match=complaint):
        exercise_source(source)


def test_solution_only_cells_are_dropped_and_everything_else_is_kept_in_order() -> None:
    exercise = build_exercise(solution_notebook(), name="week99_arithmetic.ipynb")
    sources = [cell.source for cell in exercise.cells]
    assert len(sources) == 5
    assert sources[0].startswith("# Week 99")
    assert not any("SOLUTION" in s for s in sources)
    assert not any("return a + b" in s or "upper()" in s or "x * x" in s for s in sources)
    assert sources[-1] == "assert callable(add)  # a visible self-check the learner keeps"


def test_solution_only_must_be_the_first_line() -> None:
    nb = notebook("x = 1\n# SOLUTION ONLY\n")
    with pytest.raises(RegionError, match="SOLUTION ONLY"):
        build_exercise(nb, name="week99_x.ipynb")
    md = notebook("md:Some text\n# SOLUTION ONLY")
    with pytest.raises(RegionError, match="first line"):
        build_exercise(md, name="week99_x.ipynb")


def test_the_exercise_is_marked_as_one_and_carries_no_outputs_counts_or_ids() -> None:
    solution = solution_notebook()
    solution.nbformat_minor = 5
    for index, cell in enumerate(solution.cells):
        cell["id"] = f"cell-{index}"
        if cell.cell_type == "code":
            cell.execution_count = index
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="out\n")]
            cell.metadata["execution"] = {"iopub.status.idle": "2024-01-01"}
    exercise = build_exercise(solution, name="week99_arithmetic.ipynb")
    assert exercise.metadata["bookstore"] == {"week": 99, "kind": "exercise"}
    assert exercise.nbformat_minor == 4
    for cell in exercise.cells:
        assert "id" not in cell
        assert "execution" not in cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert solution.metadata["bookstore"]["kind"] == "solution", "the solution itself is left alone"
    assert solution.cells[1].outputs, "the solution itself is left alone"


@pytest.mark.parametrize(
    ("metadata", "name", "complaint"),
    [
        (None, "week99_x.ipynb", "metadata needs"),
        ({"week": 99, "kind": "exercise"}, "week99_x.ipynb", "metadata needs"),
        ({"week": 98, "kind": "solution"}, "week99_x.ipynb", "file name says week 99"),
    ],
)
def test_a_solution_needs_its_metadata(metadata: dict[str, object] | None, name: str, complaint: str) -> None:
    nb = notebook("x = 1", week=None)
    if metadata is not None:
        nb.metadata["bookstore"] = metadata
    with pytest.raises(RegionError, match=complaint):
        build_exercise(nb, name=name)


def test_building_is_deterministic_byte_for_byte_whatever_the_cell_ids(tmp_path: Path) -> None:
    plain = write(tmp_path / "a" / "week99_arithmetic.ipynb", solution_notebook())
    with_ids = solution_notebook()
    with_ids.nbformat_minor = 5
    for index, cell in enumerate(with_ids.cells):
        cell["id"] = f"random-{index}"
    other = write(tmp_path / "b" / "week99_arithmetic.ipynb", with_ids)
    first = exercise_text(plain)
    assert first == exercise_text(plain)
    assert first == exercise_text(other)
    assert first.endswith("\n")
    parsed = json.loads(first)
    assert parsed["nbformat"] == 4 and parsed["nbformat_minor"] == 4
    assert render(nbformat.reads(first, as_version=4)) == first, "rendering is a fixed point"


def test_build_all_writes_then_check_finds_nothing_to_change(tmp_path: Path) -> None:
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    write(solutions / "week99_arithmetic.ipynb", solution_notebook())
    (solutions / "checks").mkdir()
    (solutions / "checks" / "week99.py").write_text("# hidden\n")

    assert [d.reason for d in build_all(solutions, exercises, check=True)] == ["missing"]
    assert not exercises.exists(), "--check writes nothing"

    assert [d.reason for d in build_all(solutions, exercises)] == ["missing"]
    assert sorted(p.name for p in exercises.iterdir()) == ["week99_arithmetic.ipynb"], (
        "checks are never copied"
    )
    assert build_all(solutions, exercises, check=True) == []
    assert build_all(solutions, exercises) == [], "a second build changes nothing"


def test_check_reports_a_hand_edited_exercise_and_an_orphan(tmp_path: Path) -> None:
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    write(solutions / "week99_arithmetic.ipynb", solution_notebook())
    build_all(solutions, exercises)
    target = exercises / "week99_arithmetic.ipynb"
    target.write_text(target.read_text().replace("TODO", "TO DO"))
    orphan = write(exercises / "week98_gone.ipynb", notebook("x = 1", week=98, kind="exercise"))

    found = {d.path.name: d.reason for d in build_all(solutions, exercises, check=True)}
    assert found == {
        "week99_arithmetic.ipynb": "differs from what its solution builds",
        orphan.name: found[orphan.name],
    }
    assert "has no solution" in found[orphan.name]

    build_all(solutions, exercises)
    assert not orphan.exists(), "an orphan the build made is removed"
    assert build_all(solutions, exercises, check=True) == []


def test_a_solution_notebook_with_a_bad_name_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "solutions" / "week9_short.ipynb", solution_notebook())
    with pytest.raises(RegionError, match="weekNN"):
        build_all(tmp_path / "solutions", tmp_path / "exercises", check=True)
