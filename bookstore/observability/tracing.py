"""Distributed tracing: one OpenTelemetry tracer provider per process, exporting over OTLP.

**What.** A *trace* is the story of one request across every process it touched; each
process adds *spans* (a named, timed piece of work with attributes and a status) whose
parent links tell who called whom. ``setup_tracing("order", config)`` gives this process an
SDK ``TracerProvider`` whose spans carry ``service.name`` and ``service.version`` and are
sent, in batches, to an OTLP gRPC endpoint: Jaeger, an OpenTelemetry Collector, or the
course's embedded collector (``bookstore.observability.collector``).

**Why batches.** Spans are put in a bounded in-memory queue when they end; a background
thread encodes and sends them a batch at a time. The request path never waits for the
network, and one export call carries hundreds of spans. If the collector is down the queue
fills and the oldest spans are dropped: tracing must never take a service down with it.
The encoding still costs CPU in this process (the thread shares the GIL), which is why the
exporter here uses a leaner encoder (``otlp``) than the stock one.

**Off is cheap.** Without an endpoint (or with ``BOOKSTORE_TRACING=0``) no provider is set
up and ``tracer()`` returns None; the gRPC and HTTP hooks check that once, when a server or
channel is built, and then cost nothing per call. Library code that only *annotates*
(``annotate``, the saga and breaker hooks) goes through the OpenTelemetry API, whose
current span is a no-op object when nothing records.

**When not to.** Sampling (``OTEL_TRACES_SAMPLER_ARG=0.1``) is the lever for very high
request rates; the course keeps 100% because its traffic is small and a learner wants to
find every trace. A span per loop iteration or per SQL row is too fine: spans are for work
that crosses a boundary or that someone will want to see on a timeline.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from bookstore.observability.config import ObservabilityConfig

if TYPE_CHECKING:
    # The SDK is imported when tracing is set up, not by every process that merely could trace.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "bookstore"
# Batching tuned for a few thousand spans per second on loopback: a queue for about two
# seconds of them, batches of 512 (one export call each, so the call's cost is shared), and a
# short delay so a notebook finds its trace within a second. Bigger batches keep more spans
# alive between exports, which makes Python's garbage collector work harder, for no gain.
# OTEL_BSP_* variables, when set, take precedence.
BATCH_DEFAULTS = {
    "OTEL_BSP_MAX_QUEUE_SIZE": 8_192,
    "OTEL_BSP_SCHEDULE_DELAY": 500,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 512,
}
SHUTDOWN_TIMEOUT_MS = 5_000

_lock = threading.Lock()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_interceptors = "lean"


def service_version() -> str:
    """The version of the ``bookstore`` package, as installed (``0+unknown`` when it is not)."""
    try:
        return importlib.metadata.version("bookstore")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def make_resource(service_name: str, extra: Mapping[str, Any] | None = None) -> Resource:
    """The resource every span of this process carries: who produced it."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = {"service.name": service_name, "service.version": service_version()}
    attributes["service.instance.id"] = f"{service_name}-{os.getpid()}"
    attributes.update(extra or {})
    return Resource.create(attributes)


def batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """A ``BatchSpanProcessor`` with the course's defaults, unless OTEL_BSP_* says otherwise."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    chosen = {name: int(os.environ.get(name, "") or default) for name, default in BATCH_DEFAULTS.items()}
    return BatchSpanProcessor(
        exporter,
        max_queue_size=chosen["OTEL_BSP_MAX_QUEUE_SIZE"],
        schedule_delay_millis=chosen["OTEL_BSP_SCHEDULE_DELAY"],
        max_export_batch_size=min(
            chosen["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"], chosen["OTEL_BSP_MAX_QUEUE_SIZE"]
        ),
    )


def otlp_exporter(endpoint: str) -> SpanExporter:
    """An OTLP/gRPC span exporter to ``endpoint`` (``http://host:4317`` or ``host:4317``), no TLS.

    The stock exporter with a leaner encoder (``bookstore.observability.otlp``): the same bytes
    on the wire for less than half the CPU.
    """
    from bookstore.observability.otlp import LeanOTLPSpanExporter

    return LeanOTLPSpanExporter(endpoint=endpoint, insecure=True)


def sampler_for(ratio: float) -> Sampler:
    """Follow the parent's decision; sample new traces at ``ratio`` (1.0: all, without drawing)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    return ParentBased(ALWAYS_ON if ratio >= 1.0 else TraceIdRatioBased(ratio))


def setup_tracing(
    service_name: str,
    config: ObservabilityConfig | None = None,
    *,
    processor: SpanProcessor | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Give this process a tracer provider exporting to ``config.otlp_endpoint``; None if tracing is off.

    ``processor`` replaces the OTLP batch processor (tests pass a ``SimpleSpanProcessor`` over
    an ``InMemorySpanExporter``). The first provider set up also becomes OpenTelemetry's
    global one (unless ``set_global`` is False), so third-party instrumentation records into
    it too. Calling this again replaces this module's provider (after flushing the old one);
    the global stays the first.
    """
    global _provider, _tracer, _interceptors
    config = config or ObservabilityConfig.from_env()
    name = config.service_name or service_name
    if not config.tracing:
        log.info("tracing is off (BOOKSTORE_TRACING=0)")
        return None
    if processor is None and not config.otlp_endpoint:
        log.info("tracing is off: no OTEL_EXPORTER_OTLP_ENDPOINT to send spans to")
        return None
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=make_resource(name), sampler=sampler_for(config.sample_ratio))
    provider.add_span_processor(processor or batch_processor(otlp_exporter(config.otlp_endpoint)))
    with _lock:
        previous, _provider = _provider, provider
        _tracer = provider.get_tracer(INSTRUMENTATION_NAME, service_version())
        _interceptors = config.interceptors
    if previous is not None:
        previous.shutdown()
    if set_global:
        _set_global_once(provider)
    if processor is None:
        log.info(
            "tracing on: %s spans to %s (sampling %.0f%% of new traces)",
            name,
            config.otlp_endpoint,
            config.sample_ratio * 100,
        )
    return provider


def _set_global_once(provider: TracerProvider) -> None:
    # The API allows one global provider per process; a second set only logs a warning.
    if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
        trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer | None:
    """The bookstore tracer of this process, or None while tracing is off."""
    return _tracer


def tracing_enabled() -> bool:
    return _tracer is not None


def tracer_provider() -> TracerProvider | None:
    """This process's tracer provider, or None while tracing is off."""
    return _provider


def interceptor_kind() -> str:
    """``lean`` (the course's gRPC interceptors) or ``stock`` (opentelemetry-instrumentation-grpc's)."""
    return _interceptors


def shutdown_tracing(timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> None:
    """Export the spans still queued, then stop; tracing is off afterwards. Safe to call twice."""
    global _provider, _tracer
    with _lock:
        provider, _provider, _tracer = _provider, None, None
    if provider is None:
        return
    try:
        provider.force_flush(timeout_ms)
    finally:
        provider.shutdown()


def force_flush(timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> bool:
    """Send the queued spans now (a notebook's "show me that trace" needs them exported)."""
    provider = _provider
    return provider.force_flush(timeout_ms) if provider is not None else True


# A process that ends without calling shutdown_tracing still sends what it queued.
atexit.register(shutdown_tracing)
