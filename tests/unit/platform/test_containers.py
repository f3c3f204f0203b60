"""Backing services through testcontainers: found once, started once, removed on ``stop_all``.

Without a Docker engine (the development machines have none) these tests check what needs
none: the engine probe, the pool's life cycle with a fake launcher, and what each container
would be started with. The tests at the end start real containers and skip, saying why,
when no engine answers.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bookstore.platform import containers
from bookstore.platform.containers import (
    ContainerPool,
    ContainerSpec,
    ContainerUnavailable,
    DockerUnavailable,
    Running,
)
from bookstore.platform.settings import Settings

NO_DOCKER = containers.docker_unavailable_reason()
needs_docker = pytest.mark.skipif(NO_DOCKER is not None, reason=f"needs a Docker engine: {NO_DOCKER}")
needs_no_docker = pytest.mark.skipif(NO_DOCKER is None, reason="a Docker engine answers here")


def fake_port(port: int) -> int:
    return 40000 + port


# ---------------------------------------------------------------------------- the engine probe
@pytest.fixture
def fresh_probe() -> Iterator[None]:
    """Forget the cached answer before and after, so other tests see the real one again."""
    containers._reset_docker_probe()
    yield
    containers._reset_docker_probe()


def fake_docker_module(ping: Callable[[], object], calls: list[float]) -> types.ModuleType:
    class Client:
        def ping(self) -> None:
            ping()

        def close(self) -> None:
            pass

    def from_env(timeout: float) -> Client:
        calls.append(timeout)
        return Client()

    module = types.ModuleType("docker")
    module.from_env = from_env  # type: ignore[attr-defined]
    return module


def test_the_engine_is_probed_once_with_a_two_second_timeout_and_the_answer_is_cached(
    fresh_probe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def refuse() -> None:
        raise ConnectionError("no such socket")

    monkeypatch.setitem(sys.modules, "docker", fake_docker_module(refuse, calls))
    assert containers.docker_available() is False
    assert containers.docker_available() is False
    assert containers.docker_unavailable_reason() == "no Docker engine answers: no such socket"
    assert calls == [containers.DOCKER_PING_TIMEOUT_S] and containers.DOCKER_PING_TIMEOUT_S <= 2


def test_an_engine_that_answers_its_ping_is_available(
    fresh_probe: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    monkeypatch.setitem(sys.modules, "docker", fake_docker_module(lambda: None, calls))
    assert containers.docker_available() is True
    assert containers.docker_unavailable_reason() is None


def test_an_engine_that_never_answers_is_given_up_on_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    monkeypatch.setitem(sys.modules, "docker", fake_docker_module(release.wait, []))
    try:
        assert containers._probe_docker(timeout_s=0.01) == "no Docker engine answered within 0.01 s"
    finally:
        release.set()


def test_the_real_answer_here_is_consistent_and_explains_itself() -> None:
    assert containers.docker_available() == (NO_DOCKER is None)
    if NO_DOCKER is not None:
        assert "Docker engine" in NO_DOCKER


# ---------------------------------------------------------------------------- the pool
class FakeLauncher:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []

    def __call__(self, spec: ContainerSpec) -> Running:
        self.started.append(spec.name)
        number = len(self.started)
        return Running(spec.name, {"url": f"{spec.name}://{number}"}, lambda: self.stopped.append(spec.name))


def spec_named(name: str) -> Callable[[], ContainerSpec]:
    return lambda: ContainerSpec(
        name=name, image=f"{name}:1", ports=(), urls=lambda h, p: {}, ready=lambda u: True
    )


def test_a_container_is_started_on_first_use_and_reused_after() -> None:
    launcher = FakeLauncher()
    pool = ContainerPool(launcher, unavailable_reason=lambda: None)
    first = pool.get("rabbitmq", spec_named("rabbitmq"))
    again = pool.get("rabbitmq", spec_named("rabbitmq"))
    other = pool.get("jaeger", spec_named("jaeger"))
    assert first is again and first.urls == {"url": "rabbitmq://1"}
    assert other.urls == {"url": "jaeger://2"}
    assert launcher.started == ["rabbitmq", "jaeger"]
    assert pool.running() == ["rabbitmq", "jaeger"]


def test_stop_all_removes_every_container_once_and_a_later_use_starts_a_new_one() -> None:
    launcher = FakeLauncher()
    pool = ContainerPool(launcher, unavailable_reason=lambda: None)
    pool.get("rabbitmq", spec_named("rabbitmq"))
    pool.get("jaeger", spec_named("jaeger"))
    pool.stop_all()
    pool.stop_all()
    assert sorted(launcher.stopped) == ["jaeger", "rabbitmq"]
    assert pool.running() == []
    assert pool.get("rabbitmq", spec_named("rabbitmq")).urls == {"url": "rabbitmq://3"}


def test_one_container_that_fails_to_go_does_not_keep_the_others() -> None:
    stopped: list[str] = []

    def launcher(spec: ContainerSpec) -> Running:
        def stop() -> None:
            if spec.name == "jaeger":
                raise RuntimeError("engine went away")
            stopped.append(spec.name)

        return Running(spec.name, {}, stop)

    pool = ContainerPool(launcher, unavailable_reason=lambda: None)
    for name in ("jaeger", "rabbitmq", "mysql"):
        pool.get(name, spec_named(name))
    pool.stop_all()
    assert stopped == ["rabbitmq", "mysql"]
    assert pool.running() == []


def test_without_an_engine_nothing_is_launched_and_the_error_says_why() -> None:
    launcher = FakeLauncher()
    pool = ContainerPool(launcher, unavailable_reason=lambda: "no Docker engine answers: no socket")
    with pytest.raises(
        DockerUnavailable, match="cannot start a rabbitmq container: no Docker engine answers"
    ):
        pool.get("rabbitmq", spec_named("rabbitmq"))
    assert launcher.started == [] and pool.running() == []


def test_a_launch_that_fails_is_one_typed_error_and_is_not_tried_again_until_forgotten() -> None:
    attempts: list[str] = []

    def flaky(spec: ContainerSpec) -> Running:
        attempts.append(spec.name)
        if len(attempts) == 1:
            raise TimeoutError("the mysql container (mariadb:11.4) was not ready after 120 s\nlog line 1\n2")
        return Running(spec.name, {"url": "ok"}, lambda: None)

    pool = ContainerPool(flaky, unavailable_reason=lambda: None)
    with pytest.raises(ContainerUnavailable) as first:
        pool.get("mysql", spec_named("mysql"))
    assert first.value.cause == "the mysql container (mariadb:11.4) was not ready after 120 s"
    assert pool.running() == [] and pool.failed() == {"mysql": first.value.cause}
    with pytest.raises(ContainerUnavailable) as again:  # the next cluster moves on at once
        pool.get("mysql", spec_named("mysql"))
    assert again.value.cause == first.value.cause and attempts == ["mysql"]
    pool.forget_failures()
    assert pool.get("mysql", spec_named("mysql")).urls == {"url": "ok"}


def test_a_launchers_own_typed_error_keeps_its_cause_and_the_key_names_the_service() -> None:
    def refused(spec: ContainerSpec) -> Running:
        raise ContainerUnavailable(spec.name, "image prom/prometheus:v2.55.1 is not present")

    pool = ContainerPool(refused, unavailable_reason=lambda: None)
    with pytest.raises(ContainerUnavailable) as raised:
        pool.get("prometheus:/some/config.yml", spec_named("prometheus"))
    assert str(raised.value) == (
        "cannot start a prometheus container: image prom/prometheus:v2.55.1 is not present"
    )


def test_no_engine_is_a_kind_of_container_unavailable() -> None:
    assert issubclass(DockerUnavailable, ContainerUnavailable)


def test_a_failure_is_described_in_one_line_with_the_engines_own_explanation() -> None:
    import docker.errors

    refused = docker.errors.APIError(
        "500 Server Error", explanation='Get "https://registry-1.docker.io/v2/": no such host\nmore'
    )
    assert containers.describe_failure(refused) == 'Get "https://registry-1.docker.io/v2/": no such host'
    assert containers.describe_failure(OSError("first\nsecond")) == "OSError: first"
    assert containers.describe_failure(RuntimeError("exited with status 2:\nusage")) == "exited with status 2"
    assert len(containers.describe_failure(RuntimeError("x" * 1000))) == containers.CAUSE_MAX_CHARS
    assert containers.describe_failure(RuntimeError()) == "RuntimeError"


def test_threads_asking_at_once_share_one_container() -> None:
    launcher = FakeLauncher()
    pool = ContainerPool(launcher, unavailable_reason=lambda: None)
    barrier = threading.Barrier(8)
    results: list[Running] = []

    def ask() -> None:
        barrier.wait()
        results.append(pool.get("rabbitmq", spec_named("rabbitmq")))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert launcher.started == ["rabbitmq"]
    assert len({id(r) for r in results}) == 1 and len(results) == 8


def test_waiting_for_readiness_polls_until_ready_and_gives_up_with_the_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(containers, "READY_POLL_S", 0)
    answers = iter([False, False, True])
    spec = ContainerSpec("x", "x:1", (), urls=lambda h, p: {}, ready=lambda u: next(answers))
    containers.wait_until_ready(spec, {})
    never = ContainerSpec("x", "x:1", (), urls=lambda h, p: {}, ready=lambda u: False)
    with pytest.raises(TimeoutError, match=r"x container \(x:1\) was not ready(?s:.*)the last log lines"):
        containers.wait_until_ready(never, {}, timeout_s=0, describe=lambda: "the last log lines")


# ---------------------------------------------------------------------------- what each container is
def test_rabbitmq_runs_with_its_management_ui_and_gives_an_amqp_url_on_the_published_port() -> None:
    spec = containers.rabbitmq_spec()
    assert spec.image == containers.RABBITMQ_IMAGE and spec.image.endswith("-management")
    assert set(spec.ports) == {5672, 15672}
    urls = spec.urls("127.0.0.1", fake_port)
    assert urls["amqp"] == "amqp://guest:guest@127.0.0.1:45672/%2F"
    assert urls["management"] == "http://127.0.0.1:55672"
    assert Settings.from_env({"BOOKSTORE_RABBITMQ_URL": urls["amqp"]}).rabbitmq_url == urls["amqp"]


def test_jaeger_gives_an_otlp_grpc_endpoint_and_its_query_ui() -> None:
    spec = containers.jaeger_spec()
    assert spec.image == containers.JAEGER_IMAGE and "all-in-one" in spec.image
    urls = spec.urls("localhost", fake_port)
    assert urls["otlp"] == "http://localhost:44317"
    assert urls["query"] == "http://localhost:56686"
    assert {4317, 16686} <= set(spec.ports)


def test_mysql_gives_a_database_url_template_the_services_understand() -> None:
    spec = containers.mysql_spec(root_password="s3cret")
    assert spec.env == {"MARIADB_ROOT_PASSWORD": "s3cret"}
    template = spec.urls("127.0.0.1", fake_port)["template"]
    assert template == "mysql+pymysql://root:s3cret@127.0.0.1:43306/bookstore_{service}"
    url = Settings.from_env({"BOOKSTORE_DB_URL": template}).database_url("order")
    assert urlsplit(url).path == "/bookstore_order"


def test_every_mysql_container_gets_its_own_random_password() -> None:
    assert containers.mysql_spec().env != containers.mysql_spec().env


def test_prometheus_shares_the_host_network_and_reads_the_given_configuration(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text("scrape_configs: []\n")
    spec = containers.prometheus_spec(config, port=19090)
    assert spec.network_mode == "host" and spec.ports == ()
    assert spec.volumes == {str(tmp_path.resolve()): (containers.PROMETHEUS_CONFIG_DIR, "ro")}
    assert f"--config.file={containers.PROMETHEUS_CONFIG_DIR}/prometheus.yml" in spec.command
    assert "--web.listen-address=127.0.0.1:19090" in spec.command
    assert spec.urls("ignored", fake_port) == {"http": "http://127.0.0.1:19090"}


def test_a_missing_prometheus_configuration_is_reported_before_any_container(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Prometheus configuration"):
        containers.prometheus_url(tmp_path / "missing.yml")


@needs_no_docker
def test_without_an_engine_asking_for_a_container_fails_fast_and_says_why() -> None:
    with pytest.raises(DockerUnavailable, match="no Docker engine"):
        containers.rabbitmq_url()
    assert containers.running() == []
