"""Where a cluster's telemetry goes: the trace store and the metrics server, found as the design says.

Traces, in this order:

1. ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (a Jaeger or a collector someone runs, e.g. the
   compose stack): every process exports there; traces are read back from Jaeger's query API
   at ``BOOKSTORE_JAEGER_QUERY_URL`` (default: port 16686 on the endpoint's host);
2. a Docker engine answers: a Jaeger all-in-one container (testcontainers);
3. otherwise the course's embedded collector, as a child process of the launcher.

Metrics are always served by each process on its own ``/metrics``; who scrapes them:

1. ``BOOKSTORE_PROMETHEUS_URL`` is set: that Prometheus (which scrapes by its own configuration);
2. a ``prometheus`` binary is on PATH: one started for this cluster, scraping its ports every second;
3. a Docker engine answers: a Prometheus container with the same configuration;
4. otherwise none: notebooks scrape each ``/metrics`` themselves (``ScrapeHistory``).

Whatever this module starts, ``stop()`` stops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bookstore.observability.collector import CollectorProcess, TraceQueryClient
from bookstore.observability.jaeger import JaegerClient
from bookstore.observability.prometheus import (
    PrometheusServer,
    PrometheusUnavailable,
    Sample,
    Series,
    prometheus_binary,
    query,
    query_range,
    start_prometheus,
    wait_for_targets,
    write_prometheus_config,
)
from bookstore.platform import containers

log = logging.getLogger(__name__)

JAEGER_QUERY_PORT = 16686


@dataclass
class TraceBackend:
    """Where spans go (``otlp_endpoint``), how to read them back, and what to stop."""

    otlp_endpoint: str
    reader: TraceQueryClient
    kind: str  # "configured", "jaeger container" or "embedded collector"
    process: CollectorProcess | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def start_trace_backend(log_dir: Path, environ: Mapping[str, str] | None = None) -> TraceBackend:
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        host = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}").hostname or "127.0.0.1"
        query_url = env.get("BOOKSTORE_JAEGER_QUERY_URL") or f"http://{host}:{JAEGER_QUERY_PORT}"
        return TraceBackend(endpoint, JaegerClient(query_url), "configured")
    if containers.docker_available():
        return TraceBackend(
            containers.otlp_endpoint(), JaegerClient(containers.jaeger_query_url()), "jaeger container"
        )
    collector = CollectorProcess(log_dir / "collector.log").start()
    return TraceBackend(collector.otlp_endpoint, collector.client(), "embedded collector", collector)


@dataclass
class MetricsBackend:
    """The Prometheus scraping a cluster, if any; ``None`` url means "scrape /metrics yourself"."""

    url: str | None
    kind: str  # "configured", "binary", "container" or "none"
    server: PrometheusServer | None = None

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        return query(self._url(), promql, at)

    def query_range(self, promql: str, start: float, end: float, step_s: float = 1.0) -> list[Series]:
        return query_range(self._url(), promql, start, end, step_s)

    def wait_for_targets(
        self, jobs: Iterable[str] | None = None, timeout_s: float = 30.0
    ) -> dict[str, float]:
        """Poll until every job (or those named) is scraped with ``up == 1``; job -> up."""
        return wait_for_targets(self._url(), jobs, timeout_s)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _url(self) -> str:
        if self.url is None:
            raise PrometheusUnavailable(
                "no Prometheus for this cluster: set BOOKSTORE_PROMETHEUS_URL, install `prometheus`, "
                "or start a Docker engine; meanwhile scrape /metrics directly (ScrapeHistory)"
            )
        return self.url


def start_metrics_backend(
    targets: Mapping[str, Sequence[str]], work_dir: Path, environ: Mapping[str, str] | None = None
) -> MetricsBackend:
    env = os.environ if environ is None else environ
    configured = env.get("BOOKSTORE_PROMETHEUS_URL")
    if configured:
        return MetricsBackend(configured.rstrip("/"), "configured")
    if prometheus_binary() is not None:
        server = start_prometheus(targets, work_dir)
        return MetricsBackend(server.url, "binary", server)
    if containers.docker_available():
        config = write_prometheus_config(targets, work_dir / "prometheus" / "prometheus.yml")
        return MetricsBackend(containers.prometheus_url(config), "container")
    log.info("no Prometheus: notebooks scrape each /metrics directly")
    return MetricsBackend(None, "none")
