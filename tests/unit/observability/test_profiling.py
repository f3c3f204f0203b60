"""The profile parser and table, the flame graph, and the diagnosis of a refused ptrace.

The fixture is one real ``py-spy record --format raw`` of the inventory service while its
``ReserveStock`` carried a ``cpu_ms`` fault and checkouts ran against it (recorded once,
1 s at 100 Hz).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bookstore.observability.profiling import (
    Frame,
    Profile,
    flame_graph_svg,
    parse_collapsed,
    parse_frame,
    profile_call,
    ptrace_refusal,
    to_collapsed,
)

FIXTURE = Path(__file__).parent / "fixtures" / "py_spy_inventory_cpu_fault.txt"


def recorded() -> Profile:
    return Profile(parse_collapsed(FIXTURE.read_text()), "py-spy", 1.0)


def test_a_frame_is_split_into_function_file_and_line_even_when_the_file_has_a_space() -> None:
    assert parse_frame("burn_cpu (bookstore/platform/faults.py:91)") == Frame(
        "burn_cpu", "bookstore/platform/faults.py", 91
    )
    assert parse_frame("_run_code (<frozen runpy>:88)") == Frame("_run_code", "<frozen runpy>", 88)
    assert parse_frame("Codec.dumps.<locals>.walk (codec.py:14)").function == "Codec.dumps.<locals>.walk"
    assert parse_frame("process 4242") == Frame("process 4242")


def test_the_recorded_profile_has_every_sample_py_spy_counted() -> None:
    # py-spy's own summary for this recording said "Samples: 121".
    assert recorded().total == 121


def test_the_injected_burn_is_the_hottest_function_of_the_recorded_inventory() -> None:
    hottest = recorded().hottest()
    assert (hottest.function, hottest.file) == ("burn_cpu", "bookstore/platform/faults.py")
    assert hottest.line == 93  # the loop's body: the line most of its samples saw
    assert hottest.self_share == pytest.approx(52 / 121)  # on lines 91, 92 and 93 together


def test_self_share_counts_the_top_frame_and_total_share_any_frame_once() -> None:
    profile = Profile(
        parse_collapsed(
            "main (a.py:1);walk (b.py:2);walk (b.py:3) 6\nmain (a.py:1);parse (c.py:4) 3\nmain (a.py:1) 1\n"
        ),
        "py-spy",
        1.0,
    )
    shares = {s.function: (s.self_share, s.total_share) for s in profile.functions()}
    assert shares == {"walk": (0.6, 0.6), "parse": (0.3, 0.3), "main": (0.1, 1.0)}
    assert [s.function for s in profile.functions()] == ["walk", "parse", "main"]


def test_the_table_lists_the_top_functions_with_their_location() -> None:
    table = recorded().table(limit=3).splitlines()
    assert len(table) == 4
    assert "burn_cpu" in table[1] and "bookstore/platform/faults.py:93" in table[1]


def test_a_line_without_a_count_is_refused_naming_the_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_collapsed("a (x.py:1) 3\na (x.py:1);b (y.py:2)\n")


def test_collapsed_text_round_trips() -> None:
    profile = recorded()
    assert parse_collapsed(to_collapsed(profile)) == profile.stacks


def test_the_flame_graph_is_an_svg_with_a_box_per_wide_frame() -> None:
    svg = ET.fromstring(flame_graph_svg(recorded()))
    assert svg.tag.endswith("svg")
    titles = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert any(t.startswith("burn_cpu (bookstore/platform/faults.py:93)") for t in titles)


def burn(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def test_pyinstrument_profiles_a_call_in_this_thread_and_names_the_busy_function() -> None:
    profile = profile_call(lambda: burn(0.01), duration_s=0.3)
    assert profile.profiler == "pyinstrument"
    assert profile.hottest().function == "burn"
    assert profile.hottest().file.endswith("test_profiling.py")


@pytest.mark.parametrize(
    ("facts", "cause"),
    [
        ({"platform": "darwin", "euid": 501}, "macOS"),
        ({"platform": "linux", "ptrace_scope": 1, "cap_sys_ptrace": False}, "ptrace_scope is 1"),
        ({"platform": "linux", "ptrace_scope": 2, "cap_sys_ptrace": False}, "CAP_SYS_PTRACE"),
        ({"platform": "linux", "ptrace_scope": 3, "cap_sys_ptrace": True}, "ptrace_scope is 3"),
        ({"platform": "linux", "py_spy": None}, "not installed"),
    ],
)
def test_a_refused_ptrace_is_explained_in_one_sentence_naming_its_cause(facts: dict, cause: str) -> None:
    reason = ptrace_refusal(**{"py_spy": "py-spy", **facts})
    assert reason is not None and cause in reason
    assert reason.count(". ") == 0 and reason.endswith(".")


@pytest.mark.parametrize(
    "facts",
    [
        {"platform": "darwin", "euid": 0},
        {"platform": "linux", "ptrace_scope": 0, "cap_sys_ptrace": False},
        {"platform": "linux", "ptrace_scope": 1, "cap_sys_ptrace": True},
    ],
)
def test_ptrace_is_expected_to_work_as_root_on_macos_and_under_the_yama_rules(facts: dict) -> None:
    assert ptrace_refusal(py_spy="py-spy", **facts) is None
