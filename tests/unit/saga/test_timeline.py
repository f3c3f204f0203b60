"""Saga timelines: events paired into spans, read from a real log or from hooks, and drawn."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import matplotlib.pyplot as plt
import pytest
from sqlalchemy import Engine

from bookstore.resilience.timeline import ManualClock
from bookstore.saga import (
    Backoff,
    SagaDefinition,
    SagaEvent,
    SagaLog,
    SagaOrchestrator,
    SagaState,
    Step,
    StepContext,
    StepEventKind,
)
from bookstore.saga.log import SagaRecord, StepRecord
from bookstore.saga.timeline import (
    EventRecorder,
    Outcome,
    Span,
    plot_timelines,
    read_sagas,
    timeline_of_events,
    timeline_of_record,
)

from .fakes import FakeRpcError, FakeSleep, FakeWallClock

S, OK, F = StepEventKind.STARTED, StepEventKind.SUCCEEDED, StepEventKind.FAILED
C, CD, CF = StepEventKind.COMPENSATING, StepEventKind.COMPENSATED, StepEventKind.COMPENSATION_FAILED
ORIGIN_NS = 1_700_000_000 * 1_000_000_000


def record(*events: tuple[str, StepEventKind, float], state: SagaState = SagaState.COMPENSATED) -> SagaRecord:
    """A saga record whose events happened ``ms`` milliseconds after its creation."""
    return SagaRecord(
        saga_id="order-1",
        definition="place_order",
        payload={},
        state=state,
        deadline_s=5.0,
        failed_step=None,
        error="",
        owner="order-0",
        lease_until_ns=0,
        created_at_ns=ORIGIN_NS,
        updated_at_ns=ORIGIN_NS,
        events=tuple(
            StepRecord(
                step, kind, 1, None, "UNAVAILABLE: down" if kind is F else "", ORIGIN_NS + int(ms * 1e6)
            )
            for step, kind, ms in events
        ),
    )


def shape(spans: tuple[Span, ...]) -> list[tuple[str, Outcome, float, float]]:
    return [(s.step, s.outcome, round(s.start_s * 1e3, 3), round(s.end_s * 1e3, 3)) for s in spans]


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def test_a_failed_saga_pairs_each_action_and_compensation_into_spans_in_time_order() -> None:
    timeline = timeline_of_record(
        record(
            ("reserve", S, 1), ("reserve", OK, 3), ("pay", S, 4), ("pay", F, 6),
            ("pay", C, 7), ("pay", CD, 9), ("reserve", C, 10), ("reserve", CD, 12),
        )
    )  # fmt: skip

    assert timeline.steps == ("reserve", "pay")
    assert shape(timeline.spans) == [
        ("reserve", Outcome.SUCCEEDED, 1, 3),
        ("pay", Outcome.FAILED, 4, 6),
        ("pay", Outcome.COMPENSATED, 7, 9),
        ("reserve", Outcome.COMPENSATED, 10, 12),
    ]
    assert timeline.first_failure is not None and timeline.first_failure.error == "UNAVAILABLE: down"
    assert [s.compensation for s in timeline.spans] == [False, False, True, True]
    assert timeline.end_s == pytest.approx(0.012, abs=1e-6)


def test_a_call_in_flight_when_the_process_died_is_interrupted_until_the_log_picks_up_again() -> None:
    timeline = timeline_of_record(
        record(("pay", S, 5), ("pay", S, 900), ("pay", OK, 910), state=SagaState.SUCCEEDED)
    )

    assert shape(timeline.spans) == [
        ("pay", Outcome.INTERRUPTED, 5, 900),
        ("pay", Outcome.SUCCEEDED, 900, 910),
    ]


def test_an_interrupted_compensation_and_a_failed_one_are_told_apart() -> None:
    timeline = timeline_of_record(
        record(("pay", C, 1), ("pay", C, 50), ("pay", CF, 52), ("pay", C, 60), ("pay", CD, 61))
    )

    assert [s.outcome for s in timeline.spans] == [
        Outcome.INTERRUPTED,
        Outcome.COMPENSATION_FAILED,
        Outcome.COMPENSATED,
    ]


def test_a_step_failed_before_it_started_is_a_point_and_a_log_ending_mid_call_is_interrupted() -> None:
    late = timeline_of_record(record(("reserve", S, 1), ("reserve", OK, 2), ("pay", F, 8)))
    assert shape(late.spans)[-1] == ("pay", Outcome.FAILED, 8, 8)

    stranded = timeline_of_record(record(("reserve", S, 1), state=SagaState.RUNNING))
    assert shape(stranded.spans) == [("reserve", Outcome.INTERRUPTED, 1, 1)]


def test_a_recorder_hook_gives_the_timeline_of_an_in_process_saga(sqlite_engine: Engine) -> None:
    clock = ManualClock(1000.0)
    recorder = EventRecorder()

    def slow_success(ctx: StepContext) -> None:
        clock.advance(0.25)

    def declined(ctx: StepContext) -> None:
        clock.advance(0.5)
        raise FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "card declined")

    definition = SagaDefinition(
        "checkout", [Step("reserve", slow_success, lambda ctx: None), Step("pay", declined, lambda ctx: None)]
    )
    orchestrator = SagaOrchestrator(
        SagaLog(sqlite_engine), [definition], hooks=[recorder], clock=clock, sleep=FakeSleep(clock),
        backoff=Backoff(jitter=0),
    )  # fmt: skip
    orchestrator.run("checkout", "o-7", {})
    orchestrator.run("checkout", "o-8", {})

    timeline = recorder.timeline("o-7", label="declined")
    assert {event.saga_id for event in recorder.of("o-8")} == {"o-8"}
    assert shape(timeline.spans) == [
        ("reserve", Outcome.SUCCEEDED, 0, 250),
        ("pay", Outcome.FAILED, 250, 750),
        ("reserve", Outcome.COMPENSATED, 750, 750),
    ]
    assert timeline.label == "declined" and timeline.state is None
    with pytest.raises(LookupError):
        timeline_of_events(recorder.events, "o-unknown")


def test_read_sagas_returns_finished_and_running_sagas_oldest_first(sqlite_engine: Engine) -> None:
    wall = FakeWallClock()
    saga_log = SagaLog(sqlite_engine, owner="order-0", clock_ns=wall)
    for saga_id in ("b", "a", "c"):
        saga_log.create(saga_id, "place_order", {}, deadline_s=5)
        wall.advance(1)
    saga_log.record("b", "reserve", S)
    saga_log.record("b", "reserve", OK)
    saga_log.finish("b", SagaState.SUCCEEDED)

    everything = read_sagas(sqlite_engine)
    chosen = read_sagas(sqlite_engine, ["c", "b"])

    assert [r.saga_id for r in everything] == ["b", "a", "c"]
    assert everything[0].state is SagaState.SUCCEEDED and everything[1].state is SagaState.RUNNING
    assert [r.saga_id for r in chosen] == ["c", "b"]


def test_the_plot_has_a_panel_per_saga_a_row_per_step_and_a_legend_of_the_outcomes_shown() -> None:
    failed = timeline_of_record(
        record(("reserve", S, 1), ("reserve", OK, 3), ("pay", S, 4), ("pay", F, 6), ("reserve", C, 7),
               ("reserve", CD, 9)),
        label="card declined",
    )  # fmt: skip
    crashed = timeline_of_record(
        record(("reserve", S, 1), ("reserve", S, 700), ("reserve", OK, 710), state=SagaState.SUCCEEDED),
        label="crash",
    )

    figure = plot_timelines([failed, crashed], unit="ms")

    top, bottom = figure.axes
    rows = {label.get_text(): label.get_position()[1] for label in top.get_yticklabels()}
    assert rows == {"reserve": 1, "pay": 0}  # the first step on top
    assert top.get_title(loc="left").startswith(
        "card declined | COMPENSATED in 9 ms | pay failed with UNAVAILABLE"
    )
    assert bottom.get_xlabel() == "time since the saga started (ms)"
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        "action succeeded",
        "action failed",
        "compensated (undone)",
        "interrupted (the process died)",
    ]
    assert len(top.patches) == 3 and len(bottom.patches) == 2


def test_plotting_refuses_an_unknown_unit_and_nothing_to_plot() -> None:
    with pytest.raises(ValueError, match="unit"):
        plot_timelines([timeline_of_record(record(("pay", S, 1)))], unit="minutes")
    with pytest.raises(ValueError, match="no timelines"):
        plot_timelines([])


def test_events_of_other_sagas_are_ignored() -> None:
    events = [
        SagaEvent("x", "pay", S, at=10.0),
        SagaEvent("y", "pay", S, at=10.5),
        SagaEvent("x", "pay", OK, at=11.0),
    ]
    assert shape(timeline_of_events(events, "x").spans) == [("pay", Outcome.SUCCEEDED, 0, 1000)]


def test_a_long_interruption_is_captioned_and_seconds_keep_two_decimals() -> None:
    crashed = timeline_of_record(
        record(("pay", S, 10), ("pay", S, 700), ("pay", OK, 710), state=SagaState.SUCCEEDED), label="crash"
    )

    (ax,) = plot_timelines([crashed], unit="s").axes

    assert [text.get_text() for text in ax.texts] == ["in flight when the process died"]
    assert ax.get_title(loc="left") == "crash | SUCCEEDED in 0.71 s"
