"""Reading a trace for its bottleneck: the *self time* of each span, and of each service.

A span's duration includes everything it waited for: a client span lasts as long as the
server's span under it, a saga step as long as its call. So when one call slows down, every
span that contains it grows by as much, and the longest bar in a waterfall is usually the
root, which did almost nothing itself. A span's **self time** is its duration minus the time
its direct children cover (children that overlap are counted once, and a child running past
its parent's end, such as a consumer handling a message after the publish span ended, is
clipped to the parent). Summed per service, it says where the work of a trace was done;
the span with the most self time names the culprit. Profilers call it exclusive time.

When not to: self time says where a trace spent its time, not why; a span waiting on a lock
or a queue with no child span to show for it looks busy here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from bookstore.observability.collector import SpanRecord


def _children(spans: Sequence[SpanRecord]) -> dict[str | None, list[SpanRecord]]:
    found: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        found[span.parent_id].append(span)
    return found


def _self_ns(span: SpanRecord, children: Sequence[SpanRecord]) -> int:
    covered, reached = 0, span.start_ns
    for start, end in sorted((c.start_ns, c.end_ns) for c in children):
        start, end = max(start, reached), min(end, span.end_ns)
        if end > start:
            covered, reached = covered + end - start, end
    return span.end_ns - span.start_ns - covered


def self_time_ms(span: SpanRecord, spans: Sequence[SpanRecord]) -> float:
    """``span``'s duration minus what its children in ``spans`` cover, in milliseconds."""
    return _self_ns(span, [c for c in spans if c.parent_id == span.span_id]) / 1e6


def self_time_by_service(spans: Sequence[SpanRecord]) -> dict[str, float]:
    """Milliseconds of self time per service, summed over the spans of a trace."""
    children = _children(spans)
    totals: dict[str, float] = defaultdict(float)
    for span in spans:
        totals[span.service] += _self_ns(span, children.get(span.span_id, [])) / 1e6
    return dict(totals)


def busiest_span(spans: Sequence[SpanRecord]) -> SpanRecord:
    """The span with the most self time: where a slow trace's time went."""
    if not spans:
        raise ValueError("no spans")
    children = _children(spans)
    return max(spans, key=lambda span: _self_ns(span, children.get(span.span_id, [])))
