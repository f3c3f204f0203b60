"""Fixtures for the observability tests: spans recorded in memory instead of exported."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bookstore.observability import tracing
from bookstore.observability.config import ObservabilityConfig


class Recorded:
    """The spans a test produced, and the provider and tracer that produced them."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter
        self.tracer: trace.Tracer = provider.get_tracer("test")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        matching = [span for span in self.spans() if span.name == name]
        assert len(matching) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return matching[0]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """Tracing on for this process (``tracing.tracer()`` answers), spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = tracing.setup_tracing(
        "unit-test",
        ObservabilityConfig(otlp_endpoint=""),
        processor=SimpleSpanProcessor(exporter),
        set_global=False,
    )
    assert provider is not None
    try:
        yield Recorded(provider, exporter)
    finally:
        tracing.shutdown_tracing()
