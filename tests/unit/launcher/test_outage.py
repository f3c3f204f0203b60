"""The reconnect schedule a channel follows, as ``bookstore.launcher.outage`` models it."""

from __future__ import annotations

import pytest

from bookstore.launcher.outage import BOOKSTORE, GRPC_DEFAULT, Backoff, attempt_times
from bookstore.platform.channels import RECONNECT_INITIAL_MS, RECONNECT_MAX_MS


def test_grpcs_defaults_wait_one_second_then_1_6_times_longer_each_time() -> None:
    assert attempt_times(GRPC_DEFAULT, 10) == pytest.approx([0.0, 1.0, 2.6, 5.16, 9.256])


def test_the_wait_stops_growing_at_the_cap() -> None:
    capped = Backoff(initial_s=0.5, max_s=1.0)
    assert attempt_times(capped, 4) == pytest.approx([0.0, 0.5, 1.3, 2.3, 3.3])


def test_the_bookstores_backoff_is_the_one_its_channels_are_given() -> None:
    assert BOOKSTORE.options == [
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_INITIAL_MS),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
    ]
