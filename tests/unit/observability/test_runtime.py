"""What a process installs: nothing when it records nothing, the lean interceptors otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from bookstore.observability import metrics, runtime, tracing
from bookstore.observability.config import ObservabilityConfig
from bookstore.observability.grpc_server import TelemetryServerInterceptor

from .conftest import Recorded


@pytest.fixture
def metrics_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "metrics_enabled", lambda: False)


@pytest.fixture
def plain_channel() -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel("127.0.0.1:1")
    yield channel
    channel.close()


def test_a_process_that_neither_traces_nor_serves_metrics_installs_no_interceptor(
    metrics_off: None, plain_channel: grpc.Channel
) -> None:
    assert runtime.server_interceptors() == []
    assert runtime.instrument_channel(plain_channel) is plain_channel


def test_a_tracing_process_gets_the_lean_interceptors(
    metrics_off: None, recorded: Recorded, plain_channel: grpc.Channel
) -> None:
    (interceptor,) = runtime.server_interceptors()
    assert isinstance(interceptor, TelemetryServerInterceptor)
    assert runtime.instrument_channel(plain_channel) is not plain_channel


def test_the_stock_interceptors_can_be_chosen_for_comparison(
    metrics_off: None, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, plain_channel: grpc.Channel
) -> None:
    monkeypatch.setattr(tracing, "_interceptors", "stock")
    (interceptor,) = runtime.server_interceptors()
    assert type(interceptor).__module__.startswith("opentelemetry.instrumentation.grpc")
    assert runtime.instrument_channel(plain_channel) is not plain_channel


def test_a_process_with_a_metrics_port_serves_metrics_and_counts_calls() -> None:
    telemetry = runtime.setup_process_telemetry("order", config=ObservabilityConfig(metrics_port=0))
    assert telemetry.tracer_provider is None and telemetry.metrics_port is None
    port = metrics.start_metrics_server(0)
    assert port > 0 and metrics.metrics_enabled()
    (interceptor,) = runtime.server_interceptors()
    assert isinstance(interceptor, TelemetryServerInterceptor)
    telemetry.shutdown()
