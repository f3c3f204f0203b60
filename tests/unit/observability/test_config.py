"""The observability settings: environment variables in, one frozen dataclass out."""

from __future__ import annotations

import pytest

from bookstore.observability.config import ObservabilityConfig


def test_tracing_is_on_by_default_but_needs_an_endpoint_to_send_to() -> None:
    config = ObservabilityConfig.from_env({})
    assert config.tracing and not config.tracing_enabled
    assert config.sample_ratio == 1.0
    assert config.metrics and config.metrics_port == 0
    assert config.interceptors == "lean"


def test_the_endpoint_and_service_come_from_the_standard_variables() -> None:
    config = ObservabilityConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_SERVICE_NAME": "custom",
            "BOOKSTORE_SERVICE": "order",
        }
    )
    assert config.tracing_enabled
    assert config.otlp_endpoint == "http://127.0.0.1:4317"
    assert config.service_name == "custom"


def test_the_traces_endpoint_wins_over_the_general_one() -> None:
    config = ObservabilityConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4317",
        }
    )
    assert config.otlp_endpoint == "http://b:4317"


def test_the_service_name_falls_back_to_the_bookstore_service() -> None:
    assert ObservabilityConfig.from_env({"BOOKSTORE_SERVICE": "payment"}).service_name == "payment"


def test_the_standard_sampler_argument_wins_over_the_bookstore_one() -> None:
    env = {"OTEL_TRACES_SAMPLER_ARG": "0.25", "BOOKSTORE_TRACE_SAMPLE_RATIO": "0.5"}
    assert ObservabilityConfig.from_env(env).sample_ratio == 0.25
    assert ObservabilityConfig.from_env({"BOOKSTORE_TRACE_SAMPLE_RATIO": "0.5"}).sample_ratio == 0.5


@pytest.mark.parametrize("word", ["0", "false", "off", "No"])
def test_tracing_and_metrics_switch_off_with_a_false_word(word: str) -> None:
    config = ObservabilityConfig.from_env(
        {"BOOKSTORE_TRACING": word, "BOOKSTORE_METRICS": word, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}
    )
    assert not config.tracing and not config.tracing_enabled
    assert not config.metrics


def test_a_ratio_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        ObservabilityConfig.from_env({"OTEL_TRACES_SAMPLER_ARG": "1.5"})


def test_an_unknown_interceptor_kind_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="BOOKSTORE_TRACING_INTERCEPTORS"):
        ObservabilityConfig.from_env({"BOOKSTORE_TRACING_INTERCEPTORS": "fancy"})


def test_the_metrics_port_is_read_as_a_number() -> None:
    assert ObservabilityConfig.from_env({"BOOKSTORE_METRICS_PORT": "9464"}).metrics_port == 9464
