"""Visible self-checks for exercise notebooks, and the small test servers they need.

A learner runs a check cell right after an exercise and sees, at once, PASS or FAIL with a
message that says what was expected. These checks are deliberately public and few; the
instructor's hidden checks (``solutions/checks/``) probe more cases with other inputs, so
passing the self-checks is necessary, not sufficient.

The helpers start real gRPC servers inside the notebook's own process (on free loopback
ports), so a learner's servicer or channel is exercised over a real connection.

What a learner sees when a cell fails matters as much as the check itself. Importing this
module inside IPython (every exercise notebook does, in its first cell) installs a presenter
with ``bookstore.platform.learner_errors`` (which owns IPython's one ``set_custom_exc``
handler, and first asks the renderers other packages registered), so that:

* an untouched exercise stub (``NotImplementedError("exercise")``) shows one line,
  "not attempted yet: <what to do>", and no traceback;
* a failed check shows its FAIL line and hint (``SelfCheckFailed._render_traceback_``);
* any other exception shows only the learner's own frames (the notebook's cells), never
  frames from inside ``bookstore``, the standard library or installed packages.

The cell still raises: the kernel answers with an error, so Run All stops at the first
unanswered question and the hidden grader still sees ``NotImplementedError: exercise``.
Outside IPython (pytest, the grader's check modules) nothing is registered.
"""

from __future__ import annotations

import os
import sysconfig
import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from bookstore.grading.checks import STUB_MESSAGE
from bookstore.platform import learner_errors
from bookstore.rpc.v1 import catalog_pb2, catalog_pb2_grpc, inventory_pb2, inventory_pb2_grpc


class SelfCheckFailed(AssertionError):
    """A self-check did not hold; the message says what was expected."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback: the frames would be check()'s own.
        return str(self).splitlines()


def is_exercise_stub(error: BaseException) -> bool:
    """Whether ``error`` is what an exercise stub raises (see bookstore.grading.regions)."""
    return isinstance(error, NotImplementedError) and error.args == (STUB_MESSAGE,)


def not_attempted_message(traceback: types.TracebackType | None) -> str:
    """The line shown for an untouched stub; names the function to write when there is one."""
    last = traceback
    while last is not None and last.tb_next is not None:
        last = last.tb_next
    name = last.tb_frame.f_code.co_name if last is not None else "<module>"
    if name.startswith("<"):
        todo = "replace the two TODO lines in the exercise cell above with your code and run that cell"
    else:
        todo = f"write the body of {name}() where its TODO lines are, and run that cell"
    return f"not attempted yet: {todo}; then run this cell again"


def _library_roots() -> tuple[str, ...]:
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sysconfig.get_paths()
    roots = {package, *(paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths)}
    return tuple(os.path.join(os.path.realpath(root), "") for root in roots)


def learner_frames(traceback: types.TracebackType | None) -> types.TracebackType | None:
    """``traceback`` without the frames of the bookstore package, the standard library and packages."""
    roots = _library_roots()
    kept: list[types.TracebackType] = []
    while traceback is not None:
        filename = os.path.realpath(traceback.tb_frame.f_code.co_filename)
        if not filename.startswith(roots):
            kept.append(traceback)
        traceback = traceback.tb_next
    rebuilt: types.TracebackType | None = None
    for entry in reversed(kept):
        rebuilt = types.TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


def _show_to_learner(
    shell: Any, etype: type[BaseException], value: BaseException, traceback: types.TracebackType | None
) -> None:
    """How an exercise notebook shows an error no renderer explains: briefly; the cell still fails."""
    if is_exercise_stub(value):
        shell._showtraceback(etype, value, [not_attempted_message(traceback)])
    else:
        # showtraceback honours _render_traceback_ (SelfCheckFailed) and handles SyntaxError itself.
        shell.showtraceback((etype, value, learner_frames(traceback)), tb_offset=0)


def install_learner_tracebacks() -> bool:
    """Show errors this way in the running IPython shell; False when there is none.

    IPython keeps one custom exception handler, so it is ``learner_errors``' own: errors that
    another package explains (a lost broker connection, say) keep their explanation, and
    ``_show_to_learner`` shows all the others.
    """
    return learner_errors.install(presenter=_show_to_learner)


def check(description: str, condition: bool, hint: str = "") -> None:
    """Print PASS, or raise with the description and a hint."""
    if not condition:
        raise SelfCheckFailed(f"FAIL {description}" + (f"\n  hint: {hint}" if hint else ""))
    print(f"PASS {description}")


@contextmanager
def serve_in_process(add_to_server: Callable[[Any, grpc.Server], None], servicer: Any) -> Iterator[str]:
    """Serve ``servicer`` on a free loopback port for the duration of the block; yields the address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


class _CountingInventory(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, name: str, counts: Counter[str], lock: threading.Lock) -> None:
        self._name, self._counts, self._lock = name, counts, lock

    def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.GetStockResponse:
        with self._lock:
            self._counts[self._name] += 1
        return inventory_pb2.GetStockResponse(book_id=request.book_id, available=1)


@contextmanager
def counting_inventory_replicas(count: int) -> Iterator[tuple[list[str], Counter[str]]]:
    """``count`` tiny InventoryService replicas that count the GetStock calls each one serves.

    Yields their addresses and a Counter keyed by address.
    """
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    servers: list[grpc.Server] = []
    addresses: list[str] = []
    try:
        for _ in range(count):
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            port = server.add_insecure_port("127.0.0.1:0")
            address = f"127.0.0.1:{port}"
            inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
                _CountingInventory(address, counts, lock), server
            )
            server.start()
            servers.append(server)
            addresses.append(address)
        yield addresses, counts
    finally:
        for server in servers:
            server.stop(None)


BATCH_LIMIT = 100  # BatchGetBooks takes 1-100 distinct ids (catalog.proto)
NO_DEADLINE_ABOVE_S = 24 * 3600  # a call with more time left than a day was sent without a deadline


@dataclass
class CatalogCalls:
    """What a learner's client asked of a ``counting_catalog``: calls per method, and deadlines."""

    per_method: Counter[str] = field(default_factory=Counter)
    without_deadline: int = 0

    @property
    def round_trips(self) -> int:
        return sum(self.per_method.values())


class _CountingCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """A catalogue that keeps the real service's contract and counts every call it serves."""

    def __init__(self, books: dict[int, catalog_pb2.Book], calls: CatalogCalls, lock: threading.Lock) -> None:
        self._books, self._calls, self._lock = books, calls, lock

    def _count(self, method: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._calls.per_method[method] += 1
            # gRPC Python reports "no deadline" as about 2**63 ns left, not as None.
            remaining = context.time_remaining()
            if remaining is None or remaining > NO_DEADLINE_ABOVE_S:
                self._calls.without_deadline += 1

    def GetBook(
        self, request: catalog_pb2.GetBookRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.GetBookResponse:
        self._count("GetBook", context)
        if request.book_id not in self._books:
            context.abort(grpc.StatusCode.NOT_FOUND, f"book_id: no book with id {request.book_id}")
        return catalog_pb2.GetBookResponse(book=self._books[request.book_id])

    def BatchGetBooks(
        self, request: catalog_pb2.BatchGetBooksRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.BatchGetBooksResponse:
        self._count("BatchGetBooks", context)
        ids = list(request.book_ids)
        if not 1 <= len(ids) <= BATCH_LIMIT:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"book_ids: 1 to {BATCH_LIMIT} ids, got {len(ids)}"
            )
        if len(set(ids)) != len(ids):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "book_ids: must be distinct")
        missing = next((i for i in ids if i not in self._books), None)
        if missing is not None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"book_ids: no book with id {missing}")
        return catalog_pb2.BatchGetBooksResponse(books=[self._books[i] for i in ids])


@contextmanager
def counting_catalog(books: int = 300) -> Iterator[tuple[catalog_pb2_grpc.CatalogServiceStub, CatalogCalls]]:
    """A catalogue of ``books`` books (ids 1..books, title ``"Book <id>"``) served on loopback.

    Yields a stub to it and the ``CatalogCalls`` it counts, so a check can measure what a
    client design costs in round trips, not only whether its answer is right.
    """
    shelf = {
        i: catalog_pb2.Book(book_id=i, title=f"Book {i}", price_cents=100 + i) for i in range(1, books + 1)
    }
    calls = CatalogCalls()
    servicer = _CountingCatalog(shelf, calls, threading.Lock())
    with (
        serve_in_process(catalog_pb2_grpc.add_CatalogServiceServicer_to_server, servicer) as address,
        grpc.insecure_channel(address) as channel,
    ):
        yield catalog_pb2_grpc.CatalogServiceStub(channel), calls


def send_get_stock_calls(channel: grpc.Channel, calls: int) -> None:
    """Send ``calls`` GetStock calls through ``channel``, each with a 2 s deadline."""
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    for _ in range(calls):
        stub.GetStock(inventory_pb2.GetStockRequest(book_id=1), timeout=2)


install_learner_tracebacks()
