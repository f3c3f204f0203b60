"""Self-checks speak to learners: a stub says what to do, a FAIL shows its hint, no package frames.

The last tests run a real IPython kernel (nbclient), because what a learner sees is decided
there: IPython's custom exception handler and ``_render_traceback_``.
"""

from __future__ import annotations

import re
import sys
import types
from enum import Enum

import nbformat
import pytest

from bookstore.grading.regions import STUB_LINES
from bookstore.grading.selfcheck import (
    SelfCheckFailed,
    check,
    install_learner_tracebacks,
    is_exercise_stub,
    learner_frames,
    not_attempted_message,
)

nbclient = pytest.importorskip("nbclient", reason="nbclient runs the kernel these tests look at")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Colour(Enum):
    RED = "red"


def traceback_of(function: types.FunctionType) -> types.TracebackType:
    try:
        function()
    except Exception:
        traceback = sys.exc_info()[2]
        assert traceback is not None
        return traceback
    raise AssertionError("expected the function to raise")


def stubbed_function() -> None:
    raise NotImplementedError("exercise")


def test_an_untouched_stub_is_told_apart_from_other_not_implemented_errors() -> None:
    assert is_exercise_stub(NotImplementedError("exercise"))
    assert not is_exercise_stub(NotImplementedError("later"))
    assert not is_exercise_stub(ValueError("exercise"))


def test_the_not_attempted_line_names_the_function_to_write() -> None:
    message = not_attempted_message(traceback_of(stubbed_function))
    assert message.startswith("not attempted yet: ")
    assert "stubbed_function()" in message


def test_a_stub_at_a_cells_top_level_points_at_the_cell() -> None:
    assert "exercise cell above" in not_attempted_message(None)


def test_a_failed_check_renders_as_its_fail_line_and_hint_only() -> None:
    with pytest.raises(SelfCheckFailed) as caught:
        check("two plus two", 2 + 2 == 5, "add again")
    assert caught.value._render_traceback_() == ["FAIL two plus two", "  hint: add again"]


def test_a_passing_check_prints_pass(capsys: pytest.CaptureFixture[str]) -> None:
    check("two plus two", 2 + 2 == 4)
    assert capsys.readouterr().out == "PASS two plus two\n"


def test_learner_frames_drop_the_standard_library_and_keep_this_files_frames() -> None:
    def learner_code() -> None:
        Colour("blue")  # raises inside the enum module

    full = traceback_of(learner_code)
    files = []
    kept = learner_frames(full)
    while kept is not None:
        files.append(kept.tb_frame.f_code.co_filename)
        kept = kept.tb_next
    assert files and all(name == __file__ for name in files)
    assert any("enum" in entry.filename for entry in __import__("traceback").extract_tb(full))


def test_outside_ipython_nothing_is_registered() -> None:
    assert install_learner_tracebacks() is False


def learner_notebook(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


def error_text(cell: nbformat.NotebookNode) -> str:
    errors = [output for output in cell.outputs if output.output_type == "error"]
    assert len(errors) == 1, cell.outputs
    return ANSI.sub("", "\n".join(errors[0].traceback))


STUB_BODY = "\n".join("    " + line for line in STUB_LINES)
CELLS = (
    "from bookstore.grading.selfcheck import check\nfrom enum import Enum\n"
    "class Colour(Enum):\n    RED = 'red'",
    f"def plan(steps):\n{STUB_BODY}",
    "check('plan reverses', plan(['a', 'b']) == ['b', 'a'])",
    "check('two plus two', 2 + 2 == 5, 'add again')",
    "def paint(name):\n    return Colour(name)\npaint('blue')",
)


def test_in_a_kernel_each_failure_reads_as_a_learner_needs_it() -> None:
    nb = learner_notebook(*CELLS)
    nbclient.NotebookClient(nb, timeout=60, allow_errors=True).execute()
    stub, failed, own = (error_text(nb.cells[index]) for index in (2, 3, 4))
    assert stub == (
        "not attempted yet: write the body of plan() where its TODO lines are, and run that cell; "
        "then run this cell again"
    )
    assert failed == "FAIL two plus two\n  hint: add again"
    assert "paint('blue')" in own and "return Colour(name)" in own
    assert "ValueError: 'blue' is not a valid Colour" in own
    assert "enum.py" not in own and "bookstore" not in own and "Traceback" in own
    # The grader reads these fields: they stay the exception's own.
    stub_output = next(o for o in nb.cells[2].outputs if o.output_type == "error")
    assert (stub_output.ename, stub_output.evalue) == ("NotImplementedError", "exercise")


def test_run_all_still_stops_at_the_first_unanswered_question() -> None:
    nb = learner_notebook(*CELLS[:3], "print('after')")
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        nbclient.NotebookClient(nb, timeout=60).execute()
    assert nb.cells[3].outputs == []
