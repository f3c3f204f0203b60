"""Self time: a span's duration minus what its children cover, summed per service."""

from __future__ import annotations

import pytest

from bookstore.observability.analysis import busiest_span, self_time_by_service, self_time_ms
from bookstore.observability.collector import SpanRecord

MS = 1_000_000


def span(span_id: str, parent: str | None, service: str, start_ms: float, end_ms: float) -> SpanRecord:
    return SpanRecord(
        "t", span_id, parent, span_id, service, "INTERNAL", int(start_ms * MS), int(end_ms * MS)
    )


def test_a_chain_leaves_each_span_the_time_its_child_does_not_cover() -> None:
    spans = [
        span("a", None, "gateway", 0, 100),
        span("b", "a", "order", 10, 90),
        span("c", "b", "inventory", 20, 70),
    ]
    assert [self_time_ms(s, spans) for s in spans] == [20.0, 30.0, 50.0]
    assert self_time_by_service(spans) == {"gateway": 20.0, "order": 30.0, "inventory": 50.0}


def test_overlapping_children_are_counted_once_and_a_child_past_its_parent_is_clipped() -> None:
    spans = [
        span("root", None, "order", 0, 100),
        span("x", "root", "catalog", 10, 50),
        span("y", "root", "payment", 30, 60),  # overlaps x: 10..60 covered once
        span("late", "root", "analytics", 90, 140),  # runs past its parent: 90..100 counts
    ]
    assert self_time_ms(spans[0], spans) == pytest.approx(40.0)
    assert self_time_by_service(spans)["analytics"] == pytest.approx(50.0)


def test_the_busiest_span_is_the_one_doing_the_work_not_the_longest() -> None:
    spans = [
        span("a", None, "gateway", 0, 200),
        span("b", "a", "order", 5, 195),
        span("c", "b", "inventory", 10, 190),
    ]
    assert busiest_span(spans).span_id == "c"
    with pytest.raises(ValueError):
        busiest_span([])
