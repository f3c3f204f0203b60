"""A fallback is said once per process: the second cluster on the same fallback stays quiet."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bookstore.platform import notices


@pytest.fixture(autouse=True)
def nothing_said_yet() -> Iterator[None]:
    notices._forget()
    yield
    notices._forget()


def test_a_line_is_said_once_as_a_warning_and_a_different_line_is_said_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bookstore.fallback")
    assert notices.say_once("Prometheus was not found: a direct scrape") is True
    assert notices.say_once("Prometheus was not found: a direct scrape") is False
    assert notices.say_once("Jaeger was not found: the embedded collector") is True
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("bookstore.fallback", logging.WARNING, "Prometheus was not found: a direct scrape"),
        ("bookstore.fallback", logging.WARNING, "Jaeger was not found: the embedded collector"),
    ]
