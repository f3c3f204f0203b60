"""The check API and runner: scoring inputs, messages without tracebacks, missing names, timeouts."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest

from bookstore.grading import checks
from bookstore.grading.checks import (
    API_MODULE,
    CheckFailed,
    check,
    describe_failure,
    load_checks,
    run_checks,
)

from .synthetic import CHECKS_SOURCE, PLANTED


def learner(**names: Any) -> dict[str, Any]:
    return dict(names)


def correct() -> dict[str, Any]:
    return learner(add=lambda a, b: a + b, shout=lambda t: t.upper() + "!", square=lambda x: x * x)


def stub(*_args: object) -> None:
    raise NotImplementedError("exercise")


def test_checks_are_collected_in_definition_order_with_their_points() -> None:
    module = load_checks(CHECKS_SOURCE)
    assert [s.name for s in module.specs] == [
        "adds_small",
        "adds_negative",
        "shouts",
        "squares_positive",
        "squares_negative",
    ]
    assert module.questions() == {"q1": 3.0, "q2": 1.0, "q3": 2.0}
    assert module.needs_cluster is False
    assert load_checks("NEEDS_CLUSTER = True\n" + CHECKS_SOURCE).needs_cluster is True


def test_loading_checks_leaves_the_module_table_as_it_was() -> None:
    before = sys.modules[API_MODULE]
    load_checks(CHECKS_SOURCE)
    assert sys.modules[API_MODULE] is before


def test_a_correct_learner_passes_every_check() -> None:
    results = run_checks(load_checks(CHECKS_SOURCE), correct(), default_timeout_s=5)
    assert [r.passed for r in results] == [True] * 5
    assert all(r.message == "" for r in results)


def test_check_failed_shows_its_message_and_other_errors_only_their_type_and_text() -> None:
    wrong = correct() | {"add": lambda a, b: a - b, "shout": lambda t: t}
    results = run_checks(load_checks(CHECKS_SOURCE), wrong, default_timeout_s=5)
    assert results[0].message == "add(2, 3) should return 5, got -1"
    assert results[2].message == "ZeroDivisionError: division by zero"
    for result in results:
        assert "Traceback" not in result.message
        assert PLANTED not in result.message
        assert "ratio" not in result.message, "no line of hidden source"


def test_a_missing_name_fails_with_a_plain_sentence() -> None:
    results = run_checks(load_checks(CHECKS_SOURCE), learner(), default_timeout_s=5)
    assert not any(r.passed for r in results)
    assert results[0].message.startswith("add is not defined")
    assert results[2].message.startswith("shout is not defined")


def test_the_exercise_stub_reads_as_not_implemented_yet() -> None:
    results = run_checks(
        load_checks(CHECKS_SOURCE), learner(add=stub, shout=stub, square=stub), default_timeout_s=5
    )
    assert {r.message for r in results} == {
        "not implemented yet: the exercise stub still raises NotImplementedError"
    }


def test_describe_failure_names_the_type_when_there_is_no_message_and_truncates_long_ones() -> None:
    assert describe_failure(AssertionError()) == "AssertionError"
    assert describe_failure(CheckFailed()) == "check failed"
    assert describe_failure(NotImplementedError("later")) == "NotImplementedError: later"
    long = describe_failure(ValueError("x" * 5000))
    assert len(long) == checks.MAX_MESSAGE_CHARS and long.endswith("...")


def test_a_check_returning_false_fails() -> None:
    module = load_checks(
        "from bookstore.grading.checks import check\n@check('q1')\ndef same(ns):\n    return ns['x'] == 2\n"
    )
    assert run_checks(module, learner(x=1), default_timeout_s=5)[0].passed is False
    assert run_checks(module, learner(x=2), default_timeout_s=5)[0].passed is True


def test_a_hung_learner_function_fails_one_check_and_the_next_still_runs() -> None:
    def hangs(x: int) -> int:
        while x < 0:
            pass
        return x * x

    ns = correct() | {"square": hangs}
    began = time.monotonic()
    results = run_checks(load_checks(CHECKS_SOURCE), ns, default_timeout_s=0.3)
    assert time.monotonic() - began < 5
    assert results[3].passed is True
    assert results[4].passed is False and results[4].message.startswith("timed out after 0.3 s")
    deadline = time.monotonic() + 5
    while any(t.name == "bookstore-check-squares_negative" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the hung check's thread was not stopped"
        time.sleep(0.05)


def test_a_per_check_timeout_overrides_the_default() -> None:
    module = load_checks(
        "import time\nfrom bookstore.grading.checks import check\n"
        "@check('q1', timeout_s=0.2)\ndef slow(ns):\n    time.sleep(2)\n"
    )
    assert run_checks(module, learner(), default_timeout_s=30)[0].message.startswith("timed out after 0.2 s")


def test_sys_exit_in_learner_code_fails_the_check_instead_of_ending_the_run() -> None:
    results = run_checks(
        load_checks(CHECKS_SOURCE), correct() | {"add": lambda a, b: sys.exit(1)}, default_timeout_s=5
    )
    assert results[0].message == "SystemExit: 1"
    assert results[2].passed is True


def test_checks_get_a_copy_of_the_learner_namespace() -> None:
    module = load_checks(
        "from bookstore.grading.checks import check\n@check('q1')\ndef meddles(ns):\n    ns['add'] = None\n"
    )
    names = correct()
    run_checks(module, names, default_timeout_s=5)
    assert names["add"] is not None


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"points": 0}, "points"),
        ({"points": -1}, "points"),
        ({"points": True}, "points"),
        ({"timeout_s": 0}, "timeout"),
    ],
)
def test_check_rejects_nonsense(kwargs: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        check("q1", **kwargs)
    with pytest.raises(ValueError, match="question"):
        check(" ")


def test_decorating_outside_a_load_only_marks_the_function() -> None:
    @check("q7", points=2, title="a title")
    def known(ns: dict[str, Any]) -> None:
        pass

    assert known.__bookstore_check__.question == "q7"  # type: ignore[attr-defined]


def test_the_agent_cell_connects_even_if_the_learner_shadowed_exec_and_compile() -> None:
    import socket

    from bookstore.grading.checks import RemoteNamespace
    from bookstore.grading.remote import accept_kernel, agent_cell_source

    kernel_globals: dict[str, Any] = {"exec": None, "compile": None, "globals": None, **correct()}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        exec(agent_cell_source("127.0.0.1", listener.getsockname()[1], "t0ken"), kernel_globals)
        endpoint = accept_kernel(listener, "t0ken", timeout_s=5)
    assert endpoint is not None
    try:
        results = run_checks(load_checks(CHECKS_SOURCE), RemoteNamespace(endpoint), default_timeout_s=5)
    finally:
        endpoint.close()
    assert [r.passed for r in results] == [True] * 5
    assert set(kernel_globals) <= {"exec", "compile", "globals", "add", "shout", "square", "__builtins__"}, (
        "no grader names leak into the learner's globals"
    )
