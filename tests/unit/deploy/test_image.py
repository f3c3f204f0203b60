"""The Dockerfile, checked statically: what it copies exists and reaches the build context, what it
runs is real, and the dependencies it installs are the pinned ones. Building needs an engine."""

from __future__ import annotations

import re
import subprocess
import sys

from .deployfiles import (
    REPO,
    Instruction,
    dockerfile_instructions,
    dockerignore_patterns,
    entry_point_problem,
    env_assignments,
    excluded_from_context,
    files_under,
    python_module,
)


def instructions(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile_instructions() if i.keyword == keyword]


def copy_sources(instruction: Instruction) -> list[str]:
    parts = [p for p in instruction.arguments.split() if not p.startswith("--")]
    return parts[:-1]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def build_arguments() -> dict[str, str]:
    """``ARG NAME=default`` lines: the defaults of the build arguments."""
    return dict(i.arguments.split("=", 1) for i in instructions("ARG") if "=" in i.arguments)


def test_the_base_image_is_a_pinned_python_that_the_package_supports() -> None:
    (base,) = instructions("FROM")
    # FROM ${BASE_IMAGE}: replaceable (an offline build's local base), official by default.
    reference = re.sub(r"\$\{(\w+)\}", lambda m: build_arguments()[m.group(1)], base.arguments)
    image, _, tag = reference.partition(":")
    assert image == "python"
    match = re.match(r"(\d+)\.(\d+)-", tag)
    assert match, f"pin the Python version: {base.arguments}"
    assert (int(match.group(1)), int(match.group(2))) >= (3, 11)


def test_everything_the_image_copies_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    copies = instructions("COPY") + instructions("ADD")
    assert copies
    for instruction in copies:
        assert "--from" not in instruction.arguments  # a single stage: every source is in the context
        for source in copy_sources(instruction):
            if any(c in source for c in "*?["):  # optional: wheelhous[e] exists for offline builds only
                assert not excluded_from_context(source.replace("[e]", "e") + "/x.whl", patterns), source
                continue
            path = REPO / source
            assert path.exists(), f"{instruction.keyword} {source}: no such file in the repository"
            files = list(files_under(path))
            assert files, f"{source} is empty"
            for file in files:
                relative = str(file.relative_to(REPO))
                if "__pycache__" in relative:
                    continue
                assert not excluded_from_context(relative, patterns), (
                    f"{relative} is left out by .dockerignore"
                )


def test_the_build_context_leaves_out_the_virtualenv_git_notebooks_and_bytecode() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/HEAD", "notebooks/week06_services.ipynb", ".bookstore/order.db"):
        assert excluded_from_context(path, patterns), path
    assert excluded_from_context("bookstore/platform/__pycache__/settings.cpython-311.pyc", patterns)
    assert not excluded_from_context("bookstore/platform/settings.py", patterns)


def test_the_image_runs_a_real_entry_point_by_default() -> None:
    (cmd,) = instructions("CMD")
    assert not instructions("ENTRYPOINT")  # so compose and Kubernetes can name any process as the command
    module = python_module(cmd.exec_form())
    assert module is not None
    assert entry_point_problem(module) is None


def test_the_code_is_importable_where_the_image_puts_it() -> None:
    env: dict[str, str] = {}
    for instruction in instructions("ENV"):
        env.update(env_assignments(instruction))
    (workdir,) = instructions("WORKDIR")
    copied_to = {copy_sources(i)[-1]: i.arguments.split()[-1] for i in instructions("COPY")}
    assert copied_to["bookstore"] in ("./bookstore", f"{workdir.arguments}/bookstore")
    assert env["PYTHONPATH"] == workdir.arguments


def test_the_dependency_install_reads_pyproject_and_pins_every_dependency_in_requirements_txt() -> None:
    (install,) = [i for i in instructions("RUN") if "pip install" in i.arguments]
    command = install.exec_form()
    code = command[command.index("-c") + 1]
    listed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed, "the install step found no dependencies in pyproject.toml"
    assert "--constraint" in command and command[command.index("--constraint") + 1] == "requirements.txt"
    pinned = {
        normalized(line.split("==")[0])
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    names = {normalized(re.split(r"[<>=!~;\[ ]", requirement)[0]) for requirement in listed}
    assert names - pinned == set(), "runtime dependencies without a pin in requirements.txt"
    assert {"grpcio", "testcontainers"} <= names


def test_the_image_runs_as_an_unprivileged_numeric_user() -> None:
    users = instructions("USER")
    assert users, "the image would run as root"
    assert users[-1].arguments.isdigit() and int(users[-1].arguments) > 0  # runAsNonRoot can verify a number


def test_the_image_exposes_the_ports_the_deployment_files_use() -> None:
    exposed = {int(port) for i in instructions("EXPOSE") for port in i.arguments.split()}
    assert exposed == {50051, 8000, 9464}
