"""Hidden checks for week 6 (instructor side: never handed out, never shown in feedback).

Each check receives the learner kernel's globals and raises CheckFailed with a message that
says what was expected, without revealing these inputs' source.
"""

from __future__ import annotations

from typing import Any

import grpc

from bookstore.grading.checks import CheckFailed, check
from bookstore.grading.selfcheck import (
    BATCH_LIMIT,
    CatalogCalls,
    counting_catalog,
    counting_inventory_replicas,
    send_get_stock_calls,
    serve_in_process,
)
from bookstore.launcher.cluster import notebook_cluster
from bookstore.rpc.v1 import catalog_pb2, catalog_pb2_grpc

WEEK = 6
NEEDS_CLUSTER = True


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"simulated {self._code.name}"


class _RecordingStub:
    """Answers GetBook with a fixed outcome and records the keyword arguments of each call."""

    def __init__(self, outcome: grpc.StatusCode | str) -> None:
        self.outcome = outcome
        self.calls: list[dict[str, Any]] = []

    def GetBook(self, request: catalog_pb2.GetBookRequest, **kwargs: Any) -> catalog_pb2.GetBookResponse:
        self.calls.append(kwargs)
        if isinstance(self.outcome, grpc.StatusCode):
            raise _FakeRpcError(self.outcome)
        return catalog_pb2.GetBookResponse(book=catalog_pb2.Book(book_id=request.book_id, title=self.outcome))


def _learner(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        raise CheckFailed(f"{name} is not defined")
    return ns[name]


@check("q1", points=1, title="returns the titles of books that exist")
def q1_known_books(ns: dict[str, Any]) -> None:
    find_book_title = _learner(ns, "find_book_title")
    stub = notebook_cluster().stub("catalog")
    for book_id in (2, 17, 42):
        expected = stub.GetBook(catalog_pb2.GetBookRequest(book_id=book_id), timeout=2).book.title
        got = find_book_title(stub, book_id)
        if got != expected:
            raise CheckFailed(f"find_book_title(stub, {book_id}) should return {expected!r}, got {got!r}")


@check("q1", points=1, title="returns None for a book that does not exist")
def q1_unknown_book(ns: dict[str, Any]) -> None:
    find_book_title = _learner(ns, "find_book_title")
    got = find_book_title(notebook_cluster().stub("catalog"), 31_337)
    if got is not None:
        raise CheckFailed(f"an unknown book should give None, got {got!r}")


@check("q1", points=1, title="every call carries a deadline of at most 2 s")
def q1_deadline(ns: dict[str, Any]) -> None:
    find_book_title = _learner(ns, "find_book_title")
    stub = _RecordingStub("Emma")
    find_book_title(stub, 5)
    if not stub.calls:
        raise CheckFailed("find_book_title did not call stub.GetBook")
    timeout = stub.calls[0].get("timeout")
    if timeout is None or not 0 < timeout <= 2:
        raise CheckFailed(f"GetBook should be called with 0 < timeout <= 2, got timeout={timeout!r}")


@check("q1", points=1, title="other failures reach the caller instead of becoming None")
def q1_other_errors_propagate(ns: dict[str, Any]) -> None:
    find_book_title = _learner(ns, "find_book_title")
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        try:
            result = find_book_title(_RecordingStub(code), 5)
        except grpc.RpcError as error:
            if error.code() != code:
                raise CheckFailed(f"a {code.name} failure was re-raised as {error.code().name}") from None
            continue
        raise CheckFailed(
            f"a {code.name} failure should raise grpc.RpcError, but the call returned {result!r}"
        )


@check("q2", points=2, title="the channel reaches every replica")
def q2_every_replica(ns: dict[str, Any]) -> None:
    balanced_channel = _learner(ns, "balanced_channel")
    with counting_inventory_replicas(3) as (addresses, served):
        channel = balanced_channel(addresses)
        send_get_stock_calls(channel, 60)
        channel.close()
    if len(served) != 3:
        raise CheckFailed(f"60 calls over 3 replicas reached only {len(served)} of them")


@check("q2", points=1, title="calls are spread evenly once connected")
def q2_even_spread(ns: dict[str, Any]) -> None:
    balanced_channel = _learner(ns, "balanced_channel")
    with counting_inventory_replicas(3) as (addresses, served):
        channel = balanced_channel(addresses)
        send_get_stock_calls(channel, 60)
        served.clear()
        send_get_stock_calls(channel, 90)
        channel.close()
    shares = sorted(served.get(a, 0) for a in addresses)
    if shares[0] < 20:
        raise CheckFailed(f"90 calls over 3 replicas should be close to 30 each, got {shares}")


def _call_shelf(
    ns: dict[str, Any], book_id: int
) -> tuple[grpc.StatusCode, str, catalog_pb2.GetBookResponse | None]:
    shelf_class = _learner(ns, "ShelfCatalog")
    books = {3: catalog_pb2.Book(book_id=3, title="Beloved", author="Toni Morrison", price_cents=1499)}
    with serve_in_process(
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server, shelf_class(books)
    ) as address, grpc.insecure_channel(address) as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        try:
            reply = stub.GetBook(catalog_pb2.GetBookRequest(book_id=book_id), timeout=5)
        except grpc.RpcError as error:
            return error.code(), error.details() or "", None
        return grpc.StatusCode.OK, "", reply


@check("q3", points=1, title="GetBook answers a book on the shelf")
def q3_known(ns: dict[str, Any]) -> None:
    code, details, reply = _call_shelf(ns, 3)
    if code != grpc.StatusCode.OK or reply is None or reply.book.title != "Beloved":
        raise CheckFailed(f"GetBook(book_id=3) should return the book, got {code.name} {details!r}")


@check("q3", points=1, title="an unknown id ends the call with NOT_FOUND naming book_id")
def q3_unknown(ns: dict[str, Any]) -> None:
    code, details, _ = _call_shelf(ns, 4)
    if code != grpc.StatusCode.NOT_FOUND or not details.startswith("book_id"):
        raise CheckFailed(
            "GetBook(book_id=4) should be NOT_FOUND with a message starting 'book_id', "
            f"got {code.name} {details!r}"
        )


@check("q3", points=1, title="a non-positive id ends the call with INVALID_ARGUMENT naming book_id")
def q3_invalid(ns: dict[str, Any]) -> None:
    for book_id in (0, -3):
        code, details, _ = _call_shelf(ns, book_id)
        if code != grpc.StatusCode.INVALID_ARGUMENT or not details.startswith("book_id"):
            raise CheckFailed(
                f"GetBook(book_id={book_id}) should be INVALID_ARGUMENT with a message starting 'book_id', "
                f"got {code.name} {details!r}"
            )


def _cart(ns: dict[str, Any], cart: list[int]) -> tuple[list[str], CatalogCalls]:
    cart_titles = _learner(ns, "cart_titles")
    with counting_catalog() as (stub, calls):
        try:
            titles = cart_titles(stub, cart)
        except grpc.RpcError as error:
            raise CheckFailed(
                f"a cart of {len(cart)} items failed with {error.code().name}: {error.details()}"
            ) from None
    return titles, calls


# Carts the visible checks do not use: a single book, exactly one full batch, one past it,
# repeats spread across batch boundaries, and the largest cart.
_HIDDEN_CARTS = (
    [42],
    list(range(101, 201)),
    list(range(1, 102)),
    [8, 150, 8, 299, 150, *range(20, 140)],
    list(range(300, 0, -1)),
)


@check("q4", points=2, title="the cart's titles, in order, repeats included, for any size up to 300")
def q4_titles(ns: dict[str, Any]) -> None:
    for cart in _HIDDEN_CARTS:
        titles, _ = _cart(ns, cart)
        if titles != [f"Book {i}" for i in cart]:
            raise CheckFailed(f"a cart of {len(cart)} items got the wrong titles or order")


@check("q4", points=1, title="no more round trips than the contract forces (batches of up to 100)")
def q4_round_trips(ns: dict[str, Any]) -> None:
    for cart in _HIDDEN_CARTS:
        _, calls = _cart(ns, cart)
        fewest = -(-len(set(cart)) // BATCH_LIMIT)
        if calls.round_trips > fewest:
            raise CheckFailed(
                f"a cart of {len(set(cart))} distinct books took {calls.round_trips} calls; {fewest} suffice"
            )


@check("q4", points=1, title="every call carries a deadline")
def q4_deadline(ns: dict[str, Any]) -> None:
    _, calls = _cart(ns, [3, 1, 4, 1, 5])
    if calls.without_deadline:
        raise CheckFailed(f"{calls.without_deadline} call(s) without a deadline: pass timeout=")
