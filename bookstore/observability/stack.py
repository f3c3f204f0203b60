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

A way that is there but fails (an engine that cannot pull the image, a binary that exits)
counts as absent: resolution moves on to the next way. Ending on the last way, the embedded
collector or the direct scrape, is said in one line naming why, once per process
(``bookstore.platform.notices``), because the notebook's pictures then come from it.

Whatever this module starts, ``stop()`` stops. A detached cluster writes each backend's
``describe()`` into its state file; ``reopen()`` gives a cluster that attaches later the same
endpoints to read from, owning (and so stopping) nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from bookstore.observability.collector import CollectorClient, CollectorProcess, TraceQueryClient
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
from bookstore.platform.notices import say_once

log = logging.getLogger(__name__)

JAEGER_QUERY_PORT = 16686
EMBEDDED = "embedded collector"  # the kind of trace backend that is read with CollectorClient

_T = TypeVar("_T")


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

    def describe(self) -> dict[str, str]:
        """Where spans go and where they are read back: what a state file keeps."""
        return {"otlp_endpoint": self.otlp_endpoint, "query_url": self.reader.url, "kind": self.kind}

    @classmethod
    def reopen(cls, described: Mapping[str, str]) -> TraceBackend:
        """The backend ``describe()`` wrote, read from here, with no process of its own to stop."""
        url = described["query_url"]
        reader = CollectorClient(url) if described["kind"] == EMBEDDED else JaegerClient(url)
        return cls(described["otlp_endpoint"], reader, described["kind"])


def start_trace_backend(log_dir: Path, environ: Mapping[str, str] | None = None) -> TraceBackend:
    env = os.environ if environ is None else environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        host = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}").hostname or "127.0.0.1"
        query_url = env.get("BOOKSTORE_JAEGER_QUERY_URL") or f"http://{host}:{JAEGER_QUERY_PORT}"
        return TraceBackend(endpoint, JaegerClient(query_url), "configured")
    jaeger, why = _from_a_container(lambda: (containers.otlp_endpoint(), containers.jaeger_query_url()))
    if jaeger is not None:
        otlp_endpoint, query_url = jaeger
        return TraceBackend(otlp_endpoint, JaegerClient(query_url), "jaeger container")
    say_once(
        f"Jaeger was not found (no OTEL_EXPORTER_OTLP_ENDPOINT; {why}): "
        "traces go to the embedded collector, read back with cluster.traces"
    )
    collector = CollectorProcess(log_dir / "collector.log").start()
    return TraceBackend(collector.otlp_endpoint, collector.client(), EMBEDDED, collector)


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

    def update_targets(self, targets: Mapping[str, Sequence[str]]) -> bool:
        """Scrape these addresses from now on; False where this backend cannot follow a change.

        A Prometheus binary started here discovers its targets from files and follows at once;
        a configured server or a container keeps the targets it was given (restart the cluster
        to have them scrape new replicas).
        """
        if self.server is None:
            return False
        self.server.update_targets(targets)
        return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def describe(self) -> dict[str, str | None]:
        """The Prometheus to query (None: scrape directly) and what it is: what a state file keeps."""
        return {"url": self.url, "kind": self.kind}

    @classmethod
    def reopen(cls, described: Mapping[str, str | None]) -> MetricsBackend:
        """The backend ``describe()`` wrote; it queries the same server but neither stops nor
        re-targets it (that stays with the cluster that started it)."""
        return cls(described.get("url"), str(described.get("kind") or "none"))

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
    missing = []
    if prometheus_binary() is None:
        missing.append("no `prometheus` on PATH")
    else:
        try:
            server = start_prometheus(targets, work_dir)
        except (RuntimeError, OSError) as error:  # it exited, or never answered: as if absent
            missing.append(f"the `prometheus` binary did not start: {containers.describe_failure(error)}")
        else:
            return MetricsBackend(server.url, "binary", server)
    url, why = _from_a_container(
        lambda: containers.prometheus_url(
            write_prometheus_config(targets, work_dir / "prometheus" / "prometheus.yml")
        )
    )
    if url is not None:
        return MetricsBackend(url, "container")
    missing.append(why)
    say_once(
        f"Prometheus was not found ({'; '.join(missing)}): "
        "metrics and their plots come from a direct scrape of each /metrics"
    )
    return MetricsBackend(None, "none")


def _from_a_container(start: Callable[[], _T]) -> tuple[_T | None, str]:
    """``start()``'s result, or None and one line saying why no container could be had."""
    if not containers.docker_available():
        return None, "no Docker engine answers"
    try:
        return start(), ""
    except containers.ContainerUnavailable as error:
        return None, error.cause
