"""docker-compose.yml: valid Compose, and wired the way the processes read their settings.

Everything here runs without a Docker engine: the file is checked against the Compose
Specification's schema and against the package itself (entry points, who calls whom, the
settings each process reads, the Prometheus and Grafana files it mounts).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from bookstore.platform import containers, healthcheck, service_catalog
from bookstore.platform.service_catalog import Kind
from bookstore.platform.settings import Settings

from .deployfiles import (
    REPO,
    ComposeService,
    compose_schema,
    compose_services,
    entry_point_problem,
    interpolate,
    python_module,
    raw_compose,
)

# Every process a cluster runs (the monolith is the course's "before" and is not deployed).
PROCESSES = service_catalog.names(Kind.SERVICE, Kind.GATEWAY, Kind.CONSUMER)
CONSUMERS = service_catalog.names(Kind.CONSUMER)
(GATEWAY,) = service_catalog.names(Kind.GATEWAY)


def compose_name(process: str) -> str:
    """Host names cannot hold underscores: the inventory_sync consumer runs as inventory-sync."""
    return process.replace("_", "-")


def schema_errors(document: object) -> list[str]:
    validator = jsonschema.Draft202012Validator(
        compose_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture(scope="module")
def services() -> dict[str, ComposeService]:
    return compose_services()


@pytest.fixture(scope="module")
def bookstore(services: dict[str, ComposeService]) -> dict[str, ComposeService]:
    return {name: s for name, s in services.items() if s.is_bookstore}


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(raw_compose()) == []


def test_the_schema_check_rejects_a_misspelt_key() -> None:
    broken = copy.deepcopy(raw_compose())
    broken["services"]["order"]["healthcheck"]["intervall"] = "5s"
    assert any("intervall" in error for error in schema_errors(broken))


def test_every_bookstore_process_runs_as_a_compose_service_of_the_one_image(
    bookstore: dict[str, ComposeService],
) -> None:
    assert set(bookstore) == {compose_name(p) for p in PROCESSES}
    assert {s.image for s in bookstore.values()} == {"bookstore:dev"}
    assert all(s.body.get("build", {}).get("context") == "." for s in bookstore.values())


def test_every_command_is_a_real_entry_point_of_the_process_it_is_named_after(
    bookstore: dict[str, ComposeService],
) -> None:
    for process in PROCESSES:
        module = python_module(bookstore[compose_name(process)].command)
        assert module == service_catalog.entry(process).module
        assert entry_point_problem(module) is None


def test_each_process_is_told_its_own_name(bookstore: dict[str, ComposeService]) -> None:
    for process in PROCESSES:
        env = bookstore[compose_name(process)].environment
        assert env["BOOKSTORE_SERVICE"] == env["OTEL_SERVICE_NAME"] == process


def port_of(service: ComposeService) -> int:
    return Settings.from_env(service.environment).port


def test_every_caller_targets_its_peers_by_compose_dns_name_and_waits_for_them_to_be_healthy(
    bookstore: dict[str, ComposeService],
) -> None:
    for caller in PROCESSES:
        for callee in service_catalog.entry(caller).peers:
            service = bookstore[compose_name(caller)]
            target = Settings.from_env(service.environment).target(callee)
            assert target == f"dns:///{compose_name(callee)}:{port_of(bookstore[callee])}", (caller, callee)
            assert service.depends_on.get(callee) == "service_healthy", (caller, callee)


def test_every_process_listens_on_all_interfaces_of_its_container(
    bookstore: dict[str, ComposeService],
) -> None:
    for service in bookstore.values():
        assert Settings.from_env(service.environment).host == "0.0.0.0"


def test_every_grpc_process_is_health_checked_through_the_grpc_health_service(
    bookstore: dict[str, ComposeService],
) -> None:
    for name, service in bookstore.items():
        command = service.healthcheck_command
        assert python_module(command) == "bookstore.platform.healthcheck", name
        args = healthcheck.parse_args(command[3:])
        if name == GATEWAY:
            assert args.http == "/healthz"
        else:
            assert args.http is None and args.address is None  # 127.0.0.1:$BOOKSTORE_PORT


def test_the_gateway_health_check_asks_a_route_the_gateway_serves() -> None:
    from bookstore.gateway.app import health_router

    assert "/healthz" in {getattr(route, "path", "") for route in health_router.routes}


def test_start_order_waits_only_for_services_that_report_health(services: dict[str, ComposeService]) -> None:
    for name, service in services.items():
        for dependency, condition in service.depends_on.items():
            assert dependency in services, (name, dependency)
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency].body, (name, dependency)


def test_every_process_that_keeps_data_waits_for_the_database_it_is_given(
    services: dict[str, ComposeService], bookstore: dict[str, ComposeService]
) -> None:
    mysql = services["mysql"]
    password = mysql.environment["MARIADB_ROOT_PASSWORD"]
    for process in service_catalog.names(Kind.SERVICE, Kind.CONSUMER):
        service = bookstore[compose_name(process)]
        url = urlsplit(Settings.from_env(service.environment).database_url(process))
        assert url.scheme == "mysql+pymysql"
        assert (url.hostname, url.port, url.password) == ("mysql", 3306, password)
        assert url.path == f"/bookstore_{process}"
        assert service.depends_on["mysql"] == "service_healthy"


def test_the_order_service_and_the_consumers_reach_the_broker_they_wait_for(
    services: dict[str, ComposeService], bookstore: dict[str, ComposeService]
) -> None:
    broker = services["rabbitmq"].environment
    for process in ("order", *CONSUMERS):
        service = bookstore[compose_name(process)]
        url = urlsplit(Settings.from_env(service.environment).rabbitmq_url)
        assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672)
        assert (url.username, url.password) == (
            broker["RABBITMQ_DEFAULT_USER"],
            broker["RABBITMQ_DEFAULT_PASS"],
        )
        assert service.depends_on["rabbitmq"] == "service_healthy"


def test_traces_go_to_jaegers_otlp_port(bookstore: dict[str, ComposeService]) -> None:
    for service in bookstore.values():
        endpoint = urlsplit(service.environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (endpoint.hostname, endpoint.port) == ("jaeger", containers.OTLP_GRPC_PORT)


def test_backing_services_run_the_images_testcontainers_starts(services: dict[str, ComposeService]) -> None:
    assert services["rabbitmq"].image == containers.RABBITMQ_IMAGE
    assert services["jaeger"].image == containers.JAEGER_IMAGE
    assert services["mysql"].image == containers.MYSQL_IMAGE
    assert services["prometheus"].image == containers.PROMETHEUS_IMAGE


def test_every_image_is_replaced_by_a_variable_the_settings_read_too(
    services: dict[str, ComposeService],
) -> None:
    from bookstore.platform.settings import Settings

    variables = {name: service.image_variable for name, service in services.items()}
    assert all(variables.values()), variables  # a lab without a registry edits no file
    assert {variables[name] for name in ("user", "gateway", "notification")} == {"BOOKSTORE_IMAGE"}
    backing = {"rabbitmq": "rabbitmq_image", "mysql": "mysql_image", "prometheus": "prometheus_image",
               "jaeger": "jaeger_image"}  # fmt: skip
    local = {name: f"bookstore-local/{name}:test" for name in backing}
    settings = Settings.from_env({str(variables[name]): image for name, image in local.items()})
    for name, field in backing.items():
        assert getattr(settings, field) == local[name], name


def test_the_uis_are_published_on_the_course_ports_of_localhost_only(
    services: dict[str, ComposeService],
) -> None:
    expected = {
        "rabbitmq": {5672, 15672},
        "jaeger": {16686, 4317},
        "prometheus": {9090},
        "grafana": {3000},
        "mysql": {3306},
        "redis": {6379},
        "gateway": {8000},
    }
    published: dict[str, set[int]] = {}
    for name, service in services.items():
        for port in service.body.get("ports", []):
            host_ip, host_port, container_port = interpolate(str(port)).split(":")
            assert host_ip == "127.0.0.1", (name, port)
            assert host_port == container_port, (name, port)  # the defaults are the usual ports
            published.setdefault(name, set()).add(int(container_port))
    assert published == expected


def test_prometheus_scrapes_every_process_on_the_port_it_serves_metrics_on(
    services: dict[str, ComposeService], bookstore: dict[str, ComposeService]
) -> None:
    mounts = services["prometheus"].volume_targets()
    assert mounts["infra/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((REPO / "infra" / "prometheus.yml").read_text())
    scraped = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    expected = set()
    for name, service in bookstore.items():
        env = service.environment
        port = env["BOOKSTORE_PORT"] if name == GATEWAY else env["BOOKSTORE_METRICS_PORT"]
        expected.add(f"{name}:{port}")
    assert scraped == expected


def test_grafana_loads_the_provisioning_and_the_dashboards_folder_it_is_given(
    services: dict[str, ComposeService],
) -> None:
    mounts = services["grafana"].volume_targets()
    assert mounts["infra/grafana/provisioning"] == "/etc/grafana/provisioning"
    provisioning = REPO / "infra" / "grafana" / "provisioning"
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert [p["options"]["path"] for p in providers] == [mounts["infra/grafana/dashboards"]]


def test_grafanas_data_sources_are_the_compose_prometheus_and_jaeger(
    services: dict[str, ComposeService],
) -> None:
    provisioning = REPO / "infra" / "grafana" / "provisioning" / "datasources"
    sources = {
        source["uid"]: source
        for path in sorted(provisioning.glob("*.yml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    }
    assert {uid: s["type"] for uid, s in sources.items()} == {"prometheus": "prometheus", "jaeger": "jaeger"}
    assert sources["prometheus"]["url"] == f"http://prometheus:{containers.PROMETHEUS_PORT}"
    assert sources["jaeger"]["url"] == f"http://jaeger:{containers.JAEGER_UI_PORT}"
    assert {"prometheus", "jaeger"} <= set(services["grafana"].depends_on)


def datasource_uids(node: object) -> Iterator[str]:
    """Every ``"datasource": {"uid": ...}`` in a dashboard, however deeply nested."""
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and isinstance(source.get("uid"), str):
            yield source["uid"]
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


def test_every_data_source_a_dashboard_names_is_provisioned() -> None:
    grafana = REPO / "infra" / "grafana"
    provisioned = {
        source["uid"]
        for path in sorted((grafana / "provisioning" / "datasources").glob("*.yml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    }
    for dashboard in sorted((grafana / "dashboards").glob("*.json")):
        named = set(datasource_uids(json.loads(dashboard.read_text())))
        # "${...}" is a dashboard variable and "-- Grafana --" Grafana's own built-in source.
        named = {uid for uid in named if not uid.startswith(("$", "-- "))}
        assert named <= provisioned, f"{dashboard.name} names data sources Grafana is not given"


@cache
def _docker_compose_plugin_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        said = (probe.stderr.strip() or probe.stdout.strip()).splitlines()
        return f"the docker compose plugin is not installed ({said[0] if said else 'no output'})"
    return None


@pytest.mark.skipif(
    _docker_compose_plugin_problem() is not None, reason=str(_docker_compose_plugin_problem())
)
def test_docker_compose_itself_accepts_the_file() -> None:
    # `config` parses, interpolates and validates offline: no engine needed, only the plugin.
    result = subprocess.run(
        ["docker", "compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
