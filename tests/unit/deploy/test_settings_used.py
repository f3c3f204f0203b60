"""Every variable the deployment files give a bookstore process is a setting that process reads.

A misspelt or retired variable in docker-compose.yml or a manifest is silently ignored by the
process it was meant for; these tests catch it. What counts as a setting: a row of the table
in ``bookstore.platform.settings``' docstring (read now, so rows added later count),
``BOOKSTORE_<NAME>_TARGET`` of every service, and the standard ``OTEL_*`` variables the
installed OpenTelemetry SDK defines.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

import pytest

from bookstore.platform import service_catalog
from bookstore.platform.service_catalog import Kind
from bookstore.platform.settings import Settings

from .deployfiles import (
    compose_services,
    container_environment,
    dockerfile_instructions,
    documented_settings,
    env_assignments,
    is_bookstore_container,
    manifests,
    pod_containers,
    standard_otel_variables,
    unknown_settings,
    workloads,
)


def compose_environments() -> dict[str, dict[str, str]]:
    """Compose service -> the environment its bookstore process gets."""
    return {name: s.environment for name, s in compose_services().items() if s.is_bookstore}


def kubernetes_environments() -> dict[str, dict[str, str]]:
    """Workload -> the environment its bookstore container gets (ConfigMap, Secret and env)."""
    items = manifests()
    return {
        f"{w.kind}/{w.name}": container_environment(items, c)
        for w in workloads(items)
        for c in pod_containers(w)
        if is_bookstore_container(c)
    }


def bookstore_config_keys() -> set[str]:
    """Every key of the bookstore's ConfigMaps and Secrets, whether or not a container uses it yet."""
    return {
        key
        for m in manifests()
        if m.kind == "ConfigMap" or (m.kind == "Secret" and m.name.startswith("bookstore"))
        for key in (*m.doc.get("data", {}), *m.doc.get("stringData", {}))
    }


def dockerfile_variables() -> set[str]:
    names = {name for i in dockerfile_instructions() if i.keyword == "ENV" for name in env_assignments(i)}
    # PYTHON* and PIP* are the interpreter's and pip's own; the rest must be settings.
    return {name for name in names if not name.startswith(("PYTHON", "PIP_"))}


def test_the_settings_table_is_read_from_the_settings_module() -> None:
    documented = documented_settings()
    assert {"BOOKSTORE_PORT", "BOOKSTORE_DB_URL", "BOOKSTORE_JWT_SECRET"} <= documented
    assert {
        service_catalog.entry(name).target_variable for name in service_catalog.names(Kind.SERVICE)
    } <= documented
    assert "BOOKSTORE_<NAME>_TARGET" not in documented


def test_the_standard_otel_variables_come_from_the_installed_sdk() -> None:
    assert {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= standard_otel_variables()


def test_the_check_rejects_a_name_no_process_reads() -> None:
    assert unknown_settings({"BOOKSTORE_PORT", "BOOKSTORE_PROT", "OTEL_SERVICE_NAM", "DB_URL"}) == {
        "BOOKSTORE_PROT",
        "OTEL_SERVICE_NAM",
        "DB_URL",
    }


def unknown_per_process(environments: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    return {
        name: unknown_settings(set(env)) for name, env in environments.items() if unknown_settings(set(env))
    }


def test_compose_gives_the_bookstore_processes_only_settings_they_read() -> None:
    environments = compose_environments()
    assert environments
    assert unknown_per_process(environments) == {}


def test_the_kubernetes_manifests_give_the_bookstore_only_settings_it_reads() -> None:
    environments = kubernetes_environments()
    assert environments
    assert unknown_per_process(environments) == {}
    assert unknown_settings(bookstore_config_keys()) == set()


def test_the_image_sets_only_settings_the_processes_read() -> None:
    assert unknown_settings(dockerfile_variables()) == set()


class RecordingEnvironment(Mapping[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self._values[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def readers() -> list[Callable[[Mapping[str, str]], object]]:
    """The functions that turn an environment into a process's configuration."""
    found: list[Callable[[Mapping[str, str]], object]] = [Settings.from_env]
    try:  # week 10's, once it is there
        observability = importlib.import_module("bookstore.observability.config")
    except ImportError:
        return found
    config = getattr(observability, "ObservabilityConfig", None)
    if config is not None and hasattr(config, "from_env"):
        found.append(config.from_env)
    return found


@pytest.mark.parametrize("source", ["compose", "kubernetes"])
def test_every_bookstore_setting_the_files_set_is_one_the_package_really_reads(source: str) -> None:
    environments = compose_environments() if source == "compose" else kubernetes_environments()
    asked: set[str] = set()
    for values in environments.values():
        environment = RecordingEnvironment(values)
        for read in readers():
            read(environment)  # the files' real values: a value a reader refuses is a bug too
        asked |= environment.asked
    used = {name for env in environments.values() for name in env if name.startswith("BOOKSTORE_")}
    assert used - asked == set()
