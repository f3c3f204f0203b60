"""One call per process wires its telemetry: tracing, ``/metrics``, and the gRPC interceptors.

Observability stands on the process runtime (``bookstore.platform``), which does not import
it: the runtime offers seams and this module fills them. ``run_service`` (every gRPC service's
and consumer's ``main``) is ``bookstore.platform.server.serve`` with ``PROCESS_TELEMETRY``
handed in; importing this module makes ``bookstore.platform.channels.open_channel`` pass
each channel through ``instrument_channel`` (the package imports it, so whoever can switch
tracing or metrics on has done so).

``run_service`` and the gateway's ``main`` call
``setup_process_telemetry(name, host)`` before they build anything, then
``shutdown()`` when they stop, which sends the spans still queued. Servers and channels
built afterwards ask ``server_interceptors()`` / ``instrument_channel()`` what to install:
nothing at all when tracing is off and nobody reads this process's metrics, so a plain
process pays nothing for telemetry it does not use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc

from bookstore.observability import metrics, tracing
from bookstore.observability.config import ObservabilityConfig
from bookstore.observability.grpc_client import TelemetryClientInterceptor
from bookstore.observability.grpc_server import TelemetryServerInterceptor
from bookstore.platform import channels, server
from bookstore.platform.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)


@dataclass
class ProcessTelemetry:
    """What ``setup_process_telemetry`` set up: the tracer provider (None: tracing off), the metrics port."""

    service: str
    config: ObservabilityConfig
    tracer_provider: TracerProvider | None
    metrics_port: int | None

    def shutdown(self) -> None:
        """Flush and stop tracing. The metrics server is a daemon thread and ends with the process."""
        tracing.shutdown_tracing()


def setup_process_telemetry(
    service: str,
    host: str = "127.0.0.1",
    config: ObservabilityConfig | None = None,
    *,
    serve_metrics: bool = True,
) -> ProcessTelemetry:
    """Set up tracing for ``service``; if ``BOOKSTORE_METRICS_PORT`` is set, serve ``/metrics`` on ``host``.

    ``serve_metrics=False``: the process serves ``/metrics`` itself (the gateway, on its HTTP
    port), so only the per-call metrics are switched on.
    """
    config = config or ObservabilityConfig.from_env()
    provider = tracing.setup_tracing(service, config)
    port = None
    if not config.metrics:
        log.info("per-request metrics are off (BOOKSTORE_METRICS=0)")
    elif not serve_metrics:
        metrics.enable_metrics()
    elif config.metrics_port:
        port = metrics.start_metrics_server(config.metrics_port, host)
        log.info("metrics on http://%s:%d/metrics", host, port)
    return ProcessTelemetry(service, config, provider, port)


def server_interceptors() -> list[grpc.ServerInterceptor]:
    """The telemetry interceptors for a gRPC server: none when there is nothing to record."""
    tracer, with_metrics = tracing.tracer(), metrics.metrics_enabled()
    chosen: list[grpc.ServerInterceptor] = []
    if tracer is not None and tracing.interceptor_kind() == "stock":
        from opentelemetry.instrumentation.grpc import server_interceptor

        chosen.append(server_interceptor(tracer_provider=tracing.tracer_provider()))
        tracer = None
    if tracer is not None or with_metrics:
        chosen.append(TelemetryServerInterceptor(tracer, with_metrics=with_metrics))
    return chosen


def instrument_channel(channel: grpc.Channel) -> grpc.Channel:
    """``channel`` with this process's client telemetry; ``channel`` itself when nothing is recorded."""
    tracer, with_metrics = tracing.tracer(), metrics.metrics_enabled()
    if tracer is not None and tracing.interceptor_kind() == "stock":
        # The stock interceptor speaks its own interface (grpcext), not grpc's.
        from opentelemetry.instrumentation.grpc import client_interceptor
        from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

        channel = intercept_channel(channel, client_interceptor(tracer_provider=tracing.tracer_provider()))
        tracer = None
    if tracer is not None or with_metrics:
        channel = grpc.intercept_channel(
            channel, TelemetryClientInterceptor(tracer, with_metrics=with_metrics)
        )
    return channel


class _ProcessTelemetry:
    """This module's functions in the shape ``bookstore.platform.server.serve`` asks for."""

    def start(self, service: str, host: str) -> ProcessTelemetry:
        return setup_process_telemetry(service, host)

    def server_interceptors(self) -> list[grpc.ServerInterceptor]:
        return server_interceptors()

    def watch_breakers(self, breakers: server.BreakerSnapshots) -> None:
        # The runtime names only what GetStats reads of a snapshot; what it hands on are the
        # breakers' own snapshots (BreakerRegistry.snapshots), which the metrics read in full.
        metrics.watch_breakers(cast(metrics.BreakerSnapshots, breakers))


PROCESS_TELEMETRY = _ProcessTelemetry()


def run_service(definition: server.ServiceDefinition, settings: Settings | None = None) -> None:
    """A service process's ``main``: ``serve(definition)`` with this process's telemetry."""
    server.serve(definition, settings, PROCESS_TELEMETRY)


channels.instrument_channels_with(instrument_channel)
