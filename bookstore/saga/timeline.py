"""Saga timelines: what each step did, when, and how it ended, drawn as a Gantt chart.

**What.** A saga's log (or the events its orchestrator hands to hooks) is a flat list:
``reserve started``, ``reserve succeeded``, ``pay started``, ``pay failed``, ``pay
compensating``... A *timeline* pairs those events into spans, one per attempt of an action
or of a compensation, each with a start, an end and an outcome:

=========================  ==================================================================
``SUCCEEDED``              the action returned and its SUCCEEDED is logged
``FAILED``                 the action failed (refused, timed out, unavailable)
``COMPENSATED``            a compensation attempt undid the step
``COMPENSATION_FAILED``    a compensation attempt failed; the orchestrator retries it
``INTERRUPTED``            started, then nothing: the process died with the call in flight,
                           and a restarted orchestrator took over (the span ends where the
                           log picks up again)
=========================  ==================================================================

**Why.** The shape of a saga is the lesson: steps forward top to bottom, compensations
back bottom to top, a failure that *may* have done its work compensated too, a gap where a
crashed process lay dead. A chart shows in a glance what twelve log lines say slowly.

**When not to.** This is for reading and teaching, after the fact. It decides nothing: the
orchestrator's own ``_progress`` is what recovery trusts. Timestamps from a log are the
wall clock of the process that wrote them; compare spans of one saga, not across machines.

Usage::

    records = read_sagas(make_engine(f"sqlite:///{cluster.work_dir / 'order.db'}"), order_ids)
    plot_timelines([timeline_of_record(r, label="card declined") for r in records])
    plt.show()

    recorder = EventRecorder()              # or live, in-process: a hook
    SagaOrchestrator(log, definitions, hooks=[recorder]).run(...)
    recorder.timeline(saga_id)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sqlalchemy import Engine, select

from bookstore.platform.database import session_factory
from bookstore.saga.log import SagaInstanceRow, SagaLog, SagaRecord, SagaState, StepEventKind
from bookstore.saga.orchestrator import SagaEvent

READER_OWNER = "timeline-reader"
UNITS = {"ms": 1e3, "s": 1.0}
DECIMALS = {"ms": 0, "s": 2}
# Bars shorter than this share of the axis are widened to it, so that a 1 ms step stays visible.
MIN_BAR_SHARE = 0.006
# An interrupted span this wide (share of the axis) gets a caption inside its bar.
CAPTION_SHARE = 0.3


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation failed"
    INTERRUPTED = "interrupted"


OUTCOME_STYLE: dict[Outcome, tuple[str, str]] = {
    Outcome.SUCCEEDED: ("tab:green", "action succeeded"),
    Outcome.FAILED: ("tab:red", "action failed"),
    Outcome.COMPENSATED: ("tab:orange", "compensated (undone)"),
    Outcome.COMPENSATION_FAILED: ("tab:purple", "compensation failed (retried)"),
    Outcome.INTERRUPTED: ("tab:gray", "interrupted (the process died)"),
}

_OPENS = {StepEventKind.STARTED, StepEventKind.COMPENSATING}
_CLOSES = {
    StepEventKind.SUCCEEDED: Outcome.SUCCEEDED,
    StepEventKind.FAILED: Outcome.FAILED,
    StepEventKind.COMPENSATED: Outcome.COMPENSATED,
    StepEventKind.COMPENSATION_FAILED: Outcome.COMPENSATION_FAILED,
}


@dataclass(frozen=True)
class Span:
    """One attempt of a step's action or compensation; times in seconds since the saga began."""

    step: str
    outcome: Outcome
    start_s: float
    end_s: float
    attempt: int = 1
    error: str = ""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def compensation(self) -> bool:
        return self.outcome in (Outcome.COMPENSATED, Outcome.COMPENSATION_FAILED)


@dataclass(frozen=True)
class Timeline:
    """The spans of one saga, its steps in the order they first ran, and how it ended (if known)."""

    saga_id: str
    steps: tuple[str, ...]
    spans: tuple[Span, ...]
    state: SagaState | None = None
    label: str = ""

    @property
    def end_s(self) -> float:
        return max((span.end_s for span in self.spans), default=0.0)

    @property
    def first_failure(self) -> Span | None:
        return next((span for span in self.spans if span.outcome is Outcome.FAILED), None)


@dataclass(frozen=True)
class _Move:
    step: str
    kind: StepEventKind
    at_s: float
    attempt: int
    error: str


def _spans(moves: Sequence[_Move], origin_s: float) -> tuple[tuple[str, ...], tuple[Span, ...]]:
    """Pair each opening event with the end that follows it.

    An orchestrator drives one saga one call at a time, so at most one span is open. One still
    open when the next call begins died with its process: it is INTERRUPTED, and ends, as far
    as anyone can tell, where the log picks up again.
    """
    steps: list[str] = []
    spans: list[Span] = []
    current: _Move | None = None
    for move in moves:
        if move.step not in steps:
            steps.append(move.step)
        if move.kind in _OPENS:
            if current is not None:
                spans.append(_span(current, Outcome.INTERRUPTED, move.at_s, origin_s))
            current = move
            continue
        start = move  # a FAILED with nothing open: the deadline passed before the step could start
        if current is not None and current.step == move.step:
            start = current
        elif current is not None:
            spans.append(_span(current, Outcome.INTERRUPTED, move.at_s, origin_s))
        current = None
        outcome = _CLOSES[move.kind]
        spans.append(_span(start, outcome, move.at_s, origin_s, attempt=move.attempt, error=move.error))
    if current is not None:  # the log ends with a call in flight: running now, or dead
        spans.append(_span(current, Outcome.INTERRUPTED, current.at_s, origin_s))
    return tuple(steps), tuple(spans)


def _span(
    start: _Move, outcome: Outcome, end_at_s: float, origin_s: float, *, attempt: int = 0, error: str = ""
) -> Span:
    return Span(
        step=start.step,
        outcome=outcome,
        start_s=start.at_s - origin_s,
        end_s=end_at_s - origin_s,
        attempt=attempt or start.attempt,
        error=error,
    )


def timeline_of_record(record: SagaRecord, *, label: str = "") -> Timeline:
    """The timeline of a saga read from its log; time 0 is the saga's creation."""
    moves = [
        _Move(event.step, event.kind, event.at_ns / 1e9, event.attempt, event.error)
        for event in record.events
    ]
    steps, spans = _spans(moves, record.created_at_ns / 1e9)
    return Timeline(record.saga_id, steps, spans, record.state, label)


def timeline_of_events(events: Iterable[SagaEvent], saga_id: str, *, label: str = "") -> Timeline:
    """The timeline of one saga from the events hooks received; time 0 is its first event."""
    moves = [
        _Move(event.step, event.kind, event.at, event.attempt, event.error)
        for event in events
        if event.saga_id == saga_id
    ]
    if not moves:
        raise LookupError(f"no events of saga {saga_id}")
    steps, spans = _spans(moves, moves[0].at_s)
    return Timeline(saga_id, steps, spans, None, label)


class EventRecorder:
    """An orchestrator hook that keeps every event it is told about, for timelines and printing."""

    def __init__(self) -> None:
        self.events: list[SagaEvent] = []

    def __call__(self, event: SagaEvent) -> None:
        self.events.append(event)

    def of(self, saga_id: str) -> list[SagaEvent]:
        return [event for event in self.events if event.saga_id == saga_id]

    def timeline(self, saga_id: str, *, label: str = "") -> Timeline:
        return timeline_of_events(self.events, saga_id, label=label)


def read_sagas(engine: Engine, saga_ids: Iterable[str] | None = None) -> list[SagaRecord]:
    """Sagas of a log, finished or not, oldest first; only ``saga_ids`` when given (in that order).

    Writes nothing to an existing log (its tables are created only where missing), so it is safe
    against the live database of a running order service.
    """
    saga_log = SagaLog(engine, owner=READER_OWNER)
    if saga_ids is None:
        with session_factory(engine)() as session:
            saga_ids = list(
                session.execute(
                    select(SagaInstanceRow.saga_id).order_by(
                        SagaInstanceRow.created_at_ns, SagaInstanceRow.saga_id
                    )
                ).scalars()
            )
    return [saga_log.get(saga_id) for saga_id in saga_ids]


def draw_timeline(ax: Axes, timeline: Timeline, *, unit: str = "ms") -> None:
    """One saga on ``ax``: a row per step (first step on top), a bar per span, coloured by outcome."""
    scale = _scale(unit)
    rows = {step: len(timeline.steps) - 1 - index for index, step in enumerate(timeline.steps)}
    min_width = MIN_BAR_SHARE * max(timeline.end_s * scale, 1e-9)
    for span in timeline.spans:
        colour, _ = OUTCOME_STYLE[span.outcome]
        ax.barh(
            rows[span.step],
            max(span.duration_s * scale, min_width),
            left=span.start_s * scale,
            height=0.6,
            color=colour,
            edgecolor="black",
            linewidth=0.5,
            hatch="///" if span.outcome is Outcome.INTERRUPTED else None,
        )
        if span.outcome is Outcome.INTERRUPTED and span.duration_s >= CAPTION_SHARE * timeline.end_s:
            ax.text(
                (span.start_s + span.end_s) / 2 * scale,
                rows[span.step],
                "in flight when the process died",
                ha="center",
                va="center",
                fontsize=9,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 2},
            )
    ax.set_yticks(list(rows.values()), list(rows.keys()))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(_title(timeline, unit), loc="left", fontsize=10)


def plot_timelines(
    timelines: Sequence[Timeline], *, unit: str = "ms", sharex: bool = False, title: str = ""
) -> Figure:
    """A Gantt chart, one panel per saga, with one legend of the outcomes shown."""
    if not timelines:
        raise ValueError("no timelines to plot")
    _scale(unit)
    rows = sum(max(len(t.steps), 1) for t in timelines)
    fig, axes = plt.subplots(
        len(timelines),
        1,
        figsize=(9, 1.2 + 0.42 * rows + 0.55 * len(timelines)),
        sharex=sharex,
        squeeze=False,
        layout="constrained",
    )
    for ax, timeline in zip(axes[:, 0], timelines, strict=True):
        draw_timeline(ax, timeline, unit=unit)
        ax.set_ylabel("step")
    axes[-1, 0].set_xlabel(f"time since the saga started ({unit})")
    shown = {span.outcome for timeline in timelines for span in timeline.spans}
    handles = [
        Patch(
            facecolor=colour,
            edgecolor="black",
            hatch="///" if outcome is Outcome.INTERRUPTED else None,
            label=label,
        )
        for outcome, (colour, label) in OUTCOME_STYLE.items()
        if outcome in shown
    ]
    if title:
        fig.suptitle(title)
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False)
    return fig


def _title(timeline: Timeline, unit: str) -> str:
    parts = [timeline.label or timeline.saga_id[:8]]
    if timeline.state is not None:
        parts.append(f"{timeline.state.value} in {timeline.end_s * _scale(unit):.{DECIMALS[unit]}f} {unit}")
    failure = timeline.first_failure
    if failure is not None:
        reason = failure.error.split(":", 1)[0] if failure.error else "an error"
        parts.append(f"{failure.step} failed with {reason}")
    return " | ".join(parts)


def _scale(unit: str) -> float:
    try:
        return UNITS[unit]
    except KeyError:
        raise ValueError(f"unit must be one of {sorted(UNITS)}, got {unit!r}") from None
