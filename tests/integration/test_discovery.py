"""Discovery that follows change: a registry entry the launcher keeps, channels that follow it.

The first tests run real gRPC servers in this process (a one-method service that answers with
its own name) so that every call shows which replica served it; the last ones scale a real
cluster while a client keeps calling through the gateway.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import httpx
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.launcher.traffic import SteadyClient
from bookstore.platform.channels import open_channel
from bookstore.platform.discovery import FollowingChannel, Registry, registry_entry
from bookstore.platform.processes import free_port

WHO = "/test.Who/Name"


def named_server(name: str) -> tuple[grpc.Server, str]:
    """A real gRPC server on a free loopback port whose one method answers with ``name``."""
    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        return name.encode()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    methods = {"Name": grpc.unary_unary_rpc_method_handler(handler)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Who", methods)])
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def servers() -> Iterator[dict[str, str]]:
    started = {name: named_server(name) for name in ("a", "b")}
    yield {name: address for name, (_, address) in started.items()}
    for server, _ in started.values():
        server.stop(grace=None)


def served_by(call: Callable[..., bytes], calls: int = 40) -> Counter[str]:
    return Counter(call(b"", timeout=2).decode() for _ in range(calls))


def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_registry_target_names_its_entry_and_other_targets_are_left_alone() -> None:
    assert registry_entry("registry:/x/inventory.json") == Path("/x/inventory.json")
    assert registry_entry("ipv4:127.0.0.1:1,127.0.0.1:2") is None
    with pytest.raises(ValueError, match="names its entry"):
        registry_entry("registry:")


def test_a_following_channel_sends_calls_to_the_replicas_the_entry_lists_now(
    tmp_path: Path, servers: dict[str, str]
) -> None:
    registry = Registry(tmp_path)
    registry.publish("who", [servers["a"]])
    channel = open_channel(registry.target("who"))
    call = channel.unary_unary(WHO)  # made once, as a stub does, and kept across every change
    try:
        assert served_by(call) == Counter({"a": 40})
        registry.publish("who", [servers["a"], servers["b"]])
        assert eventually(lambda: served_by(call, 20)["b"] > 0), "the added replica never got a call"
        spread = served_by(call)
        assert spread["a"] > 0 and spread["b"] > 0, spread
        registry.publish("who", [servers["b"]])
        assert eventually(lambda: set(served_by(call, 10)) == {"b"}), "calls still reach the removed replica"
    finally:
        channel.close()


def test_calls_fail_unavailable_until_a_replica_is_published_then_succeed(
    tmp_path: Path, servers: dict[str, str]
) -> None:
    registry = Registry(tmp_path)
    channel = open_channel(registry.target("who"))
    call = channel.unary_unary(WHO)
    try:
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", timeout=2)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no replica of who is registered" in raised.value.details()
        registry.publish("who", [servers["a"]])
        assert eventually(lambda: _succeeds(call))
    finally:
        channel.close()


def _succeeds(call: Callable[..., bytes]) -> bool:
    try:
        return call(b"", timeout=2) == b"a"
    except grpc.RpcError:
        return False


def test_a_broken_or_emptied_entry_keeps_the_last_good_list(tmp_path: Path, servers: dict[str, str]) -> None:
    registry = Registry(tmp_path)
    registry.publish("who", [servers["a"]])
    channel = FollowingChannel(registry.entry("who"), lambda found: open_channel("ipv4:" + ",".join(found)))
    call = channel.unary_unary(WHO)
    try:
        registry.entry("who").write_text("{not json")
        time.sleep(0.6)
        assert served_by(call, 5) == Counter({"a": 5})
        registry.publish("who", [])
        time.sleep(0.6)
        assert served_by(call, 5) == Counter({"a": 5})
        assert channel.changes == 0 and channel.addresses == [servers["a"]]
    finally:
        channel.close()


def test_the_old_channel_is_closed_once_its_drain_time_is_over(
    tmp_path: Path, servers: dict[str, str]
) -> None:
    registry = Registry(tmp_path)
    registry.publish("who", [servers["a"]])
    opened: list[grpc.Channel] = []

    def open_addresses(addresses: list[str]) -> grpc.Channel:
        opened.append(open_channel("ipv4:" + ",".join(addresses)))
        return opened[-1]

    channel = FollowingChannel(registry.entry("who"), open_addresses, interval_s=0.05, drain_s=0.3)
    try:
        first = channel.unary_unary(WHO)
        assert first(b"", timeout=2) == b"a"
        registry.publish("who", [servers["b"]])
        assert eventually(lambda: channel.changes == 1)
        assert eventually(lambda: _closed(opened[0]), timeout_s=3), "the old channel was never closed"
        assert first(b"", timeout=2) == b"b"
    finally:
        channel.close()
    assert _closed(opened[1])


def _closed(channel: grpc.Channel) -> bool:
    try:
        channel.unary_unary(WHO)(b"", timeout=1)
    except ValueError:  # grpc: "Cannot invoke RPC on closed channel!"
        return True
    except grpc.RpcError:
        return False
    return False


# ---------------------------------------------------------------------- a whole cluster


def list_books_calls(cluster: Cluster) -> list[int]:
    served = cluster.calls_served("catalog", "ListBooks")
    return [served.get(i, 0) for i in range(len(cluster.replicas["catalog"]))]


def caller_pids(cluster: Cluster) -> dict[str, int | None]:
    return {s.service: s.pid for s in cluster.status() if s.service in ("gateway", "order")}


def test_scaling_a_service_reaches_running_callers_without_restarting_them() -> None:
    with Cluster() as cluster:
        pids_before = caller_pids(cluster)
        with SteadyClient(cluster.gateway_url) as browser:
            assert eventually(lambda: browser.ok > 20)
            cluster.scale("catalog", 2)
            before = list_books_calls(cluster)
            assert eventually(lambda: list_books_calls(cluster)[1] > before[1] + 20, timeout_s=10), (
                "the new catalog replica got no calls from the running gateway"
            )
            cluster.scale("catalog", 1)
            served = browser.ok
            assert eventually(lambda: browser.ok > served + 20)
        assert browser.failed == [], browser.failed[:3]
        assert caller_pids(cluster) == pids_before


def test_static_discovery_restarts_the_callers_to_tell_them() -> None:
    with Cluster(discovery="static") as cluster:
        gateway_before = next(s.pid for s in cluster.status() if s.service == "gateway")
        cluster.scale("catalog", 2)
        gateway_after = next(s.pid for s in cluster.status() if s.service == "gateway")
        assert gateway_after != gateway_before
        with httpx.Client(base_url=cluster.gateway_url, timeout=10) as http:
            for _ in range(40):
                assert http.get("/books").status_code == 200
        assert all(n > 0 for n in list_books_calls(cluster))
