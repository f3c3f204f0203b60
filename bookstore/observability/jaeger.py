"""Reading traces back from Jaeger, with the same records as the embedded collector's client.

When spans go to Jaeger (``OTEL_EXPORTER_OTLP_ENDPOINT`` at its OTLP port, 4317), its query
service (port 16686) answers the same questions over HTTP: a trace by id, recent traces by
service and operation. ``JaegerClient`` reads those answers into ``SpanRecord`` and
``TraceSummary``, so a notebook's code does not change with the backend::

    client = JaegerClient("http://127.0.0.1:16686")      # or CollectorClient(collector_url)
    plot_waterfall(client.wait_for_trace(trace_id, services=["gateway", "order"]))

Jaeger's JSON differs from OTLP in three ways this module undoes: times are microseconds,
a span's kind and status are tags (``span.kind``, ``otel.status_code``), and span events
are "logs" whose ``event`` field holds the name. Microseconds lose the nanoseconds: fine for
a plot, not for comparing with the exporter's own records.

This is the HTTP API behind Jaeger's UI (``/api/...``), which Jaeger does not promise to keep
stable; the course pins the Jaeger image it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bookstore.observability.collector import SpanEventRecord, SpanRecord, TraceQueryClient, TraceSummary

_RESERVED_TAGS = frozenset({"span.kind", "otel.status_code", "otel.status_description", "error"})


def _values(fields: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {field["key"]: field.get("value") for field in fields}


def spans_of(trace: Mapping[str, Any]) -> list[SpanRecord]:
    """One trace of Jaeger's ``/api/traces`` JSON as span records, earliest first."""
    services = {
        pid: process.get("serviceName", "unknown_service") for pid, process in trace["processes"].items()
    }
    records = []
    for span in trace["spans"]:
        tags = _values(span.get("tags") or ())
        parent = next(
            (ref["spanID"] for ref in span.get("references") or () if ref.get("refType") == "CHILD_OF"), None
        )
        events = []
        for log in span.get("logs") or ():
            fields = _values(log.get("fields") or ())
            name = str(fields.pop("event", "log"))
            events.append(SpanEventRecord(name, int(log["timestamp"]) * 1000, fields))
        start_ns = int(span["startTime"]) * 1000
        records.append(
            SpanRecord(
                trace_id=str(span["traceID"]).rjust(32, "0"),
                span_id=str(span["spanID"]).rjust(16, "0"),
                parent_id=str(parent).rjust(16, "0") if parent else None,
                name=span["operationName"],
                service=services.get(span.get("processID"), "unknown_service"),
                kind=str(tags.get("span.kind", "internal")).upper(),
                start_ns=start_ns,
                end_ns=start_ns + int(span["duration"]) * 1000,
                attributes={k: v for k, v in tags.items() if k not in _RESERVED_TAGS},
                status=str(tags.get("otel.status_code", "ERROR" if tags.get("error") else "UNSET")).upper(),
                status_message=str(tags.get("otel.status_description", "")),
                events=tuple(events),
            )
        )
    return sorted(records, key=lambda record: record.start_ns)


def summary_of(spans: list[SpanRecord]) -> TraceSummary:
    ids = {span.span_id for span in spans}
    roots = [span for span in spans if span.parent_id not in ids] or spans
    root = min(roots, key=lambda span: span.start_ns)
    return TraceSummary(
        trace_id=root.trace_id,
        root_name=root.name,
        root_service=root.service,
        services=tuple(sorted({span.service for span in spans})),
        span_count=len(spans),
        start_ns=min(span.start_ns for span in spans),
        end_ns=max(span.end_ns for span in spans),
        error=any(span.is_error for span in spans),
    )


class JaegerClient(TraceQueryClient):
    """Reads Jaeger's query API: traces by id, by service and operation."""

    def trace(self, trace_id: str) -> list[SpanRecord]:
        body = self._get(f"/api/traces/{trace_id}", missing_ok=True)
        data = body.get("data") or []
        return spans_of(data[0]) if data else []

    def traces(self, service: str, operation: str = "", limit: int = 20) -> list[TraceSummary]:
        """Jaeger needs a service to search by (the collector's client does not)."""
        body = self._get("/api/traces", service=service, operation=operation, limit=limit)
        found = [summary_of(spans_of(trace)) for trace in body.get("data") or [] if trace.get("spans")]
        return sorted(found, key=lambda summary: summary.start_ns, reverse=True)

    def services(self) -> list[str]:
        return sorted(self._get("/api/services").get("data") or [])
