"""SagaOrchestrator with fake participants, a fake clock and sleep, and a real SQLite (or MariaDB) log."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bookstore.resilience import CircuitOpenError, CircuitOpenRpcError, State
from bookstore.resilience.timeline import ManualClock
from bookstore.saga import (
    Backoff,
    FailureMeaning,
    SagaBusy,
    SagaDefinition,
    SagaEnd,
    SagaEvent,
    SagaLog,
    SagaOrchestrator,
    SagaState,
    Step,
    StepContext,
    StepEventKind,
    UnknownSagaDefinition,
    classify_failure,
    describe_error,
)

from .fakes import Call, FakeRpcError, FakeSleep, FakeWallClock, Fault, Participant

STEPS = ("reserve", "pay", "confirm")
SAGA = "place_order"
ORDER = "order-1"
STEP_TIMEOUT_S = 2.0
SAGA_DEADLINE_S = 10.0

S, F = StepEventKind.STARTED, StepEventKind.FAILED
OK = StepEventKind.SUCCEEDED
C, CD, CF = StepEventKind.COMPENSATING, StepEventKind.COMPENSATED, StepEventKind.COMPENSATION_FAILED


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the orchestrator catches it."""


def refusal() -> FakeRpcError:
    return FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "card declined")


def timeout() -> FakeRpcError:
    return FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")


def unavailable() -> FakeRpcError:
    return FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")


@dataclass
class World:
    """Three participants, one saga definition over them, and a log on ``engine``."""

    engine: Engine
    clock: ManualClock
    sleep: FakeSleep
    wall: FakeWallClock = field(default_factory=FakeWallClock)
    journal: list[Call] = field(default_factory=list)
    events: list[SagaEvent] = field(default_factory=list)
    participants: dict[str, Participant] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.participants = {name: Participant(name, self.journal, self.clock) for name in STEPS}

    def definition(self, timeouts: dict[str, float] | None = None) -> SagaDefinition:
        timeouts = timeouts or {}
        return SagaDefinition(
            SAGA,
            [
                Step(name, p.act, p.undo, timeout_s=timeouts.get(name, STEP_TIMEOUT_S))
                for name, p in self.participants.items()
            ],
            deadline_s=SAGA_DEADLINE_S,
        )

    def orchestrator(
        self,
        *,
        hooks: Sequence[Callable[[SagaEvent], None]] = (),
        backoff: Backoff | None = None,
        owner: str = "order-0",
        definition: SagaDefinition | None = None,
    ) -> SagaOrchestrator:
        return SagaOrchestrator(
            SagaLog(self.engine, owner=owner, lease_s=60, clock_ns=self.wall),
            [definition or self.definition()],
            hooks=[self.events.append, *hooks],
            clock=self.clock,
            sleep=self.sleep,
            backoff=backoff or Backoff(jitter=0),
        )

    def fail_action(self, step: str, error: BaseException, *, after_work: bool = False) -> None:
        self.participants[step].action_faults.append(Fault(error, after_work))

    def fail_compensation(self, step: str, error: BaseException, *, times: int = 1) -> None:
        self.participants[step].compensation_faults.extend(Fault(error) for _ in range(times))

    def trail(self) -> list[tuple[str, StepEventKind]]:
        return [(event.step, event.kind) for event in self.events]

    def calls(self) -> list[tuple[str, str]]:
        return [(call.participant, call.kind) for call in self.journal]

    def in_effect(self) -> dict[str, bool]:
        return {name: bool(p.in_effect) for name, p in self.participants.items()}

    def applied_at_most_once(self) -> bool:
        return all(count <= 1 for p in self.participants.values() for count in p.applied.values())


@pytest.fixture
def world(sqlite_engine: Engine, clock: ManualClock, sleep: FakeSleep) -> World:
    return World(sqlite_engine, clock, sleep)


# The happy path


def test_a_saga_whose_steps_all_succeed_runs_them_in_order_and_undoes_nothing(world: World) -> None:
    outcome = world.orchestrator().run(SAGA, ORDER, {"order_id": ORDER})

    assert outcome.succeeded and outcome.state is SagaState.SUCCEEDED
    assert (outcome.failed_step, outcome.error, outcome.compensated) == (None, "", ())
    assert world.calls() == [("reserve", "act"), ("pay", "act"), ("confirm", "act")]
    assert world.in_effect() == {"reserve": True, "pay": True, "confirm": True}
    assert world.trail() == [(step, kind) for step in STEPS for kind in (S, OK)]


def test_every_call_carries_the_key_of_its_saga_and_step_and_the_payload(world: World) -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    definition = SagaDefinition(
        SAGA, [Step("pay", lambda ctx: seen.append((ctx.idempotency_key, dict(ctx.payload))))]
    )

    world.orchestrator(definition=definition).run(SAGA, ORDER, {"order_id": ORDER, "total_cents": 6500})

    assert seen == [(f"{ORDER}:pay", {"order_id": ORDER, "total_cents": 6500})]


def test_each_step_is_logged_before_its_action_runs(world: World) -> None:
    reader = SagaLog(world.engine, owner="reader")
    logged_when_called: list[list[tuple[str, StepEventKind]]] = []

    def look(ctx: StepContext) -> None:
        logged_when_called.append([(e.step, e.kind) for e in reader.get(ctx.saga_id).events])

    definition = SagaDefinition(SAGA, [Step("reserve", look), Step("pay", look)])
    world.orchestrator(definition=definition).run(SAGA, ORDER, {})

    assert logged_when_called == [
        [("reserve", S)],
        [("reserve", S), ("reserve", OK), ("pay", S)],
    ]


# A failing step: what is compensated


@pytest.mark.parametrize("position", range(len(STEPS)))
def test_a_refusal_compensates_exactly_the_completed_steps_in_reverse_order(
    world: World, position: int
) -> None:
    failing = STEPS[position]
    world.fail_action(failing, refusal())

    outcome = world.orchestrator().run(SAGA, ORDER, {})

    completed = list(STEPS[:position])
    assert outcome.state is SagaState.COMPENSATED and not outcome.succeeded
    assert outcome.failed_step == failing
    assert outcome.error == "FAILED_PRECONDITION: card declined"
    assert outcome.compensated == tuple(reversed(completed))
    assert world.calls() == [(s, "act") for s in [*completed, failing]] + [
        (s, "undo") for s in reversed(completed)
    ]
    assert not any(world.in_effect().values())


@pytest.mark.parametrize("make_error", [timeout, unavailable, lambda: RuntimeError("bug")])
@pytest.mark.parametrize("position", range(len(STEPS)))
def test_a_failure_that_may_have_done_the_work_compensates_the_failed_step_too(
    world: World, position: int, make_error: Callable[[], Exception]
) -> None:
    failing = STEPS[position]
    # The worst case: the work was done, then the answer was lost.
    world.fail_action(failing, make_error(), after_work=True)

    outcome = world.orchestrator().run(SAGA, ORDER, {})

    assert outcome.state is SagaState.COMPENSATED
    assert outcome.failed_step == failing
    assert outcome.compensated == tuple(reversed(STEPS[: position + 1]))
    assert not any(world.in_effect().values()), "the charge that got through before the timeout was refunded"
    assert outcome.exception is not None and type(outcome.exception) is type(make_error())


def test_the_failed_step_is_compensated_with_the_key_its_action_used(world: World) -> None:
    world.fail_action("pay", timeout(), after_work=True)

    world.orchestrator().run(SAGA, ORDER, {})

    pay_calls = [(call.kind, call.key) for call in world.journal if call.participant == "pay"]
    assert pay_calls == [("act", f"{ORDER}:pay"), ("undo", f"{ORDER}:pay")]


def test_the_default_policy_separates_refusals_from_unknown_outcomes() -> None:
    nothing, possibly = FailureMeaning.NOTHING_DONE, FailureMeaning.POSSIBLY_DONE
    assert classify_failure(refusal()) is nothing
    assert classify_failure(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT)) is nothing
    assert classify_failure(timeout()) is possibly
    assert classify_failure(unavailable()) is possibly
    assert classify_failure(FakeRpcError(grpc.StatusCode.INTERNAL)) is possibly
    assert classify_failure(FakeRpcError(grpc.StatusCode.ALREADY_EXISTS)) is possibly
    assert classify_failure(ValueError("a bug in the action")) is possibly


def test_a_call_our_own_circuit_breaker_refused_did_nothing_although_it_says_unavailable() -> None:
    refused = CircuitOpenRpcError("payment", 1.5)
    assert refused.code() is grpc.StatusCode.UNAVAILABLE
    assert classify_failure(refused) is FailureMeaning.NOTHING_DONE
    assert classify_failure(CircuitOpenError("payment", 0.0, State.HALF_OPEN)) is FailureMeaning.NOTHING_DONE


def test_a_call_our_own_circuit_breaker_refused_is_described_as_never_sent() -> None:
    assert (
        describe_error(CircuitOpenRpcError("payment", 1.5))
        == "circuit 'payment' is open; trial calls in 1.500 s"
    )
    assert describe_error(unavailable()).startswith("UNAVAILABLE")


def test_a_step_may_decide_what_its_own_failures_mean(world: World) -> None:
    definition = SagaDefinition(
        SAGA,
        [
            Step(
                "reserve",
                world.participants["reserve"].act,
                world.participants["reserve"].undo,
                failure_meaning=lambda error: FailureMeaning.NOTHING_DONE,
            )
        ],
    )
    world.fail_action("reserve", unavailable())

    outcome = world.orchestrator(definition=definition).run(SAGA, ORDER, {})

    assert outcome.compensated == ()


def test_a_step_without_compensation_is_skipped_when_undoing(world: World) -> None:
    price = Step("price", lambda ctx: None)
    reserve = world.participants["reserve"]
    definition = SagaDefinition(SAGA, [price, Step("reserve", reserve.act, reserve.undo)])
    world.fail_action("reserve", timeout())

    outcome = world.orchestrator(definition=definition).run(SAGA, ORDER, {})

    assert outcome.state is SagaState.COMPENSATED
    assert outcome.compensated == ("reserve",)


# Compensations that fail


def test_a_compensation_is_retried_with_backoff_and_the_original_error_is_reported(world: World) -> None:
    world.fail_action("pay", refusal())
    world.fail_compensation("reserve", unavailable(), times=2)

    outcome = world.orchestrator(backoff=Backoff(initial_s=0.5, multiplier=2, jitter=0)).run(SAGA, ORDER, {})

    assert outcome.state is SagaState.COMPENSATED
    assert outcome.error == "FAILED_PRECONDITION: card declined"
    assert outcome.failed_step == "pay"
    assert outcome.compensated == ("reserve",)
    assert world.sleep.calls == [0.5, 1.0]
    assert world.trail()[-6:] == [("reserve", kind) for kind in (C, CF, C, CF, C, CD)]
    assert [e.attempt for e in world.events if e.kind is C] == [1, 2, 3]
    assert not world.in_effect()["reserve"]


def test_a_compensation_that_keeps_failing_leaves_the_saga_in_flight_until_resumed(world: World) -> None:
    world.fail_action("confirm", refusal())
    world.fail_compensation("pay", unavailable(), times=3)

    first = world.orchestrator(backoff=Backoff(jitter=0, max_attempts=3)).run(SAGA, ORDER, {})

    assert first.state is SagaState.COMPENSATING and not first.finished
    assert first.error == "FAILED_PRECONDITION: card declined"
    # Reverse order holds: reserve waits until pay is undone.
    assert world.in_effect() == {"reserve": True, "pay": True, "confirm": False}
    assert [s.saga_id for s in world.orchestrator().log.in_flight()] == [ORDER]

    second = world.orchestrator().resume(ORDER)

    assert second.state is SagaState.COMPENSATED
    assert second.error == first.error and second.failed_step == "confirm"
    assert second.compensated == ("pay", "reserve")
    assert not any(world.in_effect().values())


def test_backoff_doubles_up_to_its_cap_and_jitter_only_shortens() -> None:
    backoff = Backoff(initial_s=0.1, multiplier=2, max_s=1.0, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff.delay(10_000) == 1.0
    jittered = Backoff(initial_s=1.0, max_s=1.0, jitter=0.5, random=lambda: 1.0)
    assert jittered.delay(1) == 0.5


# Deadlines


def test_a_step_gets_its_timeout_as_the_grpc_deadline(world: World) -> None:
    world.orchestrator(definition=world.definition({"pay": 0.75})).run(SAGA, ORDER, {})

    assert [(call.participant, call.timeout_s) for call in world.journal] == [
        ("reserve", STEP_TIMEOUT_S),
        ("pay", 0.75),
        ("confirm", STEP_TIMEOUT_S),
    ]


def test_a_step_gets_what_is_left_of_the_saga_deadline_when_that_is_shorter(world: World) -> None:
    world.participants["reserve"].duration_s = 1.5

    world.orchestrator().run(SAGA, ORDER, {}, deadline_s=2.5)

    assert [call.timeout_s for call in world.journal[:2]] == [STEP_TIMEOUT_S, pytest.approx(1.0)]


def test_a_step_that_returns_after_its_timeout_failed_and_is_compensated(world: World) -> None:
    world.participants["pay"].duration_s = STEP_TIMEOUT_S + 0.1

    outcome = world.orchestrator().run(SAGA, ORDER, {})

    assert outcome.failed_step == "pay"
    assert outcome.error == f"step pay took longer than its timeout of {STEP_TIMEOUT_S:g} s"
    assert outcome.compensated == ("pay", "reserve")
    assert not any(world.in_effect().values())


def test_a_step_that_runs_past_the_saga_deadline_failed_and_is_compensated(world: World) -> None:
    world.participants["reserve"].duration_s = 1.0
    world.participants["pay"].duration_s = 1.0

    outcome = world.orchestrator().run(SAGA, ORDER, {}, deadline_s=1.5)

    assert outcome.failed_step == "pay"
    assert outcome.error == "step pay ran past the saga's deadline"
    assert outcome.compensated == ("pay", "reserve")


def test_when_the_saga_deadline_has_passed_the_next_step_is_not_started(world: World) -> None:
    world.participants["reserve"].duration_s = 1.0
    world.participants["pay"].duration_s = 1.0

    outcome = world.orchestrator().run(SAGA, ORDER, {}, deadline_s=2.0)

    assert outcome.state is SagaState.COMPENSATED
    assert outcome.failed_step == "confirm"
    assert outcome.error == "the saga's deadline passed before step confirm started"
    assert outcome.compensated == ("pay", "reserve")
    assert ("confirm", "act") not in world.calls()
    assert ("confirm", S) not in world.trail()


def test_compensations_run_even_after_the_saga_deadline(world: World) -> None:
    world.participants["pay"].duration_s = 5.0
    world.fail_compensation("reserve", unavailable(), times=2)

    outcome = world.orchestrator().run(SAGA, ORDER, {}, deadline_s=1.0)

    assert outcome.compensated == ("pay", "reserve")
    undo_timeouts = [call.timeout_s for call in world.journal if call.kind == "undo"]
    assert undo_timeouts == [STEP_TIMEOUT_S] * 4


# Hooks


def test_hooks_see_every_event_in_order_with_its_time_and_error(world: World) -> None:
    world.participants["reserve"].duration_s = 0.25
    world.fail_action("confirm", timeout())
    world.fail_compensation("pay", unavailable())

    world.orchestrator().run(SAGA, ORDER, {})

    assert world.trail() == [
        ("reserve", S),
        ("reserve", OK),
        ("pay", S),
        ("pay", OK),
        ("confirm", S),
        ("confirm", F),
        ("confirm", C),
        ("confirm", CD),
        ("pay", C),
        ("pay", CF),
        ("pay", C),
        ("pay", CD),
        ("reserve", C),
        ("reserve", CD),
    ]
    assert all(event.saga_id == ORDER for event in world.events)
    times = [event.at for event in world.events]
    assert times == sorted(times) and times[1] - times[0] == 0.25
    errors = {(e.step, e.kind): e.error for e in world.events if e.error}
    assert errors == {
        ("confirm", F): "DEADLINE_EXCEEDED: Deadline Exceeded",
        ("pay", CF): "UNAVAILABLE: connection refused",
    }


def test_a_hook_that_raises_does_not_change_the_saga(world: World) -> None:
    def broken(event: SagaEvent) -> None:
        raise ValueError("a broken metrics exporter")

    outcome = world.orchestrator(hooks=[broken]).run(SAGA, ORDER, {})

    assert outcome.succeeded
    assert len(world.events) == 6


# Replays and resuming


def test_running_a_finished_saga_again_calls_nobody_and_reports_the_same_outcome(world: World) -> None:
    world.fail_action("pay", refusal())
    first = world.orchestrator().run(SAGA, ORDER, {})
    calls, events = len(world.journal), len(world.events)

    again = world.orchestrator().run(SAGA, ORDER, {})
    resumed = world.orchestrator().resume(ORDER)

    assert again == first == resumed
    assert (len(world.journal), len(world.events)) == (calls, events)


def test_resuming_a_saga_whose_step_was_started_reruns_it_with_the_same_key(world: World) -> None:
    # The process dies inside Pay, after the payment service charged the card.
    world.fail_action("pay", SimulatedCrash(), after_work=True)
    with pytest.raises(SimulatedCrash):
        world.orchestrator().run(SAGA, ORDER, {"order_id": ORDER})
    assert world.orchestrator().log.get(ORDER).events[-1].kind is S

    outcome = world.orchestrator().resume(ORDER)

    assert outcome.succeeded
    pay_keys = [call.key for call in world.journal if call.participant == "pay"]
    assert pay_keys == [f"{ORDER}:pay", f"{ORDER}:pay"]
    assert world.participants["pay"].applied == {f"{ORDER}:pay": 1}, "charged once, not twice"
    assert world.calls()[-2:] == [("pay", "act"), ("confirm", "act")]


def test_a_rerun_step_that_fails_is_compensated_even_on_a_refusal(world: World) -> None:
    world.fail_action("pay", SimulatedCrash(), after_work=True)
    with pytest.raises(SimulatedCrash):
        world.orchestrator().run(SAGA, ORDER, {})
    world.fail_action("pay", refusal())

    outcome = world.orchestrator().resume(ORDER)

    assert outcome.failed_step == "pay"
    assert outcome.compensated == ("pay", "reserve"), "the first attempt may have charged"
    assert not any(world.in_effect().values())


def test_a_resumed_saga_gets_the_payload_from_the_log(world: World) -> None:
    world.fail_action("reserve", SimulatedCrash())
    with pytest.raises(SimulatedCrash):
        world.orchestrator().run(SAGA, ORDER, {"order_id": ORDER, "items": [[1, 2]]})
    seen: list[dict[str, object]] = []
    definition = SagaDefinition(
        SAGA, [Step(name, lambda ctx: seen.append(dict(ctx.payload))) for name in STEPS]
    )

    world.orchestrator(definition=definition).resume(ORDER)

    assert seen == [{"order_id": ORDER, "items": [[1, 2]]}] * 3


# Crash recovery at every boundary

SUCCEEDING = "succeeding"
REFUSED = "pay refused"
TIMED_OUT = "pay timed out after charging"
FLAKY_UNDO = "pay timed out, refund fails once"
SCENARIO_EVENTS = {SUCCEEDING: 6, REFUSED: 6, TIMED_OUT: 8, FLAKY_UNDO: 10}
# The boundaries a crash can fall on are the commits, not the events: a step's SUCCEEDED is
# committed with the next step's STARTED, and the last SUCCEEDED with the saga's end. These
# count the commits after which the saga is still in flight (the last commit of a saga that
# succeeds ends it, so there is nothing left to recover after it).
SCENARIO_COMMITS = {SUCCEEDING: 3, REFUSED: 5, TIMED_OUT: 7, FLAKY_UNDO: 9}


def arrange(world: World, scenario: str) -> None:
    if scenario == REFUSED:
        world.fail_action("pay", refusal())
    elif scenario == TIMED_OUT:
        world.fail_action("pay", timeout(), after_work=True)
    elif scenario == FLAKY_UNDO:
        world.fail_action("pay", timeout(), after_work=True)
        world.fail_compensation("pay", unavailable())


def crash_after(count: int) -> Callable[[SagaEvent], None]:
    """A hook that crashes once the ``count``-th commit of the saga log is done."""
    seen = 0

    def hook(event: SagaEvent) -> None:
        nonlocal seen
        if not event.last_in_commit:
            return  # the same transaction holds the next event: no crash can fall in between
        seen += 1
        if seen == count:
            raise SimulatedCrash(f"killed after {event.step} {event.kind.value}")

    return hook


@pytest.mark.parametrize("scenario", list(SCENARIO_EVENTS))
def test_each_scenario_has_the_events_the_crash_tests_walk_through(world: World, scenario: str) -> None:
    arrange(world, scenario)
    world.orchestrator().run(SAGA, ORDER, {})
    assert len(world.events) == SCENARIO_EVENTS[scenario]


@pytest.mark.parametrize("scenario", list(SCENARIO_COMMITS))
def test_each_scenario_has_the_commits_the_crash_tests_walk_through(world: World, scenario: str) -> None:
    arrange(world, scenario)
    reader = SagaLog(world.engine, owner="reader")
    in_flight_after_commit: list[bool] = []

    def look(event: SagaEvent) -> None:
        if event.last_in_commit:
            in_flight_after_commit.append(not reader.get(event.saga_id).finished)

    world.orchestrator(hooks=[look]).run(SAGA, ORDER, {})

    assert in_flight_after_commit.count(True) == SCENARIO_COMMITS[scenario]
    assert in_flight_after_commit[: SCENARIO_COMMITS[scenario]] == [True] * SCENARIO_COMMITS[scenario]


def test_a_step_succeeded_is_committed_with_the_next_step_started_and_the_last_with_the_end(
    world: World,
) -> None:
    commits: list[list[tuple[str, StepEventKind]]] = [[]]

    def look(event: SagaEvent) -> None:
        commits[-1].append((event.step, event.kind))
        if event.last_in_commit:
            commits.append([])

    world.orchestrator(hooks=[look]).run(SAGA, ORDER, {})

    assert commits[:-1] == [
        [("reserve", S)],
        [("reserve", OK), ("pay", S)],
        [("pay", OK), ("confirm", S)],
        [("confirm", OK)],
    ]
    assert world.orchestrator().log.get(ORDER).state is SagaState.SUCCEEDED


@pytest.mark.parametrize(
    ("scenario", "boundary"),
    [(scenario, n) for scenario, count in SCENARIO_COMMITS.items() for n in range(1, count + 1)],
)
def test_a_new_orchestrator_finishes_a_saga_killed_at_any_boundary(
    sqlite_engine: Engine, clock: ManualClock, sleep: FakeSleep, scenario: str, boundary: int
) -> None:
    world = World(sqlite_engine, clock, sleep)
    arrange(world, scenario)
    with pytest.raises(SimulatedCrash):
        world.orchestrator(hooks=[crash_after(boundary)]).run(SAGA, ORDER, {})

    outcomes = world.orchestrator().recover_all()

    assert [o.saga_id for o in outcomes] == [ORDER]
    assert world.orchestrator().log.in_flight() == []
    assert world.applied_at_most_once()
    if scenario == SUCCEEDING:
        assert outcomes[0].succeeded
        assert all(world.in_effect().values())
    else:
        assert outcomes[0].state is SagaState.COMPENSATED
        assert outcomes[0].failed_step == "pay"
        assert not any(world.in_effect().values())


@pytest.mark.parametrize("boundary", range(1, SCENARIO_COMMITS[TIMED_OUT] + 1))
def test_recovery_on_mariadb_and_sqlite_after_a_crash_at_any_boundary(
    engine: Engine, clock: ManualClock, sleep: FakeSleep, boundary: int
) -> None:
    world = World(engine, clock, sleep)
    arrange(world, TIMED_OUT)
    with pytest.raises(SimulatedCrash):
        world.orchestrator(hooks=[crash_after(boundary)]).run(SAGA, ORDER, {})

    [outcome] = world.orchestrator().recover_all()

    assert outcome.state is SagaState.COMPENSATED
    assert outcome.error == "DEADLINE_EXCEEDED: Deadline Exceeded"
    assert world.orchestrator().log.in_flight() == []
    assert not any(world.in_effect().values())


def test_recovery_leaves_alone_a_saga_another_live_owner_is_driving(world: World) -> None:
    with pytest.raises(SimulatedCrash):
        world.orchestrator(owner="order-1", hooks=[crash_after(2)]).run(SAGA, ORDER, {})

    assert world.orchestrator(owner="order-0").recover_all() == []
    with pytest.raises(SagaBusy):
        world.orchestrator(owner="order-0").resume(ORDER)
    world.wall.advance(61)  # order-1's lease runs out: it is presumed dead
    [outcome] = world.orchestrator(owner="order-0").recover_all()

    assert outcome.succeeded


def test_an_owner_restarting_under_its_name_takes_its_sagas_back_at_once(world: World) -> None:
    with pytest.raises(SimulatedCrash):
        world.orchestrator(owner="order-1", hooks=[crash_after(2)]).run(SAGA, ORDER, {})

    [outcome] = world.orchestrator(owner="order-1").recover_all()

    assert outcome.succeeded


def test_several_sagas_are_all_recovered(world: World) -> None:
    for index in range(3):
        world.fail_action("reserve", SimulatedCrash())
        with pytest.raises(SimulatedCrash):
            world.orchestrator().run(SAGA, f"order-{index}", {})

    outcomes = world.orchestrator().recover_all()

    assert sorted(o.saga_id for o in outcomes) == ["order-0", "order-1", "order-2"]
    assert all(o.succeeded for o in outcomes)


# Misuse


def test_an_unknown_definition_is_refused_before_anything_is_written(world: World) -> None:
    orchestrator = world.orchestrator()
    with pytest.raises(UnknownSagaDefinition, match="place_order"):
        orchestrator.run("ship_order", ORDER, {})
    assert orchestrator.log.find(ORDER) is None


def test_a_payload_that_is_not_json_is_refused_before_anything_is_written(world: World) -> None:
    orchestrator = world.orchestrator()
    with pytest.raises(TypeError, match="JSON"):
        orchestrator.run(SAGA, ORDER, {"when": object()})
    assert orchestrator.log.find(ORDER) is None


def test_a_definition_needs_steps_with_unique_names() -> None:
    with pytest.raises(ValueError, match="unique"):
        SagaDefinition(SAGA, [Step("pay", lambda ctx: None), Step("pay", lambda ctx: None)])
    with pytest.raises(ValueError, match="no steps"):
        SagaDefinition(SAGA, [])


def test_a_saga_id_is_bound_to_its_definition(world: World) -> None:
    other = SagaDefinition("refund_order", [Step("refund", lambda ctx: None)])
    orchestrator = SagaOrchestrator(
        SagaLog(world.engine), [world.definition(), other], clock=world.clock, sleep=world.sleep
    )
    orchestrator.run(SAGA, ORDER, {})
    with pytest.raises(ValueError, match="exists already"):
        orchestrator.run("refund_order", ORDER, {})


# Local writes in the log's first and last commits


def with_local_writes(
    world: World,
    on_create: Callable[[Session, Mapping[str, Any]], None] | None = None,
    on_end: Callable[[Session, SagaEnd], None] | None = None,
) -> SagaDefinition:
    return replace(world.definition(), on_create=on_create, on_end=on_end)


def test_a_failing_local_write_at_creation_leaves_no_saga_and_calls_nobody(world: World) -> None:
    def refuse(session: Session, payload: Mapping[str, Any]) -> None:
        raise ValueError("that request id is taken")

    orchestrator = world.orchestrator(definition=with_local_writes(world, on_create=refuse))
    with pytest.raises(ValueError, match="taken"):
        orchestrator.run(SAGA, ORDER, {"order_id": ORDER})
    assert orchestrator.log.find(ORDER) is None
    assert world.calls() == []


def test_the_local_write_at_the_end_learns_how_the_saga_ended(world: World) -> None:
    ends: list[SagaEnd] = []
    world.fail_action("pay", refusal())
    orchestrator = world.orchestrator(
        definition=with_local_writes(world, on_end=lambda session, end: ends.append(end))
    )
    orchestrator.run(SAGA, ORDER, {"order_id": ORDER})
    (end,) = ends
    assert (end.state, end.failed_step, end.payload) == (SagaState.COMPENSATED, "pay", {"order_id": ORDER})
    assert "card declined" in end.error


def test_a_failing_local_write_at_the_end_leaves_the_saga_unfinished_for_recovery(world: World) -> None:
    def broken(session: Session, end: SagaEnd) -> None:
        raise RuntimeError("disk full")

    orchestrator = world.orchestrator(definition=with_local_writes(world, on_end=broken))
    with pytest.raises(RuntimeError, match="disk full"):
        orchestrator.run(SAGA, ORDER, {"order_id": ORDER})
    # The saga's end was in the same transaction: rolled back with it, so the saga is in flight.
    assert [record.saga_id for record in orchestrator.log.in_flight()] == [ORDER]
