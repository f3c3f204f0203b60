"""Week 10: observability. Seeing inside a system of processes from the outside.

Three signals, each answering a different question:

* **Traces** (``tracing``, ``grpc_server``, ``grpc_client``, ``http``, ``propagation``):
  *what happened to this request?* One trace follows an order from the gateway's HTTP
  span through order, catalog, inventory and payment, the saga's steps, and on through
  RabbitMQ to every consumer, each process adding spans linked by W3C ``traceparent``.
  Spans leave every process over OTLP to Jaeger or to the course's embedded collector
  (``collector``), which notebooks query by trace id, service and operation.
* **Metrics** (``metrics``): *how is the system doing overall?* Counters, gauges and
  histograms on each process's ``/metrics``, scraped by Prometheus (``prometheus``) and
  drawn by Grafana (``infra/grafana/dashboards``) or by ``plots``.
* **Logs**: *what did this process say?* Every process already logs with its name; a log
  line that quotes a trace id joins the other two.

What each process calls, once: ``setup_process_telemetry(name, host)``, which reads
``ObservabilityConfig.from_env()`` (see ``config`` for the variables). Library code only
annotates (``annotate_user``, span events) through the OpenTelemetry API and costs nearly
nothing when tracing is off.

When not to: observability is for running systems. A unit test asserts on behaviour, not on
spans; and a metric or span that no dashboard or question uses is noise you pay for.
"""

from __future__ import annotations

from bookstore.observability.business import annotate, annotate_user
from bookstore.observability.config import ObservabilityConfig
from bookstore.observability.metrics import (
    record_consumed,
    record_published,
    render_metrics,
    set_outbox_pending,
    set_queue_depth,
    start_metrics_server,
    watch_admission,
    watch_breakers,
)
from bookstore.observability.propagation import consumer_span, extract_context, inject_headers, producer_span
from bookstore.observability.runtime import (
    ProcessTelemetry,
    instrument_channel,
    server_interceptors,
    setup_process_telemetry,
)
from bookstore.observability.tracing import (
    force_flush,
    setup_tracing,
    shutdown_tracing,
    tracer,
    tracing_enabled,
)

__all__ = [
    "ObservabilityConfig",
    "ProcessTelemetry",
    "annotate",
    "annotate_user",
    "consumer_span",
    "extract_context",
    "force_flush",
    "inject_headers",
    "instrument_channel",
    "producer_span",
    "record_consumed",
    "record_published",
    "render_metrics",
    "server_interceptors",
    "set_outbox_pending",
    "set_queue_depth",
    "setup_process_telemetry",
    "setup_tracing",
    "shutdown_tracing",
    "start_metrics_server",
    "tracer",
    "tracing_enabled",
    "watch_admission",
    "watch_breakers",
]
