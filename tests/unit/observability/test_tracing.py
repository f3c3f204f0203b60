"""Setting up tracing: a provider with the service's resource, or nothing at all."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bookstore.observability import tracing
from bookstore.observability.config import ObservabilityConfig

from .conftest import Recorded


def test_without_an_endpoint_tracing_stays_off_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bookstore.observability.tracing"):
        assert tracing.setup_tracing("order", ObservabilityConfig()) is None
    assert tracing.tracer() is None and not tracing.tracing_enabled()
    assert "no OTEL_EXPORTER_OTLP_ENDPOINT" in caplog.text


def test_switched_off_tracing_sets_up_nothing_even_with_an_endpoint() -> None:
    config = ObservabilityConfig(tracing=False, otlp_endpoint="http://127.0.0.1:1")
    assert tracing.setup_tracing("order", config) is None
    assert tracing.tracer() is None


def test_spans_carry_the_service_name_and_the_package_version(recorded: Recorded) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    tracer.start_span("work").end()
    (span,) = recorded.spans()
    assert span.resource.attributes["service.name"] == "unit-test"
    assert span.resource.attributes["service.version"] == tracing.service_version()
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name == "bookstore"


def test_the_service_name_of_the_config_wins_over_the_callers() -> None:
    exporter = InMemorySpanExporter()
    provider = tracing.setup_tracing(
        "order",
        ObservabilityConfig(service_name="order-canary"),
        processor=SimpleSpanProcessor(exporter),
        set_global=False,
    )
    try:
        assert provider is not None
        assert provider.resource.attributes["service.name"] == "order-canary"
    finally:
        tracing.shutdown_tracing()


def test_shutting_down_hands_over_every_span_and_switches_tracing_off(recorded: Recorded) -> None:
    tracer = tracing.tracer()
    assert tracer is not None
    tracer.start_span("last").end()
    tracing.shutdown_tracing()
    assert [span.name for span in recorded.spans()] == ["last"]
    assert tracing.tracer() is None
    tracing.shutdown_tracing()  # a second call is harmless


def test_a_zero_ratio_samples_no_new_trace_but_follows_a_sampled_parent() -> None:
    provider = TracerProvider(sampler=tracing.sampler_for(0.0))
    tracer = provider.get_tracer("test")
    assert not tracer.start_span("new").get_span_context().trace_flags.sampled
    parent = trace.SpanContext(1, 2, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    child = tracer.start_span("child", trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    assert child.get_span_context().trace_flags.sampled


def test_the_batch_processor_takes_its_sizes_from_the_environment_when_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")
    processor = tracing.batch_processor(InMemorySpanExporter())
    try:
        assert processor._batch_processor._max_export_batch_size == 64
    finally:
        processor.shutdown()
