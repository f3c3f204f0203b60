"""infra/k8s: valid Kubernetes objects (checked offline against the API's schemas), wired the way
the processes read their settings, with gRPC health probes and DNS discovery."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from bookstore.platform import containers, service_catalog
from bookstore.platform.service_catalog import Kind
from bookstore.platform.settings import Settings

from .deployfiles import (
    K8S_DIR,
    REPO,
    Manifest,
    by_kind_and_name,
    config_data,
    container_environment,
    entry_point_problem,
    is_bookstore_container,
    kustomization,
    manifests,
    pod_containers,
    python_module,
    workloads,
)

# The oldest Kubernetes the manifests are for (grpc probes: 1.27; the StatefulSet pod-index
# label the order service reads: 1.28), and the newest the installed schemas know.
OLDEST_VERSION = "1.28.0"
NEWEST_VERSION = kubernetes_validate.utils.latest_version()
# Every process a cluster runs (the monolith is the course's "before" and is not deployed).
PROCESSES = service_catalog.names(Kind.SERVICE, Kind.GATEWAY, Kind.CONSUMER)
(GATEWAY,) = service_catalog.names(Kind.GATEWAY)


def k8s_name(process: str) -> str:
    return process.replace("_", "-")


@pytest.fixture(scope="module")
def items() -> list[Manifest]:
    return manifests()


@pytest.fixture(scope="module")
def bookstore(items: list[Manifest]) -> dict[str, tuple[Manifest, Mapping[str, Any]]]:
    """Process name -> (its workload, its bookstore container)."""
    found = {}
    for workload in workloads(items):
        for container in pod_containers(workload):
            if is_bookstore_container(container):
                module = python_module(container["command"])
                process = next(p for p in PROCESSES if service_catalog.entry(p).module == module)
                found[process] = (workload, container)
    return found


def validation_error(doc: Mapping[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(dict(doc), version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'.'.join(map(str, error.path))}: {error.message}"
    return None


@pytest.mark.parametrize("version", [OLDEST_VERSION, NEWEST_VERSION])
def test_every_object_is_valid_against_the_kubernetes_schemas_offline(
    items: list[Manifest], version: str
) -> None:
    assert items
    problems = {str(m): validation_error(m.doc, version) for m in items}
    assert {name: problem for name, problem in problems.items() if problem} == {}


def test_the_strict_check_rejects_a_misspelt_field(items: list[Manifest]) -> None:
    deployment = next(m for m in items if m.kind == "Deployment")
    broken = copy.deepcopy(dict(deployment.doc))
    broken["spec"]["replcas"] = 2
    assert validation_error(broken, OLDEST_VERSION) is not None


def test_every_manifest_file_is_listed_in_a_kustomization() -> None:
    listed = {m.path for m in manifests()}
    on_disk = {p for p in K8S_DIR.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk - listed == set()


def test_every_bookstore_process_has_a_workload_running_its_entry_point(
    items: list[Manifest], bookstore: dict[str, tuple[Manifest, Mapping[str, Any]]]
) -> None:
    assert set(bookstore) == set(PROCESSES)
    for process, (workload, container) in bookstore.items():
        assert workload.name == k8s_name(process)
        assert entry_point_problem(service_catalog.entry(process).module) is None
        env = Settings.from_env(container_environment(items, container))
        assert env.service == process


def test_every_grpc_process_has_grpc_health_probes_on_the_port_it_listens_on(
    items: list[Manifest], bookstore: dict[str, tuple[Manifest, Mapping[str, Any]]]
) -> None:
    for process, (_, container) in bookstore.items():
        settings = Settings.from_env(container_environment(items, container))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container[probe]
            if process == GATEWAY:
                assert spec["httpGet"]["path"] == "/healthz"
                assert ports[spec["httpGet"]["port"]] == settings.port
            else:
                assert spec["grpc"]["port"] == settings.port == ports["grpc"], (process, probe)
        assert settings.host == "0.0.0.0"


def test_callers_find_their_peers_through_headless_services_and_round_robin(
    items: list[Manifest], bookstore: dict[str, tuple[Manifest, Mapping[str, Any]]]
) -> None:
    services = {m.name: m.doc for m in items if m.kind == "Service"}
    for callee in PROCESSES:
        callers = service_catalog.callers_of(callee)
        if not callers:
            continue
        callee_workload, callee_container = bookstore[callee]
        callee_port = Settings.from_env(container_environment(items, callee_container)).port
        for caller in callers:
            _, container = bookstore[caller]
            target = Settings.from_env(container_environment(items, container)).target(callee)
            assert target == f"dns:///{callee}:{callee_port}", (caller, callee)
            service = services[callee]["spec"]
            # Headless: DNS returns every ready pod, so the client balances (a ClusterIP would pin one).
            assert service["clusterIP"] == "None"
            pod_labels = callee_workload.doc["spec"]["template"]["metadata"]["labels"]
            assert service["selector"].items() <= pod_labels.items()
            assert callee_port in {p["port"] for p in service["ports"]}


def test_every_service_selects_pods_and_names_ports_they_have(items: list[Manifest]) -> None:
    pods = [(w.doc["spec"]["template"]["metadata"]["labels"], pod_containers(w)) for w in workloads(items)]
    for service in (m for m in items if m.kind == "Service"):
        selector = service.doc["spec"]["selector"]
        matching = [cs for labels, cs in pods if selector.items() <= labels.items()]
        assert len(matching) == 1, str(service)
        port_names = {p["name"] for c in matching[0] for p in c.get("ports", [])}
        for port in service.doc["spec"]["ports"]:
            assert port["targetPort"] in port_names, (str(service), port)


def test_the_order_service_replicas_get_distinct_indexes_from_their_pod_index(
    bookstore: dict[str, tuple[Manifest, Mapping[str, Any]]],
) -> None:
    workload, container = bookstore["order"]
    assert workload.kind == "StatefulSet"
    assert workload.doc["spec"]["serviceName"] == "order"
    (replica,) = [v for v in container["env"] if v["name"] == "BOOKSTORE_REPLICA"]
    path = replica["valueFrom"]["fieldRef"]["fieldPath"]
    assert path == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_every_referenced_config_map_and_secret_exists(items: list[Manifest]) -> None:
    names = by_kind_and_name(items)
    for workload in workloads(items):
        for container in pod_containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in names


def test_the_bookstore_reaches_the_database_broker_and_jaeger_the_backing_folder_runs(
    items: list[Manifest], bookstore: dict[str, tuple[Manifest, Mapping[str, Any]]]
) -> None:
    services = {m.name: m.doc for m in items if m.kind == "Service"}

    def serves(name: str, port: int) -> bool:
        return name in services and port in {p["port"] for p in services[name]["spec"]["ports"]}

    password = config_data(items, "Secret", "mysql-credentials")["MARIADB_ROOT_PASSWORD"]
    for process, (_, container) in bookstore.items():
        env = container_environment(items, container)
        settings = Settings.from_env(env)
        database = urlsplit(settings.database_url(process))
        assert (database.scheme, database.password, database.path) == (
            "mysql+pymysql",
            password,
            f"/bookstore_{process}",
        )
        assert serves(str(database.hostname), int(database.port or 0))
        broker = urlsplit(settings.rabbitmq_url)
        assert serves(str(broker.hostname), int(broker.port or 0))
        traces = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert serves(str(traces.hostname), int(traces.port or 0))


def test_backing_services_run_the_images_compose_and_testcontainers_run(items: list[Manifest]) -> None:
    every = [c for w in workloads(items) for c in pod_containers(w)]
    images = {c["image"] for c in every if not is_bookstore_container(c)}
    assert images == {containers.RABBITMQ_IMAGE, containers.JAEGER_IMAGE, containers.MYSQL_IMAGE}


def test_bookstore_pods_run_unprivileged_with_a_read_only_root(
    bookstore: dict[str, tuple[Manifest, Mapping[str, Any]]],
) -> None:
    for workload, container in bookstore.values():
        pod = workload.doc["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data", "/tmp"}


def _kubectl_problem() -> str | None:
    return None if shutil.which("kubectl") else "kubectl is not installed (it renders the kustomization)"


@pytest.mark.skipif(_kubectl_problem() is not None, reason=str(_kubectl_problem()))
def test_kustomize_renders_every_object_into_the_bookstore_namespace_with_the_image_it_sets() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == set(by_kind_and_name(manifests()))
    image = kustomization(K8S_DIR)["images"][0]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == kustomization(K8S_DIR)["namespace"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "bookstore"
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"].startswith("bookstore"):
                    assert container["image"] == f"{image['newName']}:{image['newTag']}"
        assert validation_error(doc, OLDEST_VERSION) is None
