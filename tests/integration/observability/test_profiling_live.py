"""Profiling a live service finds the injected hot spot; where ptrace is refused, the fallback does.

A cluster's inventory gets a ``cpu_ms`` fault on ``ReserveStock`` while checkouts run; py-spy
records its process from outside and must put ``faults.burn_cpu`` on top. The fallback runs the
same servicer and fault interceptor in this thread under pyinstrument and must find the same.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.launcher.inprocess import Aborted, InProcessService
from bookstore.observability.profiling import (
    ProfilerUnavailable,
    profile_call,
    ptrace_refusal,
    record_pid,
    service_pid,
)
from bookstore.platform.faults import Fault
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import inventory_pb2
from bookstore.services.inventory.__main__ import DEFINITION as INVENTORY

RESERVE = "/bookstore.rpc.v1.InventoryService/ReserveStock"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as running:
        yield running


def checkouts_until(stop: threading.Event, http: httpx.Client, headers: dict[str, str]) -> None:
    for book in itertools.cycle(range(1, 21)):
        if stop.is_set():
            return
        http.post("/orders", json={"items": [{"book_id": book, "quantity": 1}]}, headers=headers)


def test_py_spy_names_the_injected_function_in_the_live_inventory_process(
    cluster: Cluster, http: httpx.Client, auth_headers: dict[str, str]
) -> None:
    refused = ptrace_refusal()
    if refused:
        pytest.skip(refused)
    cluster.inject_fault("inventory", "ReserveStock", error_rate=0.0, cpu_ms=40)
    stop = threading.Event()
    load = threading.Thread(target=checkouts_until, args=(stop, http, auth_headers))
    load.start()
    try:
        profile = record_pid(service_pid(cluster, "inventory"), 2.0)
    except ProfilerUnavailable as error:
        pytest.skip(error.reason)
    finally:
        stop.set()
        load.join()
        cluster.clear_faults("inventory")
    hottest = profile.hottest()
    assert (hottest.function, hottest.file) == ("burn_cpu", "bookstore/platform/faults.py"), profile.table()


def test_a_missing_py_spy_is_reported_as_unavailable_with_its_cause(cluster: Cluster) -> None:
    with pytest.raises(ProfilerUnavailable, match="not installed"):
        record_pid(service_pid(cluster, "inventory"), 1.0, py_spy="/nonexistent/py-spy")


def test_the_in_process_fallback_finds_the_same_function_with_pyinstrument(tmp_path: Path) -> None:
    inventory = InProcessService(INVENTORY, Settings(service="inventory", work_dir=tmp_path))
    inventory.faults.set(Fault("ReserveStock", cpu_ms=20))

    def reserve() -> object:
        item = inventory_pb2.StockItem(book_id=1, quantity=1)
        request = inventory_pb2.ReserveStockRequest(order_id=str(uuid.uuid4()), items=[item])
        return inventory.call(RESERVE, request)

    profile = profile_call(reserve, duration_s=0.5)
    hottest = profile.hottest()
    assert profile.profiler == "pyinstrument"
    assert (hottest.function, hottest.file) == ("burn_cpu", "bookstore/platform/faults.py"), profile.table()


def test_the_in_process_path_reports_what_the_servicer_refused(tmp_path: Path) -> None:
    inventory = InProcessService(INVENTORY, Settings(service="inventory", work_dir=tmp_path))
    with pytest.raises(Aborted, match="order_id") as refused:
        inventory.call(RESERVE, inventory_pb2.ReserveStockRequest(order_id="not-a-uuid"))
    assert refused.value.code.name == "INVALID_ARGUMENT"
