"""The sampler beside an experiment: it keeps sampling through a failing sample, and stops when told."""

from __future__ import annotations

import itertools
import time

from bookstore.launcher.traffic import Sampler


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
