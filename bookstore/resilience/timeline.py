"""Timelines: what a circuit breaker did, and what its callers saw, on one time axis.

**What.** A ``Timeline`` records three kinds of fact against one clock: every request a load
made (when it arrived, when a worker took it, when it ended, how it ended), every transition
of the breakers it listens to (``timeline.listener`` is a ``StateListener``), and markers for
what the experimenter did ("fault cleared"). ``run_load`` sends requests at a steady rate
through a bounded pool of workers, the way requests reach a server's thread pool.
``plot_timelines`` draws, for one or more runs side by side, the breaker's states as coloured
bands above the latency and outcome of every request and the backlog of waiting requests,
all on one time axis.

**Why.** A breaker's worth is a story in time: failures pile up, it opens, callers fail fast,
it tries again, it closes. Totals ("312 rejected") hide that story; a timeline tells it, and
shows what the breaker is for: the requests that never touched the failing dependency stay
fast.

**Open-loop load.** Requests arrive on a schedule, whatever became of the earlier ones, as
users do. A closed loop (each client waits for its answer before sending again) slows down
when the server does, and so hides the pile-up it is meant to show.

**Patience.** A user waits ``patience_s`` for a worker to take their request, then gives up.
A worker that takes a request after that drops it at once as ``EXPIRED``, rather than make a
call nobody waits for any more. (A call already made runs to its own deadline: the worker
cannot know that its user has left.)

**When not to.** This is an instrument for experiments and teaching, not monitoring: it keeps
every record in memory and plots them all. In production, breakers report to metrics
(week 10) through the same listener hook.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import grpc

from bookstore.resilience.breaker import CircuitBreaker
from bookstore.rpc.failures import CircuitOpenError, State

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

OK = "OK"
"""The outcome of a call that returned."""
CIRCUIT_OPEN = "CIRCUIT_OPEN"
"""The outcome of a call a breaker refused: it failed fast, without being made."""
EXPIRED = "EXPIRED"
"""The outcome of a request that waited for a worker longer than its user's patience."""

Call = Callable[[], object]
"""One request's work. A string it returns is the outcome (an HTTP status, say); anything else
counts as ``OK``. An exception it raises becomes the outcome ``outcome_of(error)``."""
RequestFactory = Callable[[int], tuple[str, Call]]
"""``request_for(index)`` -> ``(kind, call)``: what the index-th request of a load does."""


def outcome_of(error: BaseException) -> str:
    """A short name for how a call failed: ``CIRCUIT_OPEN``, a gRPC status name, or the type name."""
    if isinstance(error, CircuitOpenError):
        return CIRCUIT_OPEN
    if isinstance(error, grpc.RpcError):
        code = getattr(error, "code", None)
        status = code() if callable(code) else None
        return status.name if isinstance(status, grpc.StatusCode) else "RPC_ERROR"
    return type(error).__name__


class ManualClock:
    """A clock that moves only when told: ``clock()`` reads it, ``clock.advance(s)`` moves it.

    Give it to a ``CircuitBreaker`` (``clock=``) to replay a story without waiting, and its
    ``sleep`` to ``run_load`` so that waiting for the next arrival is moving the clock.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go back; got {seconds}")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` for this clock: a negative or zero wait is no wait."""
        self.advance(max(0.0, seconds))


@dataclass(frozen=True)
class CallRecord:
    """One request: its kind, how it ended, and when (seconds since the timeline began)."""

    kind: str
    outcome: str
    arrived_s: float
    started_s: float
    """When a worker took it: ``started_s - arrived_s`` is the time it queued."""
    ended_s: float

    @property
    def latency_s(self) -> float:
        """What the user saw: from arrival to answer, queueing included."""
        return self.ended_s - self.arrived_s

    @property
    def waited_s(self) -> float:
        return self.started_s - self.arrived_s


@dataclass(frozen=True)
class StateChange:
    at_s: float
    breaker: str
    old: State
    new: State
    generation: int


@dataclass(frozen=True)
class StateSpan:
    """A breaker stayed in ``state`` from ``start_s`` to ``end_s``."""

    breaker: str
    state: State
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Marker:
    at_s: float
    label: str


@dataclass(frozen=True)
class Load:
    """A steady stream of requests served by a bounded pool of workers."""

    rate_per_s: float
    """Arrivals per second, evenly spaced."""
    duration_s: float
    """How long requests keep arriving."""
    workers: int
    """Requests served at once; the rest wait in line."""
    patience_s: float
    """How long a request may wait for a worker; one taken later is dropped as ``EXPIRED``."""

    def __post_init__(self) -> None:
        for name in ("rate_per_s", "duration_s", "patience_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")

    @property
    def requests(self) -> int:
        """How many requests arrive: one at 0, then one every ``1 / rate_per_s`` before ``duration_s``."""
        return max(1, math.ceil(self.rate_per_s * self.duration_s - 1e-9))


@dataclass(frozen=True)
class Event:
    """Something to do ``at_s`` seconds into a load (clear a fault, say), marked on the timeline."""

    at_s: float
    label: str
    action: Callable[[], object]


class Timeline:
    """Calls, breaker transitions and markers, in seconds since the timeline was made. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, origin: float | None = None) -> None:
        """``origin``, a reading of ``clock``, is time 0; by default now. A load run by another
        process (Locust) gives ``clock=time.time`` and its first request's Unix time."""
        self.clock = clock
        self._origin = clock() if origin is None else origin
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._changes: list[StateChange] = []
        self._markers: list[Marker] = []
        # Per breaker: the state it was in when the timeline first heard of it, and since when.
        self._initial: dict[str, tuple[float, State]] = {}
        self._last_state: dict[str, State] = {}
        self.load: Load | None = None
        """The last load ``run_load`` drove on this timeline (its patience and workers get drawn)."""

    def now(self) -> float:
        """Seconds since the timeline began."""
        return self.clock() - self._origin

    # ----------------------------------------------------------------- recording

    def listener(self, name: str, old: State, new: State, generation: int) -> None:
        """A ``StateListener``: ``CircuitBreaker(..., listeners=[timeline.listener])``."""
        at = self.now()
        with self._lock:
            # A breaker first heard of through a transition was in ``old`` since the beginning.
            self._initial.setdefault(name, (0.0, old))
            self._changes.append(StateChange(at, name, old, new, generation))
            self._last_state[name] = new

    def watch(self, breaker: CircuitBreaker) -> None:
        """Note ``breaker``'s state now and listen to its transitions from here on."""
        self.observe(breaker.name, breaker.state)
        breaker.add_listener(self.listener)

    def observe(self, name: str, state: State | str) -> None:
        """A state read from outside (``/internal/breakers``, say): recorded when it changed.

        ``state`` may be a ``State`` or its name (``"HALF_OPEN"``). A poller sees only the states
        it happens to read, so a change gets generation -1: unknown.
        """
        state = state if isinstance(state, State) else State[state]
        at = self.now()
        with self._lock:
            last = self._last_state.get(name)
            if last is None:
                self._initial[name] = (at, state)
            elif last is not state:
                self._changes.append(StateChange(at, name, last, state, -1))
            self._last_state[name] = state

    def record(
        self, kind: str, outcome: str, arrived_s: float, started_s: float, ended_s: float | None = None
    ) -> CallRecord:
        """Add one request's record; ``ended_s`` defaults to now."""
        record = CallRecord(kind, outcome, arrived_s, started_s, self.now() if ended_s is None else ended_s)
        with self._lock:
            self._calls.append(record)
        return record

    def mark(self, label: str) -> Marker:
        marker = Marker(self.now(), label)
        with self._lock:
            self._markers.append(marker)
        return marker

    # ----------------------------------------------------------------- reading

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        with self._lock:
            return tuple(self._calls)

    @property
    def changes(self) -> tuple[StateChange, ...]:
        with self._lock:
            return tuple(self._changes)

    @property
    def markers(self) -> tuple[Marker, ...]:
        with self._lock:
            return tuple(self._markers)

    def breakers(self) -> list[str]:
        """The names of the breakers this timeline has heard of."""
        with self._lock:
            return sorted(self._initial)

    def end_s(self) -> float:
        """The time of the last thing recorded (0.0 for an empty timeline)."""
        with self._lock:
            times = [c.ended_s for c in self._calls]
            times += [c.at_s for c in self._changes] + [m.at_s for m in self._markers]
        return max(times, default=0.0)

    def spans(self, breaker: str | None = None, *, until_s: float | None = None) -> list[StateSpan]:
        """The states ``breaker`` went through, as consecutive spans up to ``until_s``.

        ``breaker`` may be left out when the timeline knows just one. ``until_s`` defaults to
        the end of the timeline. An empty list if the breaker was never heard of.
        """
        names = self.breakers()
        if breaker is None:
            if len(names) > 1:
                raise ValueError(f"this timeline follows several breakers; name one of {names}")
            if not names:
                return []
            breaker = names[0]
        with self._lock:
            if breaker not in self._initial:
                return []
            start, state = self._initial[breaker]
            changes = [c for c in self._changes if c.breaker == breaker]
        end = self.end_s() if until_s is None else until_s
        spans: list[StateSpan] = []
        for change in changes:
            spans.append(StateSpan(breaker, state, start, change.at_s))
            start, state = change.at_s, change.new
        spans.append(StateSpan(breaker, state, start, max(start, end)))
        return [span for span in spans if span.end_s > span.start_s or span is spans[-1]]

    def outcomes(self, kind: str | None = None) -> Counter[str]:
        """How many requests (of ``kind``, or all) ended in each outcome."""
        return Counter(c.outcome for c in self.calls if kind is None or c.kind == kind)

    def kinds(self) -> list[str]:
        """The kinds of request recorded, in order of first appearance."""
        return list(dict.fromkeys(c.kind for c in self.calls))

    def backlog(self, step_s: float = 0.05, *, until_s: float | None = None) -> list[tuple[float, int, int]]:
        """``(time, waiting, running)`` every ``step_s``: requests in line, and requests being served."""
        if step_s <= 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        calls = self.calls
        end = self.end_s() if until_s is None else until_s
        samples = []
        for index in range(math.floor(end / step_s + 1e-9) + 1):
            t = index * step_s
            waiting = sum(1 for c in calls if c.arrived_s <= t < c.started_s)
            running = sum(1 for c in calls if c.started_s <= t < c.ended_s)
            samples.append((t, waiting, running))
        return samples

    def latency_percentile_s(self, kind: str, share: float) -> float:
        """The nearest-rank ``share`` percentile of one kind's latencies, as ``summary`` shows it
        (0.0 when that kind made no request)."""
        return _percentile(sorted(c.latency_s for c in self.calls if c.kind == kind), share)

    def summary(self) -> str:
        """A table: per kind of request, how many, how they ended, median and 95th percentile latency."""
        calls = self.calls
        outcomes = list(dict.fromkeys(c.outcome for c in calls))
        header = ["kind", "requests", *outcomes, "median", "p95"]
        rows = [header]
        for kind in self.kinds():
            counts = Counter(c.outcome for c in calls if c.kind == kind)
            rows.append(
                [
                    kind,
                    str(sum(counts.values())),
                    *(str(counts[o]) for o in outcomes),
                    _format_seconds(self.latency_percentile_s(kind, 0.5)),
                    _format_seconds(self.latency_percentile_s(kind, 0.95)),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        )


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1e6:.0f} µs"


# ----------------------------------------------------------------------------- driving a load


def run_load(
    timeline: Timeline,
    load: Load,
    request_for: RequestFactory,
    *,
    events: Iterable[Event] = (),
    sleep: Callable[[float], None] = time.sleep,
    executor: Executor | None = None,
) -> list[CallRecord]:
    """Send ``load.requests`` requests at ``load.rate_per_s`` through ``load.workers`` workers.

    Returns once every request has ended, with this run's records (also kept in ``timeline``).
    ``events`` run at their times (seconds from the start of this load) on the thread that
    sends the requests, each leaving a marker. ``sleep`` must agree with the timeline's clock
    (``ManualClock.sleep`` for a ``ManualClock``). ``executor`` replaces the pool of workers
    (then ``load.workers`` is only drawn); by default a thread pool of ``load.workers``.
    """
    timeline.load = load
    origin = timeline.now()
    pending = sorted(events, key=lambda event: event.at_s)
    pool = executor if executor is not None else ThreadPoolExecutor(load.workers, thread_name_prefix="load")
    futures: list[Future[CallRecord]] = []

    def wait_until(at_s: float) -> None:
        delay = origin + at_s - timeline.now()
        if delay > 0:
            sleep(delay)

    def run_events_until(at_s: float) -> None:
        while pending and pending[0].at_s <= at_s:
            event = pending.pop(0)
            wait_until(event.at_s)
            event.action()
            timeline.mark(event.label)

    try:
        for index in range(load.requests):
            arrival = index / load.rate_per_s
            run_events_until(arrival)
            wait_until(arrival)
            kind, call = request_for(index)
            futures.append(pool.submit(_serve, timeline, kind, call, origin + arrival, load.patience_s))
        run_events_until(math.inf)
        return [future.result() for future in futures]
    finally:
        if executor is None:
            pool.shutdown(wait=True)


def _serve(timeline: Timeline, kind: str, call: Call, arrived_s: float, patience_s: float) -> CallRecord:
    started = timeline.now()
    if started - arrived_s > patience_s:
        return timeline.record(kind, EXPIRED, arrived_s, started, started)
    try:
        answer = call()
    except Exception as error:
        outcome = outcome_of(error)
    else:
        outcome = answer if isinstance(answer, str) else OK
    return timeline.record(kind, outcome, arrived_s, started)


class StatePoller:
    """Reads a breaker's state from outside every ``interval_s`` and notes changes on a timeline.

    For breakers in another process: ``read`` fetches the state (a ``State`` or its name), from
    ``GET /internal/breakers`` say. A read that fails is skipped. Use it as a context manager
    around the load; ``poll_once`` reads once, on the caller's thread.
    """

    def __init__(
        self, timeline: Timeline, name: str, read: Callable[[], State | str], *, interval_s: float = 0.05
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.timeline = timeline
        self.name = name
        self.read = read
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> None:
        try:
            state = self.read()
        except Exception as error:  # a missed reading is not worth stopping the experiment for
            log.debug("reading the state of %r failed: %s", self.name, error)
            return
        self.timeline.observe(self.name, state)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> StatePoller:
        self.poll_once()  # the state at the start, before the load begins
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.poll_once()


# ----------------------------------------------------------------------------- drawing

STATE_COLORS: Mapping[State, str] = {
    State.CLOSED: "#b7e4c7",
    State.OPEN: "#f4a3a3",
    State.HALF_OPEN: "#ffd166",
}
OUTCOME_COLORS: Mapping[str, str] = {
    OK: "#2b9348",
    "200": "#2b9348",
    "200 cache": "#00a6c7",
    CIRCUIT_OPEN: "#3a56d4",
    "503": "#3a56d4",
    "DEADLINE_EXCEEDED": "#d62828",
    "504": "#d62828",
    EXPIRED: "#f77f00",
    "timeout": "#7a0010",
    "UNAVAILABLE": "#8338ec",
}
_OTHER_COLORS = ("#6c757d", "#b5838d", "#8d99ae", "#bc6c25", "#4a4e69")
KIND_MARKERS = ("o", "^", "s", "D", "v", "P")
_LATENCY_FLOOR_MS = 0.01  # log scale: a refusal in a few microseconds still shows


def outcome_color(outcome: str, known: Sequence[str] = ()) -> str:
    """The colour of an outcome: a fixed one for the usual outcomes, else one by position in ``known``."""
    if outcome in OUTCOME_COLORS:
        return OUTCOME_COLORS[outcome]
    others = [o for o in known if o not in OUTCOME_COLORS]
    index = others.index(outcome) if outcome in others else len(others)
    return _OTHER_COLORS[index % len(_OTHER_COLORS)]


def plot_timelines(
    timelines: Mapping[str, Timeline],
    *,
    breaker: str | None = None,
    title: str = "",
    backlog: bool = True,
    capacity: tuple[float, str] | None = None,
    width: float = 6.0,
) -> Figure:
    """One column per timeline (its title the key): breaker states, request latency, backlog.

    Rows share the time axis within a column and the y axis across columns, so runs compare
    at a glance. ``breaker`` names the breaker to draw when a timeline follows several.
    ``capacity`` is the line drawn across the backlog, ``(level, label)``; by default the
    load's workers. The figure is made with pyplot: end the cell with ``plt.show()``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if not timelines:
        raise ValueError("nothing to plot: no timelines given")
    rows = 3 if backlog else 2
    ratios = [0.45, 3.0, 1.4][:rows]
    figure, axes = plt.subplots(
        rows,
        len(timelines),
        figsize=(width * len(timelines) + 2.2, 1.9 * sum(ratios) + 0.6),
        sharex="col",
        sharey="row",
        squeeze=False,
        gridspec_kw={"height_ratios": ratios},
        layout="constrained",
    )
    until = max(t.end_s() for t in timelines.values()) * 1.02 or 1.0
    kinds = list(dict.fromkeys(k for t in timelines.values() for k in t.kinds()))
    outcomes = list(dict.fromkeys(c.outcome for t in timelines.values() for c in t.calls))
    states_seen: set[State] = set()
    for column, (label, timeline) in enumerate(timelines.items()):
        spans = _spans_to_draw(timeline, breaker, until)
        states_seen.update(span.state for span in spans)
        _draw_states(axes[0][column], spans, until)
        axes[0][column].set_title(label)
        _draw_calls(axes[1][column], timeline, spans, kinds, outcomes)
        if backlog:
            _draw_backlog(axes[2][column], timeline, until, capacity)
        for row in range(rows):
            _draw_markers(axes[row][column], timeline, labelled=row == 1)
        axes[rows - 1][column].set_xlabel("time since the load started (s)")
        axes[rows - 1][column].set_xlim(0, until)
    axes[1][0].set_ylabel("latency per request (ms, log)")
    if backlog:
        axes[2][0].set_ylabel("requests")

    def heading(text: str) -> Line2D:
        return Line2D([], [], linestyle="none", label=text)

    handles: list[Line2D | Patch] = []
    if states_seen:
        handles.append(heading("breaker state"))
        handles += [Patch(color=STATE_COLORS[s], label=s.name) for s in State if s in states_seen]
    handles.append(heading("outcome"))
    handles += [
        Line2D([], [], linestyle="none", marker="o", color=outcome_color(o, outcomes), label=o)
        for o in outcomes
    ]
    handles.append(heading("request"))
    handles += [
        Line2D([], [], linestyle="none", marker=KIND_MARKERS[i % len(KIND_MARKERS)], color="#555", label=k)
        for i, k in enumerate(kinds)
    ]
    if backlog:
        handles.append(heading("backlog"))
        handles += [
            Patch(color="#90a4ae", label="in progress"),
            Patch(color="#f8b878", label="waiting for a worker"),
        ]
    figure.legend(handles=handles, loc="outside right center", frameon=False)
    if title:
        figure.suptitle(title)
    return figure


def _spans_to_draw(timeline: Timeline, breaker: str | None, until: float) -> list[StateSpan]:
    names = timeline.breakers()
    if breaker is not None and breaker not in names:
        return []
    if breaker is None and len(names) != 1:
        return []
    return timeline.spans(breaker, until_s=until)


def _draw_states(ax: Axes, spans: Sequence[StateSpan], until: float) -> None:
    ax.set_yticks([])
    ax.set_ylim(0, 1)
    if not spans:
        ax.text(
            0.5, 0.5, "no circuit breaker", transform=ax.transAxes, ha="center", va="center", color="#555"
        )
        return
    ax.set_ylabel(spans[0].breaker, rotation=0, ha="right", va="center")
    for span in spans:
        ax.broken_barh(
            [(span.start_s, span.end_s - span.start_s)], (0, 1), facecolors=STATE_COLORS[span.state]
        )
        if span.end_s - span.start_s > 0.09 * until:
            middle = (span.start_s + span.end_s) / 2
            ax.text(middle, 0.5, span.state.name, ha="center", va="center", fontsize=8)


def _draw_calls(
    ax: Axes, timeline: Timeline, spans: Sequence[StateSpan], kinds: Sequence[str], outcomes: Sequence[str]
) -> None:
    for span in spans:
        ax.axvspan(span.start_s, span.end_s, color=STATE_COLORS[span.state], alpha=0.35, linewidth=0)
    calls = timeline.calls
    for index, kind in enumerate(kinds):
        for outcome in outcomes:
            chosen = [c for c in calls if c.kind == kind and c.outcome == outcome]
            if not chosen:
                continue
            ax.scatter(
                [c.ended_s for c in chosen],
                [max(c.latency_s * 1000, _LATENCY_FLOOR_MS) for c in chosen],
                s=16,
                marker=KIND_MARKERS[index % len(KIND_MARKERS)],
                color=outcome_color(outcome, outcomes),
                alpha=0.75,
                linewidths=0,
            )
    ax.set_yscale("log")
    if timeline.load is not None:
        patience_ms = timeline.load.patience_s * 1000
        ax.axhline(patience_ms, color="#333", linestyle=":", linewidth=1)
        ax.annotate("patience", (0, patience_ms), xytext=(2, 2), textcoords="offset points", fontsize=8)
    ax.grid(True, which="major", axis="y", alpha=0.3)


def _draw_backlog(ax: Axes, timeline: Timeline, until: float, capacity: tuple[float, str] | None) -> None:
    samples = timeline.backlog(step_s=max(until / 400, 0.005), until_s=until)
    times = [t for t, _, _ in samples]
    ax.stackplot(
        times,
        [running for _, _, running in samples],
        [waiting for _, waiting, _ in samples],
        colors=["#90a4ae", "#f8b878"],
        step="post",
        linewidth=0,
    )
    if capacity is None and timeline.load is not None:
        capacity = (timeline.load.workers, f"{timeline.load.workers} workers")
    if capacity is not None:
        level, label = capacity
        ax.axhline(level, color="#333", linestyle=":", linewidth=1)
        ax.annotate(label, (0, level), xytext=(2, 2), textcoords="offset points", fontsize=8)


def _draw_markers(ax: Axes, timeline: Timeline, *, labelled: bool) -> None:
    for marker in timeline.markers:
        ax.axvline(marker.at_s, color="#222", linestyle="--", linewidth=1)
        if labelled:
            ax.annotate(
                marker.label,
                (marker.at_s, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
            )
