"""The channel between the grader and the learner's kernel: values, proxies, callbacks, limits.

Both ends run in this process over a socket pair: the protocol is the same as between the
worker and a sandboxed kernel, without the kernel's start-up time.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from bookstore.grading.checks import CheckFailed, RemoteNamespace, load_checks, run_checks
from bookstore.grading.remote import ChannelClosed, Endpoint
from bookstore.rpc.v1 import catalog_pb2
from bookstore.saga import FailureMeaning, SagaDefinition

from .synthetic import CHECKS_SOURCE

LEARNER_CODE = '''
import grpc
from bookstore.saga import SagaDefinition, Step

def add(a, b):
    return a + b

def title(stub, book_id):
    from bookstore.rpc.v1 import catalog_pb2
    try:
        return stub.GetBook(catalog_pb2.GetBookRequest(book_id=book_id), timeout=2).book.title
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise

def retry(call, attempts, sleep):
    for attempt in range(attempts):
        try:
            return call()
        except grpc.RpcError as error:
            last = error
            sleep(0.1 * 2**attempt)
    raise last

class Breaker:
    def __init__(self, clock):
        self.clock, self.opened = clock, clock()
    def age(self):
        return self.clock() - self.opened

def grow(items):
    items.append(len(items))
    return len(items)

def saga(warehouse):
    return SagaDefinition("checkout", [Step("reserve", lambda ctx: warehouse.reserve(ctx.payload["n"]))])

def plan(meaning):
    return meaning is __import__("bookstore.saga").saga.FailureMeaning.POSSIBLY_DONE

def peek(thing):
    return getattr(thing, PEEK)

def poke(thing):
    thing.count = 99

def forever():
    while True:
        pass
'''


class _Unavailable(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "simulated"


class _Stub:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def GetBook(self, request: catalog_pb2.GetBookRequest, **kwargs: Any) -> catalog_pb2.GetBookResponse:
        self.calls.append(kwargs)
        if request.book_id == 4:
            raise _Unavailable(grpc.StatusCode.NOT_FOUND)
        return catalog_pb2.GetBookResponse(book=catalog_pb2.Book(book_id=request.book_id, title="Emma"))


class _Warehouse:
    def __init__(self) -> None:
        self.count = 0
        self._secret = "hidden"

    def reserve(self, n: int) -> None:
        self.count += n


def _pair(namespace: dict[str, Any]) -> tuple[Endpoint, Endpoint]:
    grader_socket, kernel_socket = socket.socketpair()
    kernel = Endpoint(kernel_socket, trusted=False, namespace=namespace).start()
    return Endpoint(grader_socket, trusted=True).start(), kernel


@pytest.fixture
def ns() -> Iterator[RemoteNamespace]:
    learner: dict[str, Any] = {"PEEK": "_secret"}
    exec(LEARNER_CODE, learner)
    grader, kernel = _pair(learner)
    namespace = RemoteNamespace(grader)
    namespace.kernel = kernel  # type: ignore[attr-defined]
    yield namespace
    grader.close()
    kernel.close()


def test_values_come_back_as_data_and_missing_names_fail_the_check(ns: RemoteNamespace) -> None:
    assert ns["add"](2, 3) == 5
    assert ns["add"]([1], [2]) == [1, 2]
    assert ns["add"]((1,), (2,)) == (1, 2)
    assert ns["add"]("a", "b") == "ab"
    assert "add" in ns and "nope" not in ns
    with pytest.raises(CheckFailed, match="nope is not defined"):
        ns["nope"]


def test_a_grader_stub_is_called_back_with_real_messages_and_its_errors_cross_as_grpc_errors(
    ns: RemoteNamespace,
) -> None:
    stub = _Stub()
    assert ns["title"](stub, 3) == "Emma"
    assert ns["title"](stub, 4) is None
    assert stub.calls == [{"timeout": 2}, {"timeout": 2}]


def test_an_error_the_grader_raised_comes_back_as_the_very_same_object(ns: RemoteNamespace) -> None:
    failures = [_Unavailable(grpc.StatusCode.UNAVAILABLE) for _ in range(3)]
    pending = iter(failures)
    waits: list[float] = []

    def call() -> None:
        raise next(pending)

    with pytest.raises(grpc.RpcError) as raised:
        ns["retry"](call, 3, waits.append)
    assert raised.value is failures[2]
    assert waits == [0.1, 0.2, 0.4]


def test_learner_objects_are_proxies_named_after_their_class_and_call_the_grader_back(
    ns: RemoteNamespace,
) -> None:
    now = [100.0]
    breaker = ns["Breaker"](lambda: now[0])
    now[0] += 5
    assert breaker.age() == 5.0
    assert type(breaker).__name__ == "Breaker"


def test_course_values_are_rebuilt_here_and_a_changed_argument_list_is_copied_back(
    ns: RemoteNamespace,
) -> None:
    items = [0, 1]
    assert ns["grow"](items) == 3 and items == [0, 1, 2]
    assert ns["plan"](FailureMeaning.POSSIBLY_DONE) is True
    warehouse = _Warehouse()
    definition = ns["saga"](warehouse)
    assert isinstance(definition, SagaDefinition)
    definition.steps[0].action(type("Ctx", (), {"payload": {"n": 3}})())
    assert warehouse.count == 3


def test_learner_code_cannot_read_private_attributes_set_attributes_or_get_dangerous_builtins(
    ns: RemoteNamespace,
) -> None:
    warehouse = _Warehouse()
    with pytest.raises(AttributeError, match="private"):
        ns["peek"](warehouse)
    with pytest.raises(AttributeError, match="read-only"):
        ns["poke"](warehouse)
    assert warehouse.count == 0
    with pytest.raises(TypeError, match="cannot be handed"):
        ns["add"](os.system, 1)
    with pytest.raises(TypeError, match="cannot be handed"):
        ns["add"](open, 1)


def test_a_hung_learner_call_fails_its_check_alone_and_the_kernel_thread_is_stopped(
    ns: RemoteNamespace,
) -> None:
    hangs = '\n\n@check("q4", points=1, timeout_s=0.5)\ndef hangs(ns):\n    ns["forever"]()\n'
    source = CHECKS_SOURCE + hangs
    results = run_checks(load_checks(source), ns, default_timeout_s=5)
    assert results[-1].message.startswith("timed out after 0.5 s")
    assert ns["add"](1, 1) == 2, "the channel still serves after a cancelled call"


def test_a_kernel_that_goes_away_fails_the_next_call(ns: RemoteNamespace) -> None:
    add = ns["add"]
    ns.kernel.close()  # type: ignore[attr-defined]
    assert ns.endpoint.closed.wait(5)
    with pytest.raises(ChannelClosed):
        add(1, 2)


def test_a_lying_agent_earns_nothing_on_checks_it_cannot_answer_correctly() -> None:
    """A kernel whose agent answers every request with 'passed' or with the names the checks use."""
    grader_socket, liar = socket.socketpair()
    grader = Endpoint(grader_socket, trusted=True).start()

    def lie() -> None:
        reader = liar.makefile("rb")
        for line in reader:
            request = json.loads(line)
            answer: dict[str, Any] = {"id": request["id"], "chain": request["chain"]}
            answer["ok"] = {"passed": True, "results": [{"passed": True}] * 5}
            if request["op"] == "ns_has":
                answer["ok"] = True
            liar.sendall((json.dumps(answer) + "\n").encode())

    threading.Thread(target=lie, daemon=True).start()
    results = run_checks(load_checks(CHECKS_SOURCE), RemoteNamespace(grader), default_timeout_s=5)
    grader.close()
    assert [r.passed for r in results] == [False] * 5
