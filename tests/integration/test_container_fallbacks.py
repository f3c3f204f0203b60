"""A Docker engine that answers but cannot give a container: every resolution moves on, saying so once.

The engine is ``docker_stub``: the real Engine API on a unix socket, reached through
``DOCKER_HOST`` by the real docker-py and testcontainers, that refuses pulls as dockerd does
offline. Nothing of the project is replaced: the probe, the pool, the launcher, the trace and
metrics resolution and the broker resolution all run as in a notebook.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testcontainers.core.config import testcontainers_config

from bookstore.launcher.cluster import Cluster
from bookstore.messaging.broker import BrokerUnavailable, resolve_rabbitmq_url
from bookstore.observability.stack import start_metrics_backend, start_trace_backend
from bookstore.platform import containers, notices

from .docker_stub import PULL_DENIED, StubEngine, stub_engine

CAUSE = "no such host"  # the end of the engine's answer to every pull: the registry cannot be reached
# Set, any of these would find the service elsewhere before the engine is asked.
CONFIGURED_ELSEWHERE = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "BOOKSTORE_PROMETHEUS_URL",
    "BOOKSTORE_RABBITMQ_URL",
)
# The environment's own engine, if one answers (probed once, like every module here does).
REAL_ENGINE = containers.docker_unavailable_reason()


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a new kernel: Docker not yet probed, no failed start remembered, nothing said yet."""
    for variable in CONFIGURED_ELSEWHERE:
        monkeypatch.delenv(variable, raising=False)
    # Our own cleanup removes what an attempt created; the reaper image cannot be pulled offline.
    # testcontainers caches this setting at first use: read it again from the environment.
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setattr(testcontainers_config, "_ryuk_disabled", None)
    containers._reset_docker_probe()
    notices._forget()
    yield
    containers.stop_all()
    containers._reset_docker_probe()
    notices._forget()


def point_at(stub: StubEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``stub`` the only engine anyone finds: TLS settings, a Docker context and
    ~/.testcontainers.properties (whose tc.host beats DOCKER_HOST) would lead elsewhere."""
    for variable in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(testcontainers_config, "tc_properties", {})
    monkeypatch.setenv("DOCKER_HOST", stub.docker_host)


@pytest.fixture
def engine(fresh_process: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[StubEngine]:
    with stub_engine() as stub:
        point_at(stub, monkeypatch)
        yield stub


@pytest.fixture
def no_prometheus_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def lines_naming(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Callable[[str], list[str]]:
    """Every line anyone showed so far (log records, stdout, stderr) that contains a text."""
    caplog.set_level(logging.INFO)

    def find(text: str) -> list[str]:
        captured = capsys.readouterr()
        shown = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
        blocks = (*shown, captured.out, captured.err)
        return [line for block in blocks for line in block.splitlines() if text in line]

    return find


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_the_stub_engine_counts_as_an_engine(engine: StubEngine) -> None:
    assert containers.docker_unavailable_reason() is None
    assert "GET /_ping" in engine.requests


def test_traces_fall_back_to_the_embedded_collector_with_one_line_naming_the_cause(
    engine: StubEngine, tmp_path: Path, lines_naming: Callable[[str], list[str]]
) -> None:
    first = start_trace_backend(tmp_path / "one")
    try:
        assert first.kind == "embedded collector"
    finally:
        first.stop()
    second = start_trace_backend(tmp_path / "two")  # the next cluster in the same kernel
    second.stop()
    assert second.kind == "embedded collector"
    [line] = lines_naming(CAUSE)
    assert line.startswith("Jaeger was not found")
    assert containers.JAEGER_IMAGE in line and "embedded collector" in line
    assert len(engine.pulls()) == 1, "a failed start is remembered, not tried again for every cluster"


def test_metrics_fall_back_to_a_direct_scrape_with_one_line_naming_the_cause(
    engine: StubEngine,
    no_prometheus_on_path: None,
    tmp_path: Path,
    lines_naming: Callable[[str], list[str]],
) -> None:
    for attempt in ("one", "two"):
        backend = start_metrics_backend({"order": ["127.0.0.1:1"]}, tmp_path / attempt)
        assert (backend.kind, backend.url) == ("none", None)
    [line] = lines_naming(CAUSE)
    assert line.startswith("Prometheus was not found (no `prometheus` on PATH; ")
    assert containers.PROMETHEUS_IMAGE in line and "direct scrape of each /metrics" in line
    assert len(engine.pulls()) == 1


def test_a_prometheus_binary_that_exits_counts_as_absent_too(
    engine: StubEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lines_naming: Callable[[str], list[str]],
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    broken = folder / "prometheus"
    broken.write_text("#!/bin/sh\necho 'err: opening storage failed' >&2\nexit 2\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(folder))
    backend = start_metrics_backend({"order": ["127.0.0.1:1"]}, tmp_path / "work")
    assert backend.kind == "none"
    [line] = lines_naming(CAUSE)
    assert "the `prometheus` binary did not start: prometheus exited with status 2" in line


def test_without_a_broker_the_error_names_the_three_ways_and_the_engines_cause_in_one_line(
    engine: StubEngine,
) -> None:
    nowhere = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F"
    with pytest.raises(BrokerUnavailable) as raised:
        resolve_rabbitmq_url(local_url=nowhere)
    message = str(raised.value)
    assert "\n" not in message
    for way in ("BOOKSTORE_RABBITMQ_URL", "rabbitmq-server", "Docker engine"):
        assert way in message
    assert f"image {containers.RABBITMQ_IMAGE} is not present and pulling it failed" in message
    assert message.count(CAUSE) == 1 and raised.value.__cause__ is None
    with pytest.raises(BrokerUnavailable):
        resolve_rabbitmq_url(local_url=nowhere)
    assert len(engine.pulls()) == 1


def test_a_missing_reaper_image_is_the_cause_and_names_the_switch_that_avoids_it(
    engine: StubEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "false")
    with pytest.raises(containers.ContainerUnavailable) as raised:
        containers.otlp_endpoint()
    cause = raised.value.cause
    assert cause.startswith(f"testcontainers' reaper image {testcontainers_config.ryuk_image} is not present")
    assert CAUSE in cause and "TESTCONTAINERS_RYUK_DISABLED=true" in cause
    assert not engine.containers


def test_a_pull_refused_inside_its_progress_stream_is_reported_too(
    fresh_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with stub_engine(pull_error_in_stream=True) as stub:
        point_at(stub, monkeypatch)
        with pytest.raises(containers.ContainerUnavailable) as raised:
            containers.otlp_endpoint()
    assert raised.value.cause == (
        f"image {containers.JAEGER_IMAGE} is not present and pulling it failed: {PULL_DENIED}"
    )


def test_a_container_created_but_refused_a_start_is_removed_and_the_engines_reason_given(
    fresh_process: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusal = "driver failed programming external connectivity on endpoint: port is already allocated"
    with stub_engine(images={containers.JAEGER_IMAGE}, start_error=refusal) as stub:
        point_at(stub, monkeypatch)
        with pytest.raises(containers.ContainerUnavailable) as raised:
            containers.otlp_endpoint()
        assert raised.value.cause == refusal
        assert sum(r == "POST /containers/create" for r in stub.requests) == 1
        assert any(r.startswith("DELETE /containers/") for r in stub.requests)
        assert stub.containers == {}, "the half-started container was left behind"
        assert containers.running() == []


def test_a_telemetry_cluster_starts_on_fallbacks_and_says_each_once(
    engine: StubEngine,
    no_prometheus_on_path: None,
    tmp_path: Path,
    lines_naming: Callable[[str], list[str]],
) -> None:
    """Week 10's set-up (b): an engine that can pull nothing; the notebook's cluster still starts."""
    for attempt in ("one", "two"):
        cluster = Cluster(telemetry=True, prometheus=True, work_dir=tmp_path / attempt).start()
        try:
            assert (cluster.trace_backend, cluster.prometheus) == ("embedded collector", None)
        finally:
            cluster.stop()
    named = lines_naming(CAUSE)
    assert [line.split(" (")[0] for line in named] == ["Jaeger was not found", "Prometheus was not found"]
    assert os.environ["DOCKER_HOST"] == engine.docker_host


def test_the_live_container_tests_skip_with_the_engines_reason_where_it_can_run_nothing(
    engine: StubEngine,
) -> None:
    """They errored with docker's ImageNotFound on such an engine (issue 14) instead of skipping."""
    live = Path(__file__).with_name("test_containers_live.py")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(live)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DOCKER_HOST": engine.docker_host},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    skips = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    # In the file's order: three services, the image build, then Prometheus started three ways.
    images = (containers.RABBITMQ_IMAGE, containers.JAEGER_IMAGE, containers.MYSQL_IMAGE, "python:")
    images += (containers.PROMETHEUS_IMAGE,) * 3
    assert len(skips) == len(images), run.stdout
    for skip, image in zip(skips, images, strict=True):
        assert image in skip and CAUSE in skip


@pytest.mark.skipif(REAL_ENGINE is not None, reason=f"needs a Docker engine: {REAL_ENGINE}")
def test_a_real_engine_without_the_image_or_a_registry_leaves_traces_with_the_embedded_collector(
    fresh_process: None, tmp_path: Path, lines_naming: Callable[[str], list[str]]
) -> None:
    """The stub's answers, checked against dockerd itself (DESIGN.md: "A Docker engine here")."""
    import docker
    import docker.errors

    client = docker.from_env()
    try:
        client.images.get(containers.JAEGER_IMAGE)
        pytest.skip(f"{containers.JAEGER_IMAGE} is present on this engine: nothing to fall back from")
    except docker.errors.ImageNotFound:
        pass
    finally:
        client.close()
    backend = start_trace_backend(tmp_path)
    backend.stop()
    if backend.kind == "jaeger container":
        pytest.skip("this engine pulled the image from a registry: nothing to fall back from")
    assert backend.kind == "embedded collector"
    [line] = lines_naming(f"image {containers.JAEGER_IMAGE} is not present and pulling it failed: ")
    assert line.startswith("Jaeger was not found")


@pytest.mark.skipif(REAL_ENGINE is not None, reason=f"needs a Docker engine: {REAL_ENGINE}")
def test_a_real_container_created_but_unable_to_start_is_removed(fresh_process: None) -> None:
    """An image that holds nothing to run: the engine creates the container, then cannot start it."""
    import io
    import tarfile

    import docker

    client = docker.from_env()
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        folder = tarfile.TarInfo("etc")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    image = f"bookstore-test-empty:{secrets.token_hex(4)}"
    repository, tag = image.split(":")
    client.api.import_image_from_data(layer.getvalue(), repository=repository, tag=tag)
    spec = containers.ContainerSpec(
        name="empty",
        image=image,
        ports=(),
        command=("/nothing-here",),
        urls=lambda h, p: {},
        ready=lambda u: False,
    )
    try:
        with pytest.raises(containers.ContainerUnavailable) as raised:
            containers.launch(spec)
        assert "/nothing-here" in raised.value.cause and "\n" not in raised.value.cause
        assert client.containers.list(all=True, filters={"label": containers.ATTEMPT_LABEL}) == []
    finally:
        client.images.remove(image, force=True)
        client.close()
