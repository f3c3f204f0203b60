"""What only a Docker engine can show: the image builds, and the testcontainers really start.

Every test here skips, saying why, where no Docker engine answers (the development machines
have none), and also where one answers but cannot run the image a test needs (no registry
and the image absent: the engine's reason is the skip's); ``tests/unit/deploy`` and
``tests/unit/platform/test_containers.py`` check statically what can be checked without one.
The images are the settings' (BOOKSTORE_RABBITMQ_IMAGE, ...): `make test-containers` points
them at images built offline. The last tests kill the process that started a container, as a
notebook kernel can be killed, and check the container goes with it, with no reaper running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bookstore.platform import containers
from bookstore.platform.settings import Settings

REPO = Path(__file__).resolve().parents[2]
NO_DOCKER = containers.docker_unavailable_reason()
IMAGES = Settings.from_env()
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


def cannot_be_had(cause: str) -> bool:
    """Causes meaning "this engine cannot get the image" (a skip), not "the container is broken"."""
    return "is not present and pulling it failed" in cause or "reaper" in cause


def started(address: Callable[[], str], image: str) -> str:
    """``address()`` of a container started on first use; a skip if the image cannot be had here."""
    try:
        return address()
    except containers.ContainerUnavailable as error:
        if isinstance(error, containers.DockerUnavailable) or cannot_be_had(error.cause):
            pytest.skip(f"needs a Docker engine that can run {image}: {error.cause}")
        pytest.fail(f"{image} is on this engine, but its container did not start: {error.cause}")


def base_image_or_skip(dockerfile: Path) -> None:
    """The Dockerfile's base image is there or can be pulled; otherwise a skip with the reason."""
    import docker
    import docker.errors

    lines = dockerfile.read_text().splitlines()
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    arguments = [line.split()[1] for line in lines if line.startswith("ARG ") and "=" in line]
    defaults = dict(argument.split("=", 1) for argument in arguments)
    base = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base)  # FROM ${BASE_IMAGE}
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

    url = started(containers.rabbitmq_url, IMAGES.rabbitmq_image)
    assert containers.rabbitmq_url() == url
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.close()
    client = docker.from_env()
    # This process's containers only: a compose stack may run the same image beside it.
    session = f"{containers.SESSION_LABEL}={containers.session_id()}"
    mine = {"ancestor": IMAGES.rabbitmq_image, "label": session}
    before = {c.id for c in client.containers.list(filters=mine)}
    assert before
    containers.stop_all()
    after = {c.id for c in client.containers.list(all=True, filters=mine)}
    assert not before & after


@needs_docker
def test_a_real_jaeger_container_answers_on_its_query_api(clean_pool: None) -> None:
    import urllib.request

    started(containers.otlp_endpoint, IMAGES.jaeger_image)
    with urllib.request.urlopen(containers.jaeger_query_url() + "/api/services", timeout=5) as response:
        assert response.status == 200


@needs_docker
def test_a_real_mysql_container_hosts_a_database_per_service(clean_pool: None) -> None:
    from sqlalchemy import text

    from bookstore.platform.database import make_engine

    template = started(containers.mysql_url_template, IMAGES.mysql_image)
    engine = make_engine(Settings.from_env({"BOOKSTORE_DB_URL": template}).database_url("catalog"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT DATABASE()")).scalar() == "bookstore_catalog"
    finally:
        engine.dispose()


@needs_docker
def test_the_image_builds_and_its_processes_import() -> None:
    """Built here, or (BOOKSTORE_IMAGE) the image `make test-containers` has just built offline."""
    tag = os.environ.get("BOOKSTORE_IMAGE", "")
    if not tag:
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
        if tag == "bookstore:test-build":
            subprocess.run(["docker", "image", "rm", "-f", tag], check=False, capture_output=True)


def scrape_config(folder: Path, port: int) -> Path:
    """A Prometheus configuration that scrapes 127.0.0.1:``port`` every second, as job "self"."""
    folder.chmod(0o755)  # the container's Prometheus runs as nobody: it must read the mounted folder
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    return config


@needs_docker
def test_a_real_prometheus_container_scrapes_a_process_on_the_hosts_loopback(
    clean_pool: None, tmp_path: Path
) -> None:
    import http.server
    import json
    import threading
    import urllib.request

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"bookstore_probe 1\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    # On loopback only, like a notebook cluster's services: only the host's network reaches it.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = scrape_config(tmp_path, server.server_address[1])
        url = started(lambda: containers.prometheus_url(config), IMAGES.prometheus_image)
        query = url + "/api/v1/query?query=bookstore_probe"
        deadline = time.monotonic() + 30
        result: list[dict[str, object]] = []
        while not result and time.monotonic() < deadline:
            with urllib.request.urlopen(query, timeout=5) as response:
                result = json.load(response)["data"]["result"]
            time.sleep(0.5)
        assert result and result[0]["value"][1] == "1"  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()


# The owner: starts a container the course's way, says which, then waits to be killed (or exits).
OWNER = """
import sys, time
from pathlib import Path
from bookstore.platform import containers
containers.prometheus_url(Path(sys.argv[1]))
print(containers.session_id(), flush=True)
if sys.argv[2] == "wait":
    time.sleep(300)
"""


def session_containers(session: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={containers.SESSION_LABEL}={session}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def run_owner(tmp_path: Path, ending: str) -> tuple[subprocess.Popen[str], str]:
    config = scrape_config(tmp_path, containers.free_port())
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(config), ending],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert owner.stdout is not None
    session = owner.stdout.readline().strip()
    if not session:
        owner.wait(timeout=60)
        assert owner.stderr is not None
        error = owner.stderr.read().strip().splitlines()
        if not error or not cannot_be_had(error[-1]):
            pytest.fail(f"the owner did not start its container: {error[-1] if error else '?'}")
        image = IMAGES.prometheus_image
        pytest.skip(f"needs a Docker engine that can run {image} (owner: {ending}): {error[-1]}")
    return owner, session


def gone_within(session: str, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (left := session_containers(session)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return left


@needs_docker
def test_a_container_goes_when_its_owner_is_killed_with_sigkill(tmp_path: Path) -> None:
    owner, session = run_owner(tmp_path, "wait")
    try:
        assert session_containers(session), "the owner's container should be running"
        os.kill(owner.pid, signal.SIGKILL)  # no atexit, no finally: only the watchdog can act
        owner.wait(timeout=10)
        assert gone_within(session, timeout_s=30) == []
    finally:
        if owner.poll() is None:
            owner.kill()
        for leftover in session_containers(session):
            subprocess.run(["docker", "rm", "-f", leftover], capture_output=True)


@needs_docker
def test_a_container_goes_when_its_owner_exits_without_stopping_it(tmp_path: Path) -> None:
    owner, session = run_owner(tmp_path, "exit")
    assert owner.wait(timeout=60) == 0
    assert gone_within(session, timeout_s=5) == []
