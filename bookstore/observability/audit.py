"""Auditing an instrumentation choice: what a span and a histogram cost and allow under a load.

**What.** Someone instruments a handler: one span per call (a name, some attributes) and one
latency histogram (some labels). Those choices have consequences that only show under
traffic. ``audit_instrumentation`` replays a load of calls through the handler's
``record(tracer, histogram, item, seconds)`` function, with a real OpenTelemetry SDK tracer
(spans kept in memory) and a real ``prometheus_client`` histogram, and measures:

* **series**: how many time series the histogram exports; every distinct combination of
  label values adds one per bucket, plus ``+Inf``, ``_sum`` and ``_count``;
* **purity**: for a field such as an order's status, whether every series holds calls of one
  value only (else a dashboard cannot split by it);
* **span names**: how many distinct names the spans have (a name is a *kind* of work);
* **findability**: which traces a search for an attribute value (an order id, a user id)
  returns, as Jaeger's tag search would, against the traces the calls really made.

**Why replay rather than read the code.** The same decision can be written many ways; what
matters is the data it produces. This module is the measuring side of week 10's design
exercise and of its checks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Histogram

from bookstore.observability.metrics import LATENCY_BUCKETS

Item = Mapping[str, Any]
Record = Callable[[Tracer, Histogram, Item, float], object]

HISTOGRAM_NAME = "checkout_seconds"


@dataclass
class Audit:
    """What one load through an instrumentation produced."""

    calls: int
    series: int
    span_names: set[str]
    # per call: the trace ids of the spans it produced
    traces_per_call: list[set[str]]
    # per series (label values): the values of the ``purity_field`` of the calls it counted
    field_values_per_series: dict[tuple[str, ...], set[Any]]
    # calls whose observation did not add exactly one to exactly one series (with its seconds)
    miscounted: list[int] = field(default_factory=list)
    spans: list[ReadableSpan] = field(default_factory=list)

    def mixed_series(self) -> dict[tuple[str, ...], set[Any]]:
        """Series that counted calls with more than one value of the purity field."""
        return {labels: values for labels, values in self.field_values_per_series.items() if len(values) > 1}

    def traces_with_attribute_value(self, value: Any) -> set[str]:
        """The trace ids of the spans having an attribute equal to ``value`` (a tag search)."""
        return {
            f"{span.context.trace_id:032x}"
            for span in self.spans
            if span.context is not None and value in dict(span.attributes or {}).values()
        }


def checkout_histogram(labels: Sequence[str], registry: CollectorRegistry) -> Histogram:
    """The latency histogram the design exercise records into, with the chosen label names."""
    return Histogram(
        HISTOGRAM_NAME, "checkout latency", list(labels), buckets=LATENCY_BUCKETS, registry=registry
    )


def _counts(registry: CollectorRegistry) -> dict[tuple[str, ...], tuple[float, float]]:
    """(count, sum) of every series of the histogram, by its label values."""
    found: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for family in registry.collect():
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            flat = tuple(f"{k}={v}" for k, v in key if k != "le")
            if sample.name == f"{HISTOGRAM_NAME}_count":
                found[flat][0] = sample.value
            elif sample.name == f"{HISTOGRAM_NAME}_sum":
                found[flat][1] = sample.value
    return {labels: (count, total) for labels, (count, total) in found.items()}


def _series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def audit_instrumentation(
    record: Record,
    labels: Sequence[str],
    load: Iterable[tuple[Item, float]],
    *,
    purity_field: str | None = None,
    track_series: bool = True,
) -> Audit:
    """Replay ``load`` ((item, seconds) pairs) through ``record`` and measure what it produced.

    ``track_series=False`` skips the per-call accounting (purity, miscounts), which costs a
    collection of the registry per call: use it for a large load measured only for its size.
    """
    registry = CollectorRegistry()
    histogram = checkout_histogram(labels, registry)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("audit")
    traces_per_call: list[set[str]] = []
    per_series: dict[tuple[str, ...], set[Any]] = defaultdict(set)
    miscounted: list[int] = []
    before = _counts(registry) if track_series else {}
    seen = 0
    calls = 0
    for calls, (item, seconds) in enumerate(load, start=1):
        record(tracer, histogram, item, seconds)
        finished = exporter.get_finished_spans()
        new = finished[seen:]
        traces_per_call.append({f"{s.context.trace_id:032x}" for s in new if s.context is not None})
        seen = len(finished)
        if not track_series:
            continue
        after = _counts(registry)
        grown = [key for key, (count, _) in after.items() if count != before.get(key, (0.0, 0.0))[0]]
        if len(grown) != 1 or not _one_observation(after[grown[0]], before.get(grown[0]), seconds):
            miscounted.append(calls - 1)
        for key in grown:
            if purity_field is not None:
                per_series[key].add(item.get(purity_field))
        before = after
    spans = list(exporter.get_finished_spans())
    provider.shutdown()
    return Audit(
        calls=calls,
        series=_series(registry),
        span_names={span.name for span in spans},
        traces_per_call=traces_per_call,
        field_values_per_series=dict(per_series),
        miscounted=miscounted,
        spans=spans,
    )


def _one_observation(after: tuple[float, float], before: tuple[float, float] | None, seconds: float) -> bool:
    count, total = before or (0.0, 0.0)
    return after[0] == count + 1 and abs(after[1] - total - seconds) <= 1e-9 * max(1.0, abs(seconds))


STATUSES = ("APPROVED", "REJECTED", "FAILED")
PAYMENT_METHODS = ("card", "paypal", "voucher")


def checkout_load(orders: int, users: int, *, seed: int = 0) -> list[tuple[dict[str, Any], float]]:
    """``orders`` checkouts by ``users`` customers, each with its latency in seconds.

    Statuses and payment methods cycle through all nine combinations every nine orders, so two
    loads of different sizes produce the same label combinations
    unless a label takes its values from something that grows with traffic.
    """
    import random

    draw = random.Random(seed)
    load = []
    for n in range(orders):
        order = {
            "order_id": f"ord-{draw.getrandbits(48):012x}",
            "user_id": f"user-{draw.randrange(users)}",
            "status": STATUSES[n % len(STATUSES)],
            "payment_method": PAYMENT_METHODS[(n // len(STATUSES)) % len(PAYMENT_METHODS)],
            "items": 1 + draw.randrange(5),
            "total_cents": 500 + draw.randrange(20_000),
            "client_ip": f"10.{draw.randrange(256)}.{draw.randrange(256)}.{draw.randrange(1, 255)}",
        }
        load.append((order, round(draw.lognormvariate(-3.0, 0.6), 6)))
    return load
