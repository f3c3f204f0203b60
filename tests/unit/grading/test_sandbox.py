"""The sandbox's bubblewrap arguments: hidden places, binds, order (no process is started)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bookstore.grading import sandbox
from bookstore.grading.sandbox import Limits, SandboxSpec


def spec(tmp_path: Path, *hidden: Path) -> SandboxSpec:
    (tmp_path / "scratch").mkdir()
    return SandboxSpec(scratch=tmp_path / "scratch", hidden=hidden, limits=Limits())


def test_a_hidden_folder_becomes_an_empty_read_only_tmpfs_after_the_binds_inside_it(tmp_path: Path) -> None:
    arguments = spec(tmp_path, tmp_path).bwrap_arguments()
    hide, bind, remount = (
        arguments.index("--tmpfs", arguments.index(str(tmp_path)) - 1),
        arguments.index("--bind"),
        arguments.index("--remount-ro"),
    )
    assert arguments[hide + 1] == str(tmp_path) and arguments[remount + 1] == str(tmp_path)
    assert hide < bind < remount, (
        "the scratch must be bound inside the hidden folder, then it is made read-only"
    )


def test_a_hidden_file_is_covered_by_dev_null(tmp_path: Path) -> None:
    secret = tmp_path / "week06.py"
    secret.write_text("hidden")
    arguments = spec(tmp_path, secret).bwrap_arguments()
    at = arguments.index(str(secret))
    assert arguments[at - 2 : at] == ["--ro-bind", "/dev/null"]


def test_a_folder_holding_the_interpreter_is_never_hidden(tmp_path: Path) -> None:
    prefix = Path(sys.prefix).resolve()
    arguments = spec(tmp_path, prefix.parent).bwrap_arguments()
    assert str(prefix.parent) not in arguments


def test_the_kernel_command_goes_through_the_launcher_then_bubblewrap(tmp_path: Path) -> None:
    command = spec(tmp_path).command(["python", "-m", "ipykernel_launcher"], readable=(tmp_path,))
    assert command[1:3] == ["-m", "bookstore.grading.sandbox"]
    assert command[command.index("--") + 1].endswith("bwrap")
    assert command[-3:] == ["python", "-m", "ipykernel_launcher"]


def test_a_spec_survives_its_json_round_trip(tmp_path: Path) -> None:
    original = spec(tmp_path, tmp_path / "a")
    assert SandboxSpec.from_json(original.to_json()) == original


def test_a_place_inside_a_hidden_folder_is_not_mounted_again(tmp_path: Path) -> None:
    secret = tmp_path / "solutions" / "checks" / "week06.py"
    secret.parent.mkdir(parents=True)
    secret.write_text("hidden")
    arguments = spec(tmp_path, tmp_path / "solutions", secret).bwrap_arguments()
    assert str(secret) not in arguments, "a mount point would show the hidden file's path"


def test_without_bubblewrap_grading_is_not_isolated_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda _name: None)
    found = sandbox.detect()
    assert (found.isolated, found.label) == (False, "not isolated")
    assert "bubblewrap (bwrap) is not installed" in found.how


def test_isolation_can_be_turned_off() -> None:
    assert sandbox.detect("none").label == "not isolated"


def test_a_spec_with_both_cgroups_survives_its_json_round_trip_and_the_launcher_joins_both(
    tmp_path: Path,
) -> None:
    original = SandboxSpec(
        scratch=tmp_path, cgroup=tmp_path / "pids", memory_cgroup=tmp_path / "memory", limits=Limits()
    )
    assert SandboxSpec.from_json(original.to_json()) == original
    command = original.command(["python"])
    joined = [command[i + 1] for i, word in enumerate(command) if word == "--cgroup"]
    assert joined == [str(tmp_path / "pids"), str(tmp_path / "memory")]


@pytest.mark.parametrize(
    ("proc_cgroup", "expected"),
    [
        ("5:devices:/\n4:memory:/process_api/abc\n0::/\n", "/sys/fs/cgroup/memory/process_api/abc"),
        ("0::/user.slice/session-1.scope\n", "/sys/fs/cgroup/user.slice/session-1.scope"),
    ],
)
def test_the_memory_cgroup_is_found_below_the_graders_own(
    tmp_path: Path, proc_cgroup: str, expected: str
) -> None:
    (tmp_path / "cgroup").write_text(proc_cgroup)
    assert sandbox.own_cgroup("memory", tmp_path / "cgroup") == Path(expected)
