"""What only a Docker engine can show: the image builds, and the testcontainers really start.

Every test here skips, saying why, where no Docker engine answers (the development machines
have none), and also where one answers but cannot run the image a test needs (no registry
and the image absent: the engine's reason is the skip's); ``tests/unit/deploy`` and
``tests/unit/platform/test_containers.py`` check statically what can be checked without one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bookstore.platform import containers
from bookstore.platform.settings import Settings

REPO = Path(__file__).resolve().parents[2]
NO_DOCKER = containers.docker_unavailable_reason()
needs_docker = pytest.mark.skipif(NO_DOCKER is not None, reason=f"needs a Docker engine: {NO_DOCKER}")


@pytest.fixture(autouse=True)
def no_reaper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without testcontainers' reaper (DESIGN.md): its image is one more pull that fails offline,
    and ``clean_pool`` removes what a test started. testcontainers caches the setting: re-read it."""
    from testcontainers.core.config import testcontainers_config

    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setattr(testcontainers_config, "_ryuk_disabled", None)


@pytest.fixture
def clean_pool() -> Iterator[None]:
    yield
    containers.stop_all()


def started(address: Callable[[], str], image: str) -> str:
    """``address()`` of a container started on first use, or a skip saying why it could not start."""
    try:
        return address()
    except containers.ContainerUnavailable as error:
        pytest.skip(f"needs a Docker engine that can run {image}: {error.cause}")


def base_image_or_skip(dockerfile: Path) -> None:
    """The Dockerfile's base image is there or can be pulled; otherwise a skip with the reason."""
    import docker
    import docker.errors

    base = next(line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM "))
    client = docker.from_env()
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(base)
        except docker.errors.DockerException as error:
            pytest.skip(
                f"needs the base image {base}, absent and not pulled: {containers.describe_failure(error)}"
            )
    finally:
        client.close()


@needs_docker
def test_a_real_rabbitmq_container_accepts_connections_and_is_removed_by_stop_all(clean_pool: None) -> None:
    import docker
    import pika

    url = started(containers.rabbitmq_url, containers.RABBITMQ_IMAGE)
    assert containers.rabbitmq_url() == url
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.close()
    client = docker.from_env()
    before = {c.id for c in client.containers.list(filters={"ancestor": containers.RABBITMQ_IMAGE})}
    assert before
    containers.stop_all()
    after = {c.id for c in client.containers.list(all=True, filters={"ancestor": containers.RABBITMQ_IMAGE})}
    assert not before & after


@needs_docker
def test_a_real_jaeger_container_answers_on_its_query_api(clean_pool: None) -> None:
    import urllib.request

    started(containers.otlp_endpoint, containers.JAEGER_IMAGE)
    with urllib.request.urlopen(containers.jaeger_query_url() + "/api/services", timeout=5) as response:
        assert response.status == 200


@needs_docker
def test_a_real_mysql_container_hosts_a_database_per_service(clean_pool: None) -> None:
    from sqlalchemy import text

    from bookstore.platform.database import make_engine

    template = started(containers.mysql_url_template, containers.MYSQL_IMAGE)
    engine = make_engine(Settings.from_env({"BOOKSTORE_DB_URL": template}).database_url("catalog"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT DATABASE()")).scalar() == "bookstore_catalog"
    finally:
        engine.dispose()


@needs_docker
def test_the_image_builds_and_its_processes_import() -> None:
    base_image_or_skip(REPO / "Dockerfile")
    tag = "bookstore:test-build"
    subprocess.run(["docker", "build", "-t", tag, str(REPO)], check=True, capture_output=True)
    try:
        # Import, do not run: running would start servers. Importing proves the code and its
        # installed dependencies fit together (grpcio and protobuf versions, the generated code).
        modules = [
            "bookstore.services.order.servicer",
            "bookstore.gateway.app",
            "bookstore.messaging.consumers.runtime",
            "bookstore.platform.healthcheck",
        ]
        probe = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
        subprocess.run(["docker", "run", "--rm", tag, "python", "-c", probe, *modules], check=True)
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], check=False, capture_output=True)
