"""The gRPC server runtime every service process shares.

``run_service`` is each service's ``main``: it configures logging that names the service,
opens the gRPC server with the fault-injection interceptor, registers the service's own
servicers plus the standard health service, server reflection (so ``grpcurl`` and
notebooks can discover the API) and the AdminService, then serves until SIGTERM or SIGINT.
A service whose ``register`` returns a ``BreakerSnapshots`` function (the order service:
its circuit breakers) has them reported by the AdminService's ``GetStats``.

Telemetry (week 10, ``bookstore.observability``): ``run_service`` sets up tracing and, when
``BOOKSTORE_METRICS_PORT`` is set, a ``/metrics`` endpoint, before anything is built; the
server then gets the telemetry interceptor (outside the fault injector, so injected faults
show in traces and metrics), and the breakers ``register`` returns are exported as metrics.

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

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bookstore.observability import server_interceptors, setup_process_telemetry, watch_breakers
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


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {settings.service}[{settings.replica}] %(levelname)s %(name)s: %(message)s",
    )


def build_server(
    definition: ServiceDefinition, settings: Settings
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Create and start the server; returns it with its bound port and health servicer."""
    table = FaultTable()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix=definition.name),
        interceptors=[*server_interceptors(), FaultInjectionInterceptor(table)],
    )
    breakers = definition.register(server, settings)
    if breakers is not None:
        watch_breakers(breakers)
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


def run_service(definition: ServiceDefinition, settings: Settings | None = None) -> None:
    """Serve ``definition`` until SIGTERM or SIGINT, then shut down gracefully."""
    settings = settings or Settings.from_env()
    settings = Settings(**{**settings.__dict__, "service": definition.name})
    configure_logging(settings)
    # Before the server and its channels are built: they ask what telemetry to install.
    telemetry = setup_process_telemetry(definition.name, settings.host)
    server, port, health_servicer = build_server(definition, settings)
    log.info("serving on %s:%d (pid-level replica %d)", settings.host, port, settings.replica)

    wait_for_stop_signal(log)
    health_servicer.enter_graceful_shutdown()
    server.stop(SHUTDOWN_GRACE_S).wait()
    telemetry.shutdown()
    log.info("stopped")
