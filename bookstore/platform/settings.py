"""Settings, read from ``BOOKSTORE_*`` environment variables.

Twelve-factor style: the launcher (or a learner's shell) decides ports, databases and the
addresses of the other services, and passes them to each process through its environment.
That is also where service discovery starts: a process learns where its peers are from its
settings, either as fixed addresses or as a registry entry it follows
(``bookstore.platform.discovery``).

| variable | default | meaning |
|---|---|---|
| BOOKSTORE_SERVICE | (none) | the service this process runs |
| BOOKSTORE_HOST | 127.0.0.1 | address to bind |
| BOOKSTORE_PORT | 0 | port to bind |
| BOOKSTORE_REPLICA | 0 | replica index, shown in logs and stats |
| BOOKSTORE_WORK_DIR | ./.bookstore | SQLite files and logs |
| BOOKSTORE_DB_URL | sqlite per service | SQLAlchemy URL template; ``{service}`` is replaced |
| BOOKSTORE_DB_POOL_SIZE | 4 | MySQL/MariaDB: connections a process opens at start and never exceeds |
| BOOKSTORE_JWT_SECRET | a development secret | HS256 signing key shared by user and gateway |
| BOOKSTORE_JWT_TTL_S | 3600 | token lifetime in seconds |
| BOOKSTORE_DEADLINE_S | 2.0 | deadline of every outgoing RPC (but the gateway's CreateOrder) |
| BOOKSTORE_SAGA_DEADLINE_S | 5.0 | a saga's forward-path budget; the gateway waits it + DEADLINE_S |
| BOOKSTORE_CRASH_AT | (empty) | tests only: the order service SIGKILLs itself there, e.g. ``after:reserve`` |
| BOOKSTORE_ORDER_FLOW | saga | order service: ``saga``, or ``plain`` (week 6's flow, a benchmark baseline) |
| BOOKSTORE_GRPC_WORKERS | 16 | server thread pool size |
| BOOKSTORE_<NAME>_TARGET | (none) | a peer: ``ipv4:127.0.0.1:7001,127.0.0.1:7002``, or ``registry:<path>`` |
| BOOKSTORE_LOG_LEVEL | INFO | logging level |
| BOOKSTORE_BREAKER_ENABLED | 1 | ``0``: call peers without circuit breakers (week 8's "before") |
| BOOKSTORE_BREAKER_WINDOW_SIZE | (breaker) | a breaker judges the outcomes of this many latest calls |
| BOOKSTORE_BREAKER_FAILURE_RATE | (breaker) | share of failures in the window that opens a breaker |
| BOOKSTORE_BREAKER_MINIMUM_CALLS | (breaker) | calls the window must hold before that rate may open it |
| BOOKSTORE_BREAKER_CONSECUTIVE_FAILURES | (breaker) | also open after that many failures in a row; 0: off |
| BOOKSTORE_BREAKER_OPEN_TIMEOUT_S | (breaker) | seconds an open breaker refuses calls before trying again |
| BOOKSTORE_BREAKER_HALF_OPEN_CALLS | (breaker) | trials of a half-open breaker; as many successes close it |
| BOOKSTORE_BREAKER_HALF_OPEN_MAX_WAIT_S | (breaker) | trials silent this long re-open it; ``0``: no bound |
| BOOKSTORE_BREAKER_PER_METHOD | (none) | services judged per method, not as a whole, e.g. ``catalog`` |
| BOOKSTORE_RABBITMQ_URL | (found) | AMQP URL of the broker; unset: see ``bookstore.messaging.broker`` |
| BOOKSTORE_MESSAGING_PREFIX | (none) | prefix of every exchange and queue name, so runs never collide |
| BOOKSTORE_OUTBOX_POLL_S | 0.05 | how often the order service's outbox relay looks for new events |
| BOOKSTORE_ORDER_CONCURRENCY | 8 | gateway: most CreateOrder calls in flight (halved while slow) |
| BOOKSTORE_ORDER_QUEUE_S | 30.0 | gateway: seconds a CreateOrder may wait for its turn; then 503 |
| BOOKSTORE_HTTP_HEADER_TIMEOUT_S | 10.0 | gateway: seconds to send a request's head; then 408, close |
| BOOKSTORE_HTTP_BODY_TIMEOUT_S | 10.0 | gateway: seconds to send a request's body; then 408, close |
| BOOKSTORE_TRACING | 1 | ``0``: no spans (``bookstore.observability.config`` has the telemetry settings) |
| BOOKSTORE_TRACE_SAMPLE_RATIO | 1.0 | share of new traces recorded, when OTEL_TRACES_SAMPLER_ARG is unset |
| BOOKSTORE_TRACING_INTERCEPTORS | lean | gRPC spans by the course's ``lean`` interceptors or ``stock`` ones |
| BOOKSTORE_METRICS | 1 | ``0``: count no per-request metrics |
| BOOKSTORE_METRICS_PORT | 0 | port of a gRPC process's ``/metrics``; ``0``: none (the gateway uses its own) |
| BOOKSTORE_PROMETHEUS_URL | (found) | a Prometheus to query; unset: see ``bookstore.observability.stack`` |
| BOOKSTORE_JAEGER_QUERY_URL | (derived) | Jaeger's query API, when OTEL_EXPORTER_OTLP_ENDPOINT is Jaeger |
| BOOKSTORE_QUERY_PORT | 0 | the embedded trace collector's query API port (collector process only) |
| BOOKSTORE_COLLECTOR_MAX_SPANS | 200000 | spans the embedded collector keeps (collector process only) |
| BOOKSTORE_RABBITMQ_IMAGE | rabbitmq:3.13-management | image of a RabbitMQ container |
| BOOKSTORE_MYSQL_IMAGE | mariadb:11.4 | image of a MariaDB container |
| BOOKSTORE_PROMETHEUS_IMAGE | prom/prometheus:v2.55.1 | image of a Prometheus container |
| BOOKSTORE_JAEGER_IMAGE | jaegertracing/all-in-one:1.62.0 | image of a Jaeger all-in-one container |

The ``IMAGE`` settings name the container images of the backing services, for
``bookstore.platform.containers`` and, through the same variables, ``docker-compose.yml``: a lab
without a registry points them at images built locally (docs/containers.md) without editing a
file. The defaults are the official images, at the versions compose runs.

The ``BREAKER`` settings apply to every breaker in the process (see
``bookstore.resilience.interceptor``). Their defaults, marked "(breaker)", are
``BreakerSettings``' own (``bookstore.resilience.breaker``), written down there only: a variable
that is unset reads as ``None`` here and leaves that default as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bookstore.platform import service_catalog
from bookstore.platform.service_catalog import Kind

DEV_JWT_SECRET = "bookstore-dev-secret-change-me-in-production"
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
ORDER_FLOWS = ("saga", "plain")
# The official images of the backing services; BOOKSTORE_<NAME>_IMAGE replaces one.
RABBITMQ_IMAGE = "rabbitmq:3.13-management"
# MariaDB, the MySQL-compatible server the course's tests run against; PyMySQL (the driver
# bookstore.platform.database uses) speaks to it with no extra crypto package.
MYSQL_IMAGE = "mariadb:11.4"
PROMETHEUS_IMAGE = "prom/prometheus:v2.55.1"
JAEGER_IMAGE = "jaegertracing/all-in-one:1.62.0"

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    service: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    replica: int = 0
    work_dir: Path = Path(".bookstore")
    db_url_template: str = ""
    db_pool_size: int = 4
    jwt_secret: str = DEV_JWT_SECRET
    jwt_ttl_s: int = 3600
    deadline_s: float = 2.0
    saga_deadline_s: float = 5.0
    crash_at: str = ""
    order_flow: str = "saga"
    grpc_workers: int = 16
    log_level: str = "INFO"
    targets: Mapping[str, str] = field(default_factory=dict)
    breaker_enabled: bool = True
    # None: unset, so the breaker's own default (BreakerSettings) applies.
    breaker_window_size: int | None = None
    breaker_failure_rate: float | None = None
    breaker_minimum_calls: int | None = None
    breaker_consecutive_failures: int | None = None
    breaker_open_timeout_s: float | None = None
    breaker_half_open_calls: int | None = None
    breaker_half_open_max_wait_s: float | None = None
    breaker_per_method: tuple[str, ...] = ()
    rabbitmq_url: str = ""
    messaging_prefix: str = ""
    outbox_poll_s: float = 0.05
    order_concurrency: int = 8
    order_queue_s: float = 30.0
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 10.0
    rabbitmq_image: str = RABBITMQ_IMAGE
    mysql_image: str = MYSQL_IMAGE
    prometheus_image: str = PROMETHEUS_IMAGE
    jaeger_image: str = JAEGER_IMAGE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        # Each default is the field's own (``d``): one place for each, in the class above.
        d = cls()

        def get(name: str, default: object) -> str:
            return env.get(f"BOOKSTORE_{name}", str(default))

        # Every gRPC service of the catalog can be someone's peer.
        targets = {
            e.name: env[e.target_variable]
            for e in service_catalog.SERVICES
            if e.kind is Kind.SERVICE and env.get(e.target_variable)
        }
        return cls(
            service=get("SERVICE", ""),
            host=get("HOST", d.host),
            port=int(get("PORT", d.port)),
            replica=int(get("REPLICA", d.replica)),
            work_dir=Path(get("WORK_DIR", d.work_dir)),
            db_url_template=get("DB_URL", d.db_url_template),
            db_pool_size=_positive("DB_POOL_SIZE", get("DB_POOL_SIZE", d.db_pool_size)),
            jwt_secret=get("JWT_SECRET", d.jwt_secret),
            jwt_ttl_s=int(get("JWT_TTL_S", d.jwt_ttl_s)),
            deadline_s=float(get("DEADLINE_S", d.deadline_s)),
            saga_deadline_s=float(get("SAGA_DEADLINE_S", d.saga_deadline_s)),
            crash_at=get("CRASH_AT", "").strip(),
            order_flow=_one_of("ORDER_FLOW", get("ORDER_FLOW", "") or d.order_flow, ORDER_FLOWS),
            grpc_workers=int(get("GRPC_WORKERS", d.grpc_workers)),
            log_level=get("LOG_LEVEL", d.log_level),
            targets=targets,
            breaker_enabled=_flag(get("BREAKER_ENABLED", ""), d.breaker_enabled),
            breaker_window_size=_unless_unset(get("BREAKER_WINDOW_SIZE", ""), int),
            breaker_failure_rate=_unless_unset(get("BREAKER_FAILURE_RATE", ""), float),
            breaker_minimum_calls=_unless_unset(get("BREAKER_MINIMUM_CALLS", ""), int),
            breaker_consecutive_failures=_unless_unset(get("BREAKER_CONSECUTIVE_FAILURES", ""), int),
            breaker_open_timeout_s=_unless_unset(get("BREAKER_OPEN_TIMEOUT_S", ""), float),
            breaker_half_open_calls=_unless_unset(get("BREAKER_HALF_OPEN_CALLS", ""), int),
            breaker_half_open_max_wait_s=_unless_unset(get("BREAKER_HALF_OPEN_MAX_WAIT_S", ""), float),
            breaker_per_method=tuple(
                name.strip() for name in get("BREAKER_PER_METHOD", "").split(",") if name.strip()
            ),
            rabbitmq_url=get("RABBITMQ_URL", "").strip(),
            messaging_prefix=get("MESSAGING_PREFIX", "").strip(),
            outbox_poll_s=float(get("OUTBOX_POLL_S", d.outbox_poll_s)),
            order_concurrency=_positive("ORDER_CONCURRENCY", get("ORDER_CONCURRENCY", d.order_concurrency)),
            order_queue_s=float(get("ORDER_QUEUE_S", d.order_queue_s)),
            http_header_timeout_s=float(get("HTTP_HEADER_TIMEOUT_S", d.http_header_timeout_s)),
            http_body_timeout_s=float(get("HTTP_BODY_TIMEOUT_S", d.http_body_timeout_s)),
            rabbitmq_image=get("RABBITMQ_IMAGE", "").strip() or d.rabbitmq_image,
            mysql_image=get("MYSQL_IMAGE", "").strip() or d.mysql_image,
            prometheus_image=get("PROMETHEUS_IMAGE", "").strip() or d.prometheus_image,
            jaeger_image=get("JAEGER_IMAGE", "").strip() or d.jaeger_image,
        )

    def warn_if_development_secret(self) -> None:
        """Log a loud warning when tokens would be signed or checked with the public development key.

        Called by the processes that sign or check tokens (the user service, the gateway, the
        monolith): silent, the fallback would let anyone who reads this file forge a token.
        The launcher always sets a random secret, so a cluster never warns.
        """
        if self.jwt_secret == DEV_JWT_SECRET:
            logging.getLogger(__name__).warning(
                "BOOKSTORE_JWT_SECRET is not set: tokens are signed with the development key, which "
                "is public; set a long random secret wherever anyone but you can reach the services"
            )

    def target(self, service: str) -> str:
        """The gRPC target of a peer service; a clear error if the launcher did not set it."""
        try:
            return self.targets[service]
        except KeyError:
            raise RuntimeError(
                f"no address for the {service} service: set BOOKSTORE_{service.upper()}_TARGET"
            ) from None

    def database_url(self, service: str | None = None) -> str:
        name = service or self.service
        if self.db_url_template:
            return self.db_url_template.replace("{service}", name)
        return f"sqlite:///{(self.work_dir / f'{name}.db').resolve()}"


def _flag(text: str, default: bool) -> bool:
    """A yes/no setting: empty keeps ``default``; 0, false, no and off mean no."""
    word = text.strip().lower()
    return default if not word else word not in FALSE_WORDS


def _unless_unset(value: str, parse: Callable[[str], T]) -> T | None:
    """``value`` parsed; None when it is empty, so that the default of whoever owns it applies."""
    value = value.strip()
    return parse(value) if value else None


def _positive(name: str, value: str) -> int:
    """``value`` as an integer of at least 1; else an error naming the variable."""
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"BOOKSTORE_{name} must be an integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"BOOKSTORE_{name} must be at least 1, got {number}")
    return number


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` normalised, if it is one of ``choices``; else an error naming the variable."""
    chosen = value.strip().lower()
    if chosen not in choices:
        raise ValueError(f"BOOKSTORE_{name} must be one of {', '.join(choices)}; got {value!r}")
    return chosen
