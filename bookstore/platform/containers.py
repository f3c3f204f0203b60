"""Backing services in throwaway containers (testcontainers), when nothing else provides them.

From week 9 on the bookstore needs infrastructure beside its own processes: a RabbitMQ
broker, a trace store (Jaeger), Prometheus, and optionally a MySQL-compatible database.
Where does a notebook get them? In order (see each caller, e.g. ``bookstore.messaging``):

1. an address someone configured (``BOOKSTORE_RABBITMQ_URL``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
   ``BOOKSTORE_PROMETHEUS_URL``, ``BOOKSTORE_DB_URL``): production's answer, and the
   ``docker compose`` stack's;
2. a server already running on this machine (RabbitMQ on 127.0.0.1:5672, a ``prometheus``
   binary on PATH);
3. **a container started here and now, with this module**, when a Docker engine answers;
4. an in-process stand-in (the embedded OTLP collector, a direct scrape, SQLite), or an
   error naming these ways.

Why containers at step 3: a learner who has Docker but no RabbitMQ gets the real broker,
at the version ``docker-compose.yml`` runs, in seconds, with nothing to install and
nothing left behind. Tests get the same: real servers instead of mocks, and a clean one
for every run. That is what testcontainers is for: a container's life is tied to the code
that needs it. It is started on first use, its random host port is read back (so two runs
never collide on 5672), and it is removed when the work is done.

When not to: in production (services outlive any one process there, and someone runs and
backs them up), when an address is configured (an explicit choice always wins), and on
machines without a Docker engine, like the course's development machines: there
``docker_available()`` says so within about two seconds, once per process, and callers
take step 4. A container also costs seconds to start; a server already running is faster.

An engine that answers may still be unable to run a container: the image is absent and no
registry can be reached (offline, behind a proxy, during an outage), testcontainers' reaper
image is absent, the engine refuses, or the container never gets ready. Every such failure
raises one typed error, ``ContainerUnavailable``, whose ``cause`` says what went wrong in
one line ("image jaegertracing/all-in-one:1.62.0 is not present and pulling it failed: ...
no such host"), after whatever the attempt created has been removed. Callers catch it and
take step 4. A failed attempt is remembered for the life of the process: the next cluster
in the same kernel moves on at once instead of failing the same way again.

Clean-up is layered like the cluster launcher's: ``stop_all()`` removes every container
started here (call it when the cluster that needed them stops; it also runs ``atexit``), and
a watchdog process (``bookstore.platform.container_watchdog``, started with the first
container) removes them if this process dies without running either, say a kernel killed with
SIGKILL. It does the job of testcontainers' reaper ("Ryuk", a sidecar container) without an
image to pull, so offline labs set ``TESTCONTAINERS_RYUK_DISABLED=true`` and lose nothing.
Every container carries the label ``org.bookstore.project=bookstore``, so whatever is left
after a crash of the machine itself can still be found.

The images are settings (``BOOKSTORE_RABBITMQ_IMAGE`` and its siblings, read at each start;
defaults in ``bookstore.platform.settings``): a lab without a registry runs images built
locally from Debian packages under their own names (docs/containers.md).

    from bookstore.platform import containers
    if containers.docker_available():
        url = containers.rabbitmq_url()        # amqp://guest:guest@127.0.0.1:49154/%2F
    containers.stop_all()

Every container is described by a ``ContainerSpec`` (plain data: image, ports, settings,
how to tell it is ready), and one ``ContainerPool`` starts each spec at most once. Both are
small on purpose, so they can be checked without Docker.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bookstore.platform import container_watchdog, settings
from bookstore.platform.settings import Settings

log = logging.getLogger(__name__)

# The official images, the defaults docker-compose.yml runs too (a test keeps them equal). The
# images actually started come from the settings (BOOKSTORE_RABBITMQ_IMAGE, ...), read at each start.
RABBITMQ_IMAGE = settings.RABBITMQ_IMAGE
JAEGER_IMAGE = settings.JAEGER_IMAGE
MYSQL_IMAGE = settings.MYSQL_IMAGE
PROMETHEUS_IMAGE = settings.PROMETHEUS_IMAGE

AMQP_PORT = 5672
RABBITMQ_MANAGEMENT_PORT = 15672
OTLP_GRPC_PORT = 4317
JAEGER_UI_PORT = 16686
JAEGER_ADMIN_PORT = 14269  # answers 200 on / once every Jaeger component is up
MYSQL_PORT = 3306
PROMETHEUS_PORT = 9090

RABBITMQ_USER = "guest"
RABBITMQ_PASSWORD = "guest"
MYSQL_USER = "root"
MYSQL_DATABASE_PREFIX = "bookstore_"
PROMETHEUS_CONFIG_DIR = "/etc/bookstore/prometheus"

DOCKER_PING_TIMEOUT_S = 2.0
STARTUP_TIMEOUT_S = 120.0
READY_POLL_S = 0.5


# Set on every container an attempt creates, so a failed attempt can find and remove its own.
ATTEMPT_LABEL = "org.bookstore.attempt"
PROJECT_LABEL = container_watchdog.PROJECT_LABEL
PROJECT = container_watchdog.PROJECT
SESSION_LABEL = container_watchdog.SESSION_LABEL
CAUSE_MAX_CHARS = 300


class ContainerUnavailable(RuntimeError):
    """A container was asked for and could not be had; ``cause`` says why, in one line."""

    def __init__(self, service: str, cause: str) -> None:
        super().__init__(f"cannot start a {service} container: {cause}")
        self.service = service
        self.cause = cause


class DockerUnavailable(ContainerUnavailable):
    """A container was asked for, but no Docker engine answers."""


# ---------------------------------------------------------------------------- is there an engine?
_probe_lock = threading.Lock()
_probe_result: list[str | None] = []  # empty until probed; then [None] (available) or [reason]


def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers a ping, else why not. Probed once per process.

    The probe runs in a helper thread that is given ``DOCKER_PING_TIMEOUT_S``: a
    ``DOCKER_HOST`` pointing at an unreachable machine costs two seconds, not a hang. The
    docker CLI being installed proves nothing; only an engine that answers counts.
    """
    with _probe_lock:
        if not _probe_result:
            _probe_result.append(_probe_docker(DOCKER_PING_TIMEOUT_S))
        return _probe_result[0]


def docker_available() -> bool:
    """True when a Docker engine answers (cached for the life of the process)."""
    return docker_unavailable_reason() is None


def _probe_docker(timeout_s: float) -> str | None:
    outcome: list[str | None] = []

    def ping() -> None:
        try:
            import docker

            client = docker.from_env(timeout=timeout_s)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as error:
            outcome.append(f"no Docker engine answers: {error}")
        else:
            outcome.append(None)

    worker = threading.Thread(target=ping, name="bookstore-docker-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        return f"no Docker engine answered within {timeout_s:g} s"
    return outcome[0]


def _reset_docker_probe() -> None:
    """Forget the cached answer and the failed starts (tests, or after fixing Docker in a running kernel)."""
    with _probe_lock:
        _probe_result.clear()
    _pool.forget_failures()


# ---------------------------------------------------------------------------- what to start
PortLookup = Callable[[int], int]


@dataclass(frozen=True)
class ContainerSpec:
    """One backing service as data: what to run, and how to find and trust it once it runs.

    ``urls(host, port)`` builds the addresses clients use, given the host the engine
    publishes on and a lookup from container port to published port. ``ready(urls)`` is
    polled until it returns True (or ``STARTUP_TIMEOUT_S`` passes).
    """

    name: str
    image: str
    ports: tuple[int, ...]
    urls: Callable[[str, PortLookup], dict[str, str]]
    ready: Callable[[Mapping[str, str]], bool]
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    # host path -> (container path, "ro" or "rw")
    volumes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # "host": share this machine's network, to reach services bound to its loopback.
    network_mode: str = ""


def rabbitmq_spec() -> ContainerSpec:
    def urls(host: str, port: PortLookup) -> dict[str, str]:
        return {
            "amqp": f"amqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{host}:{port(AMQP_PORT)}/%2F",
            "management": f"http://{host}:{port(RABBITMQ_MANAGEMENT_PORT)}",
        }

    return ContainerSpec(
        name="rabbitmq",
        image=Settings.from_env().rabbitmq_image,
        ports=(AMQP_PORT, RABBITMQ_MANAGEMENT_PORT),
        env={"RABBITMQ_DEFAULT_USER": RABBITMQ_USER, "RABBITMQ_DEFAULT_PASS": RABBITMQ_PASSWORD},
        urls=urls,
        ready=lambda found: _amqp_answers(found["amqp"]),
    )


def jaeger_spec() -> ContainerSpec:
    def urls(host: str, port: PortLookup) -> dict[str, str]:
        return {
            "otlp": f"http://{host}:{port(OTLP_GRPC_PORT)}",
            "query": f"http://{host}:{port(JAEGER_UI_PORT)}",
            "admin": f"http://{host}:{port(JAEGER_ADMIN_PORT)}",
        }

    return ContainerSpec(
        name="jaeger",
        image=Settings.from_env().jaeger_image,
        ports=(OTLP_GRPC_PORT, JAEGER_UI_PORT, JAEGER_ADMIN_PORT),
        env={"COLLECTOR_OTLP_ENABLED": "true"},
        urls=urls,
        ready=lambda found: _http_ok(found["admin"] + "/"),
    )


def mysql_spec(root_password: str | None = None) -> ContainerSpec:
    password = root_password or secrets.token_hex(12)

    def urls(host: str, port: PortLookup) -> dict[str, str]:
        server = f"mysql+pymysql://{MYSQL_USER}:{password}@{host}:{port(MYSQL_PORT)}/"
        return {"server": server, "template": server + MYSQL_DATABASE_PREFIX + "{service}"}

    return ContainerSpec(
        name="mysql",
        image=Settings.from_env().mysql_image,
        ports=(MYSQL_PORT,),
        env={"MARIADB_ROOT_PASSWORD": password},
        urls=urls,
        ready=lambda found: _sql_answers(found["server"]),
    )


def prometheus_spec(config_path: str | Path, port: int | None = None) -> ContainerSpec:
    """Prometheus with ``config_path``, on the host's network so it can scrape loopback ports.

    The services of a notebook's cluster listen on 127.0.0.1 only, which a container on
    Docker's own network cannot reach; sharing the host's network (Linux engines; Docker
    Desktop has it as an option) can. The config file's folder is mounted, so file-based
    service discovery files next to it work with relative paths.
    """
    config = Path(config_path).resolve()
    if not config.is_file():
        raise FileNotFoundError(f"no Prometheus configuration at {config}")
    listen_port = port or free_port()

    def urls(_host: str, _port: PortLookup) -> dict[str, str]:
        return {"http": f"http://127.0.0.1:{listen_port}"}

    return ContainerSpec(
        name="prometheus",
        image=Settings.from_env().prometheus_image,
        ports=(),
        command=(
            f"--config.file={PROMETHEUS_CONFIG_DIR}/{config.name}",
            f"--web.listen-address=127.0.0.1:{listen_port}",
            "--storage.tsdb.path=/prometheus",
        ),
        volumes={str(config.parent): (PROMETHEUS_CONFIG_DIR, "ro")},
        network_mode="host",
        urls=urls,
        ready=lambda found: _http_ok(found["http"] + "/-/ready"),
    )


# ---------------------------------------------------------------------------- starting and stopping
@dataclass(frozen=True)
class Running:
    """A started container: its addresses and how to remove it."""

    name: str
    urls: Mapping[str, str]
    stop: Callable[[], None] = field(repr=False)


Launcher = Callable[[ContainerSpec], Running]


class ContainerPool:
    """Starts each backing service once, on first use, and removes all of them on ``stop_all``.

    Keys name what was started: the service, optionally followed by ``:`` and what tells two
    of its kind apart ("rabbitmq", "prometheus:/path/to/config.yml"). Asking again returns
    the running one. A start holds the pool's lock, so two threads asking at once get one
    container, not two. Whatever goes wrong while starting raises ``ContainerUnavailable``;
    a service that failed once (for any key: each cluster has its own Prometheus
    configuration, the image is the same) fails again at once, with the same cause, until
    ``forget_failures()``: the attempt is neither repeated nor reported again.
    """

    def __init__(
        self,
        launcher: Launcher | None = None,
        unavailable_reason: Callable[[], str | None] = docker_unavailable_reason,
    ) -> None:
        self._launch = launcher or launch
        self._unavailable_reason = unavailable_reason
        self._lock = threading.Lock()
        self._running: dict[str, Running] = {}
        self._failed: dict[str, str] = {}

    def get(self, key: str, spec: Callable[[], ContainerSpec]) -> Running:
        service = key.partition(":")[0]
        with self._lock:
            if key in self._running:
                return self._running[key]
            if service in self._failed:
                raise ContainerUnavailable(service, self._failed[service])
            reason = self._unavailable_reason()
            if reason is not None:
                raise DockerUnavailable(service, reason)
            wanted = spec()
            try:
                started = self._launch(wanted)
            except ContainerUnavailable as error:
                cause = error.cause
            except Exception as error:  # a launcher's own failure counts as "not available" too
                log.debug("starting a %s container failed", key, exc_info=True)
                cause = describe_failure(error)
            else:
                self._running[key] = started
                log.info("started a %s container: %s", key, dict(started.urls))
                return started
            self._failed[service] = cause
        raise ContainerUnavailable(service, cause)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def failed(self) -> dict[str, str]:
        """Services whose start failed in this process, and why (one line each)."""
        with self._lock:
            return dict(self._failed)

    def forget_failures(self) -> None:
        """Let failed services be tried again (say, once their image has been loaded)."""
        with self._lock:
            self._failed.clear()

    def stop_all(self) -> None:
        """Remove every container this pool started; one that fails to go does not keep the rest."""
        with self._lock:
            running, self._running = self._running, {}
        for key, started in running.items():
            try:
                started.stop()
            except Exception:
                log.warning("could not remove the %s container", key, exc_info=True)


def launch(spec: ContainerSpec) -> Running:
    """Start ``spec`` with testcontainers, wait until it is ready, and return its addresses.

    Raises ``ContainerUnavailable`` with a one-line cause on any failure, after removing
    whatever this attempt created: a container created but never started, or started but
    never ready, and a reaper that did not come up. Images are pulled here, before
    testcontainers would, because docker-py's own pull ignores an error the engine reports
    inside its progress stream ("pull access denied" becomes a bare "No such image").
    """
    from testcontainers.core.container import DockerContainer

    attempt = secrets.token_hex(8)
    container: Any = None
    try:
        container = DockerContainer(spec.image, env=dict(spec.env))
        if spec.command:
            container.with_command(list(spec.command))
        container.with_exposed_ports(*spec.ports)
        for host_path, (container_path, mode) in spec.volumes.items():
            container.with_volume_mapping(host_path, container_path, mode)
        labels = {ATTEMPT_LABEL: attempt, PROJECT_LABEL: PROJECT, SESSION_LABEL: session_id()}
        options: dict[str, Any] = {"labels": labels}
        if spec.network_mode:
            options["network_mode"] = spec.network_mode
        container.with_kwargs(**options)
        client = container.get_docker_client().client
        _ensure_reaper_image(client)
        _ensure_image(client, container.image)
        _ensure_watchdog()
        container.start()
        if spec.network_mode == "host":
            urls = spec.urls("127.0.0.1", lambda port: port)
        else:
            urls = spec.urls(container.get_container_host_ip(), container.get_exposed_port)
        wait_until_ready(
            spec, urls, describe=lambda: _container_logs(container), alive=lambda: _still_running(container)
        )
    except BaseException as error:
        _remove_attempt(container, attempt)
        if not isinstance(error, Exception):  # KeyboardInterrupt and the like: not a verdict on Docker
            raise
        if isinstance(error, ContainerUnavailable):
            raise
        log.debug("starting the %s container failed", spec.name, exc_info=True)
        cause = str(error) if isinstance(error, _PullFailed) else describe_failure(error)
    else:
        return Running(spec.name, urls, container.stop)
    # Raised outside the handler on purpose: the one line is the whole story, not a chained traceback.
    raise ContainerUnavailable(spec.name, cause)


def describe_failure(error: BaseException) -> str:
    """One line saying why a start failed: the engine's own explanation where there is one."""
    explanation = getattr(error, "explanation", None)  # docker.errors.APIError: the engine's message
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    first = _one_line(str(explanation or error))
    if not first:
        return type(error).__name__
    if isinstance(error, TimeoutError) or explanation or type(error) is RuntimeError:
        return first.rstrip(":")  # the kind adds nothing; the message says it all
    return _one_line(f"{type(error).__name__}: {first}")


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line if len(line) <= CAUSE_MAX_CHARS else line[: CAUSE_MAX_CHARS - 3] + "..."


class _PullFailed(Exception):
    def __init__(self, image: str, why: str) -> None:
        super().__init__(f"image {image} is not present and pulling it failed: {why}")


def _ensure_image(client: Any, image: str) -> None:
    """Pull ``image`` unless the engine has it; ``_PullFailed`` says why a pull failed."""
    import docker.errors
    from docker.utils import parse_repository_tag

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    repository, tag = parse_repository_tag(image)
    try:
        # The engine reports a failure either as an error status (nothing pulled yet) or as an
        # "error" entry in the progress stream; both are read here.
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                raise _PullFailed(image, _one_line(str(event["error"])))
    except docker.errors.APIError as error:
        raise _PullFailed(image, describe_failure(error)) from None
    client.images.get(image)  # a pull that "succeeded" without the image is still a failure


def _ensure_reaper_image(client: Any) -> None:
    """testcontainers starts its reaper (Ryuk) before any container, unless told not to."""
    from testcontainers.core.config import testcontainers_config

    if testcontainers_config.ryuk_disabled:
        return
    try:
        _ensure_image(client, testcontainers_config.ryuk_image)
    except _PullFailed as failed:
        raise ContainerUnavailable(
            "reaper",
            f"testcontainers' reaper {failed}; "
            "TESTCONTAINERS_RYUK_DISABLED=true starts containers without it",
        ) from None


def _remove_attempt(container: Any, attempt: str) -> None:
    """Remove every container this attempt created, and a reaper that did not finish starting."""
    if container is None:
        return
    with contextlib.suppress(Exception):
        client = container.get_docker_client().client
        for leftover in client.containers.list(all=True, filters={"label": f"{ATTEMPT_LABEL}={attempt}"}):
            with contextlib.suppress(Exception):
                leftover.remove(force=True, v=True)
        _remove_unfinished_reaper(client)
        client.close()


def _remove_unfinished_reaper(client: Any) -> None:
    from testcontainers.core.container import Reaper
    from testcontainers.core.labels import SESSION_ID

    if Reaper._instance is not None:  # a reaper that came up serves the next attempt too
        return
    with contextlib.suppress(Exception):
        Reaper.delete_instance()
    for leftover in client.containers.list(all=True, filters={"name": f"testcontainers-ryuk-{SESSION_ID}"}):
        with contextlib.suppress(Exception):
            leftover.remove(force=True)


def wait_until_ready(
    spec: ContainerSpec,
    urls: Mapping[str, str],
    *,
    timeout_s: float = STARTUP_TIMEOUT_S,
    describe: Callable[[], str] = lambda: "",
    alive: Callable[[], bool] = lambda: True,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not spec.ready(urls):
        if not alive():  # exited (a bad configuration, say): waiting longer cannot help
            exited = f"the {spec.name} container ({spec.image}) exited before it was ready"
            raise RuntimeError(f"{exited}\n{describe()}")
        if time.monotonic() > deadline:
            waited = f"the {spec.name} container ({spec.image}) was not ready after {timeout_s:.0f} s"
            raise TimeoutError(f"{waited}\n{describe()}")
        time.sleep(READY_POLL_S)


def _still_running(container: Any) -> bool:
    """False once the container has exited; True while it runs, or when the engine cannot say."""
    with contextlib.suppress(Exception):
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return str(wrapped.status) in ("created", "running", "restarting")
    return True


def _container_logs(container: Any) -> str:
    with contextlib.suppress(Exception):
        stdout, stderr = container.get_logs()
        return (stdout + stderr).decode(errors="replace")[-4000:]
    return ""


# ---------------------------------------------------------------------------- the watchdog
_watchdog_lock = threading.Lock()
_watchdog: list[Any] = []  # the helper process, once started: it lives as long as this process
_session: list[str] = []


def session_id() -> str:
    """This process's value of the ``org.bookstore.session`` label (its pid and a random part)."""
    with _watchdog_lock:
        if not _session or not _session[0].startswith(f"{os.getpid()}-"):  # a forked child: its own
            _session[:] = [f"{os.getpid()}-{secrets.token_hex(4)}"]
        return _session[0]


def _ensure_watchdog() -> None:
    """Start the helper that removes this process's containers when it dies (once per process)."""
    session = session_id()
    with _watchdog_lock:
        if _watchdog and _watchdog[0][0] == session and _watchdog[0][1].poll() is None:
            return
        _watchdog[:] = [(session, container_watchdog.start(session))]


# ---------------------------------------------------------------------------- readiness checks
def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _amqp_answers(url: str) -> bool:
    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except Exception:
        return False
    connection.close()
    return True


def _sql_answers(server_url: str) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    finally:
        engine.dispose()
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------- the process's pool
_pool = ContainerPool()
atexit.register(_pool.stop_all)


def rabbitmq_url() -> str:
    """AMQP URL of a RabbitMQ container (with the management plugin), started on first use."""
    return _pool.get("rabbitmq", rabbitmq_spec).urls["amqp"]


def rabbitmq_management_url() -> str:
    """The RabbitMQ management UI of that container (log in as guest/guest)."""
    return _pool.get("rabbitmq", rabbitmq_spec).urls["management"]


def otlp_endpoint() -> str:
    """OTLP/gRPC endpoint of a Jaeger all-in-one container, for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    return _pool.get("jaeger", jaeger_spec).urls["otlp"]


def jaeger_query_url() -> str:
    """Jaeger's UI and query API (``/api/traces``) of that container."""
    return _pool.get("jaeger", jaeger_spec).urls["query"]


def mysql_url_template() -> str:
    """A ``BOOKSTORE_DB_URL`` template on a MariaDB container: ``mysql+pymysql://root:...@host:port/bookstore_{service}``.

    Each service creates its own database (``bookstore_order``, ...) on first start.
    """
    return _pool.get("mysql", mysql_spec).urls["template"]


def prometheus_url(config_path: str | Path) -> str:
    """A Prometheus container running ``config_path``; one per configuration file."""
    config = Path(config_path).resolve()
    if not config.is_file():
        raise FileNotFoundError(f"no Prometheus configuration at {config}")
    return _pool.get(f"prometheus:{config}", lambda: prometheus_spec(config)).urls["http"]


def running() -> list[str]:
    """What this process has started, e.g. ``["rabbitmq", "jaeger"]``."""
    return _pool.running()


def stop_all() -> None:
    """Remove every container this process started (also runs at interpreter exit)."""
    _pool.stop_all()
