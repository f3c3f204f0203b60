"""`bookstore exercises build` and `bookstore grade` as a user types them (no kernel needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bookstore.cli import build_parser, main

from .synthetic import notebook, solution_notebook, write


def test_exercises_build_check_fails_until_the_exercises_are_built(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "solutions" / "week99_arithmetic.ipynb", solution_notebook())
    dirs = ["--solutions-dir", str(tmp_path / "solutions"), "--exercises-dir", str(tmp_path / "exercises")]

    assert main(["exercises", "build", "--check", *dirs]) == 1
    assert "week99_arithmetic.ipynb: missing" in capsys.readouterr().out
    assert main(["exercises", "build", *dirs]) == 0
    assert main(["exercises", "build", "--check", *dirs]) == 0
    assert "up to date" in capsys.readouterr().out


def test_exercises_build_names_the_broken_marker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "solutions" / "week99_broken.ipynb", notebook("x = 1\n# BEGIN SOLUTION\ny = 2"))
    code = main(
        ["exercises", "build", "--solutions-dir", str(tmp_path / "solutions"), "--exercises-dir", "x"]
    )
    assert code == 1
    assert "never closed" in capsys.readouterr().err


def test_grade_without_hidden_checks_for_the_week_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submission = write(tmp_path / "alice.ipynb", solution_notebook())
    out, nowhere = str(tmp_path / "out"), str(tmp_path / "nowhere")
    code = main(["grade", str(submission), "--week", "99", "--out", out, "--solutions-dir", nowhere])
    assert code == 1
    assert "no hidden checks for week 99" in capsys.readouterr().err


def test_the_parser_knows_every_command() -> None:
    parser = build_parser()
    for argv in (
        ["up"],
        ["status"],
        ["down"],
        ["course", "run"],
        ["exercises", "build", "--check"],
        [
            "grade",
            "a.ipynb",
            "b.ipynb",
            "--week",
            "6",
            "--out",
            "grades",
            "--workers",
            "4",
            "--timeout",
            "60",
        ],
    ):
        assert parser.parse_args(argv).func is not None
    args = parser.parse_args(["grade", "a.ipynb", "--week", "6", "--out", "o"])
    assert (args.workers, args.timeout, args.check_timeout) == (2, 120.0, 20.0)
