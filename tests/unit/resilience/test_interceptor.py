"""The breaker interceptor: every unary call to a service passes that service's breaker.

Most tests call the interceptor with a fake continuation, as gRPC would; the last ones run a
generated stub over ``grpc.intercept_channel`` and an in-process channel, so gRPC's own
plumbing (blocking calls, ``.with_call``, ``.future``) is in the loop. Time is a fake clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc
import pytest

from bookstore.platform.settings import Settings
from bookstore.resilience import (
    BreakerRegistry,
    BreakerSettings,
    CircuitBreakerInterceptor,
    CircuitOpenError,
    CircuitOpenRpcError,
    State,
    breaker_settings_from,
    log_state_change,
    protected_channel,
)
from bookstore.resilience.interceptor import CIRCUIT_METADATA_KEY, RETRY_AFTER_METADATA_KEY
from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import payment_pb2, payment_pb2_grpc

from .grpc_fakes import FakeCall, InProcessChannel, RpcFailure

PAY = "/bookstore.rpc.v1.PaymentService/Pay"
REFUND = "/bookstore.rpc.v1.PaymentService/Refund"
SMALL_WINDOW = BreakerSettings(window_size=4, minimum_calls=4, open_timeout_s=5.0, half_open_max_calls=1)



class Details(NamedTuple):
    """What gRPC passes an interceptor about a call."""

    method: str
    timeout: float | None = 2.0
    metadata: Any = None
    credentials: Any = None
    wait_for_ready: bool | None = None
    compression: Any = None


class Continuation:
    """Stands in for gRPC's continuation: records each call and returns the next prepared call."""

    def __init__(self, make_call: Callable[[], FakeCall] = FakeCall.succeeded) -> None:
        self.make_call = make_call
        self.seen: list[Details] = []

    def __call__(self, details: Any, request: Any) -> FakeCall:
        self.seen.append(details)
        return self.make_call()


def failing(code: grpc.StatusCode) -> Callable[[], FakeCall]:
    def make() -> FakeCall:
        call = FakeCall()
        call.fail(code, "it went wrong")
        return call

    return make


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(clock: ManualClock) -> BreakerRegistry:
    return BreakerRegistry(SMALL_WINDOW, clock=clock)


def intercept(registry: BreakerRegistry, continuation: Continuation, details: Details | None = None) -> Any:
    interceptor = CircuitBreakerInterceptor(registry, "payment")
    return interceptor.intercept_unary_unary(continuation, details or Details(PAY), "request")


def make_calls(registry: BreakerRegistry, continuation: Continuation, n: int) -> None:
    for _ in range(n):
        intercept(registry, continuation)


# --------------------------------------------------------------------------- passing and counting


def test_a_closed_breaker_passes_the_call_and_hands_back_gRPCs_own_call_object(
    registry: BreakerRegistry,
) -> None:
    continuation = Continuation()

    call = intercept(registry, continuation)

    assert call.result() == "response"
    assert len(continuation.seen) == 1
    assert registry.breaker("payment").snapshot().totals.successes == 1


def test_unavailable_failures_open_the_breaker_once_the_window_is_full(registry: BreakerRegistry) -> None:
    continuation = Continuation(failing(grpc.StatusCode.UNAVAILABLE))

    make_calls(registry, continuation, 3)
    assert registry.breaker("payment").state is State.CLOSED
    make_calls(registry, continuation, 1)

    assert registry.breaker("payment").state is State.OPEN


def test_a_failed_call_still_reaches_the_caller_as_its_own_error(registry: BreakerRegistry) -> None:
    call = intercept(registry, Continuation(failing(grpc.StatusCode.UNAVAILABLE)))

    with pytest.raises(RpcFailure) as raised:
        call.result()
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE


def test_a_deadline_exceeded_counts_as_a_failure(registry: BreakerRegistry) -> None:
    make_calls(registry, Continuation(failing(grpc.StatusCode.DEADLINE_EXCEEDED)), 4)

    assert registry.breaker("payment").snapshot().totals.failures == 4
    assert registry.breaker("payment").state is State.OPEN


def test_a_neutral_not_found_passes_through_and_never_trips_the_breaker(registry: BreakerRegistry) -> None:
    continuation = Continuation(failing(grpc.StatusCode.NOT_FOUND))

    make_calls(registry, continuation, 20)

    snapshot = registry.breaker("payment").snapshot()
    assert snapshot.state is State.CLOSED
    assert (snapshot.totals.successes, snapshot.totals.failures) == (20, 0)
    with pytest.raises(RpcFailure):
        intercept(registry, continuation).result()


# --------------------------------------------------------------------------- refusing


def test_an_open_breaker_refuses_at_once_and_never_calls_the_continuation(
    registry: BreakerRegistry,
) -> None:
    registry.breaker("payment").force_open()
    continuation = Continuation()

    call = intercept(registry, continuation)

    assert continuation.seen == []
    with pytest.raises(CircuitOpenRpcError):
        call.result()
    assert registry.breaker("payment").snapshot().totals.rejected == 1


def test_the_refusal_is_an_unavailable_rpc_error_that_says_the_circuit_is_open_and_when_to_retry(
    registry: BreakerRegistry, clock: ManualClock
) -> None:
    registry.breaker("payment").force_open()
    clock.advance(1.5)

    refusal = intercept(registry, Continuation()).exception()

    assert isinstance(refusal, grpc.RpcError) and isinstance(refusal, CircuitOpenError)
    assert refusal.code() is grpc.StatusCode.UNAVAILABLE
    assert refusal.retry_after_s == pytest.approx(3.5)
    assert "open" in refusal.details() and "retry_after_s=3.500" in refusal.details()
    assert dict(refusal.trailing_metadata()) == {
        CIRCUIT_METADATA_KEY: "payment",
        RETRY_AFTER_METADATA_KEY: "3.500",
    }


def test_the_refusal_behaves_as_a_finished_call_and_future() -> None:
    refusal = CircuitOpenRpcError("payment", 2.0)
    seen: list[Any] = []

    refusal.add_done_callback(seen.append)

    assert seen == [refusal]
    assert (refusal.done(), refusal.cancelled(), refusal.running(), refusal.is_active()) == (
        True,
        False,
        False,
        False,
    )
    assert refusal.exception() is refusal
    assert refusal.cancel() is False
    assert refusal.add_callback(lambda: None) is False


def test_a_half_open_breaker_with_its_trial_in_flight_refuses_until_the_verdict_is_due(
    registry: BreakerRegistry, clock: ManualClock
) -> None:
    breaker = registry.breaker("payment")
    breaker.force_open()
    clock.advance(5.0)
    trial = FakeCall()
    intercept(registry, Continuation(lambda: trial))  # the one trial slot, still pending
    max_wait = breaker.settings.half_open_max_wait_s
    assert max_wait is not None
    clock.advance(max_wait - 1.0)  # the trial is about to be given up on

    refusal = intercept(registry, Continuation()).exception()

    assert isinstance(refusal, CircuitOpenRpcError)
    assert refusal.state is State.HALF_OPEN
    assert refusal.retry_after_s == pytest.approx(1.0)
    assert "half-open" in refusal.details()


# --------------------------------------------------------------------------- futures and stale results


def test_a_future_is_judged_when_it_finishes_not_when_it_starts(registry: BreakerRegistry) -> None:
    pending = FakeCall()
    intercept(registry, Continuation(lambda: pending))
    assert registry.breaker("payment").snapshot().totals.failures == 0

    pending.fail(grpc.StatusCode.UNAVAILABLE)

    assert registry.breaker("payment").snapshot().totals.failures == 1


def test_a_late_failure_admitted_before_the_breaker_opened_is_ignored_as_stale(
    registry: BreakerRegistry, clock: ManualClock
) -> None:
    slow = FakeCall()
    intercept(registry, Continuation(lambda: slow))  # admitted while CLOSED
    make_calls(registry, Continuation(failing(grpc.StatusCode.UNAVAILABLE)), 4)
    clock.advance(5.0)
    breaker = registry.breaker("payment")
    assert breaker.state is State.HALF_OPEN

    slow.fail(grpc.StatusCode.DEADLINE_EXCEEDED)

    assert breaker.state is State.HALF_OPEN  # the old call says nothing about the trial
    assert breaker.snapshot().totals.ignored_stale == 1
    intercept(registry, Continuation())  # the trial succeeds
    assert breaker.state is State.CLOSED


def test_a_cancelled_future_is_abandoned_not_failed(registry: BreakerRegistry) -> None:
    pending = FakeCall()
    intercept(registry, Continuation(lambda: pending))

    pending.cancel()

    totals = registry.breaker("payment").snapshot().totals
    assert (totals.abandoned, totals.failures, totals.successes) == (1, 0, 0)


def test_a_call_interrupted_inside_the_continuation_is_abandoned_and_the_interrupt_goes_on(
    registry: BreakerRegistry,
) -> None:
    def interrupted() -> FakeCall:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        intercept(registry, Continuation(interrupted))

    assert registry.breaker("payment").snapshot().totals.abandoned == 1


# --------------------------------------------------------------------------- deadlines


def test_the_calls_own_timeout_reaches_the_continuation_unchanged(registry: BreakerRegistry) -> None:
    continuation = Continuation()
    interceptor = CircuitBreakerInterceptor(registry, "payment", default_timeout_s=9.0)

    interceptor.intercept_unary_unary(continuation, Details(PAY, timeout=0.25), "request")

    assert continuation.seen[0].timeout == 0.25


def test_a_call_without_a_timeout_gets_the_default_deadline_and_keeps_everything_else(
    registry: BreakerRegistry,
) -> None:
    continuation = Continuation()
    interceptor = CircuitBreakerInterceptor(registry, "payment", default_timeout_s=1.5)
    metadata = (("x-request-id", "42"),)

    interceptor.intercept_unary_unary(continuation, Details(PAY, timeout=None, metadata=metadata), "request")

    seen = continuation.seen[0]
    assert isinstance(seen, grpc.ClientCallDetails)
    assert (seen.method, seen.timeout, seen.metadata) == (PAY, 1.5, metadata)


# --------------------------------------------------------------------------- the registry


def test_all_methods_of_a_service_share_one_breaker_by_default(registry: BreakerRegistry) -> None:
    make_calls(registry, Continuation(failing(grpc.StatusCode.UNAVAILABLE)), 4)

    refund = intercept(registry, Continuation(), Details(REFUND))

    assert isinstance(refund.exception(), CircuitOpenRpcError)
    assert [breaker.name for breaker in registry] == ["payment"]


def test_a_service_judged_per_method_keeps_one_broken_method_from_cutting_off_the_others(
    clock: ManualClock,
) -> None:
    registry = BreakerRegistry(SMALL_WINDOW, per_method=["payment"], clock=clock)
    make_calls(registry, Continuation(failing(grpc.StatusCode.UNAVAILABLE)), 4)

    refund = intercept(registry, Continuation(), Details(REFUND))

    assert refund.result() == "response"
    assert {s.name: s.state for s in registry.snapshots()} == {
        "payment/Pay": State.OPEN,
        "payment/Refund": State.CLOSED,
    }


def test_an_override_gives_one_service_settings_of_its_own(clock: ManualClock) -> None:
    patient = BreakerSettings(window_size=50, minimum_calls=50)
    registry = BreakerRegistry(SMALL_WINDOW, overrides={"payment": patient}, clock=clock)

    assert registry.breaker("payment").settings is patient
    assert registry.breaker("inventory").settings is SMALL_WINDOW


def test_a_listener_hears_breakers_made_before_and_after_it_was_added(registry: BreakerRegistry) -> None:
    heard: list[tuple[str, State]] = []
    before = registry.breaker("payment")

    registry.add_listener(lambda name, old, new, generation: heard.append((name, new)))
    after = registry.breaker("inventory")
    before.force_open()
    after.force_open()

    assert heard == [("payment", State.OPEN), ("inventory", State.OPEN)]


def test_transitions_are_logged_an_opening_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bookstore.resilience.interceptor"):
        log_state_change("payment", State.CLOSED, State.OPEN, 1)
        log_state_change("payment", State.HALF_OPEN, State.CLOSED, 3)

    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "circuit 'payment': CLOSED -> OPEN (generation 1)"),
        (logging.INFO, "circuit 'payment': HALF_OPEN -> CLOSED (generation 3)"),
    ]


# --------------------------------------------------------------------------- settings


def test_breaker_settings_come_from_the_environment_with_the_documented_defaults() -> None:
    assert breaker_settings_from(Settings.from_env({})) == BreakerSettings()
    settings = Settings.from_env(
        {
            "BOOKSTORE_BREAKER_WINDOW_SIZE": "8",
            "BOOKSTORE_BREAKER_FAILURE_RATE": "0.25",
            "BOOKSTORE_BREAKER_MINIMUM_CALLS": "4",
            "BOOKSTORE_BREAKER_CONSECUTIVE_FAILURES": "3",
            "BOOKSTORE_BREAKER_OPEN_TIMEOUT_S": "0.5",
            "BOOKSTORE_BREAKER_HALF_OPEN_CALLS": "2",
            "BOOKSTORE_BREAKER_HALF_OPEN_MAX_WAIT_S": "12.5",
            "BOOKSTORE_BREAKER_PER_METHOD": "catalog, payment",
        }
    )

    assert breaker_settings_from(settings) == BreakerSettings(
        window_size=8,
        failure_rate_threshold=0.25,
        minimum_calls=4,
        consecutive_failures=3,
        open_timeout_s=0.5,
        half_open_max_calls=2,
        half_open_max_wait_s=12.5,
    )
    assert BreakerRegistry.from_settings(settings).per_method == {"catalog", "payment"}
    unbounded = Settings.from_env({"BOOKSTORE_BREAKER_HALF_OPEN_MAX_WAIT_S": "0"})
    assert breaker_settings_from(unbounded).half_open_max_wait_s is None


def test_breakers_are_on_unless_turned_off() -> None:
    assert Settings.from_env({}).breaker_enabled
    assert not Settings.from_env({"BOOKSTORE_BREAKER_ENABLED": "0"}).breaker_enabled
    assert not Settings.from_env({"BOOKSTORE_BREAKER_ENABLED": "off"}).breaker_enabled


def test_a_bad_breaker_setting_names_its_variable() -> None:
    settings = Settings.from_env({"BOOKSTORE_BREAKER_FAILURE_RATE": "1.5"})

    with pytest.raises(ValueError, match="BOOKSTORE_BREAKER_FAILURE_RATE"):
        breaker_settings_from(settings)


# --------------------------------------------------------------------------- through gRPC's own plumbing


class FakePayment:
    """Answers Pay, or fails every call with ``failure`` when set."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: grpc.StatusCode | None = None

    def Pay(self, request: payment_pb2.PayRequest, *, timeout: float | None) -> payment_pb2.PayResponse:
        self.calls += 1
        if self.failure is not None:
            raise RpcFailure(self.failure, "injected")
        return payment_pb2.PayResponse(payment=payment_pb2.Payment(payment_id=f"p-{self.calls}"))


def stub_over(registry: BreakerRegistry, payment: FakePayment) -> payment_pb2_grpc.PaymentServiceStub:
    channel = grpc.intercept_channel(
        InProcessChannel(payment), CircuitBreakerInterceptor(registry, "payment")
    )
    return payment_pb2_grpc.PaymentServiceStub(channel)


def test_a_stub_keeps_its_blocking_with_call_and_future_forms(registry: BreakerRegistry) -> None:
    stub = stub_over(registry, FakePayment())
    request = payment_pb2.PayRequest(order_id="o-1", amount_cents=100)

    assert stub.Pay(request, timeout=1).payment.payment_id == "p-1"
    response, _call = stub.Pay.with_call(request, timeout=1)
    assert response.payment.payment_id == "p-2"
    assert stub.Pay.future(request, timeout=1).result().payment.payment_id == "p-3"
    assert registry.breaker("payment").snapshot().totals.successes == 3


def test_through_a_stub_failures_open_the_breaker_and_then_it_raises_without_calling(
    registry: BreakerRegistry,
) -> None:
    payment = FakePayment()
    payment.failure = grpc.StatusCode.UNAVAILABLE
    stub = stub_over(registry, payment)
    request = payment_pb2.PayRequest(order_id="o-1", amount_cents=100)
    for _ in range(4):
        with pytest.raises(grpc.RpcError):
            stub.Pay(request, timeout=1)

    with pytest.raises(CircuitOpenRpcError) as refused:
        stub.Pay(request, timeout=1)
    assert payment.calls == 4
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert isinstance(stub.Pay.future(request, timeout=1).exception(), CircuitOpenRpcError)


def test_a_protected_channel_is_a_channel_that_closes_like_one() -> None:
    # Opening a channel does not connect; this one is never called.
    channel = protected_channel("127.0.0.1:1", "payment", BreakerRegistry())

    assert isinstance(channel, grpc.Channel)
    assert callable(payment_pb2_grpc.PaymentServiceStub(channel).Pay)
    channel.close()
