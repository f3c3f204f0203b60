"""The sampler beside an experiment, and the rates and plot made from its samples."""

from __future__ import annotations

import itertools
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from bookstore.launcher.traffic import Answer, Sampler, plot_served, served_rates


def test_a_sample_that_raises_leaves_a_gap_and_the_sampling_goes_on() -> None:
    counter = itertools.count()

    def sample() -> int:
        n = next(counter)
        if n % 2:
            raise RuntimeError("a replica is stopping")
        return n

    with Sampler(sample, interval_s=0.01) as sampler:
        time.sleep(0.2)
    values = [v for _, v in sampler.samples]
    assert len(values) >= 3 and all(v % 2 == 0 for v in values)
    assert sampler.errors >= 2
    times = [t for t, _ in sampler.samples]
    assert times == sorted(times) and times[0] >= 0
    taken = len(sampler.samples)
    time.sleep(0.05)
    assert len(sampler.samples) == taken, "the sampler went on after its block ended"


def test_served_rates_are_per_replica_and_skip_a_counter_that_started_again() -> None:
    samples = [
        (0.0, {0: 10}),
        (0.5, {0: 20, 1: 0}),
        (1.0, {0: 30}),  # replica 1 did not answer this sample: measured across the gap
        (1.5, {0: 35, 1: 8}),
        (2.0, {0: 2, 1: 12}),  # replica 0 was replaced and counts from zero
    ]

    rates = served_rates(samples)

    assert rates == {0: [(0.5, 20.0), (1.0, 20.0), (1.5, 10.0)], 1: [(1.5, 8.0), (2.0, 8.0)]}


def test_plot_served_draws_a_line_per_replica_a_line_per_event_and_an_x_per_failure() -> None:
    samples = [(0.0, {0: 0}), (1.0, {0: 10, 1: 0}), (2.0, {0: 15, 1: 5})]
    failures = [Answer(1.2, 0, "ConnectError"), Answer(1.3, 503, "catalog unavailable")]

    ax = plot_served(
        samples, events=[(0.5, "scale to 2")], failures=failures, service="catalog", method="ListBooks"
    )

    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["catalog[0]", "catalog[1]"]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert [line.get_xdata()[0] for line in crosses] == [1.2, 1.3]
    assert [text.get_text() for text in ax.texts] == ["scale to 2"]
    assert ax.get_ylabel() == "ListBooks calls/s served"
    plt.close(ax.figure)
