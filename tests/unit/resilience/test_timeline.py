"""Timelines of calls and breaker states: recording, driving a load, drawing.

Time is a ``ManualClock``; a load runs on an executor that serves each request the moment
it is sent, so a "slow" call is one that moves the clock, and nothing sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import grpc
import matplotlib
import pytest

matplotlib.use("Agg")  # headless: pyplot is imported after the backend is chosen

import matplotlib.pyplot as plt

from bookstore.resilience import BreakerSettings, CircuitBreaker, CircuitOpenError, CircuitOpenRpcError, State
from bookstore.resilience.timeline import (
    CIRCUIT_OPEN,
    EXPIRED,
    OK,
    CallRecord,
    Event,
    Load,
    ManualClock,
    StatePoller,
    StateSpan,
    Timeline,
    outcome_color,
    outcome_of,
    plot_timelines,
    run_load,
)

WAIT_S = 10.0


class InlineExecutor(Executor):
    """Serves each request on the sending thread, at once: one worker, with a deterministic queue."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class Boom(Exception):
    pass


def fail() -> None:
    raise Boom()


def unavailable() -> None:
    raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)


def breaker_on(clock: ManualClock, timeline: Timeline) -> CircuitBreaker:
    settings = BreakerSettings(window_size=2, minimum_calls=2, open_timeout_s=5.0, half_open_max_calls=1)
    return CircuitBreaker("payment", settings, clock=clock, listeners=[timeline.listener])


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)


# ----------------------------------------------------------------------------- the clock


def test_a_manual_clock_moves_only_when_told_and_never_backwards() -> None:
    clock = ManualClock(10.0)
    assert clock() == 10.0
    clock.advance(2.5)
    clock.sleep(-1.0)  # a wait that is already over is no wait
    clock.sleep(0.5)
    assert clock() == 13.0
    with pytest.raises(ValueError, match="back"):
        clock.advance(-0.1)


# ----------------------------------------------------------------------------- outcomes


def test_outcomes_are_named_after_the_refusal_the_status_code_or_the_exception_type() -> None:
    assert outcome_of(CircuitOpenError("payment", 1.0)) == CIRCUIT_OPEN
    assert outcome_of(CircuitOpenRpcError("payment", 1.0)) == CIRCUIT_OPEN  # though also UNAVAILABLE
    assert outcome_of(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED)) == "DEADLINE_EXCEEDED"
    assert outcome_of(grpc.RpcError()) == "RPC_ERROR"
    assert outcome_of(TimeoutError()) == "TimeoutError"


def test_a_timeline_may_start_at_a_given_reading_of_its_clock() -> None:
    clock = ManualClock(start=100.0)
    timeline = Timeline(clock, origin=98.5)  # a load that began 1.5 s ago, in another process
    assert timeline.now() == 1.5
    assert timeline.mark("fault cleared").at_s == 1.5


# ----------------------------------------------------------------------------- breaker states


def test_a_listening_timeline_records_each_transition_at_the_time_it_happened() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    breaker = breaker_on(clock, timeline)
    clock.advance(1.0)
    trip(breaker)
    clock.advance(5.0)
    assert breaker.state is State.HALF_OPEN
    clock.advance(0.5)
    breaker.call(lambda: None)

    assert [(c.at_s, c.old, c.new, c.generation) for c in timeline.changes] == [
        (1.0, State.CLOSED, State.OPEN, 1),
        (6.0, State.OPEN, State.HALF_OPEN, 2),
        (6.5, State.HALF_OPEN, State.CLOSED, 3),
    ]
    assert timeline.spans(until_s=8.0) == [
        StateSpan("payment", State.CLOSED, 0.0, 1.0),
        StateSpan("payment", State.OPEN, 1.0, 6.0),
        StateSpan("payment", State.HALF_OPEN, 6.0, 6.5),
        StateSpan("payment", State.CLOSED, 6.5, 8.0),
    ]


def test_a_watched_breaker_that_never_changes_still_has_its_state_drawn() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    clock.advance(2.0)
    timeline.watch(CircuitBreaker("catalog", clock=clock))
    assert timeline.breakers() == ["catalog"]
    assert timeline.spans("catalog", until_s=3.0) == [StateSpan("catalog", State.CLOSED, 2.0, 3.0)]


def test_a_watched_breaker_reports_later_transitions_to_the_timeline() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    breaker = CircuitBreaker("payment", BreakerSettings(window_size=1, minimum_calls=1), clock=clock)
    timeline.watch(breaker)
    with pytest.raises(Boom):
        breaker.call(fail)
    assert [c.new for c in timeline.changes] == [State.OPEN]


def test_states_read_from_outside_are_recorded_only_when_they_change() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    for state in ("CLOSED", "CLOSED", State.OPEN, "OPEN", "HALF_OPEN"):
        timeline.observe("catalog", state)
        clock.advance(1.0)
    assert [(c.at_s, c.old, c.new, c.generation) for c in timeline.changes] == [
        (2.0, State.CLOSED, State.OPEN, -1),
        (4.0, State.OPEN, State.HALF_OPEN, -1),
    ]
    assert timeline.spans()[-1] == StateSpan("catalog", State.HALF_OPEN, 4.0, 4.0)


def test_spans_need_a_name_when_the_timeline_follows_several_breakers() -> None:
    timeline = Timeline(ManualClock())
    assert timeline.spans() == []
    timeline.observe("user", State.CLOSED)
    timeline.observe("order", State.CLOSED)
    with pytest.raises(ValueError, match="order"):
        timeline.spans()
    assert timeline.spans("payment") == []


# ----------------------------------------------------------------------------- driving a load


def test_a_load_counts_its_requests_and_refuses_nonsense() -> None:
    assert Load(rate_per_s=10, duration_s=1.0, workers=2, patience_s=1).requests == 10
    assert Load(rate_per_s=3, duration_s=0.5, workers=2, patience_s=1).requests == 2
    assert Load(rate_per_s=1, duration_s=0.1, workers=2, patience_s=1).requests == 1
    with pytest.raises(ValueError, match="rate_per_s"):
        Load(rate_per_s=0, duration_s=1, workers=1, patience_s=1)
    with pytest.raises(ValueError, match="workers"):
        Load(rate_per_s=1, duration_s=1, workers=0, patience_s=1)
    with pytest.raises(ValueError, match="patience_s"):
        Load(rate_per_s=1, duration_s=1, workers=1, patience_s=-1)


def test_requests_arrive_on_schedule_and_their_outcomes_are_recorded() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)

    def request_for(index: int) -> tuple[str, Callable[[], object]]:
        if index == 1:
            return "pay", unavailable
        if index == 2:
            return "browse", lambda: "404"
        return "browse", lambda: clock.advance(0.01)

    load = Load(rate_per_s=4, duration_s=1.0, workers=1, patience_s=1.0)
    records = run_load(timeline, load, request_for, sleep=clock.sleep, executor=InlineExecutor())

    assert [(r.kind, r.outcome, r.arrived_s) for r in records] == [
        ("browse", OK, 0.0),
        ("pay", "UNAVAILABLE", 0.25),
        ("browse", "404", 0.5),
        ("browse", OK, 0.75),
    ]
    assert records[0].latency_s == pytest.approx(0.01)
    assert timeline.calls == tuple(records)
    assert timeline.load == load
    assert timeline.kinds() == ["browse", "pay"]
    assert timeline.outcomes("browse") == {OK: 2, "404": 1}


def test_a_slow_call_makes_the_requests_behind_it_wait_and_the_impatient_ones_expire() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    made: list[int] = []

    def request_for(index: int) -> tuple[str, Callable[[], object]]:
        def call() -> None:
            made.append(index)
            if index == 0:
                clock.advance(1.6)  # the only worker is busy for 1.6 s

        return "browse", call

    load = Load(rate_per_s=2, duration_s=2.0, workers=1, patience_s=1.0)
    records = run_load(timeline, load, request_for, sleep=clock.sleep, executor=InlineExecutor())

    assert [r.outcome for r in records] == [OK, EXPIRED, OK, OK]
    assert made == [0, 2, 3]  # the expired request was dropped, not made
    assert records[1].waited_s == pytest.approx(1.1)  # arrived at 0.5, its user gave up at 1.5
    assert records[1].ended_s == records[1].started_s
    assert records[2].waited_s == pytest.approx(0.6)  # arrived at 1.0, served at 1.6
    assert records[3].waited_s == pytest.approx(0.1)


def test_events_run_at_their_time_between_arrivals_and_leave_a_marker() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    happened: list[float] = []
    events = [
        Event(2.5, "late", lambda: happened.append(clock())),
        Event(0.5, "fault cleared", lambda: happened.append(clock())),
    ]
    load = Load(rate_per_s=1, duration_s=2.0, workers=1, patience_s=1.0)
    run_load(
        timeline,
        load,
        lambda i: ("browse", lambda: None),
        events=events,
        sleep=clock.sleep,
        executor=InlineExecutor(),
    )

    assert happened == [0.5, 2.5]  # in time order, the one after the last arrival too
    assert [(m.at_s, m.label) for m in timeline.markers] == [(0.5, "fault cleared"), (2.5, "late")]
    assert timeline.end_s() == 2.5


def test_by_default_a_pool_of_worker_threads_serves_the_load() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    threads: set[str] = set()

    def call() -> None:
        threads.add(threading.current_thread().name)

    records = run_load(
        timeline,
        Load(rate_per_s=10, duration_s=1.0, workers=3, patience_s=5.0),
        lambda i: ("x", call),
        sleep=clock.sleep,
    )
    assert [r.outcome for r in records] == [OK] * 10
    assert threads and all(name.startswith("load") for name in threads)


def test_a_breaker_refusal_in_a_load_is_a_fail_fast_outcome() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    breaker = breaker_on(clock, timeline)
    trip(breaker)
    load = Load(rate_per_s=2, duration_s=1.0, workers=1, patience_s=1.0)
    records = run_load(
        timeline,
        load,
        lambda i: ("pay", lambda: breaker.call(fail)),
        sleep=clock.sleep,
        executor=InlineExecutor(),
    )
    assert [r.outcome for r in records] == [CIRCUIT_OPEN, CIRCUIT_OPEN]
    assert breaker.snapshot().totals.rejected == 2


# ----------------------------------------------------------------------------- reading a timeline


def test_the_backlog_counts_requests_waiting_and_in_progress() -> None:
    timeline = Timeline(ManualClock())
    timeline.record("a", OK, arrived_s=0.0, started_s=0.0, ended_s=1.0)
    timeline.record("a", OK, arrived_s=0.2, started_s=1.0, ended_s=1.5)
    assert timeline.backlog(step_s=0.5) == [(0.0, 0, 1), (0.5, 1, 1), (1.0, 0, 1), (1.5, 0, 0)]
    with pytest.raises(ValueError):
        timeline.backlog(step_s=0)


def test_the_summary_has_a_row_per_kind_and_a_column_per_outcome() -> None:
    timeline = Timeline(ManualClock())
    timeline.record("browse", OK, 0.0, 0.0, 0.002)
    timeline.record("pay", "DEADLINE_EXCEEDED", 0.0, 0.0, 0.5)
    timeline.record("pay", CIRCUIT_OPEN, 1.0, 1.0, 1.0000004)
    lines = timeline.summary().splitlines()
    assert lines[0].split() == ["kind", "requests", OK, "DEADLINE_EXCEEDED", CIRCUIT_OPEN, "median", "p95"]
    assert lines[1].split() == ["browse", "1", "1", "0", "0", "2", "ms", "2", "ms"]
    assert lines[2].split()[:5] == ["pay", "2", "0", "1", "1"]
    assert lines[2].endswith("500 ms")


def test_a_latency_percentile_is_the_nearest_rank_of_one_kind_as_the_summary_shows_it() -> None:
    timeline = Timeline(ManualClock())
    for i in range(1, 21):  # "read" takes 10, 20, ... 200 ms
        timeline.record("read", OK, 0.0, 0.0, i / 100)
    timeline.record("write", OK, 0.0, 0.0, 5.0)
    assert timeline.latency_percentile_s("read", 0.95) == pytest.approx(0.19)
    assert timeline.latency_percentile_s("read", 0.5) == pytest.approx(0.10)
    assert timeline.latency_percentile_s("write", 0.95) == 5.0
    assert timeline.latency_percentile_s("nobody", 0.95) == 0.0
    assert timeline.summary().splitlines()[1].split()[-4:] == ["100", "ms", "190", "ms"]


def test_a_record_knows_its_wait_and_latency() -> None:
    record = CallRecord("pay", OK, arrived_s=1.0, started_s=1.5, ended_s=2.0)
    assert (record.waited_s, record.latency_s) == (0.5, 1.0)


# ----------------------------------------------------------------------------- polling


def test_a_poller_notes_what_it_reads_and_skips_failed_reads() -> None:
    clock = ManualClock()
    timeline = Timeline(clock)
    readings: list[Any] = ["CLOSED", RuntimeError("gateway busy"), "OPEN"]

    def read() -> str:
        reading = readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return str(reading)

    poller = StatePoller(timeline, "catalog", read)
    for _ in range(3):
        poller.poll_once()
        clock.advance(1.0)
    assert [(c.at_s, c.new) for c in timeline.changes] == [(2.0, State.OPEN)]
    with pytest.raises(ValueError):
        StatePoller(timeline, "catalog", read, interval_s=0)


def test_a_poller_reads_in_the_background_until_the_block_ends() -> None:
    timeline = Timeline(ManualClock())
    polled = threading.Event()
    reads: list[str] = []

    def read() -> State:
        reads.append(threading.current_thread().name)
        if len(reads) >= 3:
            polled.set()
        return State.CLOSED

    with StatePoller(timeline, "catalog", read, interval_s=0.001):
        assert polled.wait(WAIT_S)
    after = len(reads)
    assert "poll-catalog" in reads
    assert len(reads) == after  # stopped: no reads after the block
    assert timeline.breakers() == ["catalog"]


# ----------------------------------------------------------------------------- drawing


def story() -> Timeline:
    clock = ManualClock()
    timeline = Timeline(clock)
    breaker = breaker_on(clock, timeline)

    def request_for(index: int) -> tuple[str, Callable[[], object]]:
        if index % 2:
            return "browse", lambda: clock.advance(0.002)
        return "pay", lambda: breaker.call(fail)

    events = [Event(2.0, "fault cleared", lambda: None)]
    run_load(
        timeline,
        Load(rate_per_s=4, duration_s=4.0, workers=2, patience_s=1.0),
        request_for,
        events=events,
        sleep=clock.sleep,
        executor=InlineExecutor(),
    )
    return timeline


def test_the_plot_puts_states_latency_and_backlog_of_each_run_on_shared_time_axes() -> None:
    with_breaker = story()
    without = Timeline(ManualClock())
    without.record("browse", EXPIRED, 0.0, 1.2, 1.2)
    figure = plot_timelines({"without": without, "with": with_breaker}, breaker="payment", title="demo")
    try:
        axes = figure.axes
        assert len(axes) == 6
        assert [ax.get_title() for ax in axes[:2]] == ["without", "with"]
        texts = [t.get_text() for ax in axes for t in ax.texts]
        assert "no circuit breaker" in texts and "fault cleared" in texts and "2 workers" in texts
        assert axes[2].get_yscale() == "log"
        assert axes[4].get_xlabel() == "time since the load started (s)"
        legend = [t.get_text() for t in figure.legends[0].get_texts()]
        for label in ("breaker state", "CLOSED", "OPEN", CIRCUIT_OPEN, OK, EXPIRED, "browse", "pay"):
            assert label in legend
        assert figure.get_suptitle() == "demo"
    finally:
        plt.close(figure)


def test_the_plot_can_leave_out_the_backlog_and_name_another_capacity() -> None:
    timeline = story()
    figure = plot_timelines({"run": timeline}, backlog=False)
    try:
        assert len(figure.axes) == 2
    finally:
        plt.close(figure)
    figure = plot_timelines({"run": timeline}, capacity=(40, "gateway threads"))
    try:
        assert "gateway threads" in [t.get_text() for t in figure.axes[2].texts]
    finally:
        plt.close(figure)
    with pytest.raises(ValueError):
        plot_timelines({})


def test_unknown_outcomes_get_distinct_colours_and_known_ones_keep_theirs() -> None:
    known = ["OK", "teapot", "418"]
    assert outcome_color("OK", known) == outcome_color("OK")
    assert outcome_color("teapot", known) != outcome_color("418", known)
