"""The gRPC server runtime every service process shares.

``serve`` runs one service process: it configures logging that names the service,
opens the gRPC server with the fault-injection interceptor, registers the service's own
servicers plus the standard health service, server reflection (so ``grpcurl`` and
notebooks can discover the API) and the AdminService, then serves until SIGTERM or SIGINT.
A service whose ``register`` returns a ``BreakerSnapshots`` function (the order service:
its circuit breakers) has them reported by the AdminService's ``GetStats``.

Telemetry (week 10) is handed in, not imported: this runtime stands on the ground floor and
``bookstore.observability`` stands on it (it instruments channels and servers built here).
``serve`` takes a ``ServiceTelemetry`` (a Protocol: start, interceptors, breakers to export);
each service's ``main`` calls ``bookstore.observability.runtime.run_service``, which is
``serve`` with the process's telemetry wired in: tracing and, when ``BOOKSTORE_METRICS_PORT``
is set, a ``/metrics`` endpoint before anything is built; the server then gets the telemetry
interceptors (outside the fault injector, so injected faults show in traces and metrics), and
the breakers ``register`` returns are exported as metrics.

Shutdown is graceful: health flips to NOT_SERVING first (so balancers stop sending new
calls), then ``server.stop(grace)`` lets calls in flight finish, then the spans still
queued are sent.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bookstore.platform.admin import AdminServicer, BreakerSnapshots
from bookstore.platform.faults import FaultInjectionInterceptor, FaultTable
from bookstore.platform.processes import wait_for_stop_signal
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import admin_pb2, admin_pb2_grpc

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service contributes to its process: a name, full gRPC service names, a registrar.

    ``register`` adds the service's servicers to the server; it returns a ``BreakerSnapshots``
    function when the service keeps circuit breakers in front of its peers, else None.
    """

    name: str
    grpc_service_names: Iterable[str]
    register: Callable[[grpc.Server, Settings], BreakerSnapshots | None]


class StartedTelemetry(Protocol):
    def shutdown(self) -> None:
        """Send what is still queued; called once the server has stopped."""


class ServiceTelemetry(Protocol):
    """What a process's telemetry contributes to ``serve`` (``bookstore.observability`` has one)."""

    def start(self, service: str, host: str) -> StartedTelemetry:
        """Set up this process's telemetry, before any server or channel is built."""

    def server_interceptors(self) -> list[grpc.ServerInterceptor]:
        """The interceptors to put outside the fault injector (none: nothing is recorded)."""

    def watch_breakers(self, breakers: BreakerSnapshots) -> None:
        """Export the process's circuit breakers."""


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {settings.service}[{settings.replica}] %(levelname)s %(name)s: %(message)s",
    )


def build_server(
    definition: ServiceDefinition, settings: Settings, telemetry: ServiceTelemetry | None = None
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Create and start the server; returns it with its bound port and health servicer."""
    table = FaultTable()
    recording = telemetry.server_interceptors() if telemetry else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix=definition.name),
        interceptors=[*recording, FaultInjectionInterceptor(table)],
    )
    breakers = definition.register(server, settings)
    if breakers is not None and telemetry is not None:
        telemetry.watch_breakers(breakers)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminServicer(definition.name, settings.replica, table, breakers), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [
        *definition.grpc_service_names,
        admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    server.start()
    for name in [*definition.grpc_service_names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def serve(
    definition: ServiceDefinition, settings: Settings | None = None, telemetry: ServiceTelemetry | None = None
) -> None:
    """Serve ``definition`` until SIGTERM or SIGINT, then shut down gracefully."""
    settings = settings or Settings.from_env()
    settings = Settings(**{**settings.__dict__, "service": definition.name})
    configure_logging(settings)
    # Before the server and its channels are built: they ask what telemetry to install.
    started = telemetry.start(definition.name, settings.host) if telemetry else None
    server, port, health_servicer = build_server(definition, settings, telemetry)
    log.info("serving on %s:%d (pid-level replica %d)", settings.host, port, settings.replica)

    wait_for_stop_signal(log)
    health_servicer.enter_graceful_shutdown()
    server.stop(SHUTDOWN_GRACE_S).wait()
    if started is not None:
        started.shutdown()
    log.info("stopped")
