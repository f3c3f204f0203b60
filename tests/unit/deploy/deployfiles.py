"""Reading the deployment files the way their tools do, without those tools or a Docker engine.

docker-compose.yml (YAML anchors and merge keys resolved, ``${VAR:-default}`` interpolated),
the Kubernetes manifests (followed through their kustomizations), the Dockerfile's
instructions, .dockerignore's rules, the settings table of ``bookstore.platform.settings``
and the standard OpenTelemetry variable names.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bookstore.platform import service_catalog
from bookstore.platform import settings as settings_module
from bookstore.platform.service_catalog import Kind

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
K8S_DIR = REPO / "infra" / "k8s"
BOOKSTORE_IMAGE = "bookstore"


# ---------------------------------------------------------------------------- settings
@cache
def documented_settings() -> frozenset[str]:
    """Every variable in the settings table of ``bookstore.platform.settings``' docstring.

    Read at test time, so a row added later counts. ``BOOKSTORE_<NAME>_TARGET`` stands for
    one variable per gRPC service of the catalog.
    """
    doc = settings_module.__doc__ or ""
    names: set[str] = set()
    for match in re.finditer(r"^\|\s*(BOOKSTORE_[A-Z0-9_<>]+)\s*\|", doc, flags=re.MULTILINE):
        name = match.group(1)
        if "<NAME>" in name:
            names.update(
                name.replace("<NAME>", service.upper()) for service in service_catalog.names(Kind.SERVICE)
            )
        else:
            names.add(name)
    return frozenset(names)


@cache
def standard_otel_variables() -> frozenset[str]:
    """The OTEL_* names the installed OpenTelemetry API and SDK define (the specification's)."""
    import opentelemetry.environment_variables as api_variables
    import opentelemetry.sdk.environment_variables as sdk_variables

    return frozenset(
        value
        for module in (api_variables, sdk_variables)
        for value in vars(module).values()
        if isinstance(value, str) and value.startswith("OTEL_")
    )


def unknown_settings(names: set[str] | frozenset[str]) -> set[str]:
    """The names among ``names`` that no bookstore process reads as a setting."""
    known = documented_settings() | standard_otel_variables()
    return {name for name in names if name not in known}


# ---------------------------------------------------------------------------- entry points
def entry_point_problem(module: str) -> str | None:
    """None when ``python -m module`` runs something, else what is wrong."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError as error:
        return f"{module}: {error}"
    if spec is None:
        return f"{module}: no such module"
    if spec.submodule_search_locations is not None:
        main = importlib.util.find_spec(f"{module}.__main__")
        return None if main is not None else f"{module} is a package without __main__.py"
    if spec.origin is None or not spec.origin.endswith(".py"):
        return f"{module}: not a Python source module"
    tree = ast.parse(Path(spec.origin).read_text())
    if not any(_is_main_guard(node) for node in tree.body):
        return f'{module} has no `if __name__ == "__main__":` block: python -m would do nothing'
    return None


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    names = [test.left, *test.comparators]
    has_name = any(isinstance(n, ast.Name) and n.id == "__name__" for n in names)
    has_main = any(isinstance(n, ast.Constant) and n.value == "__main__" for n in names)
    return has_name and has_main and isinstance(test.ops[0], ast.Eq)


def python_module(command: list[str]) -> str | None:
    """``["python", "-m", "x.y", ...]`` -> ``"x.y"``; None for other commands."""
    if len(command) >= 3 and Path(command[0]).name.startswith("python") and command[1] == "-m":
        return command[2]
    return None


# ---------------------------------------------------------------------------- compose
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` with an empty environment unless given one."""
    env = environ or {}
    return _INTERPOLATION.sub(lambda m: env.get(m.group("name")) or (m.group("default") or ""), value)


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@dataclass(frozen=True)
class ComposeService:
    name: str
    body: Mapping[str, Any]

    @property
    def image(self) -> str:
        """The image run when nothing is set: the default of ``${BOOKSTORE_..._IMAGE:-default}``."""
        return interpolate(str(self.body.get("image", "")))

    @property
    def image_variable(self) -> str | None:
        """The variable that replaces the image (``${NAME:-default}``), if there is one."""
        found = _INTERPOLATION.fullmatch(str(self.body.get("image", "")))
        return found.group("name") if found else None

    @property
    def is_bookstore(self) -> bool:
        return self.image.split(":")[0] == BOOKSTORE_IMAGE

    @property
    def environment(self) -> dict[str, str]:
        env = self.body.get("environment", {})
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {key: interpolate(str(value)) for key, value in env.items()}

    @property
    def command(self) -> list[str]:
        command = self.body.get("command", [])
        return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]

    @property
    def healthcheck_command(self) -> list[str]:
        test = self.body.get("healthcheck", {}).get("test", [])
        if isinstance(test, str):
            return shlex.split(test)
        return [str(part) for part in test[1:]] if test and test[0] in ("CMD", "CMD-SHELL") else []

    @property
    def depends_on(self) -> dict[str, str]:
        deps = self.body.get("depends_on", {})
        if isinstance(deps, list):
            return {name: "service_started" for name in deps}
        return {name: spec.get("condition", "service_started") for name, spec in deps.items()}

    def volume_targets(self) -> dict[str, str]:
        """Host path (relative to the repository) -> path in the container, for bind mounts."""
        mounts: dict[str, str] = {}
        for volume in self.body.get("volumes", []):
            source, target, *_ = str(volume).split(":")
            if source.startswith("."):
                mounts[str((REPO / source).resolve().relative_to(REPO))] = target
        return mounts


def compose_services() -> dict[str, ComposeService]:
    return {name: ComposeService(name, body) for name, body in raw_compose()["services"].items()}


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema, as check-jsonschema ships it (no download)."""
    from importlib.resources import files

    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema: dict[str, Any] = json.loads(schema_file.read_text())
    return schema


# ---------------------------------------------------------------------------- kubernetes
@dataclass(frozen=True)
class Manifest:
    path: Path
    doc: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} ({self.path.relative_to(REPO)})"


def kustomization(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return data


def manifests(directory: Path = K8S_DIR) -> list[Manifest]:
    """Every resource a kustomization lists, following directories the way kustomize does."""
    found: list[Manifest] = []
    for entry in kustomization(directory).get("resources", []):
        path = directory / entry
        if path.is_dir():
            found.extend(manifests(path))
        else:
            found.extend(Manifest(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return found


def workloads(items: list[Manifest]) -> list[Manifest]:
    return [m for m in items if m.kind in ("Deployment", "StatefulSet")]


def pod_containers(workload: Manifest) -> list[Mapping[str, Any]]:
    spec = workload.doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def is_bookstore_container(container: Mapping[str, Any]) -> bool:
    return str(container["image"]).split(":")[0] == BOOKSTORE_IMAGE


def by_kind_and_name(items: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return {(m.kind, m.name): m for m in items}


def config_data(items: list[Manifest], kind: str, name: str) -> dict[str, str]:
    doc = by_kind_and_name(items)[(kind, name)].doc
    if kind == "Secret" and "stringData" in doc:
        return {k: str(v) for k, v in doc["stringData"].items()}
    return {k: str(v) for k, v in doc.get("data", {}).items()}


def container_environment(items: list[Manifest], container: Mapping[str, Any]) -> dict[str, str]:
    """The variables a container gets: its envFrom sources, then its env (which wins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_data(items, "ConfigMap", source["configMapRef"]["name"]))
        if "secretRef" in source:
            env.update(config_data(items, "Secret", source["secretRef"]["name"]))
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
        else:
            env[variable["name"]] = DOWNWARD_API_SAMPLES[variable["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


# What the downward API gives the first pod, for the fields the manifests read.
DOWNWARD_API_SAMPLES = {"metadata.labels['apps.kubernetes.io/pod-index']": "0"}


# ---------------------------------------------------------------------------- Dockerfile
@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """CMD/ENTRYPOINT/RUN arguments, JSON (exec) form or shell form split like sh."""
        text = self.arguments.strip()
        if text.startswith("["):
            return [str(part) for part in json.loads(text)]
        return shlex.split(text)


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return instructions


def env_assignments(instruction: Instruction) -> dict[str, str]:
    """``ENV A=1 B=2`` (or the legacy ``ENV A 1``) -> {"A": "1", "B": "2"}."""
    parts = shlex.split(instruction.arguments)
    if parts and "=" not in parts[0]:
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) for part in parts)


# ---------------------------------------------------------------------------- .dockerignore
def dockerignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def excluded_from_context(relative_path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``relative_path`` out of the build context.

    The last matching rule wins; ``!`` re-includes; a rule that matches a folder matches
    everything in it (Docker's patternmatcher, for the patterns this repository uses).
    """
    parts = relative_path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        regex = _pattern_regex(pattern.strip().strip("/").removeprefix("./"))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def files_under(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
    else:
        yield from (p for p in path.rglob("*") if p.is_file())
