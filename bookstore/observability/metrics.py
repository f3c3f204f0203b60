"""Metrics: numbers every process keeps about itself, scraped by Prometheus from ``/metrics``.

**What.** Where a trace tells the story of *one* request, a metric summarises *all* of them:
how many per second, how many failed, how long the slowest 1% took, what is in flight now.
Each process keeps its metrics in memory (``prometheus_client``'s default registry) and
serves them as text on ``/metrics``; Prometheus fetches that page every few seconds
(*pull*), stores the series, and answers PromQL over them.

**The four types, and where each fits here.**

* ``Counter``: only goes up (resets when the process restarts); you look at its ``rate()``.
  Requests, orders, saga outcomes, messages.
* ``Gauge``: a value now, up and down. Requests and orders in flight, a breaker's state,
  a queue's depth.
* ``Histogram``: counts observations per bucket (``le`` = "less or equal"), so Prometheus
  can estimate any quantile across replicas with ``histogram_quantile``. Durations. The
  buckets start at 100 microseconds: a loopback gRPC call takes about half a millisecond,
  and the default buckets (from 5 ms) would put nearly every call in the first one.
* ``Summary``: here only a count and a sum, so an average (``rate(sum)/rate(count)``)
  without buckets. The value of orders, where nobody asks for a percentile.

**Labels stay bounded.** Every label value comes from a short, fixed list (a route
*template* such as ``/orders/{order_id}``, a gRPC method, a status code), never from user
input or ids: each label combination is one more time series in Prometheus, forever.
User and order ids belong on spans, not on metrics.

**When not to.** A metric cannot tell you *which* request was slow; follow an exemplar or
search traces for that. And a metric nobody looks at is a cost with no benefit.

The ``circuit_breaker_*`` metrics are not counted on the call path at all: a collector reads
the breakers' own snapshots when Prometheus scrapes (``watch_breakers``), so they cost
nothing per call and can never disagree with ``/internal/breakers``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import prometheus_client
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Summary
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bookstore.resilience.breaker import BreakerSnapshot

# One ``x_created`` series per counter and histogram doubles the series count for a timestamp
# no dashboard here reads.
prometheus_client.disable_created_metrics()

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds, from 100 us (a loopback call) to 10 s (beyond any deadline in the course)."""

# ----------------------------------------------------------------------------- HTTP (gateway)

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from an HTTP request's arrival to its response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge("http_requests_in_progress", "HTTP requests being handled now.", ["method"])

# ----------------------------------------------------------------------------- gRPC

GRPC_SERVER_HANDLED = Counter(
    "grpc_server_handled_total",
    "gRPC calls this server completed, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_SERVER_DURATION = Histogram(
    "grpc_server_handling_seconds",
    "Time this server spent on a gRPC call, by service and method.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_CLIENT_HANDLED = Counter(
    "grpc_client_handled_total",
    "gRPC calls this process made that completed, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_CLIENT_DURATION = Histogram(
    "grpc_client_handling_seconds",
    "Time a gRPC call this process made took until its answer, by service and method.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)

# ----------------------------------------------------------------------------- orders

ORDERS_CREATED = Counter(
    "orders_created_total",
    "Orders the order service answered with, by status (approved, rejected, pending).",
    ["status"],
)
ORDERS_FAILED = Counter(
    "orders_failed_total",
    "CreateOrder calls that ended without an order, by gRPC status (e.g. unavailable).",
    ["reason"],
)
ORDER_DURATION = Histogram(
    "order_creation_duration_seconds",
    "Time the order service took to answer a CreateOrder call.",
    buckets=LATENCY_BUCKETS,
)
ORDERS_IN_PROGRESS = Gauge("orders_in_progress", "CreateOrder calls being handled now.")
ORDER_VALUE = Summary("order_value_cents", "Total of each order answered (its sum over its count: the mean).")

# ----------------------------------------------------------------------------- sagas

SAGA_EXECUTIONS = Counter(
    "saga_executions_total",
    "Saga runs (new or resumed) by saga and outcome: succeeded, compensated, compensating, error.",
    ["saga", "outcome"],
)
SAGA_DURATION = Histogram(
    "saga_execution_duration_seconds",
    "Time a saga run took, forward steps and compensations included.",
    ["saga"],
    buckets=LATENCY_BUCKETS,
)
SAGA_COMPENSATIONS = Counter(
    "saga_compensations_total",
    "Compensation attempts by saga, step and outcome (succeeded, failed).",
    ["saga", "step", "outcome"],
)

# ----------------------------------------------------------------------------- messaging

MESSAGES_PUBLISHED = Counter(
    "messages_published_total",
    "Messages published to the broker, by exchange and routing key.",
    ["exchange", "routing_key"],
)
MESSAGES_CONSUMED = Counter(
    "messages_consumed_total",
    "Messages a consumer finished with, by queue and outcome (acked, duplicate, retried, dead_lettered).",
    ["queue", "outcome"],
)
MESSAGE_DURATION = Histogram(
    "message_processing_duration_seconds",
    "Time a consumer spent on one message, by queue.",
    ["queue"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_DEPTH = Gauge(
    "message_queue_depth", "Messages waiting in a queue, as last read from the broker.", ["queue"]
)
OUTBOX_PENDING = Gauge("outbox_pending_events", "Events in the order service's outbox not yet published.")


def record_published(exchange: str, routing_key: str, n: int = 1) -> None:
    """Count ``n`` messages published (call it once confirmed, when publishing with confirms)."""
    MESSAGES_PUBLISHED.labels(exchange, routing_key).inc(n)


def record_consumed(queue: str, outcome: str, seconds: float) -> None:
    """Count one message a consumer finished with and how long it took.

    ``outcome`` is one of a few fixed words: ``acked``, ``duplicate``, ``retried``,
    ``dead_lettered``.
    """
    MESSAGES_CONSUMED.labels(queue, outcome).inc()
    MESSAGE_DURATION.labels(queue).observe(seconds)


def set_queue_depth(queue: str, depth: int) -> None:
    QUEUE_DEPTH.labels(queue).set(depth)


def set_outbox_pending(count: int) -> None:
    OUTBOX_PENDING.set(count)


# ----------------------------------------------------------------------------- circuit breakers

BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
"""``circuit_breaker_state``'s values: 0 CLOSED, 1 HALF_OPEN, 2 OPEN (higher is worse)."""
BREAKER_OUTCOMES = ("success", "failure", "rejected", "abandoned", "ignored_stale")

BreakerSnapshots = Callable[[], "Iterable[BreakerSnapshot]"]


class _Source:
    """One watched ``snapshots`` function; a bound method is held weakly, so a registry a test
    dropped does not live on here (nor in the metrics)."""

    def __init__(self, snapshots: BreakerSnapshots) -> None:
        self._method = weakref.WeakMethod(snapshots) if hasattr(snapshots, "__self__") else None
        self._function = None if self._method is not None else snapshots

    def get(self) -> BreakerSnapshots | None:
        return self._method() if self._method is not None else self._function


class BreakerCollector(Collector):
    """Turns the snapshots of every watched breaker registry into metrics, at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[_Source] = []

    def watch(self, snapshots: BreakerSnapshots) -> None:
        with self._lock:
            self._sources.append(_Source(snapshots))

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        state, requests = self._families()
        with self._lock:
            sources = list(self._sources)
        alive = []
        for source in sources:
            read = source.get()
            if read is None:
                continue
            alive.append(source)
            for snapshot in read():
                state.add_metric([snapshot.name], BREAKER_STATE_VALUES[snapshot.state.value])
                totals = snapshot.totals
                counts = (
                    totals.successes,
                    totals.failures,
                    totals.rejected,
                    totals.abandoned,
                    totals.ignored_stale,
                )
                for outcome, count in zip(BREAKER_OUTCOMES, counts, strict=True):
                    requests.add_metric([snapshot.name, outcome], count)
        if len(alive) != len(sources):
            with self._lock:
                self._sources = [s for s in self._sources if any(s is kept for kept in alive)]
        return [state, requests]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "circuit_breaker_state",
                "State of each circuit breaker: 0 CLOSED, 1 HALF_OPEN, 2 OPEN.",
                labels=["breaker"],
            ),
            CounterMetricFamily(
                "circuit_breaker_requests",
                "Calls offered to each circuit breaker, by outcome (rejected: refused while open).",
                labels=["breaker", "outcome"],
            ),
        )


BREAKERS = BreakerCollector()
REGISTRY.register(BREAKERS)


def watch_breakers(snapshots: BreakerSnapshots) -> None:
    """Export the breakers behind ``snapshots`` (e.g. ``registry.snapshots``) as ``circuit_breaker_*``."""
    BREAKERS.watch(snapshots)


# ----------------------------------------------------------------------------- the gateway's order admission


class AdmissionReading(Protocol):
    """What the metrics read of ``bookstore.gateway.admission.Admission``."""

    @property
    def bound(self) -> int: ...

    @property
    def cuts(self) -> int: ...


class AdmissionCollector(Collector):
    """The bound and the cuts of the order admission the gateway watches, read at scrape time.

    The adaptive bound (``bookstore.gateway.admission``) falls when orders slow down: a bound
    below its limit on a dashboard says the gateway is holding orders back, and why requests
    wait or get 503. One gateway per process; the admission is held weakly.
    """

    def __init__(self) -> None:
        self._watched: weakref.ref[AdmissionReading] | None = None

    def watch(self, admission: AdmissionReading) -> None:
        self._watched = weakref.ref(admission)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        bound, cuts = self._families()
        admission = self._watched() if self._watched is not None else None
        if admission is not None:
            bound.add_metric([], admission.bound)
            cuts.add_metric([], admission.cuts)
        return [bound, cuts]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "gateway_order_admission_bound", "CreateOrder calls the gateway lets be in flight now."
            ),
            CounterMetricFamily(
                "gateway_order_admission_cuts", "Times slow orders halved the gateway's admission bound."
            ),
        )


ADMISSION = AdmissionCollector()
REGISTRY.register(ADMISSION)


def watch_admission(admission: AdmissionReading) -> None:
    """Export ``admission``'s bound and cuts as ``gateway_order_admission_*``."""
    ADMISSION.watch(admission)


# ----------------------------------------------------------------------------- exposing them

_enabled = threading.Event()


def enable_metrics() -> None:
    """Say that someone can read this process's metrics, so per-call gRPC metrics are worth counting."""
    _enabled.set()


def metrics_enabled() -> bool:
    return _enabled.is_set()


def start_metrics_server(port: int = 0, host: str = "127.0.0.1") -> int:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; the bound port (``port=0``: a free one)."""
    server, _thread = prometheus_client.start_http_server(port, addr=host)
    enable_metrics()
    return int(server.server_port)


def render_metrics() -> tuple[bytes, str]:
    """This process's metrics in Prometheus's text format, and the content type to send them with."""
    return prometheus_client.generate_latest(REGISTRY), prometheus_client.CONTENT_TYPE_LATEST


def metric_names(registry: Any = REGISTRY) -> Iterator[tuple[str, str]]:
    """``(name, type)`` of every metric family in ``registry``, as Prometheus names them.

    A counter's family is ``http_requests`` while its samples are ``http_requests_total``;
    a histogram's samples add ``_bucket``, ``_sum`` and ``_count``.
    """
    for family in registry.collect():
        yield family.name, family.type


def exported_series_names(registry: Any = REGISTRY) -> set[str]:
    """Every sample name a scrape of ``registry`` can show (what a PromQL selector may name)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count", ""),
        "gauge": ("",),
    }
    names = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names
