"""Is this machine ready for the course? One finding per backing piece, in plain words.

**What.** The bookstore itself needs only Python: its services are child processes on
loopback ports, each with its own SQLite file. What a week *shows* depends on what else the
machine has. ``probe()`` looks at each backing piece once, quickly, and returns one
``Finding`` per piece:

| piece | weeks | when it is missing |
|---|---|---|
| RabbitMQ | 9, 10 | they stop at the first cell that needs it, naming the ways to get a broker |
| MariaDB | none by default | nothing: SQLite is the default (``BOOKSTORE_DB_URL`` opts in) |
| trace store | 10 | spans go to the course's embedded collector: same traces, no Jaeger UI |
| Prometheus | 10 | the notebook scrapes each ``/metrics`` itself: same numbers, no PromQL server |
| Docker engine | 9, 10 | nothing by itself: it is only a third way to get the pieces above |
| loopback ports | 6-10 | no cluster can start |
| CPU | 6-10 | slower runs and noisier latency figures than the course map states |

Each finding says its ``state`` ("answers at 127.0.0.1:5672"), a ``level`` (``ok``: as the
course was written; ``differs``: it runs, differently; ``missing``: some weeks cannot run),
which ``weeks`` it touches, what differs there (``effect``) and how to get the missing piece
(``remedy``, a command where there is one).

**How it decides.** The same way the launcher resolves each piece (see the table in
``bookstore.messaging.broker``, ``bookstore.observability.stack`` and
``bookstore.platform.containers``): a configured address first, then a server on this machine,
then a container when a Docker engine answers, then a stand-in. The probe only *looks*:
it opens and closes a connection, lists local images, binds and releases ports. It never
starts a server or pulls an image, so it cannot tell whether a pull would succeed; it reports
"holds no such image" and says what happens when the pull fails (offline, behind a proxy).

Two halves, so each can be checked on its own: *facts* are gathered with short timeouts,
all at once in threads (the whole probe takes about two seconds when nothing answers, the
Docker ping's timeout); *judging* those facts (``rabbitmq_finding``, ``docker_finding``, ...)
is pure and unit-tested.

**When not to.** This is a learner's and a CI log's diagnosis, not a health check for
production: it answers "what will this course do here", once, and caches the Docker answer
for the life of the process (restart the kernel after starting Docker).

    from bookstore.environment import probe, format_text
    print(format_text(probe()))          # or: bookstore env
"""

from __future__ import annotations

import html
import os
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from bookstore.platform.settings import Settings

ALL_WEEKS = (6, 7, 8, 9, 10)
MESSAGING_WEEKS = (9, 10)
OBSERVABILITY_WEEKS = (10,)

LOCAL_RABBITMQ = "127.0.0.1:5672"
LOCAL_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/"
PORTS_WANTED = 24  # a week 10 cluster holds about twenty: services, replicas, /metrics, collector
PROBE_TIMEOUT_S = 1.5
DOCKER_LIST_TIMEOUT_S = 2.0
REAPER_IMAGE_DEFAULT = "testcontainers/ryuk:0.8.1"  # testcontainers 4.x's default

START_RABBITMQ = "`rabbitmq-server -detached` then `rabbitmqctl await_startup`"
INSTALL_RABBITMQ = "`apt-get install -y rabbitmq-server`"
INSTALL_PROMETHEUS = "`apt-get install -y --no-install-recommends prometheus`"
INSTALL_DOCKER = "`apt-get install -y --no-install-recommends docker.io`, then start `dockerd`"
START_MARIADB = "`apt-get install -y mariadb-server`, then `service mariadb start`"


class Level(StrEnum):
    """How a piece stands against the course as written."""

    OK = "ok"  # present, or not needed: the weeks run as written
    DIFFERS = "differs"  # the weeks run, on a stand-in or more slowly
    MISSING = "missing"  # some weeks cannot run until this is provided


@dataclass(frozen=True)
class Finding:
    """One backing piece: its state in plain words, the weeks it touches, and what to do."""

    piece: str
    level: Level
    state: str
    weeks: tuple[int, ...]
    effect: str
    remedy: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level.value, "weeks": list(self.weeks)}


# ---------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class DockerFacts:
    """What a Docker engine offers without pulling anything."""

    unavailable_reason: str | None  # None: an engine answers a ping
    images: frozenset[str] = frozenset()  # "repository:tag" of every local image
    images_error: str = ""  # listing the images failed: why
    reaper_image: str = REAPER_IMAGE_DEFAULT
    reaper_disabled: bool = False  # TESTCONTAINERS_RYUK_DISABLED=true
    address: str = "unix:///var/run/docker.sock"  # where the client looked: DOCKER_HOST or the default

    @property
    def answers(self) -> bool:
        return self.unavailable_reason is None

    def holds(self, image: str) -> bool:
        return image in self.images

    def can_start(self, image: str) -> bool:
        """Whether testcontainers can start ``image`` here with no pull: it and its reaper are local."""
        reaper_ready = self.reaper_disabled or self.holds(self.reaper_image)
        return self.answers and self.holds(image) and reaper_ready


@dataclass(frozen=True)
class CpuFacts:
    cores: int
    load: tuple[float, float, float] | None  # 1, 5 and 15 minute load averages, where the OS has them


@dataclass(frozen=True)
class PortFacts:
    bound: int  # how many loopback ports could be held at once (up to PORTS_WANTED)
    error: str = ""
    ephemeral_range: tuple[int, int] | None = None


# ---------------------------------------------------------------------------- judging (pure)
def weeks_text(weeks: Sequence[int]) -> str:
    """``(9, 10)`` -> "weeks 9-10"; ``(10,)`` -> "week 10"; ``(6, 9)`` -> "weeks 6, 9"; ``()`` -> "none"."""
    if not weeks:
        return "none"
    ordered = sorted(set(weeks))
    if len(ordered) == 1:
        return f"week {ordered[0]}"
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"weeks {ordered[0]}-{ordered[-1]}"
    return "weeks " + ", ".join(str(week) for week in ordered)


def redacted(url: str) -> str:
    """``url`` without its password: findings are printed and logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _images() -> Settings:
    """The images the containers would run: BOOKSTORE_<NAME>_IMAGE, or the official defaults."""
    from bookstore.platform.settings import Settings

    return Settings.from_env()


def rabbitmq_finding(
    configured_url: str, configured_answers: bool, local_answers: bool, docker: DockerFacts
) -> Finding:
    """Judge the broker the way ``bookstore.messaging.broker.resolve_rabbitmq_url`` resolves it."""
    rabbitmq_image = _images().rabbitmq_image

    piece = "RabbitMQ"
    runs = "they publish and consume through it, as written"
    stops = (
        "they stop at the first cell that needs a broker, with a message naming the ways to get one "
        "(weeks 6-8 need none)"
    )
    every_way = (
        f"start one on this machine ({START_RABBITMQ}; install it with {INSTALL_RABBITMQ}), "
        "or set BOOKSTORE_RABBITMQ_URL to a broker you have, or start a Docker engine holding "
        f"the {rabbitmq_image} image"
    )
    if configured_url:
        where = redacted(configured_url)
        if configured_answers:
            return Finding(
                piece, Level.OK, f"answers at BOOKSTORE_RABBITMQ_URL ({where})", MESSAGING_WEEKS, runs
            )
        return Finding(
            piece,
            Level.MISSING,
            f"unreachable: BOOKSTORE_RABBITMQ_URL is set to {where}, and no broker answers there",
            MESSAGING_WEEKS,
            stops + "; a set BOOKSTORE_RABBITMQ_URL wins, so no other broker is tried",
            "start the broker at that address, or `unset BOOKSTORE_RABBITMQ_URL` to use one on "
            f"{LOCAL_RABBITMQ} ({START_RABBITMQ})",
        )
    if local_answers:
        return Finding(piece, Level.OK, f"answers at {LOCAL_RABBITMQ} (user guest)", MESSAGING_WEEKS, runs)
    if docker.can_start(rabbitmq_image):
        return Finding(
            piece,
            Level.DIFFERS,
            f"none on {LOCAL_RABBITMQ}; the Docker engine holds {rabbitmq_image}",
            MESSAGING_WEEKS,
            "they start a RabbitMQ container (testcontainers) and remove it at the end; "
            "the first start takes 15-30 s",
            f"optional, for faster starts: {START_RABBITMQ}",
        )
    if docker.answers:
        return Finding(
            piece,
            Level.MISSING,
            f"none on {LOCAL_RABBITMQ}; a Docker engine answers but cannot start RabbitMQ "
            f"without a pull ({_missing_images(docker, rabbitmq_image)})",
            MESSAGING_WEEKS,
            "they try to pull the image; where no registry is reachable (offline, a proxy) " + stops,
            every_way,
        )
    return Finding(
        piece,
        Level.MISSING,
        f"absent: nothing answers at {LOCAL_RABBITMQ}, and no Docker engine",
        MESSAGING_WEEKS,
        stops,
        every_way,
    )


def database_finding(configured_url: str, configured_reason: str | None, local_reason: str | None) -> Finding:
    """Judge the databases: SQLite unless ``BOOKSTORE_DB_URL`` names a server.

    ``configured_reason`` is why the configured server does not answer (None: it answers, or
    the URL is SQLite); ``local_reason`` the same for MariaDB on 127.0.0.1:3306.
    """
    piece = "MariaDB"
    template = "mysql+pymysql://root@127.0.0.1:3306/bookstore_{service}"
    if configured_url and not configured_url.startswith("sqlite"):
        where = redacted(configured_url)
        if configured_reason is None:
            return Finding(
                piece,
                Level.OK,
                f"answers at BOOKSTORE_DB_URL ({where})",
                ALL_WEEKS,
                "each service keeps its tables in its own schema on that server instead of a SQLite file",
            )
        return Finding(
            piece,
            Level.MISSING,
            f"unreachable: BOOKSTORE_DB_URL is set to {where}: {configured_reason}",
            ALL_WEEKS,
            "no service can open its database, so no cluster starts",
            f"start that server ({START_MARIADB} on this machine), or `unset BOOKSTORE_DB_URL` "
            "for the default SQLite files",
        )
    if local_reason is None:
        return Finding(
            piece,
            Level.OK,
            "answers at 127.0.0.1:3306 (optional: the course uses SQLite by default)",
            (),
            "each service keeps a SQLite file; the tests' MariaDB half uses this server",
            f"optional, to run the weeks on it: `export BOOKSTORE_DB_URL='{template}'`",
        )
    return Finding(
        piece,
        Level.OK,
        "not running at 127.0.0.1:3306 (optional: the course uses SQLite by default)",
        (),
        "each service keeps a SQLite file; only the tests' MariaDB half skips, saying so",
        f"optional: {START_MARIADB}",
    )


def trace_store_finding(endpoint: str, endpoint_answers: bool, docker: DockerFacts) -> Finding:
    """Judge where week 10's spans go, as ``bookstore.observability.stack`` resolves it."""
    jaeger_image = _images().jaeger_image

    piece = "trace store"
    if endpoint:
        if endpoint_answers:
            return Finding(
                piece,
                Level.OK,
                f"OTEL_EXPORTER_OTLP_ENDPOINT answers ({endpoint})",
                OBSERVABILITY_WEEKS,
                "spans are exported there and read back from Jaeger's query API",
            )
        return Finding(
            piece,
            Level.MISSING,
            f"unreachable: OTEL_EXPORTER_OTLP_ENDPOINT is set to {endpoint}, and nothing accepts "
            "a connection there",
            OBSERVABILITY_WEEKS,
            "spans are lost, so the trace sections find no traces",
            "start that collector or Jaeger, or `unset OTEL_EXPORTER_OTLP_ENDPOINT` "
            "for the embedded collector",
        )
    if docker.can_start(jaeger_image):
        return Finding(
            piece,
            Level.OK,
            f"a Jaeger container (the Docker engine holds {jaeger_image})",
            OBSERVABILITY_WEEKS,
            "spans go to Jaeger, whose UI shows them as well",
        )
    cause = "no Docker engine" if not docker.answers else f"the Docker engine holds no {jaeger_image}"
    return Finding(
        piece,
        Level.DIFFERS,
        f"the course's embedded collector ({cause}, no OTEL_EXPORTER_OTLP_ENDPOINT)",
        OBSERVABILITY_WEEKS,
        "spans go to a small collector process; the notebook draws the same waterfalls, but there "
        "is no Jaeger UI to click through",
        "optional: run Jaeger (`docker compose up -d` starts it), then "
        "`export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317`",
    )


def prometheus_finding(
    configured_url: str, configured_answers: bool, binary: str | None, docker: DockerFacts
) -> Finding:
    """Judge week 10's metrics server, as ``bookstore.observability.stack`` resolves it."""
    prometheus_image = _images().prometheus_image

    piece = "Prometheus"
    scrape = (
        "the notebook fetches each service's /metrics itself (a direct scrape): the same numbers "
        "and plots, without a Prometheus server to send PromQL to"
    )
    if configured_url:
        if configured_answers:
            return Finding(
                piece,
                Level.OK,
                f"answers at BOOKSTORE_PROMETHEUS_URL ({configured_url})",
                OBSERVABILITY_WEEKS,
                "the notebook queries it; it scrapes by its own configuration",
            )
        return Finding(
            piece,
            Level.MISSING,
            f"unreachable: BOOKSTORE_PROMETHEUS_URL is set to {configured_url}, and it is not ready",
            OBSERVABILITY_WEEKS,
            "the notebook's Prometheus queries fail",
            "start that Prometheus, or `unset BOOKSTORE_PROMETHEUS_URL` to use the binary or a direct scrape",
        )
    if binary:
        return Finding(
            piece,
            Level.OK,
            f"binary on PATH ({binary})",
            OBSERVABILITY_WEEKS,
            "the notebook starts it for its cluster, scraping every process each second",
        )
    if docker.can_start(prometheus_image):
        return Finding(
            piece,
            Level.DIFFERS,
            f"no binary on PATH; the Docker engine holds {prometheus_image}",
            OBSERVABILITY_WEEKS,
            "the notebook runs Prometheus in a container on the host's network",
            f"optional, for faster starts: {INSTALL_PROMETHEUS}",
        )
    return Finding(
        piece,
        Level.DIFFERS,
        "absent: no `prometheus` binary on PATH",
        OBSERVABILITY_WEEKS,
        scrape,
        f"optional: {INSTALL_PROMETHEUS} (Debian's package; any Prometheus 2.x binary on PATH works)",
    )


def docker_finding(docker: DockerFacts) -> Finding:
    """Judge the Docker engine: absent, answering, or able to start the course's containers offline."""
    images = _images()
    rabbitmq_image, jaeger_image = images.rabbitmq_image, images.jaeger_image
    prometheus_image = images.prometheus_image

    piece = "Docker engine"
    course_images = (rabbitmq_image, jaeger_image, prometheus_image)
    if docker.unavailable_reason is not None:
        # the course is written for machines without one: by itself, its absence changes nothing
        return Finding(
            piece,
            Level.OK,
            f"absent: nothing answers at {docker.address} ({_short_cause(docker.unavailable_reason)})",
            MESSAGING_WEEKS,
            "nothing by itself: it is only the third way to get RabbitMQ, Jaeger and Prometheus, "
            "and the rows above say what each week uses instead",
            f"optional: {INSTALL_DOCKER}; `docker compose up -d` then runs the whole stack",
        )
    if docker.images_error:
        return Finding(
            piece,
            Level.DIFFERS,
            f"answers, but listing its images failed: {docker.images_error}",
            MESSAGING_WEEKS,
            "they may try to pull images; if that fails they use the other ways",
            "check `docker images`",
        )
    usable = [image for image in course_images if docker.can_start(image)]
    if usable:
        return Finding(
            piece,
            Level.OK,
            "answers and can start " + ", ".join(usable) + " without a pull",
            MESSAGING_WEEKS,
            "they start these as containers when nothing else provides them",
        )
    absent = _missing_images(docker, *course_images)
    return Finding(
        piece,
        Level.DIFFERS,
        f"answers, but cannot start the course's containers without a pull ({absent})",
        MESSAGING_WEEKS,
        "they try to pull what they need; where no registry is reachable they use the other ways "
        "(the rows above)",
        "where a registry is reachable: `docker pull IMAGE` for each; offline: build them from "
        "Debian packages (docs/containers.md)"
        + ("" if docker.reaper_disabled else "; and `export TESTCONTAINERS_RYUK_DISABLED=true`"),
    )


def ports_finding(ports: PortFacts) -> Finding:
    piece = "loopback ports"
    span = (
        f" (ephemeral range {ports.ephemeral_range[0]}-{ports.ephemeral_range[1]})"
        if ports.ephemeral_range
        else ""
    )
    if ports.bound >= PORTS_WANTED:
        return Finding(
            piece,
            Level.OK,
            f"{ports.bound} free ports held at once on 127.0.0.1{span}",
            ALL_WEEKS,
            "each cluster takes free ports, so two can run side by side",
        )
    return Finding(
        piece,
        Level.MISSING,
        f"only {ports.bound} of {PORTS_WANTED} ports could be held on 127.0.0.1{span}: {ports.error}",
        ALL_WEEKS,
        "a cluster may fail to start its services",
        "stop clusters you no longer need (`bookstore down`, or restart the kernels holding them)",
    )


def cpu_finding(cpu: CpuFacts) -> Finding:
    piece = "CPU"
    load = cpu.load[0] if cpu.load else None
    load_text = f", load average {load:.2f}" if load is not None else ""
    state = f"{cpu.cores} core{'s' if cpu.cores != 1 else ''}{load_text}"
    if cpu.cores < 2:
        return Finding(
            piece,
            Level.DIFFERS,
            state,
            ALL_WEEKS,
            "the course was measured on 2 cores: expect each week to take longer than the course map says",
            "nothing to install; close other heavy programs while a week runs",
        )
    if load is not None and load > cpu.cores:
        return Finding(
            piece,
            Level.DIFFERS,
            state + " (busy: more runnable work than cores)",
            ALL_WEEKS,
            "each week runs slower than the course map's times, and the latency and throughput "
            "figures of weeks 8-10 are noisier",
            "let other work finish (see `top`) before timing anything",
        )
    return Finding(piece, Level.OK, state, ALL_WEEKS, "the course map's times apply")


def profiler_finding(refusal: str | None) -> Finding:
    """Whether py-spy may read the services' processes; ``refusal`` is why not (profiling.ptrace_refusal)."""
    piece = "py-spy (profiler)"
    if refusal is None:
        return Finding(
            piece,
            Level.OK,
            "may read this user's processes",
            OBSERVABILITY_WEEKS,
            "py-spy records the live inventory service for its flame graph",
        )
    return Finding(
        piece,
        Level.DIFFERS,
        refusal,
        OBSERVABILITY_WEEKS,
        "pyinstrument profiles an in-process copy of inventory instead of the live process",
        "on Linux `sudo sysctl kernel.yama.ptrace_scope=0`; in a container `--cap-add SYS_PTRACE`; "
        "on macOS run Jupyter with sudo",
    )


def _short_cause(reason: str) -> str:
    """The Docker client's error in a few words: its messages nest the cause several levels deep."""
    for marker, cause in (
        ("No such file or directory", "no socket there"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied: join the docker group, or run as root"),
        ("timed out", "timed out"),
        ("within", "timed out"),
    ):
        if marker in reason:
            return cause
    return reason.removeprefix("no Docker engine answers: ")


def _missing_images(docker: DockerFacts, *images: str) -> str:
    wanted = [*images] + ([] if docker.reaper_disabled else [docker.reaper_image])
    absent = [image for image in wanted if not docker.holds(image)]
    return "no local " + ", ".join(absent)


# ---------------------------------------------------------------------------- summaries and tables
def summary(findings: Iterable[Finding]) -> str:
    """One line: how many pieces are ok, differ or are missing, and which weeks cannot run."""
    findings = list(findings)
    counts = {level: sum(f.level is level for f in findings) for level in Level}
    blocked = sorted({week for f in findings if f.level is Level.MISSING for week in f.weeks})
    head = f"{counts[Level.OK]} ok, {counts[Level.DIFFERS]} differ, {counts[Level.MISSING]} missing"
    if blocked:
        return f"{head}: {weeks_text(blocked)} cannot run as written until the missing pieces are there"
    if counts[Level.DIFFERS]:
        return f"{head}: every week runs; where a piece differs, its row says what changes"
    return f"{head}: every week runs as written"


def format_text(findings: Iterable[Finding]) -> str:
    """The findings as plain text for a terminal: one block per piece, then the summary."""
    findings = list(findings)
    lines: list[str] = []
    for f in findings:
        lines.append(f"[{f.level.value:^7}] {f.piece}: {f.state}")
        lines.append(f"{'':10}{weeks_text(f.weeks) if f.weeks else 'no week needs it'}: {f.effect}")
        if f.remedy:
            lines.append(f"{'':10}what to do: {f.remedy}")
    lines.append(summary(findings))
    return "\n".join(lines)


_LEVEL_COLOURS = {Level.OK: "#d8f0d8", Level.DIFFERS: "#fff1c2", Level.MISSING: "#f8d0d0"}


def html_table(findings: Iterable[Finding]) -> str:
    """The findings as an HTML table for a notebook (``IPython.display.HTML``), then the summary."""
    findings = list(findings)
    columns = (("piece", 10), ("state", 24), ("weeks", 8), ("what it means there", 30), ("what to do", 28))
    widths = "".join(f'<col style="width:{percent}%">' for _, percent in columns)
    head = "".join(f'<th style="text-align:left">{name}</th>' for name, _ in columns)
    rows = []
    for f in findings:
        cells = (
            f"<b>{html.escape(f.piece)}</b>",
            f'<span style="background:{_LEVEL_COLOURS[f.level]}">{f.level.value}</span>: '
            + _inline_code(f.state),
            html.escape(weeks_text(f.weeks)),
            _inline_code(f.effect),
            _inline_code(f.remedy) or "nothing to do",
        )
        rows.append("<tr>" + "".join(f'<td style="text-align:left">{cell}</td>' for cell in cells) + "</tr>")
    return (
        f'<table style="table-layout:fixed;width:100%"><colgroup>{widths}</colgroup>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<p>{html.escape(summary(findings))}</p>"
    )


def _inline_code(text: str) -> str:
    """Escape ``text`` for HTML, turning `backticked` spans into <code>."""
    # long commands and URLs wrap inside their cell instead of widening the table
    code = '<code style="white-space:pre-wrap;overflow-wrap:anywhere">\\1</code>'
    return re.sub(r"`([^`]+)`", code, html.escape(text))


# ---------------------------------------------------------------------------- gathering facts (I/O)
def gather_docker(environ: Mapping[str, str]) -> DockerFacts:
    from bookstore.platform.containers import docker_unavailable_reason

    reaper_image = environ.get("RYUK_CONTAINER_IMAGE", REAPER_IMAGE_DEFAULT)
    reaper_disabled = environ.get("TESTCONTAINERS_RYUK_DISABLED", "").strip().lower() in {"1", "true", "yes"}
    address = environ.get("DOCKER_HOST") or DockerFacts.address
    reason = docker_unavailable_reason()
    if reason is not None:
        return DockerFacts(
            reason, reaper_image=reaper_image, reaper_disabled=reaper_disabled, address=address
        )
    images, error = _local_images(DOCKER_LIST_TIMEOUT_S)
    return DockerFacts(None, images, error, reaper_image, reaper_disabled, address)


def _local_images(timeout_s: float) -> tuple[frozenset[str], str]:
    """Tags of the engine's local images; a thread bounds the call, as the ping is bounded."""
    outcome: list[tuple[frozenset[str], str]] = []

    def list_images() -> None:
        try:
            import docker

            client = docker.from_env(timeout=timeout_s)
            try:
                # the low-level listing is one request; images.list() makes one more per image
                listed = client.api.images()
                tags = frozenset(
                    tag for image in listed for tag in image.get("RepoTags") or () if tag != "<none>:<none>"
                )
            finally:
                client.close()
        except Exception as error:
            outcome.append((frozenset(), f"{type(error).__name__}: {error}"))
        else:
            outcome.append((tags, ""))

    worker = threading.Thread(target=list_images, name="bookstore-docker-images", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return outcome[0] if outcome else (frozenset(), f"no answer within {timeout_s:g} s")


def gather_ports(wanted: int = PORTS_WANTED) -> PortFacts:
    """Hold ``wanted`` loopback ports at once, then release them: can a full cluster bind?"""
    held: list[socket.socket] = []
    error = ""
    try:
        for _ in range(wanted):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # may fail too: out of descriptors
            try:
                sock.bind(("127.0.0.1", 0))
            except OSError:
                sock.close()
                raise
            held.append(sock)
    except OSError as failure:
        error = str(failure)
    finally:
        for sock in held:
            sock.close()
    return PortFacts(len(held), error, _ephemeral_range())


def _ephemeral_range() -> tuple[int, int] | None:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as source:
            low, high = source.read().split()
    except (OSError, ValueError):
        return None
    return int(low), int(high)


def gather_cpu() -> CpuFacts:
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use, e.g. in a container
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return CpuFacts(cores, load)


def _broker_answers(url: str) -> bool:
    from bookstore.messaging.broker import broker_answers

    return broker_answers(url, timeout_s=PROBE_TIMEOUT_S)


def _mysql_reason(url_template: str) -> str | None:
    from sqlalchemy.engine import make_url

    from bookstore.platform.database import mysql_unavailable_reason

    server = make_url(url_template.replace("{service}", "probe")).set(database="")
    return mysql_unavailable_reason(server.render_as_string(hide_password=False), timeout_s=2)


def _http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tcp_accepts(endpoint: str) -> bool:
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4317), PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


T = TypeVar("T")


def probe(environ: Mapping[str, str] | None = None) -> list[Finding]:
    """Look at every backing piece, all at once with short timeouts, and judge each one.

    ``environ`` holds the settings to judge (default: this process's environment); the Docker
    client always reads ``DOCKER_HOST`` from the process's own environment, once per process.
    """
    env = os.environ if environ is None else environ
    rabbitmq_url = env.get("BOOKSTORE_RABBITMQ_URL", "").strip()
    db_url = env.get("BOOKSTORE_DB_URL", "").strip()
    otlp = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
    ).strip()
    prometheus_url = env.get("BOOKSTORE_PROMETHEUS_URL", "").strip().rstrip("/")
    from bookstore.messaging.broker import LOCAL_URL
    from bookstore.observability.profiling import ptrace_refusal
    from bookstore.observability.prometheus import prometheus_binary

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="bookstore-env") as pool:

        def later(action: Callable[[], T]) -> Callable[[], T]:
            return pool.submit(action).result

        docker = later(lambda: gather_docker(env))
        configured_broker = later(lambda: bool(rabbitmq_url) and _broker_answers(rabbitmq_url))
        local_broker = later(lambda: not rabbitmq_url and _broker_answers(LOCAL_URL))
        uses_server = bool(db_url) and not db_url.startswith("sqlite")
        configured_db = later(lambda: _mysql_reason(db_url) if uses_server else None)
        local_db = later(lambda: None if uses_server else _mysql_reason(LOCAL_MARIADB_URL))
        trace_endpoint = later(lambda: bool(otlp) and _tcp_accepts(otlp))
        prometheus_ready = later(lambda: bool(prometheus_url) and _http_ready(prometheus_url + "/-/ready"))
        ports = later(gather_ports)
        cpu = later(gather_cpu)

        return [
            rabbitmq_finding(rabbitmq_url, configured_broker(), local_broker(), docker()),
            database_finding(db_url, configured_db(), local_db()),
            trace_store_finding(otlp, trace_endpoint(), docker()),
            prometheus_finding(prometheus_url, prometheus_ready(), prometheus_binary(), docker()),
            docker_finding(docker()),
            ports_finding(ports()),
            cpu_finding(cpu()),
            profiler_finding(ptrace_refusal()),
        ]
