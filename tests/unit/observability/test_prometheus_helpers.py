"""Prometheus without Prometheus: quantiles from scraped buckets, and the configuration it would get."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from bookstore.observability import prometheus
from bookstore.observability.prometheus import (
    INFRA_CONFIG,
    PrometheusUnavailable,
    Sample,
    bucket_quantile,
    histogram_quantile,
    parse_samples,
    prometheus_config,
    start_prometheus,
    write_target_files,
)

BUCKETS = [(0.001, 10.0), (0.01, 90.0), (0.1, 100.0), (math.inf, 100.0)]


def test_a_quantile_is_interpolated_inside_the_bucket_that_holds_its_rank() -> None:
    assert bucket_quantile(0.05, BUCKETS) == pytest.approx(0.0005)  # rank 5 of the first 10, from 0
    assert bucket_quantile(0.5, BUCKETS) == pytest.approx(0.001 + 0.009 * 40 / 80)
    assert bucket_quantile(0.99, BUCKETS) == pytest.approx(0.01 + 0.09 * 9 / 10)


def test_a_quantile_in_the_infinite_bucket_is_the_highest_finite_bound() -> None:
    assert bucket_quantile(0.99, [(0.1, 50.0), (math.inf, 100.0)]) == 0.1


def test_no_observations_give_no_quantile() -> None:
    assert math.isnan(bucket_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))
    assert math.isnan(bucket_quantile(0.5, []))


def scrape_of(counts: list[float], method: str = "Pay") -> list[Sample]:
    bounds = ["0.001", "0.01", "0.1", "+Inf"]
    return [
        Sample("rpc_seconds_bucket", {"le": le, "grpc_method": method}, count)
        for le, count in zip(bounds, counts, strict=True)
    ]


def test_the_quantile_between_two_scrapes_uses_only_what_was_observed_in_between() -> None:
    before = scrape_of([10, 10, 10, 10])  # ten fast calls before the window
    after = scrape_of([10, 90, 100, 100])
    assert histogram_quantile(0.5, after, before, metric="rpc_seconds") == pytest.approx(
        0.001 + 0.009 * 45 / 80
    )


def test_series_of_other_labels_are_summed_unless_matched_away() -> None:
    samples = scrape_of([10, 90, 100, 100], "Pay") + scrape_of([100, 100, 100, 100], "Refund")
    assert histogram_quantile(
        0.5, samples, metric="rpc_seconds", match={"grpc_method": "Refund"}
    ) == pytest.approx(0.0005)
    summed = histogram_quantile(0.5, samples, metric="rpc_seconds")
    assert summed < histogram_quantile(0.5, samples, metric="rpc_seconds", match={"grpc_method": "Pay"})


def test_parsing_a_metrics_page_gives_counters_with_their_total_suffix() -> None:
    text = '# TYPE orders_created_total counter\norders_created_total{status="approved"} 3.0\n'
    assert parse_samples(text) == [Sample("orders_created_total", {"status": "approved"}, 3.0)]


def test_the_configuration_keeps_the_job_names_and_paths_of_infra_prometheus_yml() -> None:
    infra = yaml.safe_load(INFRA_CONFIG.read_text())
    jobs = {job["job_name"] for job in infra["scrape_configs"]}
    assert {"gateway", "user", "catalog", "inventory", "payment", "order"} <= jobs
    config = prometheus_config({"gateway": ["127.0.0.1:8000"], "order": ["127.0.0.1:9001", "127.0.0.1:9002"]})
    assert config["global"]["scrape_interval"] == "1000ms"
    by_job = {job["job_name"]: job for job in config["scrape_configs"]}
    assert by_job["order"]["static_configs"] == [{"targets": ["127.0.0.1:9001", "127.0.0.1:9002"]}]
    assert by_job["gateway"]["metrics_path"] == "/metrics"


def test_with_a_targets_folder_each_job_reads_its_addresses_from_a_file_that_can_be_rewritten(
    tmp_path: Path,
) -> None:
    targets = {"gateway": ["127.0.0.1:8000"], "order": ["127.0.0.1:9001"], "payment": []}
    write_target_files(targets, tmp_path)
    config = prometheus_config(targets, targets_dir=tmp_path)
    by_job = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(by_job) == {"gateway", "order", "payment"}  # a job with no address yet is kept
    [discovery] = by_job["order"]["file_sd_configs"]
    assert discovery["files"] == [str(tmp_path / "order.json")]
    assert "static_configs" not in by_job["order"]
    assert json.loads((tmp_path / "order.json").read_text()) == [{"targets": ["127.0.0.1:9001"]}]

    write_target_files({"order": ["127.0.0.1:9001", "127.0.0.1:9002"]}, tmp_path)
    rewritten = json.loads((tmp_path / "order.json").read_text())
    assert rewritten == [{"targets": ["127.0.0.1:9001", "127.0.0.1:9002"]}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.json", "order.json", "payment.json"]


def test_without_a_binary_starting_prometheus_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(prometheus, "prometheus_binary", lambda: None)
    with pytest.raises(PrometheusUnavailable, match="apt-get install"):
        start_prometheus({"order": ["127.0.0.1:1"]}, tmp_path)


def test_a_scrape_history_gives_rates_and_quantiles_over_sliding_windows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages = iter(
        [
            [*scrape_of([0, 0, 0, 0]), Sample("calls_total", {}, 0.0)],
            [*scrape_of([10, 10, 10, 10]), Sample("calls_total", {}, 10.0)],
            [*scrape_of([10, 90, 100, 100]), Sample("calls_total", {}, 100.0)],
        ]
    )
    monkeypatch.setattr(prometheus, "scrape", lambda url: next(pages))
    history = prometheus.ScrapeHistory(["http://order:9464"])
    for at in (100.0, 101.0, 102.0):
        history.record(at=at)
    assert history.rate_series("calls_total", window_s=1.0) == [(101.0, 10.0), (102.0, 90.0)]
    (first, second) = history.quantile_series(0.5, "rpc_seconds", window_s=1.0)
    assert first == (101.0, pytest.approx(0.0005))
    assert second[1] == pytest.approx(0.001 + 0.009 * 45 / 80)
    assert history.rate_series("calls_total", window_s=5.0) == []
