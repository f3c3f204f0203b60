"""Visible self-checks for exercise notebooks, and the small test servers they need.

A learner runs a check cell right after an exercise and sees, at once, PASS or FAIL with a
message that says what was expected. These checks are deliberately public and few; the
instructor's hidden checks (``solutions/checks/``) probe more cases with other inputs, so
passing the self-checks is necessary, not sufficient.

The helpers start real gRPC servers inside the notebook's own process (on free loopback
ports), so a learner's servicer or channel is exercised over a real connection.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

from bookstore.rpc.v1 import inventory_pb2, inventory_pb2_grpc


class SelfCheckFailed(AssertionError):
    """A self-check did not hold; the message says what was expected."""


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


def send_get_stock_calls(channel: grpc.Channel, calls: int) -> None:
    """Send ``calls`` GetStock calls through ``channel``, each with a 2 s deadline."""
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    for _ in range(calls):
        stub.GetStock(inventory_pb2.GetStockRequest(book_id=1), timeout=2)
