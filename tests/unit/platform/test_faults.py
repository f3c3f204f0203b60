import random
import time

import grpc
import pytest

from bookstore.domain.errors import InvalidArgument
from bookstore.platform.admin import AdminServicer
from bookstore.platform.faults import Decision, Fault, FaultInjectionInterceptor, FaultTable, burn_cpu
from bookstore.rpc.v1 import admin_pb2


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


class Details:
    def __init__(self, method: str) -> None:
        self.method = method


def handler_for(behaviour):  # type: ignore[no-untyped-def]
    return grpc.unary_unary_rpc_method_handler(behaviour)


def intercept(table: FaultTable, method: str, sleeps: list[float]):  # type: ignore[no-untyped-def]
    interceptor = FaultInjectionInterceptor(table, sleep=sleeps.append)
    return interceptor.intercept_service(
        lambda _d: handler_for(lambda req, ctx: f"handled {req}"), Details(method)
    )


def test_a_call_without_faults_reaches_the_servicer_and_is_counted() -> None:
    table = FaultTable()
    handler = intercept(table, "/bookstore.rpc.v1.PaymentService/Pay", [])
    assert handler.unary_unary("x", FakeContext()) == "handled x"
    assert table.calls() == {"Pay": 1}


def test_a_full_error_rate_fails_every_call_with_the_chosen_code_after_the_latency() -> None:
    table = FaultTable()
    table.set(Fault("Pay", error_rate=1.0, status_code="DEADLINE_EXCEEDED", latency_ms=250))
    sleeps: list[float] = []
    handler = intercept(table, "/bookstore.rpc.v1.PaymentService/Pay", sleeps)
    context = FakeContext()
    with pytest.raises(Aborted):
        handler.unary_unary("x", context)
    assert context.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert sleeps == [0.25]


def test_an_error_rate_fails_about_that_fraction_of_calls() -> None:
    table = FaultTable(rng=random.Random(7))
    table.set(Fault("Pay", error_rate=0.3))
    failures = sum(table.decide("Pay").code is not None for _ in range(2000))
    assert 500 < failures < 700


def test_a_slow_rate_delays_about_that_fraction_of_calls_independently_of_failures() -> None:
    table = FaultTable(rng=random.Random(11))
    table.set(Fault("Pay", error_rate=0.3, latency_ms=1500, slow_rate=0.1))
    decisions = [table.decide("Pay") for _ in range(4000)]
    slow = [d.delay_s == 1.5 for d in decisions]
    failed = [d.code is grpc.StatusCode.UNAVAILABLE for d in decisions]
    assert all(d.delay_s in (0.0, 1.5) for d in decisions)
    assert 300 < sum(slow) < 500
    assert 1050 < sum(failed) < 1350
    # Independent draws: about 30% of the slow calls fail too, not all of them or none.
    assert 0.2 < sum(s and f for s, f in zip(slow, failed, strict=True)) / sum(slow) < 0.4


def test_a_fault_without_a_slow_rate_delays_every_call() -> None:
    table = FaultTable()
    table.set(Fault("Pay", latency_ms=200))
    assert {table.decide("Pay") for _ in range(50)} == {Decision(0.2, 0.0, None)}


def test_a_cpu_fault_burns_that_much_of_the_calling_threads_cpu_time_on_the_slowed_calls() -> None:
    table = FaultTable()
    table.set(Fault("ReserveStock", cpu_ms=30))
    assert table.decide("ReserveStock") == Decision(0.0, 0.03, None)
    started = time.thread_time()
    burn_cpu(0.03)
    assert time.thread_time() - started >= 0.03


def test_a_wildcard_fault_applies_to_every_method_but_a_specific_one_wins() -> None:
    table = FaultTable()
    table.set(Fault("*", error_rate=1.0))
    table.set(Fault("GetPayment", error_rate=0.0, latency_ms=10))
    assert table.decide("Refund").code is grpc.StatusCode.UNAVAILABLE
    assert table.decide("GetPayment") == Decision(0.01, 0.0, None)


def test_admin_and_health_calls_are_never_faulted() -> None:
    table = FaultTable()
    table.set(Fault("*", error_rate=1.0))
    for method in ("/bookstore.rpc.v1.AdminService/ClearFaults", "/grpc.health.v1.Health/Check"):
        handler = intercept(table, method, [])
        assert handler.unary_unary("x", FakeContext()) == "handled x"


def test_clearing_one_method_keeps_the_others() -> None:
    table = FaultTable()
    table.set(Fault("Pay", error_rate=1.0))
    table.set(Fault("Refund", error_rate=1.0))
    assert [f.method for f in table.clear("Pay")] == ["Refund"]
    assert table.clear() == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"error_rate": 1.5}, "fault.error_rate"),
        ({"status_code": "OK"}, "fault.status_code"),
        ({"status_code": "BROKEN"}, "fault.status_code"),
        ({"latency_ms": -1}, "fault.latency_ms"),
        ({"slow_rate": -0.1}, "fault.slow_rate"),
        ({"cpu_ms": 10_001}, "fault.cpu_ms"),
    ],
)
def test_an_invalid_fault_is_refused_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        Fault("Pay", **kwargs)
    assert error.value.field == field


def test_the_admin_service_reads_an_unset_slow_rate_as_every_call() -> None:
    table = FaultTable()
    admin = AdminServicer("payment", 0, table)
    for fault in (
        admin_pb2.Fault(method="Pay", latency_ms=100),
        admin_pb2.Fault(method="Refund", latency_ms=100, slow_rate=0.0),
    ):
        admin.InjectFault(admin_pb2.InjectFaultRequest(fault=fault), FakeContext())  # type: ignore[arg-type]
    assert {fault.method: fault.slow_rate for fault in table.active()} == {"Pay": 1.0, "Refund": 0.0}


def test_the_admin_service_passes_a_cpu_burn_through_and_reports_it() -> None:
    table = FaultTable()
    admin = AdminServicer("inventory", 0, table)
    request = admin_pb2.InjectFaultRequest(fault=admin_pb2.Fault(method="ReserveStock", cpu_ms=40))
    answer = admin.InjectFault(request, FakeContext())  # type: ignore[arg-type]
    assert [f.cpu_ms for f in table.active()] == [40]
    assert [f.cpu_ms for f in answer.faults] == [40]
