"""``bookstore env`` against real conditions: a changed PATH, closed ports, the real broker, a Docker API.

Each test runs the command in a child process with a changed environment, as a learner's
shell would, so nothing cached in this process (the Docker probe answers once per process)
colours the answer. Docker is pinned for every run: ``DOCKER_HOST`` names either a socket
that does not exist (no engine) or a small stand-in of the Docker Engine API served on a
unix socket by this test, which answers a ping and lists the images the test chose. The
real Docker SDK talks to it over HTTP as it would to dockerd.
"""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from bookstore.environment import PORTS_WANTED, REAPER_IMAGE_DEFAULT, gather_ports
from bookstore.messaging.broker import LOCAL_URL, broker_answers
from bookstore.platform.containers import RABBITMQ_IMAGE, free_port

API_VERSION = "1.41"
SETTINGS = (
    "BOOKSTORE_RABBITMQ_URL",
    "BOOKSTORE_DB_URL",
    "BOOKSTORE_PROMETHEUS_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "TESTCONTAINERS_RYUK_DISABLED",
)


def run_env(
    tmp_path: Path, changes: Mapping[str, str], *, as_json: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
    env["DOCKER_HOST"] = f"unix://{tmp_path / 'no-engine.sock'}"
    env.update(changes)
    command = [sys.executable, "-m", "bookstore.cli", "env", *(["--json"] if as_json else [])]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def findings_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.stdout, result.stderr
    return {finding["piece"]: finding for finding in json.loads(result.stdout)}


def closed_port() -> int:
    """A loopback port nothing listens on: taken free, then released."""
    return free_port()


# ---------------------------------------------------------------------------- a stand-in Docker API
class _DockerApi(BaseHTTPRequestHandler):
    images: list[str] = []

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/version":
            self._send({"ApiVersion": API_VERSION, "Version": "20.10-stub", "MinAPIVersion": "1.12"})
        elif path.endswith("/_ping"):
            self._send("OK")
        elif path.endswith("/images/json"):
            self._send([{"Id": f"sha256:{n:064x}", "RepoTags": [tag]} for n, tag in enumerate(self.images)])
        else:
            self.send_error(404)

    def do_HEAD(self) -> None:
        self._send("OK")

    def _send(self, body: object) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # a unix socket has no client address
        pass


class _UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def docker_api(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A Docker Engine API on a unix socket: (DOCKER_HOST, the list of image tags it reports)."""
    images: list[str] = []
    handler = type("DockerApi", (_DockerApi,), {"images": images})
    server = _UnixHttpServer(str(tmp_path / "docker.sock"), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"unix://{tmp_path / 'docker.sock'}", images
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- the tests
def test_without_prometheus_on_path_week_10_is_told_how_to_install_it(tmp_path: Path) -> None:
    bare_path = str(Path(sys.executable).parent)  # the venv's bin: Python, no prometheus
    assert shutil.which("prometheus", path=bare_path) is None
    prometheus = findings_of(run_env(tmp_path, {"PATH": bare_path}))["Prometheus"]
    assert prometheus["level"] == "differs"
    assert prometheus["state"] == "absent: no `prometheus` binary on PATH"
    assert prometheus["weeks"] == [10]
    assert "apt-get install -y --no-install-recommends prometheus" in prometheus["remedy"]


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="no prometheus binary on this machine's PATH")
def test_a_prometheus_binary_on_path_is_found(tmp_path: Path) -> None:
    prometheus = findings_of(run_env(tmp_path, {}))["Prometheus"]
    assert (prometheus["level"], prometheus["state"]) == (
        "ok",
        f"binary on PATH ({shutil.which('prometheus')})",
    )


def test_a_broker_url_at_a_closed_port_is_unreachable_and_the_fix_is_named(tmp_path: Path) -> None:
    port = closed_port()
    result = run_env(tmp_path, {"BOOKSTORE_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2F"})
    assert result.returncode == 1, "a missing piece makes `bookstore env` exit 1"
    rabbitmq = findings_of(result)["RabbitMQ"]
    assert rabbitmq["level"] == "missing"
    assert rabbitmq["state"].startswith("unreachable") and f"127.0.0.1:{port}" in rabbitmq["state"]
    assert "guest:***@" in rabbitmq["state"]
    assert rabbitmq["weeks"] == [9, 10]
    assert "unset BOOKSTORE_RABBITMQ_URL" in rabbitmq["remedy"]
    assert "rabbitmq-server -detached" in rabbitmq["remedy"]


def test_the_text_report_says_which_weeks_cannot_run(tmp_path: Path) -> None:
    port = closed_port()
    result = run_env(tmp_path, {"BOOKSTORE_RABBITMQ_URL": f"amqp://127.0.0.1:{port}/"}, as_json=False)
    assert "[missing] RabbitMQ: unreachable" in result.stdout
    assert "weeks 9-10 cannot run as written" in result.stdout.splitlines()[-1]


@pytest.mark.skipif(not broker_answers(LOCAL_URL), reason="no RabbitMQ answers on 127.0.0.1:5672 here")
def test_the_broker_running_on_loopback_answers(tmp_path: Path) -> None:
    rabbitmq = findings_of(run_env(tmp_path, {}))["RabbitMQ"]
    assert (rabbitmq["level"], rabbitmq["state"]) == ("ok", "answers at 127.0.0.1:5672 (user guest)")


def test_a_database_url_at_a_closed_port_stops_every_week(tmp_path: Path) -> None:
    port = closed_port()
    result = run_env(tmp_path, {"BOOKSTORE_DB_URL": f"mysql+pymysql://root@127.0.0.1:{port}/it_{{service}}"})
    mariadb = findings_of(result)["MariaDB"]
    assert (mariadb["level"], mariadb["weeks"]) == ("missing", [6, 7, 8, 9, 10])
    assert "unset BOOKSTORE_DB_URL" in mariadb["remedy"]


def test_no_docker_engine_is_reported_absent(tmp_path: Path) -> None:
    port = closed_port()
    docker = findings_of(run_env(tmp_path, {"DOCKER_HOST": f"tcp://127.0.0.1:{port}"}))["Docker engine"]
    assert docker["level"] == "ok", "the course is written for machines without Docker"
    assert docker["state"] == f"absent: nothing answers at tcp://127.0.0.1:{port} (connection refused)"
    assert "docker.io" in docker["remedy"]


def test_an_engine_with_no_images_answers_but_cannot_start_the_course_containers(
    tmp_path: Path, docker_api: tuple[str, list[str]]
) -> None:
    host, _ = docker_api
    findings = findings_of(run_env(tmp_path, {"DOCKER_HOST": host, "BOOKSTORE_RABBITMQ_URL": ""}))
    docker = findings["Docker engine"]
    assert docker["level"] == "differs"
    assert docker["state"].startswith("answers, but cannot start the course's containers without a pull")
    assert RABBITMQ_IMAGE in docker["state"] and REAPER_IMAGE_DEFAULT in docker["state"]
    assert "embedded collector" in findings["trace store"]["state"]


def test_an_engine_holding_the_images_can_start_them(
    tmp_path: Path, docker_api: tuple[str, list[str]]
) -> None:
    host, images = docker_api
    images.extend([RABBITMQ_IMAGE, "debian:bookworm"])
    changes = {"DOCKER_HOST": host, "TESTCONTAINERS_RYUK_DISABLED": "true"}
    docker = findings_of(run_env(tmp_path, changes))["Docker engine"]
    assert (docker["level"], docker["state"]) == (
        "ok",
        f"answers and can start {RABBITMQ_IMAGE} without a pull",
    )


def test_a_full_cluster_worth_of_loopback_ports_can_be_held_here() -> None:
    ports = gather_ports()
    assert (ports.bound, ports.error) == (PORTS_WANTED, "")


def test_a_process_out_of_file_descriptors_is_told_its_cluster_may_not_start() -> None:
    script = (
        "import os, resource\n"
        "from bookstore.environment import gather_ports, ports_finding\n"
        "in_use, hard = len(os.listdir('/proc/self/fd')), resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 4, hard))  # room for a few sockets only\n"
        "finding = ports_finding(gather_ports())\n"
        "print(finding.level, finding.state)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("missing only ")
    assert "Too many open files" in result.stdout
